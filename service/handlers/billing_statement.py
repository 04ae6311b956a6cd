"""``GetBillingStatement``: the last 12 months of a residential subscriber.

:class:`StatementOperation` takes the verified Body, checks its one operation
element against the contract's schema, and hands the values to
:func:`answer`, which validates them in the contract's order, reads billing
through :class:`service.billing.statement_query.BillingQueries`, and builds
the statement; :mod:`service.handlers.response_xml` writes the response.
Business outcomes come back as a Status and a Message; technical failures
are raised as :class:`service.errors.ServiceFault` and answered as SOAP
Faults by the gateway.  Nothing here knows HTTP or the gateway.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from lxml import etree

from service.audit import AuditEntry
from service.billing.deadline import BillingDeadline
from service.billing.statement_query import BillingQueries, YearMonth
from service.errors import (
    BusinessRejection,
    NotResidential,
    SchemaViolation,
    Status,
    SubscriberNotFound,
    UnknownOperation,
)
from service.handlers.response_xml import response_envelope
from service.identifiers import citizen_fin as resolve_citizen_fin
from service.identifiers import normalize_subscriber_code
from service.namespaces import OPERATION, TNS
from service.registry import IssuedStatement
from service.statement import (
    STATEMENT_MONTHS,
    BillingStatement,
    add_months,
    build_periods,
    report_window,
    totals_of,
    window_dates,
)
from service.status_messages import DEFAULT_LANGUAGE, message_for, parse_language
from service.wsdl import types as wire
from service.xroad import XRoadHeaders

BAKU = ZoneInfo("Asia/Baku")


def baku_now() -> datetime:
    """Return the current time in Baku, to the second."""
    return datetime.now(BAKU).replace(microsecond=0)


def new_statement_number(issued_at: datetime) -> str:
    """Return a unique, unguessable statement number such as ``AZS-20261126-7F3A9C21D04B``."""
    return f"AZS-{issued_at:%Y%m%d}-{secrets.token_hex(6).upper()}"


@dataclass(frozen=True)
class StatementContext:
    """What the operation needs, built once by the app factory."""

    queries: BillingQueries
    code_pattern: re.Pattern[str]
    issuer: str
    months: int = STATEMENT_MONTHS
    clock: Callable[[], datetime] = baku_now
    #: Bounds all the billing reads of one request (None: no deadline beyond the engine's).
    deadline: BillingDeadline | None = None


@dataclass(frozen=True)
class StatementAnswer:
    """The operation's outcome: a Status, its Message and, if OK, the statement."""

    status: Status
    message: str
    statement: BillingStatement | None = None
    subscriber_code: str = ""
    citizen_fin: str = ""
    language: str = DEFAULT_LANGUAGE.value


def answer(
    context: StatementContext,
    subscriber_code: str | None,
    citizen_fin: str | None,
    language: str | None,
    xroad: XRoadHeaders | None = None,
) -> StatementAnswer:
    """Check the request, read billing and build the answer.

    The citizen is ``CitizenFin``, or the X-Road ``userId`` "AZ<FIN>" when
    CitizenFin is absent; when both are present they must agree.
    """
    lang = parse_language(language)
    code = fin = ""
    try:
        code = normalize_subscriber_code(subscriber_code, context.code_pattern)
        fin = resolve_citizen_fin(
            citizen_fin,
            xroad.citizen_fin() if xroad else None,
            has_user_id=bool(xroad and xroad.user_id),
        )
        if context.deadline is not None:
            statement = context.deadline.run(lambda: build_statement(context, code))
        else:
            statement = build_statement(context, code)
    except BusinessRejection as rejection:
        status = rejection.status
        return StatementAnswer(status, message_for(status, lang), None, code, fin, lang.value)
    return StatementAnswer(
        Status.OK, message_for(Status.OK, lang), statement, code, fin, lang.value
    )


def build_statement(context: StatementContext, code: str) -> BillingStatement:
    """Read the subscriber's billing data and assemble the statement."""
    queries = context.queries
    with queries.connection() as conn:
        subscriber = queries.find_subscriber(code, conn)
        if subscriber is None:
            raise SubscriberNotFound()
        if not subscriber.is_residential:
            raise NotResidential()
        issued_at = context.clock()
        latest = queries.latest_closed_period(conn) or _previous_month(issued_at.date())
        window = report_window(latest, context.months, subscriber.opened_on)
        if window:
            start, end = window_dates(window)
            invoices = queries.invoices(code, window[0], window[-1], conn)
            payments = queries.payments(code, start, end, conn)
        else:
            invoices, payments = [], []
    periods = build_periods(window, invoices, payments)
    return BillingStatement(
        number=new_statement_number(issued_at),
        issued_at=issued_at,
        issuer=context.issuer,
        subscriber=subscriber,
        periods=periods,
        totals=totals_of(periods),
    )


def _previous_month(today: date) -> YearMonth:
    """Return the month before today's: the latest closed period when billing has none."""
    return add_months((today.year, today.month), -1)


def registry_row(statement: BillingStatement, language: str) -> IssuedStatement:
    """Return what the registry keeps of a statement (its digest is added once it is signed)."""
    periods = statement.periods
    totals = statement.totals
    return IssuedStatement(
        statement_number=statement.number,
        issued_at=statement.issued_at,
        issuer=statement.issuer,
        subscriber_code=statement.subscriber.code,
        period_from=f"{periods[0].year:04d}-{periods[0].month:02d}" if periods else None,
        period_to=f"{periods[-1].year:04d}-{periods[-1].month:02d}" if periods else None,
        consumption_m3=totals.consumption_m3,
        invoiced_amount=totals.invoiced_amount,
        paid_amount=totals.paid_amount,
        language=language,
    )


def statement_id(number: str) -> str:
    """Return the XML ``Id`` of a statement (an NCName derived from its number)."""
    return f"Statement-{number}"


def serve(
    context: StatementContext,
    entry: AuditEntry | None,
    xroad: XRoadHeaders | None,
    subscriber_code: str | None,
    citizen_fin: str | None,
    language: str | None,
) -> StatementAnswer:
    """Answer one request, noting in its audit entry what was asked and answered."""
    if entry is not None:  # what was asked, as typed, in case the lookup fails
        entry.subscriber_code = (subscriber_code or "").strip()[:64]
        entry.citizen_fin = (citizen_fin or "").strip()[:16]
    result = answer(context, subscriber_code, citizen_fin, language, xroad)
    if entry is not None:
        entry.outcome = result.status.value
        entry.subscriber_code = result.subscriber_code or entry.subscriber_code
        entry.citizen_fin = result.citizen_fin or entry.citizen_fin
        entry.statement_number = result.statement.number if result.statement else ""
        # Completed by the gateway with the SignatureValue's digest, or dropped
        # if the answer becomes a Fault.
        entry.issued = registry_row(result.statement, result.language) if result.statement else None
    return result


REQUEST_TAG = f"{{{TNS}}}{OPERATION}"
#: The request's part elements, by Clark name, to their parameter position.
_REQUEST_FIELDS = {
    f"{{{TNS}}}{name}": position for position, (name, _) in enumerate(wire.REQUEST_PARTS)
}
#: An element's string value: its text nodes, without comments or processing instructions.
_STRING_VALUE = etree.XPath("string()")


@dataclass(frozen=True)
class OperationRequest:
    """What the operation is told about a request besides its Body.

    ``entry`` is the request's audit record: the operation notes in it what
    was asked and what was answered.  ``xroad`` is the checked X-Road
    headers, whose ``userId`` may name the citizen.
    """

    entry: AuditEntry
    xroad: XRoadHeaders | None = None


class StatementOperation:
    """``GetBillingStatement``: the verified Body in, the response envelope out.

    Before::

        <soapenv:Body>
          <b:GetBillingStatement>
            <b:SubscriberCode>100000000</b:SubscriberCode><b:CitizenFin>X9SCKS7</b:CitizenFin>
          </b:GetBillingStatement>
        </soapenv:Body>

    After (unsigned: the gateway signs it)::

        <soap11env:Envelope ...><soap11env:Body><tns:GetBillingStatementResponse>
          <tns:Status>OK</tns:Status><tns:Message>...</tns:Message><tns:Statement Id="...">...
        </tns:GetBillingStatementResponse></soap11env:Body></soap11env:Envelope>

    An element that the contract's schema refuses (an unknown one included)
    is ``Client.SchemaValidation``; an element the schema declares that is
    not a request (a response, a Statement) is ``Client.UnknownOperation``.
    """

    def __init__(self, context: StatementContext, schema: etree.XMLSchema) -> None:
        self.context = context
        self.schema = schema

    def __call__(self, operation: etree._Element, request: OperationRequest) -> etree._Element:
        """Answer the operation element; raise the Fault of a request it can't take."""
        # In document/literal an unknown operation is an element the schema lacks.
        if not self.schema.validate(operation):
            raise SchemaViolation(str(self.schema.error_log)[:500])
        if operation.tag != REQUEST_TAG:  # declared by the contract, but not a request
            raise UnknownOperation(f"{operation.tag!r}")
        values: list[str | None] = [None] * len(_REQUEST_FIELDS)
        for part in operation.iterchildren(tag=etree.Element):
            values[_REQUEST_FIELDS[part.tag]] = str(_STRING_VALUE(part))
        result = serve(self.context, request.entry, request.xroad, *values)
        statement = result.statement
        return response_envelope(
            result.status.value,
            result.message,
            statement,
            statement_id(statement.number) if statement else "",
        )
