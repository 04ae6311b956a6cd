"""The statement schema (service/schemas/statement.xsd) accepts good statements, not broken ones.

The schema and the XML-DSig core schema it imports are loaded with a hardened
parser (no DTD, no entity expansion, no network), the way the service loads
them.  Each case starts from one valid sample statement built here and changes
one thing.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "service" / "schemas"
STATEMENT_XSD = SCHEMAS_DIR / "statement.xsd"

NS = "http://azersu.az/egov/billing-statement/v1"
DS = "http://www.w3.org/2000/09/xmldsig#"
XS = "http://www.w3.org/2001/XMLSchema"
XML = "http://www.w3.org/XML/1998/namespace"
NSMAP = {"st": NS, "ds": DS}

STATEMENT_ID = "stmt-100245678-2024-07"

#: Twelve report months: (year, month, consumption m³, invoiced, paid).  One month
#: is a correction (negative invoice), one an overpayment, one unpaid.
PERIOD_ROWS: list[tuple[int, int, str, str, str]] = [
    (2023, 8, "7.250", "8.40", "8.40"),
    (2023, 9, "6.900", "8.00", "10.00"),
    (2023, 10, "6.100", "7.08", "0.00"),
    (2023, 11, "5.800", "6.73", "13.81"),
    (2023, 12, "6.000", "6.96", "6.96"),
    (2024, 1, "6.300", "7.31", "7.31"),
    (2024, 2, "0", "-1.20", "0.00"),
    (2024, 3, "5.5", "6.38", "5.18"),
    (2024, 4, "6.120", "7.10", "7.10"),
    (2024, 5, "7.004", "8.12", "8.12"),
    (2024, 6, "8.75", "10.15", "10.15"),
    (2024, 7, "9.100", "10.56", "20.00"),
]


def _q(local: str) -> str:
    """Clark name of an element in the statement namespace."""
    return f"{{{NS}}}{local}"


def _sub(parent: etree._Element, local: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, _q(local))
    if text is not None:
        element.text = text
    return element


def _period(parent: etree._Element, row: tuple[int, int, str, str, str]) -> etree._Element:
    year, month, consumption, invoiced, paid = row
    period = _sub(parent, "Period")
    _sub(period, "Year", str(year))
    _sub(period, "Month", str(month))
    _sub(period, "ConsumptionM3", consumption)
    _sub(period, "InvoicedAmount", invoiced)
    _sub(period, "PaidAmount", paid)
    return period


def build_statement() -> etree._Element:
    """A valid, unsigned statement for a subscriber with a full 12-month window."""
    # A default namespace, as the service writes it (lxml-stubs types nsmap keys as str only).
    root = etree.Element(_q("Statement"), nsmap={None: NS})  # type: ignore[dict-item]
    root.set("Id", STATEMENT_ID)
    _sub(root, "StatementNumber", "AZS-2024-07-000123")
    _sub(root, "IssuedAt", "2024-08-05T10:15:00+04:00")
    _sub(root, "Issuer", "“Azərsu” Açıq Səhmdar Cəmiyyəti")

    subscriber = _sub(root, "Subscriber")
    _sub(subscriber, "Code", "100245678")
    _sub(subscriber, "LastName", "Məmmədova")
    _sub(subscriber, "FirstName", "Gülşən")
    _sub(subscriber, "Patronymic", "Əli qızı")
    _sub(subscriber, "Address", "Bakı şəhəri, Xətai rayonu, Nobel prospekti 15, mənzil 42")
    _sub(subscriber, "PersonsCount", "4")
    _sub(subscriber, "WaterSupply", "true")
    _sub(subscriber, "Wastewater", "true")
    _sub(subscriber, "MeterType", "MECHANICAL")

    periods = _sub(root, "Periods")
    for row in PERIOD_ROWS:
        _period(periods, row)

    totals = _sub(root, "Totals")
    _sub(totals, "ConsumptionM3", str(sum(Decimal(r[2]) for r in PERIOD_ROWS)))
    _sub(totals, "InvoicedAmount", f"{sum(Decimal(r[3]) for r in PERIOD_ROWS):.2f}")
    _sub(totals, "PaidAmount", f"{sum(Decimal(r[4]) for r in PERIOD_ROWS):.2f}")
    _sub(root, "Currency", "AZN")
    return root


def add_signature_skeleton(root: etree._Element) -> etree._Element:
    """Append an enveloped ds:Signature, structurally complete, with dummy values.

    The schema checks structure only, so the digest and signature values need
    not be correct; the reference points at the statement's Id as the service's
    real signature does.
    """
    signature = etree.SubElement(root, f"{{{DS}}}Signature", nsmap={"ds": DS})
    signed_info = etree.SubElement(signature, f"{{{DS}}}SignedInfo")
    etree.SubElement(
        signed_info,
        f"{{{DS}}}CanonicalizationMethod",
        Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    etree.SubElement(
        signed_info,
        f"{{{DS}}}SignatureMethod",
        Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    )
    reference = etree.SubElement(signed_info, f"{{{DS}}}Reference", URI=f"#{STATEMENT_ID}")
    transforms = etree.SubElement(reference, f"{{{DS}}}Transforms")
    etree.SubElement(
        transforms,
        f"{{{DS}}}Transform",
        Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    )
    etree.SubElement(
        transforms,
        f"{{{DS}}}Transform",
        Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    etree.SubElement(
        reference,
        f"{{{DS}}}DigestMethod",
        Algorithm="http://www.w3.org/2001/04/xmlenc#sha256",
    )
    digest_value = etree.SubElement(reference, f"{{{DS}}}DigestValue")
    digest_value.text = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    signature_value = etree.SubElement(signature, f"{{{DS}}}SignatureValue")
    signature_value.text = "c2lnbmF0dXJlLXBsYWNlaG9sZGVy"
    key_info = etree.SubElement(signature, f"{{{DS}}}KeyInfo")
    x509_data = etree.SubElement(key_info, f"{{{DS}}}X509Data")
    certificate = etree.SubElement(x509_data, f"{{{DS}}}X509Certificate")
    certificate.text = "Y2VydGlmaWNhdGUtcGxhY2Vob2xkZXI="
    return signature


def hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(STATEMENT_XSD), hardened_parser()))


def _validate(schema: etree.XMLSchema, root: etree._Element) -> tuple[bool, list[str]]:
    """Validate the tree in memory, exactly as the mutation left it.

    In memory, not serialized: lxml writes a no-namespace child of a
    default-namespace parent without ``xmlns=""``, so a round trip would silently
    qualify the "unqualified child element" case.
    """
    valid = schema.validate(root)
    # lxml-stubs leaves the error log opaque; at run time it is a list of log entries.
    return valid, [entry.message for entry in schema.error_log]  # type: ignore[attr-defined]


def _round_trip(root: etree._Element) -> etree._Element:
    """The document as it travels: serialized to UTF-8 and parsed back hardened."""
    return etree.fromstring(etree.tostring(root, encoding="UTF-8"), hardened_parser())


def _find(root: etree._Element, path: str) -> etree._Element:
    element = root.find(path, NSMAP)
    assert element is not None, path
    return element


# --- mutations of the sample ------------------------------------------------

Mutation = Callable[[etree._Element], None]


def set_text(path: str, text: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        _find(root, path).text = text

    return mutate


def remove(path: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        element = _find(root, path)
        parent = element.getparent()
        assert parent is not None
        parent.remove(element)

    return mutate


def remove_id(root: etree._Element) -> None:
    del root.attrib["Id"]


def add_thirteenth_period(root: etree._Element) -> None:
    _period(_find(root, "st:Periods"), (2023, 7, "6.000", "6.96", "6.96"))


def duplicate_month(root: etree._Element) -> None:
    last = _find(root, "st:Periods/st:Period[12]")
    _find(last, "st:Year").text = "2024"
    _find(last, "st:Month").text = "6"


def swap_issued_at_and_issuer(root: etree._Element) -> None:
    issued_at = _find(root, "st:IssuedAt")
    issuer = _find(root, "st:Issuer")
    issuer.addnext(copy.deepcopy(issued_at))
    root.remove(issued_at)


def unqualified_issuer(root: etree._Element) -> None:
    issuer = _find(root, "st:Issuer")
    replacement = etree.Element("Issuer")
    replacement.text = issuer.text
    issuer.addprevious(replacement)
    root.remove(issuer)


def signature_before_currency(root: etree._Element) -> None:
    signature = add_signature_skeleton(root)
    _find(root, "st:Currency").addprevious(signature)


def signature_without_value(root: etree._Element) -> None:
    signature = add_signature_skeleton(root)
    signature.remove(_find(signature, "ds:SignatureValue"))


def signature_without_digest(root: etree._Element) -> None:
    signature = add_signature_skeleton(root)
    reference = _find(signature, "ds:SignedInfo/ds:Reference")
    reference.remove(_find(reference, "ds:DigestValue"))


def no_periods(root: etree._Element) -> None:
    periods = _find(root, "st:Periods")
    for period in list(periods):
        periods.remove(period)
    totals = _find(root, "st:Totals")
    _find(totals, "st:ConsumptionM3").text = "0"
    _find(totals, "st:InvoicedAmount").text = "0.00"
    _find(totals, "st:PaidAmount").text = "0.00"


def signed(root: etree._Element) -> None:
    add_signature_skeleton(root)


FIRST_PERIOD = "st:Periods/st:Period[1]"

VALID_CASES: list[tuple[str, Mutation | None]] = [
    ("sample", None),
    ("signed sample", signed),
    ("no patronymic", remove("st:Subscriber/st:Patronymic")),
    ("no periods", no_periods),
    ("negative correction", set_text(f"{FIRST_PERIOD}/st:InvoicedAmount", "-8.40")),
    ("overpayment", set_text(f"{FIRST_PERIOD}/st:PaidAmount", "100.00")),
    ("whole cubic metres", set_text(f"{FIRST_PERIOD}/st:ConsumptionM3", "7")),
    ("smart-card meter", set_text("st:Subscriber/st:MeterType", "SMART_CARD")),
    ("no meter", set_text("st:Subscriber/st:MeterType", "NONE")),
    ("wastewater only", set_text("st:Subscriber/st:WaterSupply", "false")),
    ("negative UTC offset", set_text("st:IssuedAt", "2024-08-05T02:15:00-04:00")),
]

#: (case, mutation, text the error log must contain: the offending element or attribute)
INVALID_CASES: list[tuple[str, Mutation, str]] = [
    (
        "money with one decimal",
        set_text(f"{FIRST_PERIOD}/st:InvoicedAmount", "8.4"),
        f"'{_q('InvoicedAmount')}'",
    ),
    (
        "money with three decimals",
        set_text(f"{FIRST_PERIOD}/st:PaidAmount", "8.400"),
        f"'{_q('PaidAmount')}'",
    ),
    (
        "money without decimals",
        set_text("st:Totals/st:InvoicedAmount", "8"),
        f"'{_q('InvoicedAmount')}'",
    ),
    ("missing Id", remove_id, "'Id'"),
    ("month 13", set_text(f"{FIRST_PERIOD}/st:Month", "13"), f"'{_q('Month')}'"),
    ("13 periods", add_thirteenth_period, f"'{_q('Period')}'"),
    ("same month twice", duplicate_month, f"'{_q('UniqueReportMonth')}'"),
    (
        "unknown meter type",
        set_text("st:Subscriber/st:MeterType", "DIGITAL"),
        f"'{_q('MeterType')}'",
    ),
    (
        "issued without offset",
        set_text("st:IssuedAt", "2024-08-05T10:15:00"),
        f"'{_q('IssuedAt')}'",
    ),
    (
        "issued in Z",
        set_text("st:IssuedAt", "2024-08-05T06:15:00Z"),
        f"'{_q('IssuedAt')}'",
    ),
    (
        "issued with fractional seconds",
        set_text("st:IssuedAt", "2024-08-05T10:15:00.5+04:00"),
        f"'{_q('IssuedAt')}'",
    ),
    ("currency USD", set_text("st:Currency", "USD"), f"'{_q('Currency')}'"),
    ("element in wrong order", swap_issued_at_and_issuer, f"'{_q('Issuer')}'"),
    ("unqualified child element", unqualified_issuer, "Element 'Issuer'"),
    (
        "consumption with four decimals",
        set_text(f"{FIRST_PERIOD}/st:ConsumptionM3", "7.2500"),
        f"'{_q('ConsumptionM3')}'",
    ),
    (
        "negative consumption",
        set_text("st:Totals/st:ConsumptionM3", "-1.000"),
        f"'{_q('ConsumptionM3')}'",
    ),
    (
        "persons count over 1000",
        set_text("st:Subscriber/st:PersonsCount", "1001"),
        f"'{_q('PersonsCount')}'",
    ),
    (
        "blank last name",
        set_text("st:Subscriber/st:LastName", "   "),
        f"'{_q('LastName')}'",
    ),
    (
        "empty address",
        set_text("st:Subscriber/st:Address", ""),
        f"'{_q('Address')}'",
    ),
    (
        "lower-case statement number",
        set_text("st:StatementNumber", "azs-1"),
        f"'{_q('StatementNumber')}'",
    ),
    (
        "subscriber code with a space",
        set_text("st:Subscriber/st:Code", "100 245"),
        f"'{_q('Code')}'",
    ),
    ("missing totals", remove("st:Totals"), f"'{_q('Currency')}'"),
    ("signature before currency", signature_before_currency, f"'{{{DS}}}Signature'"),
    ("signature without value", signature_without_value, f"'{{{DS}}}KeyInfo'"),
    ("signature without digest", signature_without_digest, f"'{{{DS}}}Reference'"),
]


def test_schema_declares_one_statement_element() -> None:
    tree = etree.parse(str(STATEMENT_XSD), hardened_parser())
    assert (tree.docinfo.encoding or "").upper() == "UTF-8"
    root = tree.getroot()
    assert root.get("targetNamespace") == NS
    assert root.get("elementFormDefault") == "qualified"
    assert root.get("attributeFormDefault") == "unqualified"
    assert [e.get("name") for e in root.iterchildren(f"{{{XS}}}element")] == ["Statement"]
    imports = [(e.get("namespace"), e.get("schemaLocation")) for e in root.iter(f"{{{XS}}}import")]
    assert imports == [(DS, "xmldsig-core-schema.xsd")]


def test_every_named_type_is_documented_in_english() -> None:
    root = etree.parse(str(STATEMENT_XSD), hardened_parser()).getroot()
    types = list(root.iterchildren(f"{{{XS}}}simpleType", f"{{{XS}}}complexType"))
    assert types
    for named_type in types:
        documentation = [
            d
            for d in named_type.iterfind("xs:annotation/xs:documentation", {"xs": XS})
            if d.get(f"{{{XML}}}lang") == "en"
        ]
        assert documentation, named_type.get("name")
        assert all((d.text or "").strip() for d in documentation), named_type.get("name")


@pytest.mark.parametrize(
    "mutation", [case[1] for case in VALID_CASES], ids=[case[0] for case in VALID_CASES]
)
def test_valid_statement(schema: etree.XMLSchema, mutation: Mutation | None) -> None:
    root = build_statement()
    if mutation is not None:
        mutation(root)
    valid, errors = _validate(schema, root)
    assert valid, errors
    assert errors == []
    valid, errors = _validate(schema, _round_trip(root))
    assert valid, errors


@pytest.mark.parametrize(
    ("mutation", "mentioned"),
    [case[1:] for case in INVALID_CASES],
    ids=[case[0] for case in INVALID_CASES],
)
def test_invalid_statement(schema: etree.XMLSchema, mutation: Mutation, mentioned: str) -> None:
    root = build_statement()
    mutation(root)
    valid, errors = _validate(schema, root)
    assert not valid
    assert errors
    assert any(mentioned in message for message in errors), errors


def test_signature_reference_points_at_statement_id() -> None:
    root = build_statement()
    add_signature_skeleton(root)
    reference = _find(root, "ds:Signature/ds:SignedInfo/ds:Reference")
    assert reference.get("URI") == "#" + root.get("Id", "")
    assert root[-1].tag == f"{{{DS}}}Signature"


SCHEMA_FILES = sorted(SCHEMAS_DIR.glob("*.xsd"))


def test_schema_files_present() -> None:
    names = {path.name for path in SCHEMA_FILES}
    assert {"statement.xsd", "xmldsig-core-schema.xsd"} <= names


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[path.name for path in SCHEMA_FILES])
def test_schema_file_needs_no_dtd_and_no_network(path: Path) -> None:
    text = path.read_bytes().decode("utf-8")
    assert "<!DOCTYPE" not in text
    assert "<!ENTITY" not in text
    assert not re.search(r"schemaLocation\s*=\s*[\"']\s*https?:", text, re.IGNORECASE)

    tree = etree.parse(str(path), hardened_parser())
    for element in tree.iter(f"{{{XS}}}import", f"{{{XS}}}include", f"{{{XS}}}redefine"):
        location = element.get("schemaLocation")
        if location is None:
            continue
        assert not re.match(r"\s*https?:", location, re.IGNORECASE), location
        assert (path.parent / location).is_file(), location
