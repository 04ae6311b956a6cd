"""The billing engine: one pooled, read-only SQLAlchemy engine per process.

Production is Oracle through python-oracledb (``oracle+oracledb://``; its thin
mode needs no Oracle Client libraries); ``oracle+cx_oracle://`` works where a
site installs the ``[cx-oracle]`` extra.  PostgreSQL goes through psycopg 3
and SQLite is the embedded demo.  A URL without a driver gets the one named
here (``oracle://`` -> oracledb, ``postgresql://`` -> psycopg).

Every statement is bounded by ``AZERSU_DB_TIMEOUT_S``: connecting, waiting
for a pooled connection, and running.  The pool pings a connection before
lending it, so the service recovers by itself once the database is back.
The session is read-only where the database can enforce it (PostgreSQL
``default_transaction_read_only``, SQLite ``mode=ro``); on Oracle the billing
account should only have SELECT on the three views.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from service.errors import ConfigurationError

DEFAULT_DRIVERS = {"oracle": "oracledb", "postgresql": "psycopg"}
#: Key of the SQLite statement deadline in a pooled connection's ``info``.
_DEADLINE_KEY = "azersu_deadline"


def normalize_url(text: str, setting: str) -> URL:
    """Parse a database URL and give it the project's default driver."""
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ConfigurationError(setting, f"not a database URL: {exc}") from exc
    backend = url.get_backend_name()
    if "+" not in url.drivername and backend in DEFAULT_DRIVERS:
        url = url.set(drivername=f"{backend}+{DEFAULT_DRIVERS[backend]}")
    return url


def create_read_only_engine(
    text: str,
    setting: str,
    *,
    timeout_s: float,
    pool_size: int,
    max_overflow: int,
) -> Engine:
    """Create a pooled engine that only reads, with every wait bounded by ``timeout_s``."""
    url = normalize_url(text, setting)
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    options: dict[str, Any] = {"pool_recycle": 1800}
    if backend == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:":
            raise ConfigurationError(setting, "an SQLite billing database needs a file")
        if not Path(database).is_file():
            raise ConfigurationError(
                setting,
                f"{database} does not exist (create the demo with 'azersu-statement init-demo')",
            )
        # Open the file read-only: the service never writes to billing.
        url = url.set(database=f"file:{database}?mode=ro", query={"uri": "true"})
        connect_args["timeout"] = timeout_s  # waiting on a lock
    else:
        # A network database can drop a pooled connection (a restart, a
        # firewall): test it on checkout.  An open SQLite file can't go away,
        # so SQLite skips the extra statement on every request.
        options["pool_pre_ping"] = True
        options.update(pool_size=pool_size, max_overflow=max_overflow, pool_timeout=timeout_s)
        # Reads only: no BEGIN/ROLLBACK round trips around each statement.
        options["isolation_level"] = "AUTOCOMMIT"
    if backend == "postgresql":
        # libpq counts connect_timeout in whole seconds (at least 2).
        connect_args["connect_timeout"] = max(2, math.ceil(timeout_s))
        connect_args["options"] = (
            f"-c statement_timeout={int(timeout_s * 1000)} "
            f"-c lock_timeout={int(timeout_s * 1000)} "
            "-c default_transaction_read_only=on"
        )
    if backend == "oracle":
        connect_args["tcp_connect_timeout"] = timeout_s
    try:
        engine = create_engine(url, connect_args=connect_args, **options)
    except Exception as exc:  # a missing driver or a bad option
        raise ConfigurationError(setting, f"{type(exc).__name__}: {exc}") from exc
    if backend == "oracle":
        _bound_oracle_calls(engine, timeout_s)
    if backend == "sqlite":
        _bound_sqlite_statements(engine, timeout_s)
    return engine


def _bound_oracle_calls(engine: Engine, timeout_s: float) -> None:
    """Give every Oracle round trip a deadline (python-oracledb and cx_Oracle)."""

    @event.listens_for(engine, "connect")
    def _set_call_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.call_timeout = int(timeout_s * 1000)


def _bound_sqlite_statements(engine: Engine, timeout_s: float) -> None:
    """Interrupt an SQLite statement that runs past the deadline."""

    @event.listens_for(engine, "connect")
    def _install(dbapi_connection: Any, record: Any) -> None:
        deadline = {"at": math.inf, "timeout_s": timeout_s}

        def check() -> int:
            return 1 if time.monotonic() > deadline["at"] else 0

        dbapi_connection.set_progress_handler(check, 10_000)
        record.info[_DEADLINE_KEY] = deadline

    @event.listens_for(engine, "before_cursor_execute")
    def _arm(conn: Any, *_args: Any) -> None:
        arm_statement_deadline(conn)


def arm_statement_deadline(conn: Any) -> None:
    """Start the SQLite deadline of the next statement on ``conn`` (no-op elsewhere).

    ``conn`` is a SQLAlchemy Connection or a pooled DBAPI connection (both
    share the pool record's ``info``).  SQLAlchemy's executions arm it
    through an event; :class:`DriverStatement` arms it itself, since it runs
    on the DBAPI cursor.
    """
    deadline = conn.info.get(_DEADLINE_KEY)
    if deadline is not None:
        deadline["at"] = time.monotonic() + deadline["timeout_s"]


class DriverStatement:
    """A statement compiled once for the engine's dialect and run on the DBAPI cursor.

    Used on the request path (the billing reads, the audit insert) with a
    pooled DBAPI connection (``engine.raw_connection()``): SQLAlchemy's
    execution layer (a Connection, an execution context, the result object
    and its row processing) costs several times what SQLite takes to answer
    an indexed read (docs/performance.md).  The SQL is still SQLAlchemy's, compiled for
    the dialect in use (bind style, quoting, the configured schema and
    relation names); parameters get the column types' bind conversions (an
    SQLite DATE as ISO text).  Rows come back as the driver gives them: the
    callers turn numbers into Decimal and dates into ``date`` themselves
    (:func:`service.billing.statement_query._decimal`); on Oracle the
    dialect's connection-wide output handler already gives Decimal for
    NUMBER columns with a scale.
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)  # a SELECT or an INSERT, never DDL
        if compiled.escaped_bind_names:  # a bind name the dialect had to rename
            raise ConfigurationError(
                "AZERSU_BILLING_URL", f"bind names {dict(compiled.escaped_bind_names)} renamed"
            )
        self.sql = str(compiled)
        self.defaults: dict[str, Any] = dict(compiled.params)
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )
        self.converters = {
            name: converter
            for name in self.defaults
            if (
                converter := compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            )
        }

    def parameters(self, values: Mapping[str, Any]) -> dict[str, Any] | tuple[Any, ...]:
        """Return the DBAPI parameters for ``values`` (named or positional, as the driver wants)."""
        merged = {**self.defaults, **values}
        for name, converter in self.converters.items():
            merged[name] = converter(merged[name])
        if self.order is None:
            return merged
        return tuple(merged[name] for name in self.order)

    def rows(
        self, conn: PoolProxiedConnection, values: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """Run the statement on ``conn`` and return all its rows.

        A driver error invalidates the connection (a fresh one is cheap, a
        broken one would fail the next request too) and is raised as is.
        """
        parameters = self.parameters(values)
        arm_statement_deadline(conn)
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(self.sql, parameters)
                return cursor.fetchall()
            finally:
                cursor.close()
        except Exception:
            conn.invalidate()
            raise

    def execute_many(
        self, conn: PoolProxiedConnection, many_values: Sequence[Mapping[str, Any]]
    ) -> None:
        """Run the statement once per item of ``many_values`` (the caller commits)."""
        parameters: Any = [self.parameters(values) for values in many_values]
        arm_statement_deadline(conn)
        try:
            cursor = conn.cursor()
            try:
                cursor.executemany(self.sql, parameters)
            finally:
                cursor.close()
        except Exception:
            conn.invalidate()
            raise
