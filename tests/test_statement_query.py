"""The billing SQL: a small fixed number of indexed queries per statement."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url

from service.billing.statement_query import BillingQueries
from service.billing.tables import build_billing_tables
from service.errors import BillingUnavailable
from service.handlers.billing_statement import StatementContext, build_statement
from tests import billing_fixtures as bf


@pytest.fixture
def counted(billing_db: str):
    """An engine whose SQLite connections note every statement they are given, as given.

    The reads run on the DBAPI cursor, not through SQLAlchemy's execution
    events: the count is taken where the database receives them.
    """
    statements: list[str] = []

    class CountingCursor(sqlite3.Cursor):
        def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
            statements.append(sql)
            return super().execute(sql, parameters)

    class CountingConnection(sqlite3.Connection):
        def cursor(self, factory: Any = CountingCursor) -> sqlite3.Cursor:
            return super().cursor(factory)

    path = make_url(billing_db).database
    engine = create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(path, factory=CountingConnection, check_same_thread=False),
    )
    with engine.connect():  # the dialect's first-connect checks are not the service's
        statements.clear()
    yield engine, statements
    engine.dispose()


def _context(engine, period_pin=None) -> StatementContext:
    queries = BillingQueries(engine, build_billing_tables(), period_pin=period_pin)
    return StatementContext(queries=queries, code_pattern=re.compile(r"\d{6,12}"), issuer="Azərsu")


@pytest.mark.parametrize("code", [bf.FULL, bf.NEW, bf.GAPS])
def test_statement_takes_three_queries_whatever_the_months(counted, code: str) -> None:
    engine, statements = counted
    build_statement(_context(engine, period_pin=(2026, 2)), code)
    assert len(statements) == 3  # subscriber, invoices, payments: never one per month
    assert all("?" in sql for sql in statements)  # bind variables, no literals


def test_latest_period_is_discovered_and_cached(counted) -> None:
    engine, statements = counted
    context = _context(engine)
    statement = build_statement(context, bf.FULL)
    # The newest invoiced month across billing is 2026-03 (an invoice outside the pinned window).
    assert statement.periods[-1].year == 2026 and statement.periods[-1].month == 3
    first_count = len(statements)
    assert first_count == 5  # + two index lookups for MAX(year) and MAX(month)
    build_statement(context, bf.FULL)
    assert len(statements) - first_count == 3  # the period comes from the cache


def test_database_errors_become_billing_unavailable(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    queries = BillingQueries(engine, build_billing_tables())
    with pytest.raises(BillingUnavailable) as raised:
        queries.find_subscriber(bf.FULL)
    assert "no such table" in raised.value.detail


def test_configured_schema_and_relation_names_are_used() -> None:
    tables = build_billing_tables("BILLING", "V_ABONENT", "V_FAKTURA", "V_ODENIS")
    queries = BillingQueries(create_engine("sqlite://"), tables)
    sql = " ".join(str(s) for s in queries.statements.values())
    for name in ("billing.v_abonent", "billing.v_faktura", "billing.v_odenis"):
        assert name in sql
