"""Hand-made billing data for the tests: one subscriber per edge of the contract.

The latest closed period is pinned to 2026-02, so the 12-month window is
2025-03 .. 2026-02 and crosses a year boundary.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import create_engine, insert

from service.billing.tables import build_billing_tables

REPORT_PERIOD = "2026-02"
WINDOW = [(2025, m) for m in range(3, 13)] + [(2026, 1), (2026, 2)]
FIN = "5ZT3K9M"

FULL = "100000001"  # both services, every month invoiced and paid next month
NEW = "100000002"  # opened 2025-12-15: only Dec, Jan, Feb
GAPS = "100000003"  # no invoice in 2025-06 and 2025-07, never paid
OVERPAID = "100000004"  # pays more than invoiced
CLOSED = "100000005"  # closed after 2025-09: zeros later
EXACT = "100000006"  # amounts whose float sums would be inexact
BUSINESS = "200000001"  # non-residential
UNKNOWN = "999999999"  # not in billing

AZ_LAST, AZ_FIRST, AZ_PATRONYMIC = "İsmayılzadə", "Gülşən", "Çingiz qızı"
AZ_ADDRESS = "Bakı şəhəri, Xətai rayonu, Növbahar küçəsi, ev 7, mənzil 12 (Dağüstü)"
AZ_LETTERS = "əğıİöşçü"


def _subscriber(code: str, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "subscriber_code": code,
        "fin": "7AB2C4D",
        "last_name": "Məmmədov",
        "first_name": "Əli",
        "patronymic": "Vüqar oğlu",
        "address": "Sumqayıt şəhəri, 9-cu mikrorayon, ev 3",
        "persons_count": 3,
        "category": "RESIDENTIAL",
        "status": "ACTIVE",
        "opened_on": date(2015, 4, 1),
        "water_supply": 1,
        "wastewater": 1,
        "meter_type": "MECHANICAL",
    }
    row.update(overrides)
    return row


def _invoice(code: str, year: int, month: int, service: str, m3: str, amount: str) -> dict:
    return {
        "subscriber_code": code,
        "period_year": year,
        "period_month": month,
        "service": service,
        "consumption_m3": Decimal(m3),
        "amount": Decimal(amount),
    }


def _payment(code: str, paid_on: date, amount: str) -> dict:
    return {"subscriber_code": code, "paid_on": paid_on, "amount": Decimal(amount)}


def rows() -> tuple[list[dict], list[dict], list[dict]]:
    """Return (subscribers, invoices, payments)."""
    subscribers = [
        _subscriber(
            FULL,
            last_name=AZ_LAST,
            first_name=AZ_FIRST,
            patronymic=AZ_PATRONYMIC,
            address=AZ_ADDRESS,
            persons_count=4,
        ),
        _subscriber(NEW, opened_on=date(2025, 12, 15), meter_type="SMART_CARD"),
        _subscriber(GAPS, wastewater=0, meter_type="NONE", patronymic=None),
        _subscriber(OVERPAID),
        _subscriber(CLOSED, status="CLOSED"),
        _subscriber(EXACT),
        _subscriber(BUSINESS, category="NON_RESIDENTIAL", last_name="“Xəzər Çay Evi” MMC"),
    ]
    invoices: list[dict] = []
    payments: list[dict] = []
    # Months just outside the window must never be counted.
    for year, month in [(2025, 1), (2025, 2), *WINDOW, (2026, 3)]:
        invoices.append(_invoice(FULL, year, month, "WATER", "12.000", "8.40"))
        invoices.append(_invoice(FULL, year, month, "WASTEWATER", "12.000", "3.60"))
    for year, month in WINDOW:
        if (year, month) not in ((2025, 6), (2025, 7)):
            invoices.append(_invoice(GAPS, year, month, "WATER", "9.125", "5.48"))
        invoices.append(_invoice(OVERPAID, year, month, "WATER", "10", "7.00"))
        invoices.append(_invoice(OVERPAID, year, month, "WASTEWATER", "10", "3.00"))
        invoices.append(_invoice(EXACT, year, month, "WATER", "0.143", "0.10"))
        invoices.append(_invoice(EXACT, year, month, "WASTEWATER", "0.667", "0.20"))
        if (year, month) <= (2025, 9):
            invoices.append(_invoice(CLOSED, year, month, "WATER", "5", "3.50"))
    for year, month in [(2025, 12), (2026, 1), (2026, 2)]:
        invoices.append(_invoice(NEW, year, month, "WATER", "4.5", "3.15"))
        invoices.append(_invoice(NEW, year, month, "WASTEWATER", "4.5", "1.35"))
    # FULL pays each invoice on the 10th of the next month; edges of the window:
    payments.append(_payment(FULL, date(2025, 2, 28), "12.00"))  # before: excluded
    payments.append(_payment(FULL, date(2025, 3, 1), "12.00"))  # first day: included
    for year, month in WINDOW[1:]:
        payments.append(_payment(FULL, date(year, month, 10), "12.00"))
    payments.append(_payment(FULL, date(2026, 3, 1), "12.00"))  # after: excluded
    for year, month in WINDOW:
        payments.append(_payment(OVERPAID, date(year, month, 20), "15.00"))
        payments.append(_payment(EXACT, date(year, month, 5), "0.10"))
        payments.append(_payment(EXACT, date(year, month, 25), "0.20"))
    payments.append(_payment(NEW, date(2025, 12, 15), "20.00"))  # smart-card top-up
    invoices.append(_invoice(BUSINESS, 2026, 2, "WATER", "100", "100.00"))
    return subscribers, invoices, payments


def create_billing_db(url: str) -> None:
    """Create the billing tables at ``url`` and load the hand-made rows."""
    tables = build_billing_tables()
    engine = create_engine(url)
    tables.metadata.create_all(engine)
    subscribers, invoices, payments = rows()
    with engine.begin() as conn:
        conn.execute(insert(tables.subscriber), subscribers)
        conn.execute(insert(tables.invoice), invoices)
        conn.execute(insert(tables.payment), payments)
    engine.dispose()
