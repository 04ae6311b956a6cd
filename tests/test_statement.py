"""The report window and the sums, without a database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from service.billing.statement_query import InvoiceLine, PaymentLine
from service.statement import (
    add_months,
    build_periods,
    money,
    report_window,
    totals_of,
    volume,
    window_dates,
)


@pytest.mark.parametrize(
    ("period", "delta", "expected"),
    [
        ((2026, 2), -1, (2026, 1)),
        ((2026, 1), -1, (2025, 12)),
        ((2026, 1), -13, (2024, 12)),
        ((2025, 12), 1, (2026, 1)),
        ((2026, 2), -11, (2025, 3)),
        ((2026, 2), 0, (2026, 2)),
    ],
)
def test_add_months(period: tuple[int, int], delta: int, expected: tuple[int, int]) -> None:
    assert add_months(period, delta) == expected


def test_window_is_twelve_months_oldest_first_across_a_year_boundary() -> None:
    window = report_window((2026, 2), 12, date(2010, 1, 1))
    assert window[0] == (2025, 3)
    assert window[-1] == (2026, 2)
    assert len(window) == 12
    assert window == sorted(window)


@pytest.mark.parametrize(
    ("opened_on", "expected_first", "expected_len"),
    [
        (date(2025, 12, 31), (2025, 12), 3),  # the opening month is included
        (date(2026, 2, 1), (2026, 2), 1),
        (date(2025, 3, 1), (2025, 3), 12),
        (date(2025, 2, 28), (2025, 3), 12),
    ],
)
def test_new_account_window(
    opened_on: date, expected_first: tuple[int, int], expected_len: int
) -> None:
    window = report_window((2026, 2), 12, opened_on)
    assert window[0] == expected_first
    assert len(window) == expected_len


def test_account_opened_after_the_latest_period_has_no_months() -> None:
    assert report_window((2026, 2), 12, date(2026, 3, 2)) == []


def test_window_dates_are_half_open() -> None:
    assert window_dates([(2025, 3), (2026, 2)]) == (date(2025, 3, 1), date(2026, 3, 1))
    assert window_dates([(2025, 12)]) == (date(2025, 12, 1), date(2026, 1, 1))


def test_periods_add_services_and_payments_exactly() -> None:
    window = [(2025, 12), (2026, 1)]
    invoices = [
        InvoiceLine(2025, 12, "WATER", Decimal("0.143"), Decimal("0.10")),
        InvoiceLine(2025, 12, "WASTEWATER", Decimal("0.667"), Decimal("0.20")),
        InvoiceLine(2025, 11, "WATER", Decimal("99"), Decimal("99.00")),  # outside
    ]
    payments = [
        PaymentLine(date(2025, 12, 1), Decimal("0.10")),
        PaymentLine(date(2025, 12, 31), Decimal("0.20")),
        PaymentLine(date(2026, 2, 1), Decimal("5.00")),  # outside
    ]
    periods = build_periods(window, invoices, payments)
    assert [(p.year, p.month) for p in periods] == window
    december, january = periods
    assert december.consumption_m3 == Decimal("0.81")
    assert december.invoiced_amount == Decimal("0.30")
    assert str(december.invoiced_amount) == "0.30"  # not 0.30000000000000004
    assert str(december.paid_amount) == "0.30"
    assert (str(january.consumption_m3), str(january.invoiced_amount)) == ("0", "0.00")
    assert str(january.paid_amount) == "0.00"
    totals = totals_of(periods)
    assert str(totals.invoiced_amount) == "0.30"
    assert str(totals.paid_amount) == "0.30"


def test_money_has_two_decimals_and_volume_at_most_three() -> None:
    assert str(money(Decimal("8.4"))) == "8.40"
    assert str(money(Decimal("8"))) == "8.00"
    assert str(volume(Decimal("10.000"))) == "10"
    assert str(volume(Decimal("12.50"))) == "12.5"
    assert str(volume(Decimal("0.1234"))) == "0.123"
    assert "E" not in str(volume(Decimal("100")))
