"""The statement (arayış) as data: the report window, the monthly rows, the totals.

"Last 12 months" means the 12 report months that end with the latest closed
billing period, oldest first.  A month without invoice or payment shows zeros;
an account opened later shows only its months since opening, the opening month
included; a closed account keeps its window and shows zeros after closing.
Invoiced consumption and amount add up the services (water and wastewater) of
the month; the paid amount adds up the payments received in that month.
Everything is Decimal: money has exactly two decimals, consumption up to three.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

from service.billing.statement_query import (
    InvoiceLine,
    PaymentLine,
    SubscriberRecord,
    YearMonth,
)

CURRENCY = "AZN"
#: A statement covers the last 12 report months (the e-service's definition).
STATEMENT_MONTHS = 12
MONEY_QUANTUM = Decimal("0.01")
VOLUME_QUANTUM = Decimal("0.001")
ZERO = Decimal("0")


class PeriodLine(NamedTuple):
    """One report month of the statement (a NamedTuple: cheap to build, twelve per statement)."""

    year: int
    month: int
    consumption_m3: Decimal
    invoiced_amount: Decimal
    paid_amount: Decimal


@dataclass(frozen=True)
class Totals:
    """Sums of the statement's rows."""

    consumption_m3: Decimal
    invoiced_amount: Decimal
    paid_amount: Decimal


@dataclass(frozen=True)
class BillingStatement:
    """Everything a statement says, before it becomes XML."""

    number: str
    issued_at: datetime
    issuer: str
    subscriber: SubscriberRecord
    periods: tuple[PeriodLine, ...]
    totals: Totals
    currency: str = CURRENCY


def add_months(period: YearMonth, delta: int) -> YearMonth:
    """Return the month ``delta`` months after (or before) ``period``."""
    index = period[0] * 12 + (period[1] - 1) + delta
    return index // 12, index % 12 + 1


def report_window(latest: YearMonth, months: int, opened_on: date) -> list[YearMonth]:
    """Return the report months, oldest first, ending with ``latest``.

    Months before the account's opening month are left out.
    """
    opened = (opened_on.year, opened_on.month)
    window = [add_months(latest, -offset) for offset in range(months - 1, -1, -1)]
    return [period for period in window if period >= opened]


def money(value: Decimal) -> Decimal:
    """Return an amount with exactly two decimals (8.4 -> 8.40)."""
    return value.quantize(MONEY_QUANTUM)


def volume(value: Decimal) -> Decimal:
    """Return a consumption with at most three decimals, without trailing zeros."""
    quantized = value.quantize(VOLUME_QUANTUM)
    # normalize() would give 1E+1 for 10; format it back to plain notation.
    text = format(quantized.normalize(), "f")
    return Decimal(text)


def build_periods(
    window: Iterable[YearMonth],
    invoices: Iterable[InvoiceLine],
    payments: Iterable[PaymentLine],
) -> tuple[PeriodLine, ...]:
    """Return one row per window month with the month's invoices and payments."""
    months = list(window)
    consumption = {m: ZERO for m in months}
    invoiced = {m: ZERO for m in months}
    paid = {m: ZERO for m in months}
    for line in invoices:
        key = (line.year, line.month)
        if key in consumption:
            consumption[key] += line.consumption_m3
            invoiced[key] += line.amount
    for payment in payments:
        key = (payment.paid_on.year, payment.paid_on.month)
        if key in paid:
            paid[key] += payment.amount
    return tuple(
        PeriodLine(
            year=m[0],
            month=m[1],
            consumption_m3=volume(consumption[m]),
            invoiced_amount=money(invoiced[m]),
            paid_amount=money(paid[m]),
        )
        for m in months
    )


def totals_of(periods: Iterable[PeriodLine]) -> Totals:
    """Return the sums of the rows."""
    rows = list(periods)
    return Totals(
        consumption_m3=volume(sum((r.consumption_m3 for r in rows), ZERO)),
        invoiced_amount=money(sum((r.invoiced_amount for r in rows), ZERO)),
        paid_amount=money(sum((r.paid_amount for r in rows), ZERO)),
    )


def window_dates(window: list[YearMonth]) -> tuple[date, date]:
    """Return [first day of the first month, first day after the last month)."""
    first = window[0]
    after = add_months(window[-1], 1)
    return date(first[0], first[1], 1), date(after[0], after[1], 1)
