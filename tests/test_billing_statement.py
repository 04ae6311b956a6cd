"""GetBillingStatement end to end: zeep over HTTP on loopback, as the portal calls it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree

from service.namespaces import DS, TNS
from tests import billing_fixtures as bf
from tests.conftest import SCHEMAS

NS = {"t": TNS}


@pytest.fixture(scope="module")
def statement_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMAS / "statement.xsd"), parser))


def _statement_element(raw: bytes) -> etree._Element:
    root = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True))
    found = root.findall(".//t:Statement", NS)
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(
    ("code", "fin", "status"),
    [
        ("", bf.FIN, "SUBSCRIBER_CODE_EMPTY"),
        ("   ", bf.FIN, "SUBSCRIBER_CODE_EMPTY"),
        ("12ab", bf.FIN, "SUBSCRIBER_CODE_INVALID"),
        ("12345", bf.FIN, "SUBSCRIBER_CODE_INVALID"),
        (bf.FULL, "BAD", "FIN_INVALID"),
        (bf.FULL, None, "FIN_INVALID"),
        (bf.UNKNOWN, bf.FIN, "SUBSCRIBER_NOT_FOUND"),
        (bf.BUSINESS, bf.FIN, "NOT_RESIDENTIAL"),
        (bf.FULL, bf.FIN, "OK"),
        (f"  {bf.FULL}  ", bf.FIN.lower(), "OK"),
    ],
)
def test_each_status(portal, code: str, fin: str | None, status: str) -> None:
    result = portal.call(code, fin)
    assert result.response.Status == status
    assert result.response.Message
    root = etree.fromstring(result.raw_xml)
    has_statement = bool(root.findall(".//t:Statement", NS))
    assert has_statement == (status == "OK")


@pytest.mark.parametrize(
    ("code", "fin", "status"),
    [
        # The first failing check answers: empty, invalid code, FIN, not found, residential.
        ("", "BAD", "SUBSCRIBER_CODE_EMPTY"),
        ("12ab", "BAD", "SUBSCRIBER_CODE_INVALID"),
        (bf.UNKNOWN, "BAD", "FIN_INVALID"),
        (bf.BUSINESS, "BAD", "FIN_INVALID"),
    ],
)
def test_checks_run_in_contract_order(portal, code: str, fin: str, status: str) -> None:
    assert portal.call(code, fin).response.Status == status


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (None, "Abonent kodu daxil edilməyib"),
        ("az", "Abonent kodu daxil edilməyib"),
        ("en", "No subscriber code was entered"),
        ("ru", "Код абонента не введён"),
    ],
)
def test_message_language(portal, language: str | None, expected: str) -> None:
    result = portal.call("", bf.FIN, language)
    assert result.response.Message.startswith(expected)


def test_statement_fields_and_azerbaijani_text(portal) -> None:
    statement = portal.call(bf.FULL, bf.FIN).response.Statement
    sub = statement.Subscriber
    assert (sub.Code, sub.LastName, sub.FirstName, sub.Patronymic) == (
        bf.FULL,
        bf.AZ_LAST,
        bf.AZ_FIRST,
        bf.AZ_PATRONYMIC,
    )
    assert sub.Address == bf.AZ_ADDRESS
    text = sub.LastName + sub.FirstName + sub.Patronymic + sub.Address
    assert all(letter in text for letter in bf.AZ_LETTERS)
    assert (sub.PersonsCount, sub.WaterSupply, sub.Wastewater, sub.MeterType) == (
        4,
        True,
        True,
        "MECHANICAL",
    )
    assert statement.Currency == "AZN"
    assert "Azərsu" in statement.Issuer
    assert statement.IssuedAt.utcoffset().total_seconds() == 4 * 3600
    periods = statement.Periods.Period
    assert [(p.Year, p.Month) for p in periods] == bf.WINDOW
    assert all(p.ConsumptionM3 == Decimal("24") for p in periods)
    assert all(p.InvoicedAmount == Decimal("12.00") for p in periods)
    # The payments of 2025-02-28 and 2026-03-01 lie outside the window.
    assert all(p.PaidAmount == Decimal("12.00") for p in periods)
    assert statement.Totals.InvoicedAmount == Decimal("144.00")
    assert statement.Totals.PaidAmount == Decimal("144.00")


def test_statement_numbers_are_unique(portal) -> None:
    numbers = {portal.call(bf.FULL, bf.FIN).response.Statement.StatementNumber for _ in range(5)}
    assert len(numbers) == 5


def _rows(statement) -> list[tuple[int, int, Decimal, Decimal, Decimal]]:
    return [
        (p.Year, p.Month, p.ConsumptionM3, p.InvoicedAmount, p.PaidAmount)
        for p in (statement.Periods.Period or [])
    ]


def test_new_account_has_only_months_since_opening(portal) -> None:
    statement = portal.call(bf.NEW, bf.FIN).response.Statement
    assert _rows(statement) == [
        (2025, 12, Decimal("9"), Decimal("4.50"), Decimal("20.00")),
        (2026, 1, Decimal("9"), Decimal("4.50"), Decimal("0.00")),
        (2026, 2, Decimal("9"), Decimal("4.50"), Decimal("0.00")),
    ]
    assert statement.Subscriber.MeterType == "SMART_CARD"


def test_missing_months_show_zeros_and_no_payments(portal) -> None:
    statement = portal.call(bf.GAPS, bf.FIN).response.Statement
    rows = {(y, m): rest for y, m, *rest in _rows(statement)}
    assert len(rows) == 12
    assert rows[(2025, 6)] == [Decimal("0"), Decimal("0.00"), Decimal("0.00")]
    assert rows[(2025, 7)] == [Decimal("0"), Decimal("0.00"), Decimal("0.00")]
    assert rows[(2025, 5)] == [Decimal("9.125"), Decimal("5.48"), Decimal("0.00")]
    assert statement.Totals.PaidAmount == Decimal("0.00")
    assert statement.Totals.InvoicedAmount == Decimal("5.48") * 10
    assert statement.Totals.ConsumptionM3 == Decimal("91.25")
    assert statement.Subscriber.Patronymic is None
    assert statement.Subscriber.Wastewater is False


def test_overpayment(portal) -> None:
    statement = portal.call(bf.OVERPAID, bf.FIN).response.Statement
    assert statement.Totals.InvoicedAmount == Decimal("120.00")
    assert statement.Totals.PaidAmount == Decimal("180.00")


def test_closed_account_gets_zeros_after_closing(portal) -> None:
    result = portal.call(bf.CLOSED, bf.FIN)
    assert result.response.Status == "OK"
    rows = _rows(result.response.Statement)
    assert len(rows) == 12
    assert all(r[3] == Decimal("3.50") for r in rows if (r[0], r[1]) <= (2025, 9))
    assert all(r[3] == Decimal("0.00") for r in rows if (r[0], r[1]) > (2025, 9))


def test_exact_decimal_sums_in_the_raw_xml(portal) -> None:
    result = portal.call(bf.EXACT, bf.FIN)
    statement = _statement_element(result.raw_xml)
    for period in statement.iterfind("t:Periods/t:Period", NS):
        assert period.findtext("t:InvoicedAmount", namespaces=NS) == "0.30"
        assert period.findtext("t:PaidAmount", namespaces=NS) == "0.30"
        assert period.findtext("t:ConsumptionM3", namespaces=NS) == "0.81"
    assert statement.findtext("t:Totals/t:InvoicedAmount", namespaces=NS) == "3.60"
    assert statement.findtext("t:Totals/t:PaidAmount", namespaces=NS) == "3.60"
    assert statement.findtext("t:Totals/t:ConsumptionM3", namespaces=NS) == "9.72"


@pytest.mark.parametrize("code", [bf.FULL, bf.NEW, bf.GAPS, bf.OVERPAID, bf.CLOSED, bf.EXACT])
def test_every_statement_validates_against_the_published_xsd(
    portal, statement_schema: etree.XMLSchema, code: str
) -> None:
    result = portal.call(code, bf.FIN)
    statement = _statement_element(result.raw_xml)
    assert statement.get("Id")
    assert statement_schema.validate(statement), statement_schema.error_log


def test_totals_equal_the_sums_of_the_rows(portal) -> None:
    for code in (bf.FULL, bf.NEW, bf.GAPS, bf.OVERPAID, bf.CLOSED, bf.EXACT):
        statement = portal.call(code, bf.FIN).response.Statement
        rows = _rows(statement)
        assert statement.Totals.ConsumptionM3 == sum((r[2] for r in rows), Decimal(0))
        assert statement.Totals.InvoicedAmount == sum((r[3] for r in rows), Decimal(0))
        assert statement.Totals.PaidAmount == sum((r[4] for r in rows), Decimal(0))


def test_every_element_is_qualified(portal) -> None:
    result = portal.call(bf.FULL, bf.FIN)
    root = etree.fromstring(result.raw_xml)
    body = root[-1]
    signature = body.find(f".//{{{DS}}}Signature")
    assert signature is not None and signature.getparent().tag == f"{{{TNS}}}Statement"
    for element in body.iter():
        if element is body or element is signature or signature in element.iterancestors():
            continue
        assert etree.QName(element).namespace == TNS, element.tag
    statement = _statement_element(result.raw_xml)
    assert list(statement.attrib) == ["Id"]  # unqualified attribute
