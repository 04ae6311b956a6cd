"""``GetBillingStatement``: the last 12 months of a residential subscriber.

The Spyne method is thin: it hands the request to :func:`answer`, which
validates the input in the contract's order, reads billing through
:class:`service.billing.statement_query.BillingQueries`, and builds the
statement.  Business outcomes come back as a Status and a Message; technical
failures are raised and become SOAP Faults in :mod:`service.errors`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from lxml import etree
from spyne import ServiceBase, rpc

from service.audit import AuditEntry
from service.billing.deadline import BillingDeadline
from service.billing.statement_query import BillingQueries, YearMonth
from service.errors import BusinessRejection, NotResidential, Status, SubscriberNotFound
from service.handlers.response_xml import response_envelope
from service.identifiers import citizen_fin as resolve_citizen_fin
from service.identifiers import normalize_subscriber_code
from service.soap_gateway import AUDIT_ENVIRON_KEY, XROAD_ENVIRON_KEY
from service.statement import (
    STATEMENT_MONTHS,
    BillingStatement,
    add_months,
    build_periods,
    report_window,
    totals_of,
    window_dates,
)
from service.status_messages import message_for, parse_language
from service.wsdl import types as wire
from service.wsdl.namespaces import OPERATION, TNS
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
        return StatementAnswer(status, message_for(status, lang), None, code, fin)
    return StatementAnswer(Status.OK, message_for(Status.OK, lang), statement, code, fin)


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


def statement_id(number: str) -> str:
    """Return the XML ``Id`` of a statement (an NCName derived from its number)."""
    return f"Statement-{number}"


def to_wire(statement: BillingStatement) -> wire.Statement:
    """Return the Spyne object that Spyne serializes as the ``Statement`` element."""
    sub = statement.subscriber
    return wire.Statement(
        Id=statement_id(statement.number),
        StatementNumber=statement.number,
        IssuedAt=statement.issued_at,
        Issuer=statement.issuer,
        Subscriber=wire.Subscriber(
            Code=sub.code,
            LastName=sub.last_name,
            FirstName=sub.first_name,
            Patronymic=sub.patronymic,
            Address=sub.address,
            PersonsCount=sub.persons_count,
            WaterSupply=sub.water_supply,
            Wastewater=sub.wastewater,
            MeterType=sub.meter_type,
        ),
        Periods=wire.Periods(
            Period=[
                wire.Period(
                    Year=p.year,
                    Month=p.month,
                    ConsumptionM3=p.consumption_m3,
                    InvoicedAmount=p.invoiced_amount,
                    PaidAmount=p.paid_amount,
                )
                for p in statement.periods
            ]
        ),
        Totals=wire.Totals(
            ConsumptionM3=statement.totals.consumption_m3,
            InvoicedAmount=statement.totals.invoiced_amount,
            PaidAmount=statement.totals.paid_amount,
        ),
        Currency=statement.currency,
    )


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
    return result


REQUEST_TAG = f"{{{TNS}}}{OPERATION}"
#: The request's part elements, by Clark name, to their parameter position.
_REQUEST_FIELDS = {
    f"{{{TNS}}}{name}": position for position, (name, _) in enumerate(wire.REQUEST_PARTS)
}


class StatementOperation:
    """``GetBillingStatement`` without Spyne's object round trip: the hot path.

    It takes the verified Body and returns the response envelope, written by
    :func:`service.handlers.response_xml.response_envelope`.  It handles
    only the plain shape of a valid request -- the one wrapper element whose
    parts are elements with text only, no attributes (no ``xsi:nil``), no
    comments, each at most once -- and it validates that wrapper with the
    very schema Spyne validates with.  For anything else it returns None and
    the gateway hands the request to Spyne, which answers with its Faults
    (``Client.SchemaValidation``, ``Client.UnknownOperation``, ...).  Both
    paths call :func:`serve`; a test compares their answers after C14N.
    """

    def __init__(self, context: StatementContext, request_schema: etree.XMLSchema) -> None:
        self.context = context
        self.request_schema = request_schema

    def __call__(
        self, body: etree._Element, entry: AuditEntry | None, xroad: XRoadHeaders | None
    ) -> etree._Element | None:
        """Return the response envelope, or None to leave the request to Spyne."""
        if len(body) != 1:
            return None
        request = body[0]
        if request.tag != REQUEST_TAG or request.attrib or (request.text and request.text.strip()):
            return None
        values: list[str | None] = [None] * len(_REQUEST_FIELDS)
        for part in request:
            position = _REQUEST_FIELDS.get(part.tag)
            if position is None or values[position] is not None or part.attrib or len(part):
                return None
            values[position] = part.text or ""
        if not self.request_schema.validate(request):
            return None
        result = serve(self.context, entry, xroad, *values)
        statement = result.statement
        return response_envelope(
            result.status.value,
            result.message,
            statement,
            statement_id(statement.number) if statement else "",
        )


class BillingStatementService(ServiceBase):
    """The SOAP service ``BillingStatementService``."""

    # The Python parameter names are the request's element names, in order.
    @rpc(
        *(t for _, t in wire.REQUEST_PARTS),
        _returns=tuple(t for _, t in wire.RESPONSE_PARTS),
        _out_variable_names=tuple(n for n, _ in wire.RESPONSE_PARTS),
        _operation_name=OPERATION,
        _in_message_name=OPERATION,
    )
    def GetBillingStatement(ctx, SubscriberCode, CitizenFin, Language):  # noqa: N805
        """Return the last 12 months of invoices and payments of a residential subscriber."""
        result = serve(
            ctx.app.statement_context,
            ctx.transport.req_env.get(AUDIT_ENVIRON_KEY),
            ctx.transport.req_env.get(XROAD_ENVIRON_KEY),
            SubscriberCode,
            CitizenFin,
            Language,
        )
        statement = to_wire(result.statement) if result.statement else None
        return result.status.value, result.message, statement
