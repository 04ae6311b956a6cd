"""The registry of issued statements: what Azərsu answered, so that a copy can be checked.

A printed arayış leaves the service's reach: a bank or a court that holds it
can only ask Azərsu whether it issued that document and what it said.  For
every statement answered with Status ``OK`` the registry keeps one row: its
number, issue time and issuer, the SHA-256 of its SignatureValue (what the QR
code carries), the subscriber code, the first and last report month, the
three totals, the language of the answer, and -- if an operator revoked it --
when and why.  Never a name, an address or a FIN.

The row is written by the access audit's commit (:mod:`service.audit`), in
the same transaction as the request's audit record: an answer leaves only
after that commit, so no statement leaves without its row, and a row whose
commit failed belongs to an answer that was withheld.  The table lives in the
audit database (SQLite, PostgreSQL or Oracle; created when missing) and is
kept ``AZERSU_REGISTRY_RETENTION_DAYS``, purged by ``azersu-statement
registry purge``.

Amounts are ``Decimal`` end to end: NUMBER/NUMERIC columns on PostgreSQL and
Oracle, the exact text on SQLite (whose NUMERIC would round through a float).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    MetaData,
    Numeric,
    String,
    Table,
    TypeDecorator,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from service.billing.engine import DriverStatement

#: The table of issued statements in the audit database.
REGISTRY_TABLE = "statement_registry"
#: Longest revocation reason kept (characters).
REASON_MAX_CHARS = 500


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal column: NUMERIC(p, s) where the database has one, the exact text on SQLite."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Return TEXT of the value on SQLite, NUMERIC(p, s) elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.precision + 2))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """Write the Decimal as it is (its text on SQLite)."""
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"{type(value).__name__} is not a Decimal")
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Return a Decimal whatever the driver gave."""
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


def registry_table(metadata: MetaData) -> Table:
    """Return the table of issued statements (primary key: the statement number)."""
    return Table(
        REGISTRY_TABLE,
        metadata,
        Column("statement_number", String(64), primary_key=True),
        # UTC (on Oracle a DATE, as the audit's times: whole seconds in UTC).
        Column("issued_at", DateTime(timezone=True), nullable=False),
        Column("issuer", String(200), nullable=False),
        Column("signature_sha256", String(64), nullable=False),  # hex, lower case
        Column("subscriber_code", String(64), nullable=False),
        Column("period_from", String(7)),  # YYYY-MM; empty when the window has no month
        Column("period_to", String(7)),
        Column("consumption_m3", ExactDecimal(18, 3), nullable=False),
        Column("invoiced_amount", ExactDecimal(16, 2), nullable=False),
        Column("paid_amount", ExactDecimal(16, 2), nullable=False),
        Column("language", String(2), nullable=False),
        Column("request_id", String(36), nullable=False),  # the audit record of the request
        Column("revoked_at", DateTime(timezone=True)),  # UTC
        Column("revocation_reason", String(REASON_MAX_CHARS)),
        Index(f"ix_{REGISTRY_TABLE}_issued", "issued_at"),
    )


@dataclass(frozen=True)
class IssuedStatement:
    """One issued statement as the registry keeps it (nothing that names a person)."""

    statement_number: str
    issued_at: dt.datetime  # aware; the statement's own (Baku) offset
    issuer: str
    subscriber_code: str
    period_from: str | None
    period_to: str | None
    consumption_m3: Decimal
    invoiced_amount: Decimal
    paid_amount: Decimal
    language: str
    signature_sha256: str = ""  # known once the statement is signed
    request_id: str = ""
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None

    @property
    def revoked(self) -> bool:
        """Return whether an operator revoked the statement."""
        return self.revoked_at is not None

    def signed(self, signature_sha256: str, request_id: str) -> IssuedStatement:
        """Return the row with the SignatureValue's digest and the request it answered."""
        return replace(self, signature_sha256=signature_sha256, request_id=request_id)

    def row(self) -> dict[str, Any]:
        """Return the values to insert (times in UTC)."""
        if not self.signature_sha256:
            raise ValueError(f"{self.statement_number}: no signature digest")
        values = {name: getattr(self, name) for name in _COLUMNS}
        values["issued_at"] = _utc(self.issued_at)
        values["revoked_at"] = _utc(self.revoked_at) if self.revoked_at else None
        return values


_COLUMNS = (
    "statement_number",
    "issued_at",
    "issuer",
    "signature_sha256",
    "subscriber_code",
    "period_from",
    "period_to",
    "consumption_m3",
    "invoiced_amount",
    "paid_amount",
    "language",
    "request_id",
    "revoked_at",
    "revocation_reason",
)


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("a naive time")
    return moment.astimezone(dt.UTC)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """Return a stored time as aware UTC (SQLite gives it back naive)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


class StatementRegistry:
    """Read, revoke and purge the rows; the inserts ride on the audit's commit.

    ``writer_lock`` is the audit store's (on SQLite, one writer at a time
    across the workers); reads take no lock.
    """

    def __init__(
        self,
        engine: Engine,
        metadata: MetaData,
        writer_lock: contextlib.AbstractContextManager[object] | None = None,
    ) -> None:
        self.engine = engine
        self.table = t = registry_table(metadata)
        self._writer_lock = writer_lock or contextlib.nullcontext()
        self.insert = DriverStatement(
            insert(t).values({name: bindparam(name, type_=t.c[name].type) for name in _COLUMNS}),
            engine.dialect,
        )
        self.revoke_statement = DriverStatement(
            update(t)
            .where(
                t.c.statement_number == bindparam("target", type_=t.c.statement_number.type),
                t.c.revoked_at.is_(None),
            )
            .values(
                revoked_at=bindparam("revoked_on", type_=t.c.revoked_at.type),
                revocation_reason=bindparam("reason_text", type_=t.c.revocation_reason.type),
            ),
            engine.dialect,
        )

    def find(self, number: str) -> IssuedStatement | None:
        """Return the row of ``number``, or None."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(self.table).where(self.table.c.statement_number == number))
                .mappings()
                .first()
            )
        if row is None:
            return None
        values = {name: row[name] for name in _COLUMNS}
        values["issued_at"] = _aware(values["issued_at"])
        values["revoked_at"] = _aware(values["revoked_at"])
        return IssuedStatement(**values)

    def purge(self, older_than: dt.datetime) -> int:
        """Delete the rows of statements issued before ``older_than``; return how many."""
        with self._writer_lock, self.engine.begin() as conn:
            result = conn.execute(
                delete(self.table).where(self.table.c.issued_at < _utc(older_than))
            )
            return int(result.rowcount)

    def count(self) -> int:
        """Return the number of rows."""
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.table)).scalar_one())


def format_row(row: IssuedStatement) -> str:
    """Return a row as aligned text for an operator (the code unmasked: the operator's own data)."""
    from zoneinfo import ZoneInfo

    baku = ZoneInfo("Asia/Baku")
    months = f"{row.period_from} .. {row.period_to}" if row.period_from else "-"
    status = "VALID"
    if row.revoked_at is not None:
        revoked = row.revoked_at.astimezone(baku)
        status = f"REVOKED at {revoked:%Y-%m-%d %H:%M:%S %z}: {row.revocation_reason}"
    lines = [
        ("Statement", row.statement_number),
        ("Status", status),
        ("Issued at", f"{row.issued_at.astimezone(baku):%Y-%m-%d %H:%M:%S %z}"),
        ("Issuer", row.issuer),
        ("Subscriber code", row.subscriber_code),
        ("Months", months),
        ("Consumption", f"{format(row.consumption_m3.normalize(), 'f')} m³"),
        ("Invoiced", f"{row.invoiced_amount:.2f} AZN"),
        ("Paid", f"{row.paid_amount:.2f} AZN"),
        ("Language", row.language),
        ("SHA-256", row.signature_sha256),
        ("Request id", row.request_id),
    ]
    return "\n".join(f"{name + ':':<17}{value}" for name, value in lines)
