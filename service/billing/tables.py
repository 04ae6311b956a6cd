"""SQLAlchemy Core description of the billing data contract.

The billing DBA provides three relations (views in production on Oracle, tables
in the demo): ``SUBSCRIBER``, ``INVOICE`` and ``PAYMENT``.  Their schema and
names are configurable (see :class:`service.settings.Settings`), so the
metadata is built per configuration instead of at import time.
The DDL that the demo creates lives in ``service/schemas/billing_*.sql``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
)

#: Money: two decimals, exactly as invoiced (AZN and qəpik).
MONEY = Numeric(14, 2, asdecimal=True)
#: Consumption in cubic metres, up to three decimals.
VOLUME = Numeric(14, 3, asdecimal=True)


@dataclass(frozen=True)
class BillingTables:
    """The three billing relations, bound to one configured schema and naming."""

    metadata: MetaData
    subscriber: Table
    invoice: Table
    payment: Table


def build_billing_tables(
    schema: str | None = None,
    subscriber_name: str = "subscriber",
    invoice_name: str = "invoice",
    payment_name: str = "payment",
) -> BillingTables:
    """Build the table metadata for the given schema and relation names.

    All identifiers are given to SQLAlchemy in lower case, which it treats as
    case-insensitive and renders unquoted: Oracle folds them to the upper-case
    names of the contract (``SUBSCRIBER_CODE``), PostgreSQL to lower case, and
    SQLite ignores case.  Configured relation names are lower-cased for the same
    reason.
    """
    metadata = MetaData(schema=schema.lower() if schema else None)
    subscriber_name, invoice_name, payment_name = (
        subscriber_name.lower(),
        invoice_name.lower(),
        payment_name.lower(),
    )
    subscriber = Table(
        subscriber_name,
        metadata,
        Column("subscriber_code", String(32), primary_key=True),
        Column("fin", String(7)),
        Column("last_name", String(100), nullable=False),
        Column("first_name", String(100), nullable=False),
        Column("patronymic", String(100)),
        Column("address", String(400), nullable=False),
        Column("persons_count", Integer, nullable=False),
        Column("category", String(16), nullable=False),  # RESIDENTIAL / NON_RESIDENTIAL
        Column("status", String(8), nullable=False),  # ACTIVE / CLOSED
        Column("opened_on", Date, nullable=False),
        Column("water_supply", Integer, nullable=False),  # 1 / 0
        Column("wastewater", Integer, nullable=False),  # 1 / 0
        Column("meter_type", String(16), nullable=False),  # MECHANICAL / SMART_CARD / NONE
    )
    invoice = Table(
        invoice_name,
        metadata,
        Column("subscriber_code", String(32), nullable=False),
        Column("period_year", Integer, nullable=False),
        Column("period_month", Integer, nullable=False),
        Column("service", String(16), nullable=False),  # WATER / WASTEWATER
        Column("consumption_m3", VOLUME, nullable=False),
        Column("amount", MONEY, nullable=False),
        Index(
            f"ix_{invoice_name}_sub_period",
            "subscriber_code",
            "period_year",
            "period_month",
        ),
        Index(f"ix_{invoice_name}_period", "period_year", "period_month"),
    )
    payment = Table(
        payment_name,
        metadata,
        Column("subscriber_code", String(32), nullable=False),
        Column("paid_on", Date, nullable=False),
        Column("amount", MONEY, nullable=False),
        Index(f"ix_{payment_name}_sub_paid", "subscriber_code", "paid_on"),
    )
    return BillingTables(metadata, subscriber, invoice, payment)
