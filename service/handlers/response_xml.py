"""Write the ``GetBillingStatementResponse`` envelope: the service's one serializer.

Before (the operation's answer)::

    StatementAnswer(status=OK, message="Son 12 ay ...", statement=BillingStatement(...))

After::

    <soap11env:Envelope xmlns:soap11env="..." xmlns:tns=".../billing-statement/v1">
      <soap11env:Body><tns:GetBillingStatementResponse>
        <tns:Status>OK</tns:Status><tns:Message>Son 12 ay ...</tns:Message>
        <tns:Statement Id="Statement-AZS-...">...</tns:Statement>
      </tns:GetBillingStatementResponse></soap11env:Body>
    </soap11env:Envelope>

The order and types are the contract's (:mod:`service.wsdl.types`); every
answer is valid under the schema the WSDL publishes (tested for every
Status).  The envelope is written as text and parsed once by libxml2, which
costs far less than building it element by element (figures in
docs/performance.md).  Every value goes in escaped (:func:`_text`), so the
text holds no markup, entity or DOCTYPE that the data did not spell out as
characters; a value that XML can't carry (a control character in billing
data) fails to parse rather than being altered.
"""

from __future__ import annotations

import threading

from lxml import etree

from service.namespaces import OPERATION, SOAP11_ENV, TNS
from service.statement import BillingStatement

_T = f"{{{TNS}}}"
RESPONSE_TAG = f"{_T}{OPERATION}Response"
#: Character data: markup characters escaped, and CR as a reference (a parser
#: would turn a literal CR into LF); quotes for the one attribute value.
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;", '"': "&quot;"})
_OPEN = (
    f'<soap11env:Envelope xmlns:soap11env="{SOAP11_ENV}" xmlns:tns="{TNS}">'
    f"<soap11env:Body><tns:{OPERATION}Response>"
)
_CLOSE = f"</tns:{OPERATION}Response></soap11env:Body></soap11env:Envelope>"
_parsers = threading.local()


def _text(value: str) -> str:
    return value.translate(_ESCAPES)


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def _parser() -> etree.XMLParser:
    """Return this thread's parser (an lxml parser must not be shared between threads)."""
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = etree.XMLParser(
            resolve_entities=False, no_network=True, remove_comments=False
        )
    return parser


def response_envelope(
    status: str, message: str, statement: BillingStatement | None, statement_id: str
) -> etree._Element:
    """Return the SOAP envelope of a response: Status, Message and the Statement if any."""
    parts = [
        _OPEN,
        f"<tns:Status>{_text(status)}</tns:Status><tns:Message>{_text(message)}</tns:Message>",
    ]
    if statement is not None:
        statement_xml(parts, statement, statement_id)
    parts.append(_CLOSE)
    return etree.fromstring("".join(parts).encode("utf-8"), _parser())


def statement_xml(parts: list[str], statement: BillingStatement, statement_id: str) -> None:
    """Append the text of the ``Statement`` element (unsigned) to ``parts``."""
    sub = statement.subscriber
    totals = statement.totals
    parts.append(
        f'<tns:Statement Id="{_text(statement_id)}">'
        f"<tns:StatementNumber>{_text(statement.number)}</tns:StatementNumber>"
        f"<tns:IssuedAt>{statement.issued_at.isoformat()}</tns:IssuedAt>"
        f"<tns:Issuer>{_text(statement.issuer)}</tns:Issuer>"
        f"<tns:Subscriber><tns:Code>{_text(sub.code)}</tns:Code>"
        f"<tns:LastName>{_text(sub.last_name)}</tns:LastName>"
        f"<tns:FirstName>{_text(sub.first_name)}</tns:FirstName>"
    )
    if sub.patronymic is not None:
        parts.append(f"<tns:Patronymic>{_text(sub.patronymic)}</tns:Patronymic>")
    parts.append(
        f"<tns:Address>{_text(sub.address)}</tns:Address>"
        f"<tns:PersonsCount>{int(sub.persons_count)}</tns:PersonsCount>"
        f"<tns:WaterSupply>{_boolean(sub.water_supply)}</tns:WaterSupply>"
        f"<tns:Wastewater>{_boolean(sub.wastewater)}</tns:Wastewater>"
        f"<tns:MeterType>{_text(sub.meter_type)}</tns:MeterType></tns:Subscriber>"
        "<tns:Periods>"
    )
    parts.extend(
        f"<tns:Period><tns:Year>{line.year}</tns:Year><tns:Month>{line.month}</tns:Month>"
        f"<tns:ConsumptionM3>{line.consumption_m3}</tns:ConsumptionM3>"
        f"<tns:InvoicedAmount>{line.invoiced_amount}</tns:InvoicedAmount>"
        f"<tns:PaidAmount>{line.paid_amount}</tns:PaidAmount></tns:Period>"
        for line in statement.periods
    )
    parts.append(
        "</tns:Periods><tns:Totals>"
        f"<tns:ConsumptionM3>{totals.consumption_m3}</tns:ConsumptionM3>"
        f"<tns:InvoicedAmount>{totals.invoiced_amount}</tns:InvoicedAmount>"
        f"<tns:PaidAmount>{totals.paid_amount}</tns:PaidAmount></tns:Totals>"
        f"<tns:Currency>{_text(statement.currency)}</tns:Currency></tns:Statement>"
    )
