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
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from service.errors import ConfigurationError

DEFAULT_DRIVERS = {"oracle": "oracledb", "postgresql": "psycopg"}


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
        deadline = {"at": math.inf}

        def check() -> int:
            return 1 if time.monotonic() > deadline["at"] else 0

        dbapi_connection.set_progress_handler(check, 10_000)
        record.info["azersu_deadline"] = deadline

    @event.listens_for(engine, "before_cursor_execute")
    def _arm(conn: Any, *_args: Any) -> None:
        deadline = conn.info.get("azersu_deadline")
        if deadline is not None:
            deadline["at"] = time.monotonic() + timeout_s
