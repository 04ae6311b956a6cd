"""The SQL of a statement: every query the service runs against billing.

A statement takes a small fixed number of indexed queries on one pooled
connection, never one per month: the subscriber by its code (primary key), the
subscriber's invoices in the report window (index on code and period, the
year range bounding the scan), the subscriber's payments in the window (index
on code and payment date), and -- cached -- the latest closed billing period
(index on period).  Sums are made in Python with Decimal, so
the figures are exact on every database, SQLite included.

The statements are SQLAlchemy Core, compiled once for the engine's dialect
and run on the pooled connection's DBAPI cursor
(:class:`service.billing.engine.DriverStatement`): SQLAlchemy's execution layer
cost more CPU than the reads themselves.

Every database error becomes :class:`service.errors.BillingUnavailable`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, Engine, bindparam, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.expression import ClauseElement

from service.billing.engine import DriverStatement
from service.billing.tables import BillingTables
from service.errors import BillingUnavailable

YearMonth = tuple[int, int]


@dataclass(frozen=True)
class SubscriberRecord:
    """One row of SUBSCRIBER."""

    code: str
    fin: str | None
    last_name: str
    first_name: str
    patronymic: str | None
    address: str
    persons_count: int
    category: str
    status: str
    opened_on: date
    water_supply: bool
    wastewater: bool
    meter_type: str

    @property
    def is_residential(self) -> bool:
        """Return whether the subscriber belongs to the residential (əhali) group."""
        return self.category.strip().upper() == "RESIDENTIAL"


class InvoiceLine(NamedTuple):
    """One row of INVOICE: one service of one report month.

    Rows are NamedTuples, not frozen dataclasses: a statement makes about
    forty of them, and a frozen dataclass costs three times as much to build.
    """

    year: int
    month: int
    service: str
    consumption_m3: Decimal
    amount: Decimal


class PaymentLine(NamedTuple):
    """One row of PAYMENT."""

    paid_on: date
    amount: Decimal


@contextmanager
def _billing_errors(what: str, driver_error: type[Exception]) -> Iterator[None]:
    """Turn any database error (SQLAlchemy's or the driver's) into BillingUnavailable."""
    try:
        yield
    except (SQLAlchemyError, driver_error) as exc:
        raise BillingUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc


class BillingQueries:
    """Read a subscriber's billing data; the one place where billing SQL lives."""

    def __init__(
        self,
        engine: Engine,
        tables: BillingTables,
        *,
        period_pin: YearMonth | None = None,
        period_cache_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self._period_pin = period_pin
        self._period_cache_s = period_cache_s
        self._clock = clock
        self._period_lock = threading.Lock()
        self._period_cached: tuple[float, YearMonth | None] | None = None
        #: The driver's base exception (PEP 249 ``Error``).
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

        s, i, p = tables.subscriber, tables.invoice, tables.payment
        self._subscriber_sql = select(s).where(s.c.subscriber_code == _bind("code"))
        period_key = i.c.period_year * 100 + i.c.period_month
        self._invoices_sql = (
            select(
                i.c.period_year,
                i.c.period_month,
                i.c.service,
                i.c.consumption_m3,
                i.c.amount,
            )
            .where(i.c.subscriber_code == _bind("code"))
            # The year range lets the (code, year, month) index bound the scan;
            # the key comparison then makes the month range exact.
            .where(i.c.period_year >= _bind("first_year"))
            .where(i.c.period_year <= _bind("last_year"))
            .where(period_key >= _bind("first_key"))
            .where(period_key <= _bind("last_key"))
        )
        self._payments_sql = (
            select(p.c.paid_on, p.c.amount)
            .where(p.c.subscriber_code == _bind("code"))
            .where(p.c.paid_on >= _bind("start_day"))
            .where(p.c.paid_on < _bind("end_day"))
        )
        # Two index lookups on (PERIOD_YEAR, PERIOD_MONTH) instead of a MAX over
        # an expression, which would scan every invoice.
        self._latest_year_sql = select(func.max(i.c.period_year))
        self._latest_month_sql = select(func.max(i.c.period_month)).where(
            i.c.period_year == _bind("year")
        )
        self._subscriber_columns = [c.name for c in s.columns]
        self._reads = {
            name: DriverStatement(statement, engine.dialect)
            for name, statement in self.statements.items()
        }

    def _rows(self, name: str, conn: PoolProxiedConnection, values: dict[str, Any]) -> list[Any]:
        with _billing_errors(name, self._driver_error):
            return list(self._reads[name].rows(conn, values))

    @property
    def statements(self) -> dict[str, ClauseElement]:
        """Return every SQL statement by name (for the SQL snapshot review)."""
        return {
            "subscriber": self._subscriber_sql,
            "invoices": self._invoices_sql,
            "payments": self._payments_sql,
            "latest_year": self._latest_year_sql,
            "latest_month": self._latest_month_sql,
        }

    @contextmanager
    def connection(self) -> Iterator[PoolProxiedConnection]:
        """Lend one pooled connection for all the reads of a statement.

        One checkout means one pool ping and no transaction per query: the
        reads of a statement take four round trips, not twelve.  It is the
        pooled DBAPI connection (:class:`DriverStatement` runs the reads).
        """
        with _billing_errors("connect", self._driver_error):
            conn = self.engine.raw_connection()
        try:
            yield conn
        finally:
            conn.close()  # back to the pool

    @contextmanager
    def _using(self, conn: PoolProxiedConnection | None) -> Iterator[PoolProxiedConnection]:
        if conn is not None:
            yield conn
        else:
            with self.connection() as fresh:
                yield fresh

    def find_subscriber(
        self, code: str, conn: PoolProxiedConnection | None = None
    ) -> SubscriberRecord | None:
        """Return the subscriber with this code, or None."""
        with self._using(conn) as c:
            rows = self._rows("subscriber", c, {"code": code})
        if not rows:
            return None
        row = dict(zip(self._subscriber_columns, rows[0], strict=True))
        return SubscriberRecord(
            code=row["subscriber_code"],
            fin=row["fin"],
            last_name=row["last_name"],
            first_name=row["first_name"],
            patronymic=row["patronymic"] or None,
            address=row["address"],
            persons_count=int(row["persons_count"]),
            category=row["category"],
            status=row["status"],
            opened_on=_as_date(row["opened_on"]),
            water_supply=bool(row["water_supply"]),
            wastewater=bool(row["wastewater"]),
            meter_type=(row["meter_type"] or "NONE").strip().upper(),
        )

    def invoices(
        self,
        code: str,
        first: YearMonth,
        last: YearMonth,
        conn: PoolProxiedConnection | None = None,
    ) -> list[InvoiceLine]:
        """Return the subscriber's invoice lines from ``first`` to ``last`` inclusive."""
        params = {
            "code": code,
            "first_year": first[0],
            "last_year": last[0],
            "first_key": first[0] * 100 + first[1],
            "last_key": last[0] * 100 + last[1],
        }
        with self._using(conn) as c:
            rows = self._rows("invoices", c, params)
        return [
            InvoiceLine(int(y), int(m), str(svc), _decimal(cons), _decimal(amount))
            for y, m, svc, cons, amount in rows
        ]

    def payments(
        self, code: str, start: date, end: date, conn: PoolProxiedConnection | None = None
    ) -> list[PaymentLine]:
        """Return the subscriber's payments received on ``start`` <= day < ``end``."""
        with self._using(conn) as c:
            rows = self._rows("payments", c, {"code": code, "start_day": start, "end_day": end})
        return [PaymentLine(_as_date(paid_on), _decimal(amount)) for paid_on, amount in rows]

    def latest_closed_period(self, conn: PoolProxiedConnection | None = None) -> YearMonth | None:
        """Return the newest month with invoices across billing (cached), or the pin."""
        if self._period_pin is not None:
            return self._period_pin
        now = self._clock()
        with self._period_lock:
            cached = self._period_cached
            if cached is not None and now - cached[0] < self._period_cache_s:
                return cached[1]
        with self._using(conn) as c:
            year = self._rows("latest_year", c, {})[0][0]
            month = (
                self._rows("latest_month", c, {"year": int(year)})[0][0]
                if year is not None
                else None
            )
        period = (int(year), int(month)) if year is not None and month is not None else None
        with self._period_lock:
            self._period_cached = (now, period)
        return period


def _bind(name: str) -> BindParameter[object]:
    """Return a named bind variable (Oracle renders ``:name``)."""
    return bindparam(name)


def _decimal(value: object) -> Decimal:
    """Return a database number as Decimal without passing through float text."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    # SQLite may hand back a float for NUMERIC columns; its repr is the shortest
    # text that round-trips, which is the stored 2- or 3-decimal value.
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def _as_date(value: object) -> date:
    """Return a DATE column value as a date (drivers may return datetime or text)."""
    if isinstance(value, date):
        return value if type(value) is date else date(value.year, value.month, value.day)
    return date.fromisoformat(str(value)[:10])
