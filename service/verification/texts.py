"""The verification page's words, in Azerbaijani (the default), English and Russian.

One table per language with the same keys (a test checks that none is
missing); the page template names the keys.  The wording of a result must
leave no doubt: VALID says Azərsu issued the statement, REVOKED says in the
heading that it is *not valid*, NOT_FOUND tells the reader not to accept it.
"""

from __future__ import annotations

LANGUAGES = ("az", "en", "ru")
DEFAULT_LANGUAGE = "az"
#: Each language's own name, for the language links.
LANGUAGE_NAMES = {"az": "Azərbaycanca", "en": "English", "ru": "Русский"}

MONTHS = {
    "az": "Yanvar Fevral Mart Aprel May İyun İyul Avqust Sentyabr Oktyabr Noyabr Dekabr",
    "en": "January February March April May June July August September October November December",
    "ru": "Январь Февраль Март Апрель Май Июнь Июль Август Сентябрь Октябрь Ноябрь Декабрь",
}

TEXTS: dict[str, dict[str, str]] = {
    "az": {
        "title": "Arayışın yoxlanılması",
        "org": "“Azərsu” Açıq Səhmdar Cəmiyyəti",
        "lead": "Burada “Azərsu”-nun verdiyi elektron arayışın (son 12 ay üzrə faktura və ödəniş "
        "məlumatları) həqiqi olub-olmadığını yoxlaya bilərsiniz.",
        "languages": "Dil",
        "valid": "ETİBARLIDIR",
        "valid_note": "Bu arayışı “Azərsu” verib və o, etibarlıdır.",
        "compare": "Kağız nüsxədəki nömrə, tarix və məbləğlər aşağıdakılarla eyni olmalıdır.",
        "revoked": "LƏĞV EDİLİB — ETİBARLI DEYİL",
        "revoked_note": "Bu arayışı “Azərsu” verib, lakin sonradan ləğv edib. "
        "O, etibarlı sənəd deyil və qəbul edilməməlidir.",
        "revoked_facts": "Ləğv edilmiş arayışda göstərilənlər (artıq etibarlı deyil)",
        "not_found": "TAPILMADI",
        "not_found_note": "“Azərsu” bu nömrə və bu həşlə arayış verməyib. Nömrəni və həşi "
        "yoxlayın və ya QR kodu yenidən skan edin. Belə bir arayışı etibarlı sənəd kimi "
        "qəbul etməyin.",
        "not_verified": "İMZA TƏSDİQLƏNMƏYİB",
        "not_verified_note": "Faylın elektron imzası etibarlı deyil: bu, “Azərsu”-nun verdiyi "
        "kimi arayış deyil. Onu etibarlı sənəd kimi qəbul etməyin.",
        "number": "Arayış №",
        "issuer": "Arayışı verən",
        "issued_at": "Verilmə tarixi və vaxtı",
        "code": "Abonent kodu",
        "months": "Hesabat ayları",
        "no_months": "hesabat ayı yoxdur",
        "consumption": "Sərfiyyat, cəmi",
        "invoiced": "Faktura məbləği, cəmi",
        "paid": "Ödənilib, cəmi",
        "revoked_at": "Ləğv edilmə tarixi",
        "reason": "Ləğv edilmə səbəbi",
        "another": "Başqa arayışı yoxlayın",
        "by_number": "Nömrə və həş ilə yoxlama",
        "number_label": "Arayışın nömrəsi",
        "number_hint": "Məsələn: AZS-20261207-ABC3BD2D844E",
        "digest_label": "İmza dəyərinin SHA-256 həşi",
        "digest_hint": "Arayışda QR kodun yanında çap olunmuş 64 simvol (0–9, a–f); "
        "boşluqlar olar.",
        "check": "Yoxla",
        "by_file": "İmzalı arayış faylı ilə yoxlama",
        "file_label": "Arayış faylı (XML)",
        "file_hint": "Faylın imzası və reyestr yoxlanılır; fayl saxlanılmır.",
        "check_file": "Faylı yoxla",
        "limited": "Həddən çox sorğu",
        "limited_note": "Bu ünvandan mövcud olmayan arayışlar üçün həddən çox sorğu gəlib. "
        "{seconds} saniyədən sonra yenidən cəhd edin.",
        "unavailable": "Yoxlama hazırda mümkün deyil",
        "unavailable_note": "Bir az sonra yenidən cəhd edin.",
        "bad_request": "Sorğu oxuna bilmədi",
        "bad_request_note": "Nömrəni və həşi formada daxil edin.",
        "privacy": "Bu səhifə heç vaxt ad, ünvan və ya FİN göstərmir: yalnız kağızı "
        "“Azərsu”-nun verdiyi ilə tutuşdurmaq üçün lazım olanları.",
        "utc": "UTC",
        "m3": "m³",
        "azn": "AZN",
    },
    "en": {
        "title": "Statement verification",
        "org": "“Azərsu” Open Joint Stock Company",
        "lead": "Check here whether an electronic statement (invoices and payments of the last "
        "12 months) was issued by Azərsu.",
        "languages": "Language",
        "valid": "VALID",
        "valid_note": "Azərsu issued this statement, and it is valid.",
        "compare": "The number, the date and the totals on the paper must be the same as these.",
        "revoked": "REVOKED — NOT VALID",
        "revoked_note": "Azərsu issued this statement but has revoked it. It is not a valid "
        "document and must not be accepted.",
        "revoked_facts": "What the revoked statement said (no longer valid)",
        "not_found": "NOT FOUND",
        "not_found_note": "Azərsu has issued no statement with this number and this digest. "
        "Check the number and the digest, or scan the QR code again. Do not accept such a "
        "statement as a valid document.",
        "not_verified": "SIGNATURE NOT VALID",
        "not_verified_note": "The file's electronic signature is not valid: it is not a "
        "statement as Azərsu issued it. Do not accept it as a valid document.",
        "number": "Statement No.",
        "issuer": "Issued by",
        "issued_at": "Date and time of issue",
        "code": "Subscriber code",
        "months": "Report months",
        "no_months": "no report months",
        "consumption": "Consumption, total",
        "invoiced": "Invoiced, total",
        "paid": "Paid, total",
        "revoked_at": "Revoked on",
        "reason": "Reason for revocation",
        "another": "Check another statement",
        "by_number": "Check by number and digest",
        "number_label": "Statement number",
        "number_hint": "For example: AZS-20261207-ABC3BD2D844E",
        "digest_label": "SHA-256 of the signature value",
        "digest_hint": "The 64 characters (0–9, a–f) printed beside the QR code; spaces are fine.",
        "check": "Check",
        "by_file": "Check a signed statement file",
        "file_label": "Statement file (XML)",
        "file_hint": "The file's signature and the registry are checked; the file is not kept.",
        "check_file": "Check the file",
        "limited": "Too many lookups",
        "limited_note": "Too many lookups of statements that do not exist came from this "
        "address. Try again in {seconds} seconds.",
        "unavailable": "The check is not available right now",
        "unavailable_note": "Please try again a little later.",
        "bad_request": "The request could not be read",
        "bad_request_note": "Enter the number and the digest in the form.",
        "privacy": "This page never shows a name, an address or a FIN: only what you need to "
        "compare the paper with what Azərsu issued.",
        "utc": "UTC",
        "m3": "m³",
        "azn": "AZN",
    },
    "ru": {
        "title": "Проверка справки",
        "org": "Открытое акционерное общество «Azərsu»",
        "lead": "Здесь можно проверить, выдана ли электронная справка (счета и платежи за "
        "последние 12 месяцев) ОАО «Azərsu».",
        "languages": "Язык",
        "valid": "ДЕЙСТВИТЕЛЬНА",
        "valid_note": "Эту справку выдало ОАО «Azərsu», и она действительна.",
        "compare": "Номер, дата и суммы на бумаге должны совпадать с приведёнными ниже.",
        "revoked": "ОТОЗВАНА — НЕДЕЙСТВИТЕЛЬНА",
        "revoked_note": "ОАО «Azərsu» выдало эту справку, но затем отозвало её. Она не является "
        "действительным документом и не должна приниматься.",
        "revoked_facts": "Что было в отозванной справке (больше не действительно)",
        "not_found": "НЕ НАЙДЕНА",
        "not_found_note": "ОАО «Azərsu» не выдавало справку с этим номером и этим хешем. "
        "Проверьте номер и хеш или отсканируйте QR-код ещё раз. Не принимайте такую справку "
        "как действительный документ.",
        "not_verified": "ПОДПИСЬ НЕ ПОДТВЕРЖДЕНА",
        "not_verified_note": "Электронная подпись файла недействительна: это не справка в том "
        "виде, в каком её выдало ОАО «Azərsu». Не принимайте её как действительный документ.",
        "number": "Справка №",
        "issuer": "Выдана",
        "issued_at": "Дата и время выдачи",
        "code": "Код абонента",
        "months": "Отчётные месяцы",
        "no_months": "нет отчётных месяцев",
        "consumption": "Объём, всего",
        "invoiced": "По счетам, всего",
        "paid": "Оплачено, всего",
        "revoked_at": "Дата отзыва",
        "reason": "Причина отзыва",
        "another": "Проверить другую справку",
        "by_number": "Проверка по номеру и хешу",
        "number_label": "Номер справки",
        "number_hint": "Например: AZS-20261207-ABC3BD2D844E",
        "digest_label": "SHA-256 значения подписи",
        "digest_hint": "64 символа (0–9, a–f), напечатанные рядом с QR-кодом; пробелы допустимы.",
        "check": "Проверить",
        "by_file": "Проверка подписанного файла справки",
        "file_label": "Файл справки (XML)",
        "file_hint": "Проверяются подпись файла и реестр; файл не сохраняется.",
        "check_file": "Проверить файл",
        "limited": "Слишком много запросов",
        "limited_note": "С этого адреса пришло слишком много запросов несуществующих справок. "
        "Повторите через {seconds} с.",
        "unavailable": "Проверка сейчас недоступна",
        "unavailable_note": "Повторите попытку немного позже.",
        "bad_request": "Запрос не удалось прочитать",
        "bad_request_note": "Введите номер и хеш в форму.",
        "privacy": "Эта страница никогда не показывает имя, адрес или ФИН: только то, что "
        "нужно, чтобы сверить бумагу с тем, что выдало ОАО «Azərsu».",
        "utc": "UTC",
        "m3": "м³",
        "azn": "AZN",
    },
}


def language(raw: str | None) -> str:
    """Return the language asked for, or Azerbaijani."""
    lang = (raw or "").strip().lower()
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def month_name(lang: str, period: str) -> str:
    """Return ``YYYY-MM`` as the month's name and the year: ``Mart 2025``."""
    year, month = period.split("-")
    return f"{MONTHS[lang].split()[int(month) - 1]} {year}"
