"""The billing SQL as Oracle sees it, compared with the snapshot the DBA reviews.

``service/schemas/billing_queries.oracle.sql`` holds every statement of
:class:`service.billing.statement_query.BillingQueries`, compiled with the
python-oracledb dialect (bind variables ``:name``) for the default relation
names.  When the SQL changes on purpose, review the difference and regenerate
the snapshot::

    .venv/bin/python -m tests.test_oracle_sql > service/schemas/billing_queries.oracle.sql
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.dialects.oracle.oracledb import OracleDialect_oracledb
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Dialect

from service.billing.statement_query import BillingQueries
from service.billing.tables import BillingTables, build_billing_tables
from tests.conftest import SCHEMAS

SNAPSHOT = SCHEMAS / "billing_queries.oracle.sql"
REGENERATE = (
    ".venv/bin/python -m tests.test_oracle_sql > service/schemas/billing_queries.oracle.sql"
)

#: The values the service passes to each statement (anything else must be a constant).
EXPECTED_BINDS: dict[str, set[str]] = {
    "subscriber": {"code"},
    "invoices": {"code", "first_year", "last_year", "first_key", "last_key"},
    "payments": {"code", "start_day", "end_day"},
    "latest_year": set(),
    "latest_month": {"year"},
}

DIALECTS: dict[str, Dialect] = {
    "oracle": OracleDialect_oracledb(),
    "postgresql": PGDialect_psycopg(),
    "sqlite": SQLiteDialect_pysqlite(),
}

#: Row limiting in any dialect's spelling: none of it belongs in these queries.
ROW_LIMITING = re.compile(r"\b(LIMIT|OFFSET|FETCH\s+(FIRST|NEXT)|ROWNUM|TOP)\b", re.IGNORECASE)
#: A number written into the SQL (not part of a name such as max_1 or a bind :p_1).
NUMBER_LITERAL = re.compile(r"(?<![\w:\"])\d+(\.\d+)?\b")

HEADER = f"""\
-- The SQL that the Azərsu statement service runs against billing, as compiled
-- for Oracle (python-oracledb, bind variables :name), default relation names,
-- no schema.  Generated from service/billing/statement_query.py; do not edit.
-- Regenerate after reviewing a change:
--   {REGENERATE}
"""


def _queries(tables: BillingTables | None = None) -> BillingQueries:
    # The engine is never connected: the statements are only compiled.
    engine = create_engine("sqlite://")
    return BillingQueries(engine, tables or build_billing_tables())


def _compile(statement: Any, dialect: Dialect) -> Any:
    return statement.compile(dialect=dialect)


def _normalized(sql: str) -> str:
    """Strip the trailing spaces that SQLAlchemy leaves before each line break."""
    return "\n".join(line.rstrip() for line in sql.strip().splitlines())


def render_oracle_snapshot(tables: BillingTables | None = None) -> str:
    """Return the snapshot text: a header, then each statement under its name."""
    dialect = DIALECTS["oracle"]
    parts = [HEADER]
    for name, statement in _queries(tables).statements.items():
        compiled = _compile(statement, dialect)
        constants = {k: v for k, v in compiled.params.items() if v is not None}
        parts.append(f"\n-- {name}")
        if constants:
            shown = ", ".join(f":{k} = {v!r}" for k, v in sorted(constants.items()))
            parts.append(f"\n-- constants bound by the service: {shown}")
        parts.append(f"\n{_normalized(str(compiled))};\n")
    return "".join(parts)


def test_oracle_sql_matches_the_reviewed_snapshot() -> None:
    current = render_oracle_snapshot()
    committed = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    if current != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                current.splitlines(keepends=True),
                fromfile=str(SNAPSHOT.relative_to(SCHEMAS.parent)),
                tofile="compiled now",
            )
        )
        pytest.fail(
            f"The Oracle SQL changed; have the DBA review it, then regenerate with\n"
            f"    {REGENERATE}\n\n{diff}",
            pytrace=False,
        )


def test_the_snapshot_holds_every_statement() -> None:
    text = SNAPSHOT.read_text(encoding="utf-8")
    names = re.findall(r"^-- (\w+)$", text, re.MULTILINE)
    assert names == list(_queries().statements)
    assert text.count(";\n") == len(names)


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
@pytest.mark.parametrize("name", list(EXPECTED_BINDS))
def test_statements_use_bind_variables_and_no_row_limiting(dialect_name: str, name: str) -> None:
    statement = _queries().statements[name]
    compiled = _compile(statement, DIALECTS[dialect_name])
    sql = str(compiled)
    params = {key.strip('"'): value for key, value in compiled.params.items()}
    # Every value the caller supplies is a bind variable; the only other binds
    # are constants that SQLAlchemy binds itself (the 100 of YEAR * 100 + MONTH).
    assert {key for key, value in params.items() if value is None} == EXPECTED_BINDS[name]
    assert "'" not in sql, sql  # no string literal, so no subscriber code in the text
    assert not NUMBER_LITERAL.search(sql), sql
    assert not ROW_LIMITING.search(sql), sql
    if dialect_name == "oracle":
        for bind in EXPECTED_BINDS[name]:
            assert re.search(rf':"?{bind}"?(?!\w)', sql), (bind, sql)
        assert "%(" not in sql and "?" not in sql


def test_statement_names_are_the_contract() -> None:
    assert set(_queries().statements) == set(EXPECTED_BINDS)


@pytest.mark.parametrize("schema", ["BILLING", "Billing"])
def test_configured_schema_and_relation_names_appear_unquoted(schema: str) -> None:
    tables = build_billing_tables(schema, "V_SUBSCRIBER", "V_INVOICE", "V_PAYMENT")
    statements = _queries(tables).statements
    relation_of = {
        "subscriber": "billing.v_subscriber",
        "invoices": "billing.v_invoice",
        "payments": "billing.v_payment",
        "latest_year": "billing.v_invoice",
        "latest_month": "billing.v_invoice",
    }
    for name, statement in statements.items():
        sql = _normalized(str(_compile(statement, DIALECTS["oracle"])))
        # Unquoted, so Oracle folds them to the upper-case names of the contract.
        assert f"FROM {relation_of[name]}\n" in f"{sql}\n", sql
        assert '"' not in sql.replace(':"start"', ""), sql
        assert not re.search(r"\b(subscriber|invoice|payment)\b(?!_)\.", sql), sql
    snapshot = render_oracle_snapshot(tables)
    assert "billing.v_subscriber" in snapshot and "FROM subscriber" not in snapshot


if __name__ == "__main__":
    import sys

    sys.stdout.write(render_oracle_snapshot())
