"""The citizen-facing text of every Status, in Azerbaijani, English and Russian.

Azerbaijani is the default.  The wording follows Azərsu's user guide for the
e-service (``shared/reference``): the warnings shown when the subscriber code
(abonent kodu) is empty or wrong, before the citizen may go on.
"""

from __future__ import annotations

from enum import StrEnum

from service.errors import Status


class Language(StrEnum):
    """Languages the portal may ask for (the ``Language`` element)."""

    AZ = "az"
    EN = "en"
    RU = "ru"


DEFAULT_LANGUAGE = Language.AZ

MESSAGES: dict[Status, dict[Language, str]] = {
    Status.OK: {
        Language.AZ: "Son 12 ay üzrə faktura və ödəniş məlumatları hazırdır.",
        Language.EN: "The invoices and payments of the last 12 months are ready.",
        Language.RU: "Сведения о счетах и платежах за последние 12 месяцев готовы.",
    },
    Status.SUBSCRIBER_CODE_EMPTY: {
        Language.AZ: "Abonent kodu daxil edilməyib. Zəhmət olmasa, abonent kodunu daxil edin.",
        Language.EN: "No subscriber code was entered. Please enter your subscriber code.",
        Language.RU: "Код абонента не введён. Пожалуйста, введите код абонента.",
    },
    Status.SUBSCRIBER_CODE_INVALID: {
        Language.AZ: (
            "Abonent kodu yanlış daxil edilib. Kodu ödəniş qəbzindən yoxlayıb yenidən daxil edin."
        ),
        Language.EN: (
            "The subscriber code is not valid. Check the code on your bill and enter it again."
        ),
        Language.RU: (
            "Код абонента введён неверно. Проверьте код по квитанции и введите его снова."
        ),
    },
    Status.FIN_INVALID: {
        Language.AZ: (
            "Şəxsiyyət vəsiqəsinin FİN kodu yanlışdır: o, 7 simvoldan (latın hərfləri "
            "və rəqəmlər) ibarət olmalıdır."
        ),
        Language.EN: (
            "The personal identification number (FIN) is not valid: it must have "
            "7 characters (Latin letters and digits)."
        ),
        Language.RU: (
            "ФИН-код указан неверно: он должен состоять из 7 символов (латинские буквы и цифры)."
        ),
    },
    Status.FIN_MISMATCH: {
        Language.AZ: (
            "Sorğudakı FİN kodu portala daxil olmuş istifadəçinin FİN kodu ilə üst-üstə düşmür."
        ),
        Language.EN: (
            "The FIN in the request does not match the FIN of the user logged in on the portal."
        ),
        Language.RU: (
            "ФИН-код в запросе не совпадает с ФИН-кодом пользователя, вошедшего на портал."
        ),
    },
    Status.SUBSCRIBER_NOT_FOUND: {
        Language.AZ: "Daxil edilən abonent kodu məlumat bazasında tapılmadı.",
        Language.EN: "The subscriber code was not found in the billing database.",
        Language.RU: "Введённый код абонента не найден в базе данных.",
    },
    Status.NOT_RESIDENTIAL: {
        Language.AZ: (
            "Bu abonent kodu əhali qrupuna aid deyil. Xidmət yalnız əhali qrupu üzrə "
            "istehlakçılar üçün göstərilir; qeyri-əhali abonentləri “Azərsu” ASC-yə "
            "müraciət edə bilər."
        ),
        Language.EN: (
            "This subscriber code does not belong to a residential consumer. The service "
            "is for residential consumers only; businesses may contact Azərsu."
        ),
        Language.RU: (
            "Этот код абонента не относится к группе «население». Услуга предоставляется "
            "только бытовым потребителям; прочие абоненты могут обратиться в «Азерсу»."
        ),
    },
}


def message_for(status: Status, language: Language = DEFAULT_LANGUAGE) -> str:
    """Return the citizen's text for a status in the requested language."""
    return MESSAGES[status][language]


def parse_language(raw: object) -> Language:
    """Return the requested language; absent or empty means Azerbaijani.

    Spyne hands over its own enumeration value, already checked by the schema.
    """
    if raw is None or not str(raw):
        return DEFAULT_LANGUAGE
    return Language(str(raw).strip().lower())
