"""The one operation and its serializer: every answer is the contract's, every refusal typed.

Requests go to :class:`StatementOperation` as the gateway hands them over
(the one operation element of a verified Body).  Answers must be valid under
the schema the WSDL publishes, carry the Status each case calls for, and
fill in the audit entry; requests the schema refuses are
``Client.SchemaValidation``.  The written text of every value is compared with
a reference built independently, after C14N.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

import service.handlers.billing_statement as handler
from service.app import build_statement_context, create_billing_engine
from service.audit import AuditEntry
from service.billing.statement_query import SubscriberRecord
from service.errors import SchemaViolation, UnknownOperation
from service.handlers.response_xml import RESPONSE_TAG, response_envelope
from service.namespaces import SOAP11_ENV, TNS
from service.settings import Settings
from service.signing.hardened_xml import parse_request
from service.statement import BillingStatement, PeriodLine, Totals
from service.wsdl.spyne_service import build_contract
from tests import billing_fixtures as bf

ISSUED = dt.datetime(2026, 3, 14, 9, 26, 53, tzinfo=ZoneInfo("Asia/Baku"))


def _request(parts: str, wrapper_attributes: str = "") -> bytes:
    return (
        f'<s:Envelope xmlns:s="{SOAP11_ENV}" xmlns:t="{TNS}" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><s:Body>'
        f"<t:GetBillingStatement{wrapper_attributes}>{parts}</t:GetBillingStatement>"
        f"</s:Body></s:Envelope>"
    ).encode()


def _parts(code: str | None, fin: str | None = bf.FIN, language: str | None = None) -> str:
    text = ""
    for name, value in (("SubscriberCode", code), ("CitizenFin", fin), ("Language", language)):
        if value is not None:
            text += f"<t:{name}>{value}</t:{name}>"
    return text


ANSWERED = [
    ("ok", _parts(bf.FULL), "OK"),
    ("ok_no_patronymic_no_wastewater", _parts(bf.GAPS), "OK"),
    ("ok_new_account", _parts(bf.NEW, language="en"), "OK"),
    ("ok_overpaid_ru", _parts(bf.OVERPAID, language="ru"), "OK"),
    ("ok_closed", _parts(bf.CLOSED, language="az"), "OK"),
    ("ok_exact_sums", _parts(bf.EXACT), "OK"),
    ("ok_spaces_and_lower_fin", _parts(f"  {bf.FULL}  ", bf.FIN.lower()), "OK"),
    ("ok_character_references", _parts("&#49;00000001"), "OK"),
    ("ok_cdata", _parts(f"<![CDATA[{bf.FULL}]]>"), "OK"),
    ("empty_code", _parts(""), "SUBSCRIBER_CODE_EMPTY"),
    ("blank_code", _parts("   "), "SUBSCRIBER_CODE_EMPTY"),
    ("empty_element", "<t:SubscriberCode/><t:CitizenFin>X</t:CitizenFin>", "SUBSCRIBER_CODE_EMPTY"),
    ("invalid_code", _parts("12ab"), "SUBSCRIBER_CODE_INVALID"),
    ("azerbaijani_code", _parts(bf.AZ_LETTERS), "SUBSCRIBER_CODE_INVALID"),
    ("not_found", _parts(bf.UNKNOWN), "SUBSCRIBER_NOT_FOUND"),
    ("not_residential", _parts(bf.BUSINESS), "NOT_RESIDENTIAL"),
    ("fin_invalid", _parts(bf.FULL, "BAD"), "FIN_INVALID"),
    ("fin_absent", _parts(bf.FULL, None), "FIN_INVALID"),
    ("fin_empty", _parts(bf.FULL, ""), "FIN_INVALID"),
]

DECLINED = [
    ("nil_code", '<t:SubscriberCode xsi:nil="true"/>'),
    ("attribute_on_part", f'<t:SubscriberCode x="1">{bf.FULL}</t:SubscriberCode>'),
    ("attribute_on_wrapper", _parts(bf.FULL)),
    ("code_twice", _parts(bf.FULL) + f"<t:SubscriberCode>{bf.FULL}</t:SubscriberCode>"),
    ("parts_out_of_order", f"<t:CitizenFin>{bf.FIN}</t:CitizenFin>" + _parts(bf.FULL, None)),
    ("unknown_part", _parts(bf.FULL) + "<t:Extra>1</t:Extra>"),
    ("unknown_language", _parts(bf.FULL, language="fr")),
    ("code_missing", f"<t:CitizenFin>{bf.FIN}</t:CitizenFin>"),
    ("nested_element", f"<t:SubscriberCode><t:X>{bf.FULL}</t:X></t:SubscriberCode>"),
    ("text_in_wrapper", "stray" + _parts(bf.FULL)),
]


CONTRACT = build_contract("http://localhost/soap")


@pytest.fixture(scope="module")
def operation(billing_db: str) -> handler.StatementOperation:
    """Return the operation on the hand-made billing data, with a fixed clock."""
    settings = Settings(billing_url=billing_db, report_period=bf.REPORT_PERIOD)
    context = dataclasses.replace(
        build_statement_context(settings, create_billing_engine(settings), deadline=False),
        clock=lambda: ISSUED,
    )
    return handler.StatementOperation(context, CONTRACT.schema)


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


def _operation_element(raw: bytes) -> etree._Element:
    root = parse_request(raw)
    return root.find(f"{{{SOAP11_ENV}}}Body")[0]


def _entry() -> AuditEntry:
    return AuditEntry(request_id="r", recorded_at=ISSUED, remote_addr="127.0.0.1")


@pytest.mark.parametrize(("name", "parts", "status"), ANSWERED, ids=[c[0] for c in ANSWERED])
def test_every_answer_is_the_contracts(
    operation, monkeypatch, name: str, parts: str, status: str
) -> None:
    monkeypatch.setattr(handler, "new_statement_number", lambda issued: "AZS-20260314-ABCDEF012345")
    entry = _entry()
    envelope = operation(_operation_element(_request(parts)), handler.OperationRequest(entry))
    response = envelope.find(f"{{{SOAP11_ENV}}}Body/{RESPONSE_TAG}")
    assert response is not None
    assert CONTRACT.schema.validate(response), CONTRACT.schema.error_log
    assert response.findtext(f"{{{TNS}}}Status") == status
    assert entry.outcome == status
    statement = response.find(f"{{{TNS}}}Statement")
    if status == "OK":
        assert entry.statement_number == "AZS-20260314-ABCDEF012345"
        assert statement is not None
        assert statement.findtext(f"{{{TNS}}}Subscriber/{{{TNS}}}Code") == entry.subscriber_code
    else:
        assert statement is None and entry.statement_number == ""


@pytest.mark.parametrize(("name", "parts"), DECLINED, ids=[c[0] for c in DECLINED])
def test_requests_the_schema_refuses_are_schema_faults(operation, name: str, parts: str) -> None:
    attributes = ' x="1"' if name == "attribute_on_wrapper" else ""
    entry = _entry()
    with pytest.raises(SchemaViolation) as refused:
        operation(_operation_element(_request(parts, attributes)), handler.OperationRequest(entry))
    assert refused.value.faultcode == "Client.SchemaValidation"
    assert entry.outcome == ""  # nothing was asked of billing


@pytest.mark.parametrize(
    ("name", "element"),
    [
        ("unknown element", f'<t:NoSuchOperation xmlns:t="{TNS}"/>'),
        ("foreign namespace", '<x:GetBillingStatement xmlns:x="urn:other"/>'),
    ],
)
def test_an_element_the_schema_lacks_is_a_schema_fault(operation, name: str, element: str) -> None:
    with pytest.raises(SchemaViolation):
        operation(etree.fromstring(element), handler.OperationRequest(_entry()))


def test_a_declared_element_that_is_not_a_request_is_an_unknown_operation(operation) -> None:
    response = f"<t:GetBillingStatementResponse xmlns:t=\"{TNS}\"><t:Status>OK</t:Status>"
    response += "<t:Message>x</t:Message></t:GetBillingStatementResponse>"
    with pytest.raises(UnknownOperation):
        operation(etree.fromstring(response), handler.OperationRequest(_entry()))


TRICKY_TEXT = [
    ("markup", "Ə & <Ş> \"ç\" 'ğ'"),
    ("carriage_return_and_tabs", "Bakı,\r\n\tNəsimi r."),
    ("surrounding_whitespace", "  Bakı \t\n"),
    ("entity_lookalike", "&amp; &#49; &lt;x&gt;"),
    ("cdata_lookalike", "<![CDATA[ı]]> ]]>"),
    ("azerbaijani", "İlham Məmmədov Ağaəli oğlu, Şüvəlan qəs., Günəşli küç. ö ü ç"),
]


def _statement_with(text: str) -> tuple[BillingStatement, str]:
    subscriber = SubscriberRecord(
        code="100000001",
        fin="5ZX8K2P",
        last_name=text,
        first_name=text,
        patronymic=text,
        address=text,
        persons_count=3,
        category="RESIDENTIAL",
        status="ACTIVE",
        opened_on=dt.date(2019, 1, 1),
        water_supply=True,
        wastewater=False,
        meter_type="MECHANICAL",
    )
    periods = (PeriodLine(2026, 2, Decimal("12.5"), Decimal("8.75"), Decimal("0.00")),)
    totals = Totals(Decimal("12.5"), Decimal("8.75"), Decimal("0.00"))
    statement = BillingStatement(
        "AZS-20260314-ABCDEF012345", ISSUED, text, subscriber, periods, totals
    )
    return statement, "Statement-AZS-20260314-ABCDEF012345"


@pytest.mark.parametrize(("name", "text"), TRICKY_TEXT, ids=[c[0] for c in TRICKY_TEXT])
def test_written_text_is_the_data_exactly(name: str, text: str) -> None:
    statement, statement_id = _statement_with(text)
    envelope = response_envelope("OK", text, statement, statement_id)
    t = f"{{{TNS}}}"
    assert envelope.findtext(f".//{t}Message") == text
    for field in ("LastName", "FirstName", "Patronymic", "Address"):
        assert envelope.findtext(f".//{t}Subscriber/{t}{field}") == text
    assert envelope.findtext(f".//{t}Issuer") == text
    assert envelope.find(f".//{t}Statement").get("Id") == statement_id
    # Element by element, the tree is the one SubElement builds from the same
    # values, written out here (nothing of the envelope under test is reused).
    reference = etree.Element(
        f"{{{SOAP11_ENV}}}Envelope", nsmap={"soap11env": SOAP11_ENV, "tns": TNS}
    )
    response = etree.SubElement(etree.SubElement(reference, f"{{{SOAP11_ENV}}}Body"), RESPONSE_TAG)
    etree.SubElement(response, t + "Status").text = "OK"
    etree.SubElement(response, t + "Message").text = text
    _reference_statement(response, text, statement_id)
    assert _c14n(envelope) == _c14n(reference)


def _reference_statement(parent: etree._Element, text: str, statement_id: str) -> None:
    """Append the Statement of :func:`_statement_with`, built by SubElement from literals."""
    t = f"{{{TNS}}}"

    def add(element: etree._Element, *fields: tuple[str, str]) -> None:
        for name, value in fields:
            etree.SubElement(element, t + name).text = value

    statement = etree.SubElement(parent, t + "Statement", Id=statement_id)
    add(
        statement,
        ("StatementNumber", "AZS-20260314-ABCDEF012345"),
        ("IssuedAt", "2026-03-14T09:26:53+04:00"),
        ("Issuer", text),
    )
    subscriber = etree.SubElement(statement, t + "Subscriber")
    add(
        subscriber,
        ("Code", "100000001"),
        ("LastName", text),
        ("FirstName", text),
        ("Patronymic", text),
        ("Address", text),
        ("PersonsCount", "3"),
        ("WaterSupply", "true"),
        ("Wastewater", "false"),
        ("MeterType", "MECHANICAL"),
    )
    period = etree.SubElement(etree.SubElement(statement, t + "Periods"), t + "Period")
    amounts = (("ConsumptionM3", "12.5"), ("InvoicedAmount", "8.75"), ("PaidAmount", "0.00"))
    add(period, ("Year", "2026"), ("Month", "2"), *amounts)
    add(etree.SubElement(statement, t + "Totals"), *amounts)
    add(statement, ("Currency", "AZN"))


def test_text_xml_cannot_carry_fails_instead_of_being_altered() -> None:
    statement, statement_id = _statement_with("Bakı\x01")
    with pytest.raises(etree.XMLSyntaxError):
        response_envelope("OK", "", statement, statement_id)
