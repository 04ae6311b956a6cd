"""The arayış people see: statement.xsl, the page in Chromium, the PDF, render, verify --digest.

Real signed statements come from the service on loopback (the ``portal``
fixture).  The HTML is opened in Debian's headless Chromium: the DOM it reads
back is checked cell by cell, and its screenshot is kept under
``test-artifacts/rendering/`` (and its QR code read back with zbarimg).  The
PDF's text comes from pdftotext.  Without chromium, pdftotext or zbarimg the
tests that need them are skipped, except on CI (``CI=true``) where they fail.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest
from lxml import etree
from lxml import html as lxml_html
from PIL import Image, ImageChops
from pypdf import PdfReader
from pypdf.generic import DictionaryObject

from service import namespaces as ns
from service.client import StatementClient
from service.errors import AzersuError
from service.namespaces import TNS
from service.rendering import (
    BANNER,
    FONT_FAMILY,
    STYLESHEET,
    Verification,
    check_printed_digest,
    html_to_pdf,
    normalize_printed_digest,
    qr_payload,
    render_html,
    render_pdf,
    verification_link,
)
from service.signing.hardened_xml import parse_request
from service.signing.keys import load_signing_identity
from service.signing.statement_signature import (
    StatementSigner,
    StatementVerifier,
    VerifiedStatement,
)
from service.signing.trust import TrustStore
from service.statement_text import statement_view
from tests import billing_fixtures as bf
from tests import browser
from tests.conftest import require_tool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "rendering"
LANGS = ("az", "en", "ru")
SUBSCRIBERS = (bf.FULL, bf.NEW, bf.GAPS, bf.OVERPAID)
#: A4 at 96 dpi, the size the screen CSS draws the sheet at.
WINDOW = (794, 1123)
#: The verification page the printed copies lead to (AZERSU_VERIFY_URL).
VERIFY_URL = "https://e-xidmet.azersu.az/verify"

MONTHS = {
    "az": "Yanvar Fevral Mart Aprel May İyun İyul Avqust Sentyabr Oktyabr Noyabr Dekabr",
    "en": "January February March April May June July August September October November December",
    "ru": "Январь Февраль Март Апрель Май Июнь Июль Август Сентябрь Октябрь Ноябрь Декабрь",
}
TOTAL = {"az": "Cəmi", "en": "Total", "ru": "Итого"}
SERVICES = {
    "az": ("su təchizatı", "tullantı sularının axıdılması"),
    "en": ("water supply", "wastewater disposal"),
    "ru": ("водоснабжение", "водоотведение"),
}
METERS = {
    "az": {"MECHANICAL": "mexaniki sayğac", "SMART_CARD": "smart-kartlı (ön ödənişli) sayğac",
           "NONE": "sayğac yoxdur (norma üzrə)"},
    "en": {"MECHANICAL": "mechanical meter", "SMART_CARD": "smart-card (prepaid) meter",
           "NONE": "no meter (billed by norm)"},
    "ru": {"MECHANICAL": "механический счётчик",
           "SMART_CARD": "счётчик со смарт-картой (предоплата)",
           "NONE": "без счётчика (по нормативу)"},
}  # fmt: skip
SERVICE_TITLE_AZ = (
    "Əhali qrupu üzrə istehlakçılara su təchizatı və tullantı sularının axıdılması xidmətlərinə "
    "dair son 12 ay üzrə faktura və ödəniş məlumatlarının verilməsi"
)


def month_name(lang: str, month: int) -> str:
    return MONTHS[lang].split()[month - 1]


# --- reading a page ------------------------------------------------------------------------------


def parse_page(html: str | bytes) -> etree._Element:
    """Parse an HTML page as a browser would (lxml.html)."""
    return lxml_html.document_fromstring(html)


def text(element: etree._Element) -> str:
    """Return the element's text, white space collapsed."""
    return " ".join("".join(str(t) for t in element.itertext()).split())


def by_id(page: etree._Element, name: str) -> etree._Element:
    found = page.find(f".//*[@id='{name}']")
    assert found is not None, f"no #{name} on the page"
    return found


def has_id(page: etree._Element, name: str) -> bool:
    return page.find(f".//*[@id='{name}']") is not None


def elements(page: etree._Element, *tags: str) -> list[etree._Element]:
    return [e for e in page.iter() if isinstance(e.tag, str) and e.tag in tags]


def body_class(html: str) -> str | None:
    body = parse_page(html).find("body")
    assert body is not None
    return body.get("class")


# --- tools ---------------------------------------------------------------------------------------


def chromium(page: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's headless Chromium on a local page, with nothing that talks to the network."""
    return browser.chromium(page.as_uri(), tmp_path, *mode)


def dump_dom(page: Path, tmp_path: Path) -> etree._Element:
    """Return the DOM that Chromium built from ``page``, parsed."""
    dom = chromium(page, tmp_path, "--dump-dom").stdout
    assert "<html" in dom, dom[:500]
    return parse_page(dom)


def screenshot(page: Path, tmp_path: Path, name: str) -> Path:
    """Save Chromium's screenshot of ``page`` as a test artifact; return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / f"{name}.png"
    png.unlink(missing_ok=True)
    chromium(page, tmp_path, f"--screenshot={png}", "--window-size={},{}".format(*WINDOW))
    assert png.is_file(), "Chromium wrote no screenshot"
    return png


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    """Return the PDF's text as pdftotext lays it out."""
    binary = require_tool("pdftotext", "poppler-utils")
    path = tmp_path / "statement.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(
        [binary, "-layout", "-enc", "UTF-8", str(path), "-"],
        capture_output=True, text=True, encoding="utf-8", timeout=60, check=True,
    )  # fmt: skip
    return result.stdout


def red_pixels(png: Path) -> int:
    """Count the banner's red (#b00020, the strong red only) in a screenshot."""
    r, g, b = Image.open(png).convert("RGB").split()
    mask = ImageChops.multiply(
        ImageChops.multiply(r.point(lambda v: 255 if v > 150 else 0),
                            g.point(lambda v: 255 if v < 80 else 0)),
        b.point(lambda v: 255 if v < 90 else 0),
    )  # fmt: skip
    return mask.histogram()[255]


def dark_pixels(png: Path) -> int:
    return sum(Image.open(png).convert("L").histogram()[:128])


# --- statements ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed(portal: StatementClient) -> dict[str, bytes]:
    """Return real signed Statements, cut out of the service's answers, by subscriber code."""
    statements = {}
    for code in SUBSCRIBERS:
        result = portal.call(code, bf.FIN)
        assert result.statement is not None, code
        statements[code] = etree.tostring(result.statement.statement, encoding="UTF-8")
    return statements


@pytest.fixture(scope="module")
def verifier(trust: TrustStore) -> StatementVerifier:
    return StatementVerifier(trust)


def verified(data: bytes, verifier: StatementVerifier) -> VerifiedStatement:
    return verifier.verify(parse_request(data))


def edit(data: bytes, name: str, new: str, nth: int = 0) -> bytes:
    """Return ``data`` with the text of the ``nth`` tns:``name`` replaced."""
    root = etree.fromstring(data)
    elements = list(root.iter(f"{{{TNS}}}{name}"))
    elements[nth].text = new
    return etree.tostring(root, encoding="UTF-8")


def unsigned(data: bytes) -> bytes:
    root = etree.fromstring(data)
    signature = root[-1]
    assert signature.tag == f"{{{ns.DS}}}Signature"
    root.remove(signature)
    return etree.tostring(root, encoding="UTF-8")


# --- what a page must say ------------------------------------------------------------------------


def cells(row: etree._Element) -> list[str]:
    return [text(cell) for cell in row if cell.tag in ("th", "td")]


def month_rows(page: etree._Element) -> list[etree._Element]:
    return by_id(page, "months").findall("./tbody/tr")


def assert_page_holds(
    page: etree._Element, data: bytes, lang: str, *, tampered: bool = False
) -> None:
    """The page (as lxml or as Chromium parsed it) shows every field of the statement."""
    view = statement_view(etree.fromstring(data))
    sub = view.Subscriber

    def shown(name: str) -> str:
        return text(by_id(page, name))

    assert page.get("lang") == lang
    assert shown("statement-number") == view.StatementNumber
    assert view.IssuedAt.strftime("%d.%m.%Y %H:%M:%S") in shown("issued-at")
    assert shown("subscriber-code") == sub.Code
    name = " ".join(p for p in (sub.LastName, sub.FirstName, sub.Patronymic) if p)
    assert shown("subscriber-name") == name
    assert shown("subscriber-address") == sub.Address
    assert shown("persons-count") == str(sub.PersonsCount)
    water, waste = SERVICES[lang]
    expected_services = [s for s, on in ((water, sub.WaterSupply), (waste, sub.Wastewater)) if on]
    assert shown("services") == ", ".join(expected_services)
    assert shown("meter-type") == METERS[lang][sub.MeterType]
    rows = month_rows(page)
    assert [cells(row) for row in rows] == [
        [str(p.Year), month_name(lang, p.Month), str(p.ConsumptionM3),
         str(p.InvoicedAmount), str(p.PaidAmount)]
        for p in view.Periods.Period
    ]  # fmt: skip
    totals = view.Totals
    assert cells(by_id(page, "totals")) == [
        TOTAL[lang],
        str(totals.ConsumptionM3),
        str(totals.InvoicedAmount),
        str(totals.PaidAmount),
    ]
    if tampered:
        return
    # The totals the page shows are the sums of the rows it shows.
    assert sum((Decimal(cells(r)[3]) for r in rows), Decimal(0)) == totals.InvoicedAmount
    assert sum((Decimal(cells(r)[4]) for r in rows), Decimal(0)) == totals.PaidAmount


def assert_signed_footer(page: etree._Element, proof: VerifiedStatement) -> None:
    assert not has_id(page, "not-verified")
    assert BANNER not in text(page)
    assert text(by_id(page, "signer")) == proof.signer.subject
    assert "CN=billing-statement.azersu.az" in proof.signer.subject
    assert text(by_id(page, "digest")).replace(" ", "") == proof.signature_value_sha256
    assert "azersu-statement verify" in text(by_id(page, "signature"))
    qr = by_id(page, "qr")
    assert qr.get("src", "").startswith("data:image/svg+xml")
    link = verification_link(VERIFY_URL, proof.statement_number, proof.signature_value_sha256)
    assert link == f"{VERIFY_URL}?n={proof.statement_number}&d={proof.signature_value_sha256}"
    assert qr.get("alt") == link
    assert text(by_id(page, "verify-url")) == link  # printed under the code, for typing


def assert_banner(page: etree._Element) -> None:
    assert BANNER in text(by_id(page, "not-verified"))
    assert not any(has_id(page, name) for name in ("qr", "digest", "signer", "verify-url"))


# --- the stylesheet ------------------------------------------------------------------------------


def test_stylesheet_is_plain_xslt_1_that_fetches_nothing() -> None:
    xsl = etree.parse(str(STYLESHEET))
    root = xsl.getroot()
    xslt_ns = "http://www.w3.org/1999/XSL/Transform"
    assert root.tag == f"{{{xslt_ns}}}stylesheet"
    assert root.get("version") == "1.0"
    assert root.findall(f"{{{xslt_ns}}}import") == []
    assert root.findall(f"{{{xslt_ns}}}include") == []
    used_namespaces = {node.tag.split("}")[0][1:] for node in root.iter() if "}" in str(node.tag)}
    assert used_namespaces == {xslt_ns}, "an extension element"
    for node in root.iter():
        for value in map(str, node.attrib.values()):
            assert "document(" not in value
            assert not re.search(r"\b[a-z]+:[a-z-]+\(", value), f"extension function: {value}"
        content = str(node.text or "")
        assert "url(" not in content and "@import" not in content, "external CSS"
        assert "http://" not in content and "https://" not in content
    css = root.find(f"{{{xslt_ns}}}template[@name='css']")
    assert css is not None
    assert isinstance(css.text, str)
    assert re.search(rf'font-family:\s*"{FONT_FAMILY}"', css.text)


def test_the_css_font_is_installed_and_covers_azerbaijani() -> None:
    fc_list = require_tool("fc-list", "fontconfig")
    letters = "ƏəĞğIıİiÖöŞşÇçÜü"
    charset = " ".join(f"{ord(c):x}" for c in letters)
    result = subprocess.run(
        [fc_list, f"{FONT_FAMILY}:charset={charset}", "family"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert FONT_FAMILY in result.stdout, f"no installed {FONT_FAMILY} covers {letters}"


# --- the HTML page, in lxml ----------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("code", SUBSCRIBERS)
def test_page_shows_the_signed_statement(
    signed: dict[str, bytes], verifier: StatementVerifier, code: str, lang: str
) -> None:
    proof = verified(signed[code], verifier)
    page = parse_page(render_html(proof.statement, Verification.of(proof, VERIFY_URL), lang))
    assert_page_holds(page, signed[code], lang)
    assert_signed_footer(page, proof)
    if lang == "az":
        assert SERVICE_TITLE_AZ in text(page)
        assert "AZƏRSU" in text(page)
        assert "“Azərsu” Açıq Səhmdar Cəmiyyəti" in text(page)  # the signed Issuer


def test_page_loads_nothing_from_anywhere(signed: dict[str, bytes], verifier) -> None:
    proof = verified(signed[bf.FULL], verifier)
    page = parse_page(render_html(proof.statement, Verification.of(proof, VERIFY_URL)))
    assert elements(page, "script", "link", "iframe", "object", "embed", "base") == []
    sources = [
        value
        for e in page.iter()
        for name, value in e.attrib.items()
        if name in ("src", "href", "srcset", "data", "poster")
    ]
    assert sources, "the QR code image is missing"
    assert all(str(s).startswith("data:") for s in sources), sources
    assert "url(" not in "".join(text(style) for style in elements(page, "style"))


def test_a_statement_without_months_says_so(signed: dict[str, bytes]) -> None:
    root = etree.fromstring(unsigned(signed[bf.NEW]))
    periods = root.find(f"{{{TNS}}}Periods")
    assert periods is not None
    for period in list(periods):
        periods.remove(period)
    page = parse_page(render_html(root, Verification.failed("test"), "en"))
    assert [cells(r) for r in month_rows(page)] == [["No invoices or payments in this period."]]


def test_markup_in_an_unverified_statement_stays_text(signed: dict[str, bytes]) -> None:
    evil_name = "<script>alert('x')</script>"
    evil_address = '"><img src="http://example.invalid/x.png" onerror="alert(1)">'
    data = edit(edit(unsigned(signed[bf.FULL]), "LastName", evil_name), "Address", evil_address)
    html = render_html(etree.fromstring(data), Verification.failed("unsigned"), "az")
    page = parse_page(html)
    assert elements(page, "script", "img") == []
    assert not any("onerror" in e.attrib for e in page.iter())
    assert evil_name in text(by_id(page, "subscriber-name"))
    assert text(by_id(page, "subscriber-address")) == evil_address
    assert_banner(page)


def test_parameters_are_passed_as_strings_not_xpath(signed, verifier) -> None:
    proof = verified(signed[bf.FULL], verifier)
    quoted = Verification(
        verified=True,
        signer_subject="CN=x',O=\"y\"') or ('1",
        signature_value_sha256=proof.signature_value_sha256,
        statement_number=proof.statement_number,
        verify_url=VERIFY_URL + "?')] | //x[('",
    )
    page = parse_page(render_html(proof.statement, quoted))
    assert text(by_id(page, "verify-url")).startswith(quoted.verify_url)
    assert text(by_id(page, "signer")) == quoted.signer_subject


def test_render_html_refuses_what_is_not_a_statement_or_a_language(signed) -> None:
    root = etree.fromstring(signed[bf.FULL])
    with pytest.raises(ValueError, match="not a Statement"):
        render_html(root[0], Verification.failed("x"))
    with pytest.raises(ValueError, match="language"):
        render_html(root, Verification.failed("x"), "tr")


# --- the page in Chromium ------------------------------------------------------------------------


BROWSER_CASES = [
    pytest.param(bf.FULL, "az", id="full-az"),
    pytest.param(bf.FULL, "en", id="full-en"),
    pytest.param(bf.FULL, "ru", id="full-ru"),
    pytest.param(bf.NEW, "az", id="new-az"),
    pytest.param(bf.GAPS, "en", id="gaps-en"),
]


@pytest.mark.parametrize(("code", "lang"), BROWSER_CASES)
def test_chromium_shows_the_statement(
    signed: dict[str, bytes], verifier: StatementVerifier, tmp_path: Path, code: str, lang: str
) -> None:
    proof = verified(signed[code], verifier)
    page_file = tmp_path / f"statement-{code}-{lang}.html"
    page_file.write_text(
        render_html(proof.statement, Verification.of(proof, VERIFY_URL), lang), "utf-8"
    )

    dom = dump_dom(page_file, tmp_path)
    assert_page_holds(dom, signed[code], lang)
    assert_signed_footer(dom, proof)
    if code == bf.FULL:
        shown = text(dom)
        for word in (bf.AZ_LAST, bf.AZ_FIRST, bf.AZ_PATRONYMIC, bf.AZ_ADDRESS):
            assert word in shown
        assert set(bf.AZ_LETTERS) <= set(shown)

    png = screenshot(page_file, tmp_path, f"statement-{code}-{lang}")
    image = Image.open(png)
    assert image.size == WINDOW
    assert dark_pixels(png) > 0.02 * WINDOW[0] * WINDOW[1], "the screenshot is (nearly) blank"
    assert red_pixels(png) == 0, "a verified statement shows no red banner"


def read_qr(zbarimg: str, png: Path) -> str:
    return browser.read_qr(png)


def test_the_qr_code_reads_back_from_the_screen_and_the_pdf(
    signed: dict[str, bytes], verifier: StatementVerifier, tmp_path: Path
) -> None:
    zbarimg = require_tool("zbarimg", "zbar-tools")
    pdftoppm = require_tool("pdftoppm", "poppler-utils")
    proof = verified(signed[bf.OVERPAID], verifier)
    expected = f"{VERIFY_URL}?n={proof.statement_number}&d={proof.signature_value_sha256}"
    page_file = tmp_path / "statement.html"
    page_file.write_text(
        render_html(proof.statement, Verification.of(proof, VERIFY_URL), "az"), "utf-8"
    )
    assert read_qr(zbarimg, screenshot(page_file, tmp_path, "statement-qr")) == expected

    pdf = tmp_path / "statement.pdf"
    pdf.write_bytes(render_pdf(proof.statement, Verification.of(proof, VERIFY_URL), "az"))
    subprocess.run(
        [pdftoppm, "-r", "150", "-png", "-singlefile", str(pdf), str(tmp_path / "printed")],
        timeout=60, check=True,
    )  # fmt: skip
    assert read_qr(zbarimg, tmp_path / "printed.png") == expected
    assert check_printed_digest(proof, expected)


def test_chromium_shows_the_banner_on_a_tampered_statement(
    signed: dict[str, bytes], tmp_path: Path, trust: TrustStore
) -> None:
    data = edit(signed[bf.FULL], "InvoicedAmount", "1.00")
    with pytest.raises(AzersuError):
        StatementVerifier(trust).verify(parse_request(data))
    page_file = tmp_path / "tampered.html"
    root = etree.fromstring(data)
    page_file.write_text(render_html(root, Verification.failed("tampered"), "az"), "utf-8")
    dom = dump_dom(page_file, tmp_path)
    assert_banner(dom)
    assert cells(month_rows(dom)[0])[3] == "1.00"
    png = screenshot(page_file, tmp_path, "statement-tampered-az")
    assert red_pixels(png) > 5_000, "the red banner is not on the screen"


@pytest.mark.parametrize("is_verified", [True, False], ids=["signed", "banner"])
def test_chromium_prints_one_a4_page(
    signed: dict[str, bytes], verifier: StatementVerifier, tmp_path: Path, is_verified: bool
) -> None:
    """The print CSS holds in a browser too: Russian, the longest labels, on one A4 sheet."""
    proof = verified(signed[bf.FULL], verifier)
    verification = (
        Verification.of(proof, VERIFY_URL) if is_verified else Verification.failed("unsigned")
    )
    page_file = tmp_path / "statement.html"
    page_file.write_text(render_html(proof.statement, verification, "ru"), "utf-8")
    pdf = tmp_path / "printed.pdf"
    chromium(page_file, tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    reader = PdfReader(pdf)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)
    assert (BANNER in pdf_text(pdf.read_bytes(), tmp_path)) is not is_verified


# --- the PDF -------------------------------------------------------------------------------------


def pdf_fonts(reader: PdfReader) -> set[str]:
    """Return the base names of the fonts the pages use (subset prefixes removed)."""
    fonts = set()
    for page in reader.pages:
        resources = cast(DictionaryObject, page["/Resources"].get_object())
        font_dict = cast(DictionaryObject, resources["/Font"].get_object())
        for font in font_dict.values():
            base = cast(DictionaryObject, font.get_object())["/BaseFont"]
            fonts.add(str(base).split("+")[-1])
    return fonts


def assert_one_a4_page_in_dejavu(pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 portrait
    fonts = pdf_fonts(reader)
    assert fonts, "no fonts"
    assert all(f.startswith("DejaVu") for f in fonts), fonts


def assert_pdf_text_holds(text: str, data: bytes, lang: str) -> None:
    view = statement_view(etree.fromstring(data))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    for p in view.Periods.Period:
        row = " ".join(
            (str(p.Year), month_name(lang, p.Month), str(p.ConsumptionM3),
             str(p.InvoicedAmount), str(p.PaidAmount))
        )  # fmt: skip
        assert row in lines, row
    t = view.Totals
    assert f"{TOTAL[lang]} {t.ConsumptionM3} {t.InvoicedAmount} {t.PaidAmount}" in lines
    flat = " ".join(text.split())
    sub = view.Subscriber
    assert " ".join(p for p in (sub.LastName, sub.FirstName, sub.Patronymic) if p) in flat
    assert view.StatementNumber in flat


PDF_CASES = [
    pytest.param(bf.FULL, "az", id="full-az"),
    pytest.param(bf.FULL, "en", id="full-en"),
    pytest.param(bf.FULL, "ru", id="full-ru"),
    pytest.param(bf.NEW, "ru", id="new-ru"),
]


@pytest.mark.parametrize(("code", "lang"), PDF_CASES)
def test_pdf_is_one_page_with_the_statement(
    signed: dict[str, bytes], verifier: StatementVerifier, tmp_path: Path, code: str, lang: str
) -> None:
    proof = verified(signed[code], verifier)
    pdf = render_pdf(proof.statement, Verification.of(proof, VERIFY_URL), lang)
    assert_one_a4_page_in_dejavu(pdf)
    text = pdf_text(pdf, tmp_path)
    assert_pdf_text_holds(text, signed[code], lang)
    assert BANNER not in text
    assert "".join(proof.signature_value_sha256[i : i + 8] for i in range(0, 64, 8)) in "".join(
        text.split()
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"statement-{code}-{lang}.pdf").write_bytes(pdf)


@pytest.fixture(scope="module")
def service_signer(pki: dict[str, Path]) -> StatementSigner:
    return StatementSigner(
        load_signing_identity(str(pki["service.key"]), str(pki["service.pem"]), None)
    )


def longest(data: bytes) -> bytes:
    """Return the statement unsigned, with names and address as long as the schema allows."""
    data = unsigned(data)
    data = edit(data, "LastName", ("Məmmədəliyevə-Şükürzadə " * 5)[:100])
    data = edit(data, "FirstName", ("Gülşən-Ülviyyə " * 7)[:100])
    data = edit(data, "Patronymic", ("İsgəndərbəyli qızı " * 6)[:100])
    data = edit(
        data, "Address", ("Bakı şəhəri, Xətai rayonu, Növbahar küçəsi 7, mənzil 12; " * 8)[:400]
    )
    for i in range(12):
        data = edit(data, "InvoicedAmount", "12345678901234.56", i)
        data = edit(data, "ConsumptionM3", "123456789.125", i)
    return data


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("is_signed", [True, False], ids=["signed", "banner"])
def test_the_longest_statement_still_fits_one_page(
    signed: dict[str, bytes],
    verifier: StatementVerifier,
    service_signer: StatementSigner,
    tmp_path: Path,
    lang: str,
    is_signed: bool,
) -> None:
    """Names and address at the schema's maximum length, twelve months, large amounts."""
    root = etree.fromstring(longest(signed[bf.FULL]))
    if is_signed:
        service_signer.sign(root)
        root = etree.fromstring(etree.tostring(root))  # xmlsec's nodes, visible to lxml
        verification = Verification.of(verifier.verify(root), VERIFY_URL)
    else:
        verification = Verification.failed("the signature or a digest doesn't verify " * 3)
    pdf = render_pdf(root, verification, lang)
    assert_one_a4_page_in_dejavu(pdf)
    text = pdf_text(pdf, tmp_path)
    assert (BANNER in text) is not is_signed
    assert text.count("12345678901234.56") == 12


def test_the_compact_layout_is_only_for_what_would_overflow(
    signed: dict[str, bytes], verifier: StatementVerifier
) -> None:
    proof = verified(signed[bf.FULL], verifier)
    html = render_html(proof.statement, Verification.of(proof, VERIFY_URL), "ru")
    assert body_class(html) == "verified"
    assert html_to_pdf(html)[1] == 1  # a real statement fits as it is
    root = etree.fromstring(longest(signed[bf.FULL]))
    failed = Verification.failed("unsigned")
    assert html_to_pdf(render_html(root, failed, "ru"))[1] > 1
    compact = render_html(root, failed, "ru", compact=True)
    assert body_class(compact) == "not-verified compact"
    assert html_to_pdf(compact)[1] == 1


# --- `render` and `verify --digest`, as commands -------------------------------------------------


def clean_env(**overrides: str) -> dict[str, str]:
    """Return the environment without any AZERSU_* setting, UTF-8 on the pipes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(overrides)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        capture_output=True, text=True, encoding="utf-8", env=env or clean_env(),
        timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, bytes], Path]:
    def _write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return _write


def test_render_html_of_a_signed_statement(
    signed: dict[str, bytes], verifier, pki: dict[str, Path], write, tmp_path: Path
) -> None:
    source = write("statement.xml", signed[bf.GAPS])
    out = tmp_path / "statement.html"
    result = run_cli(
        "render", str(source), "--format", "html", "-o", str(out), "--lang", "en",
        "--trust", str(pki["ca.pem"]), env=clean_env(AZERSU_VERIFY_URL=VERIFY_URL),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("VERIFIED: signed by ")
    page = parse_page(out.read_bytes())
    assert_page_holds(page, signed[bf.GAPS], "en")
    assert_signed_footer(page, verified(signed[bf.GAPS], verifier))  # the link: AZERSU_VERIFY_URL


def test_render_links_to_serves_own_verification_page_by_default(
    signed: dict[str, bytes], pki: dict[str, Path], write, tmp_path: Path
) -> None:
    source = write("statement.xml", signed[bf.NEW])
    out = tmp_path / "statement.html"
    env = clean_env(AZERSU_PORT="9443")
    result = run_cli("render", str(source), "-o", str(out), "--trust", str(pki["ca.pem"]), env=env)
    assert result.returncode == 0, result.stderr
    link = text(by_id(parse_page(out.read_bytes()), "verify-url"))
    assert link.startswith("http://127.0.0.1:9443/verify?n=AZS-")
    assert f"Verification link (QR code): {link}" in result.stdout


def test_render_pdf_takes_the_trust_anchor_from_the_setting(
    signed: dict[str, bytes], pki: dict[str, Path], write, tmp_path: Path
) -> None:
    source = write("statement.xml", signed[bf.FULL])
    out = tmp_path / "arayis.pdf"  # the format follows the suffix
    result = run_cli("render", str(source), "-o", str(out),
                     env=clean_env(AZERSU_TRUST_CA=str(pki["ca.pem"])))  # fmt: skip
    assert result.returncode == 0, result.stderr
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert_one_a4_page_in_dejavu(pdf)
    assert_pdf_text_holds(pdf_text(pdf, tmp_path), signed[bf.FULL], "az")


def tampered_cases(signed: dict[str, bytes]) -> dict[str, bytes]:
    return {
        "amount": edit(signed[bf.FULL], "InvoicedAmount", "1.00"),
        "name": edit(signed[bf.FULL], "FirstName", "Gulsen"),
        "unsigned": unsigned(signed[bf.FULL]),
    }


@pytest.mark.parametrize("case", ["amount", "name", "unsigned"])
def test_render_a_tampered_or_unsigned_statement_under_the_banner(
    signed: dict[str, bytes], pki: dict[str, Path], write, tmp_path: Path, case: str
) -> None:
    data = tampered_cases(signed)[case]
    source = write("statement.xml", data)
    out = tmp_path / "statement.html"
    result = run_cli("render", str(source), "-o", str(out), "--trust", str(pki["ca.pem"]))
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert BANNER in result.stderr
    page = parse_page(out.read_bytes())
    assert_banner(page)
    assert_page_holds(page, data, "az", tampered=True)  # still rendered, as the file says


def test_render_pdf_of_a_tampered_statement_carries_the_banner(
    signed: dict[str, bytes], pki: dict[str, Path], write, tmp_path: Path
) -> None:
    data = edit(signed[bf.FULL], "PaidAmount", "120.00")
    out = tmp_path / "statement.pdf"
    result = run_cli(
        "render", str(write("s.xml", data)), "--format", "pdf", "-o", str(out), "--lang", "ru",
        "--trust", str(pki["ca.pem"]),
    )  # fmt: skip
    assert result.returncode == 1
    pdf = out.read_bytes()
    assert_one_a4_page_in_dejavu(pdf)
    text = pdf_text(pdf, tmp_path)
    assert BANNER in text
    assert "НЕ ПОДТВЕРЖДЕНО" in text
    assert_pdf_text_holds(text, data, "ru")  # still rendered, as the file says
    assert "sha256" not in text.lower().replace("sha-256", "")


def test_render_under_another_ca_gets_the_banner(
    signed: dict[str, bytes], write, tmp_path: Path
) -> None:
    other = tmp_path / "other-pki"
    assert run_cli("pki", "init", "--out", str(other)).returncode == 0
    out = tmp_path / "statement.html"
    result = run_cli(
        "render", str(write("s.xml", signed[bf.FULL])), "-o", str(out),
        "--trust", str(other / "ca.pem"),
    )  # fmt: skip
    assert result.returncode == 1
    assert "trust anchor" in result.stderr
    assert_banner(parse_page(out.read_bytes()))


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not xml at all", id="not-xml"),
        pytest.param(b"<Statement/>", id="not-a-statement"),
        pytest.param(b'<!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>', id="doctype"),
    ],
)
def test_render_refuses_what_is_not_a_statement(
    pki: dict[str, Path], write, tmp_path: Path, content: bytes
) -> None:
    out = tmp_path / "out.html"
    result = run_cli("render", str(write("f.xml", content)), "-o", str(out),
                     "--trust", str(pki["ca.pem"]))  # fmt: skip
    assert result.returncode == 1
    assert BANNER in result.stderr
    assert not out.exists()


def test_render_a_missing_file_exits_two(pki: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.html"
    result = run_cli("render", str(tmp_path / "missing.xml"), "-o", str(out),
                     "--trust", str(pki["ca.pem"]))  # fmt: skip
    assert result.returncode == 2
    assert "cannot read" in result.stderr
    assert not out.exists()


# verify --digest


def printed_digest(pdf_text_: str) -> str:
    """Return the digest as a person would copy it off the printed page (groups of eight)."""
    match = re.search(r"((?:[0-9a-f]{8} ){7}[0-9a-f]{8})", pdf_text_)
    assert match, "no digest on the page"
    return match.group(1)


def test_verify_digest_read_off_the_printed_pdf(
    signed: dict[str, bytes], verifier, pki: dict[str, Path], write, tmp_path: Path
) -> None:
    proof = verified(signed[bf.FULL], verifier)
    text = pdf_text(render_pdf(proof.statement, Verification.of(proof, VERIFY_URL)), tmp_path)
    digest = printed_digest(text)
    result = run_cli("verify", str(write("s.xml", signed[bf.FULL])), "--digest", digest,
                     "--trust", str(pki["ca.pem"]))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("VERIFIED")
    assert bf.AZ_LAST in result.stdout


@pytest.mark.parametrize(
    "form",
    ["hex", "upper", "qr", "link"],
)
def test_verify_digest_accepts_the_printed_forms(
    signed: dict[str, bytes], verifier, pki: dict[str, Path], write, form: str
) -> None:
    proof = verified(signed[bf.NEW], verifier)
    digest = {
        "hex": proof.signature_value_sha256,
        "upper": proof.signature_value_sha256.upper(),
        "qr": qr_payload(proof.statement_number, proof.signature_value_sha256),
        "link": verification_link(VERIFY_URL, proof.statement_number, proof.signature_value_sha256),
    }[form]
    result = run_cli("verify", str(write("s.xml", signed[bf.NEW])), "--digest", digest,
                     "--trust", str(pki["ca.pem"]))  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_verify_digest_refuses_another_statements_digest(
    signed: dict[str, bytes], verifier, pki: dict[str, Path], write
) -> None:
    other = verified(signed[bf.NEW], verifier).signature_value_sha256
    result = run_cli("verify", str(write("s.xml", signed[bf.FULL])), "--digest", other,
                     "--trust", str(pki["ca.pem"]))  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert "NOT VERIFIED" in result.stderr


def test_verify_digest_refuses_a_tampered_file_with_the_right_digest(
    signed: dict[str, bytes], verifier, pki: dict[str, Path], write
) -> None:
    digest = verified(signed[bf.FULL], verifier).signature_value_sha256
    data = edit(signed[bf.FULL], "PaidAmount", "120.00")  # the signature value is unchanged
    result = run_cli("verify", str(write("s.xml", data)), "--digest", digest,
                     "--trust", str(pki["ca.pem"]))  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""


def test_verify_digest_refuses_a_qr_text_with_another_number(
    signed: dict[str, bytes], verifier, pki: dict[str, Path], write
) -> None:
    proof = verified(signed[bf.FULL], verifier)
    text = qr_payload("AZS-20260101-000000000000", proof.signature_value_sha256)
    result = run_cli("verify", str(write("s.xml", signed[bf.FULL])), "--digest", text,
                     "--trust", str(pki["ca.pem"]))  # fmt: skip
    assert result.returncode == 1


# check_printed_digest, in process

DIGEST = "3b4be77be9209a261fdb91563a38851888ceead9fcedd6978bf1a75c33c5c7b7"


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        (DIGEST, (None, DIGEST)),
        (" ".join(DIGEST[i : i + 8] for i in range(0, 64, 8)), (None, DIGEST)),
        (DIGEST.upper(), (None, DIGEST)),
        (":".join(DIGEST[i : i + 2] for i in range(0, 64, 2)), (None, DIGEST)),
        (f"AZS-20261126-1F320B581D7D;sha256={DIGEST}", ("AZS-20261126-1F320B581D7D", DIGEST)),
        (f"sha256={DIGEST}", (None, DIGEST)),
        (DIGEST[:-1], None),
        (DIGEST + "0", None),
        (DIGEST[:-1] + "g", None),
        (f"AZS-1;md5={DIGEST}", None),
        (f"AZS-1sha256={DIGEST}", None),
        ("", None),
        (f"{VERIFY_URL}?n=AZS-20261126-1F320B581D7D&d={DIGEST}",
         ("AZS-20261126-1F320B581D7D", DIGEST)),
        (f"HTTP://127.0.0.1:8080/verify?d={DIGEST.upper()}&n=AZS-1", ("AZS-1", DIGEST)),
        (f"{VERIFY_URL}?n=AZS-1", None),
        (f"{VERIFY_URL}?d={DIGEST}", None),
        (f"{VERIFY_URL}?n=&d={DIGEST}", None),
        (f"{VERIFY_URL}?n=AZS-1&n=AZS-2&d={DIGEST}", None),
        (f"{VERIFY_URL}?n=AZS-1&d={DIGEST[:-1]}", None),
    ],
)  # fmt: skip
def test_normalize_printed_digest(printed: str, expected: tuple[str | None, str] | None) -> None:
    assert normalize_printed_digest(printed) == expected


def test_check_printed_digest(signed: dict[str, bytes], verifier) -> None:
    proof = verified(signed[bf.OVERPAID], verifier)
    other = verified(signed[bf.GAPS], verifier)
    assert check_printed_digest(proof, proof.signature_value_sha256)
    assert check_printed_digest(proof, Verification.of(proof, VERIFY_URL).qr_payload)
    assert not check_printed_digest(proof, other.signature_value_sha256)
    assert not check_printed_digest(proof, Verification.of(other, VERIFY_URL).qr_payload)
    assert not check_printed_digest(
        proof, qr_payload(other.statement_number, proof.signature_value_sha256)
    )
    assert not check_printed_digest(
        proof, verification_link(VERIFY_URL, other.statement_number, proof.signature_value_sha256)
    )


# --- the README's screenshot ---------------------------------------------------------------------


def test_the_readme_screenshot_is_a_small_png_of_an_a4_page() -> None:
    png = ROOT / "docs" / "statement-az.png"
    assert png.is_file()
    assert png.stat().st_size < 300 * 1024
    image = Image.open(png)
    assert image.format == "PNG"
    width, height = image.size
    assert abs(height / width - 297 / 210) < 0.02  # an A4 portrait sheet


def test_the_readme_screenshots_qr_code_reads() -> None:
    zbarimg = require_tool("zbarimg", "zbar-tools")
    decoded = read_qr(zbarimg, ROOT / "docs" / "statement-az.png")
    # make run's verification page (tests/docs_screenshots.py makes the picture).
    pattern = r"http://127\.0\.0\.1:8080/verify\?n=AZS-\d{8}-[0-9A-F]{12}&d=[0-9a-f]{64}"
    assert re.fullmatch(pattern, decoded), decoded
    assert normalize_printed_digest(decoded) is not None
