"""The registry of issued statements: one row per OK answer, committed with its audit record.

The row must be in the same transaction as the request's audit record: an
answer leaves only after that commit, so a statement never leaves without its
row.  The tests call the service as the portal does, read the row back, and
break the registry table to see the answer withheld.  The DDL and the
statements are checked for SQLite, PostgreSQL (a real server) and Oracle
(compiled: no Oracle server runs here).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from lxml import etree
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.dialects import oracle, postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from service.app import create_app
from service.audit import AuditEntry, AuditStore
from service.client import StatementClient
from service.registry import IssuedStatement, StatementRegistry, registry_table
from service.signing.wsse import WsseVerifier
from tests import billing_fixtures as bf
from tests.postgres_server import PostgresServer
from tests.test_app import HEADERS, envelope, request_body

BAKU = dt.timezone(dt.timedelta(hours=4))


@pytest.fixture
def registered(settings, serve_app, tmp_path, portal_identity, trust):
    """A server with an audit store (and so a registry) of its own, and a client for it."""
    app = create_app(
        dataclasses.replace(settings, audit_url=f"sqlite:///{tmp_path / 'audit.sqlite'}")
    )
    server = serve_app(app)
    return server, StatementClient(server.url, portal_identity, trust)


def test_an_ok_answer_leaves_with_its_row(registered) -> None:
    server, client = registered
    result = client.call(bf.FULL, bf.FIN, "ru")
    proof = result.statement
    assert proof is not None
    row = server.app.audit.registry.find(proof.statement_number)
    assert row is not None
    # The digest of the very signature the portal received and verified.
    assert row.signature_sha256 == proof.signature_value_sha256
    statement = result.response.Statement
    assert row.issued_at == statement.IssuedAt
    assert row.issued_at.utcoffset() == dt.timedelta(0)  # kept in UTC
    assert row.issuer == statement.Issuer == "“Azərsu” Açıq Səhmdar Cəmiyyəti"
    assert row.subscriber_code == bf.FULL
    assert (row.period_from, row.period_to) == ("2025-03", "2026-02")
    assert (row.consumption_m3, row.invoiced_amount, row.paid_amount) == (
        statement.Totals.ConsumptionM3,
        statement.Totals.InvoicedAmount,
        statement.Totals.PaidAmount,
    )
    assert all(isinstance(v, Decimal) for v in (row.invoiced_amount, row.paid_amount))
    assert row.language == "ru"
    assert row.revoked_at is None and row.revocation_reason is None
    [record] = server.app.audit.search()
    assert (record.outcome, record.statement_number) == ("OK", proof.statement_number)
    assert row.request_id == record.request_id


def test_a_statement_of_three_months_and_the_default_language(registered) -> None:
    server, client = registered
    proof = client.call(bf.NEW, bf.FIN).statement
    row = server.app.audit.registry.find(proof.statement_number)
    assert (row.period_from, row.period_to, row.language) == ("2025-12", "2026-02", "az")


@pytest.mark.parametrize("code", ["", bf.UNKNOWN, bf.BUSINESS])
def test_no_row_without_a_statement(registered, code: str) -> None:
    server, client = registered
    assert client.call(code, bf.FIN).statement is None
    assert server.app.audit.registry.count() == 0
    assert len(server.app.audit.search()) == 1


def test_a_refused_request_registers_nothing(registered) -> None:
    server, _ = registered
    unsigned = requests.post(server.url, data=envelope(request_body()), headers=HEADERS, timeout=10)
    assert unsigned.status_code == 500
    assert server.app.audit.registry.count() == 0


def test_no_statement_leaves_when_its_row_cannot_be_committed(registered, trust) -> None:
    """The row and the audit record are one transaction: the answer is withheld, nothing kept."""
    server, client = registered
    app = server.app
    with app.audit.engine.begin() as conn:
        conn.execute(text("DROP TABLE statement_registry"))
    with pytest.raises(Exception) as raised:
        client.call(bf.FULL, bf.FIN)
    assert "cannot record" in str(raised.value)  # Server.AuditUnavailable's string
    assert app.audit.search() == []  # the audit record was rolled back with the row
    # A request that is no statement still gets its answer and its record.
    assert client.call(bf.UNKNOWN, bf.FIN).response.Status == "SUBSCRIBER_NOT_FOUND"
    assert [e.outcome for e in app.audit.search()] == ["SUBSCRIBER_NOT_FOUND"]


def test_the_withheld_answer_is_the_signed_audit_fault(registered, sign, trust) -> None:
    server, _ = registered
    with server.app.audit.engine.begin() as conn:
        conn.execute(text("DROP TABLE statement_registry"))
    response = requests.post(
        server.url, data=sign(envelope(request_body())), headers=HEADERS, timeout=10
    )
    assert response.status_code == 500
    root = etree.fromstring(response.content)
    WsseVerifier(trust, None).verify(root)
    assert root.findtext(".//faultcode").endswith("Server.AuditUnavailable")
    assert bf.AZ_LAST.encode() not in response.content


# --- the store ---------------------------------------------------------------------------


def issued(number: str, issued_at: dt.datetime, **changes: object) -> IssuedStatement:
    row = IssuedStatement(
        statement_number=number,
        issued_at=issued_at,
        issuer="“Azərsu” ASC",
        subscriber_code="100000001",
        period_from="2025-03",
        period_to="2026-02",
        consumption_m3=Decimal("123456789.125"),
        invoiced_amount=Decimal("12345678901234.56"),
        paid_amount=Decimal("-0.01"),
        language="az",
        signature_sha256="ab" * 32,
        request_id=str(uuid.uuid4()),
    )
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


def entry_for(row: IssuedStatement) -> AuditEntry:
    return AuditEntry(
        request_id=row.request_id,
        recorded_at=dt.datetime.now(dt.UTC),
        outcome="OK",
        statement_number=row.statement_number,
        issued=row,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"registry_{uuid.uuid4().hex[:16]}")


def test_rows_round_trip_exactly(audit_url: str) -> None:
    store = AuditStore.from_url(audit_url)
    try:
        row = issued("AZS-20260301-0000000000A1", dt.datetime(2026, 3, 1, 0, 30, tzinfo=BAKU))
        store.record(entry_for(row))
        found = store.registry.find(row.statement_number)
        assert found is not None
        # Decimal to the last digit (SQLite's NUMERIC would have rounded through a float).
        assert found.invoiced_amount == Decimal("12345678901234.56")
        assert str(found.invoiced_amount) == "12345678901234.56"
        assert found.consumption_m3 == Decimal("123456789.125")
        assert found.paid_amount == Decimal("-0.01")
        assert found.issued_at == row.issued_at  # the same instant, given back in UTC
        assert found.issued_at.tzinfo is not None
        assert dataclasses.replace(found, issued_at=row.issued_at) == row
        assert store.registry.find("AZS-20260301-0000000000A2") is None
    finally:
        store.close()


def test_a_row_without_its_digest_fails_the_commit(audit_url: str) -> None:
    from service.errors import AuditUnavailable

    store = AuditStore.from_url(audit_url)
    try:
        row = issued("AZS-1", dt.datetime.now(BAKU), signature_sha256="")
        with pytest.raises(AuditUnavailable):
            store.record(entry_for(row))
        assert store.search() == [] and store.registry.count() == 0
    finally:
        store.close()


def test_revocation_is_one_transaction_with_its_audit_record(audit_url: str) -> None:
    store = AuditStore.from_url(audit_url)
    try:
        row = issued("AZS-20260301-00000000000B", dt.datetime.now(BAKU))
        store.record(entry_for(row))
        at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        revocation = AuditEntry(
            request_id=str(uuid.uuid4()),
            recorded_at=at,
            outcome="REVOKED",
            statement_number=row.statement_number,
        )
        assert store.revoke(row.statement_number, "Səhv məbləğ (düzəliş)", revocation)
        found = store.registry.find(row.statement_number)
        assert (found.revoked_at, found.revocation_reason) == (at, "Səhv məbləğ (düzəliş)")
        assert found.revoked
        # A second revocation, or one of an unknown number, changes and records nothing.
        again = dataclasses.replace(revocation, request_id=str(uuid.uuid4()))
        assert not store.revoke(row.statement_number, "again", again)
        unknown = dataclasses.replace(revocation, request_id=str(uuid.uuid4()))
        assert not store.revoke("AZS-UNKNOWN", "x", unknown)
        assert [e.outcome for e in store.search()] == ["REVOKED", "OK"]
        assert store.registry.find(row.statement_number).revocation_reason == (
            "Səhv məbləğ (düzəliş)"
        )
    finally:
        store.close()


def test_purge_deletes_the_rows_issued_before_the_limit(audit_url: str) -> None:
    store = AuditStore.from_url(audit_url)
    try:
        now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
        for days in (1, 1824, 1826, 4000):
            store.record(entry_for(issued(f"AZS-{days}", now - dt.timedelta(days=days))))
        assert store.registry.purge(now - dt.timedelta(days=1825)) == 2
        assert store.registry.find("AZS-1") is not None
        assert store.registry.find("AZS-1824") is not None
        assert store.registry.find("AZS-1826") is None
        assert store.registry.count() == 2
    finally:
        store.close()


# --- the DDL, for the DBA ---------------------------------------------------------------

EXPECTED_DDL = {
    "sqlite": "CREATE TABLE statement_registry ( statement_number VARCHAR(64) NOT NULL,"
    " issued_at DATETIME NOT NULL, issuer VARCHAR(200) NOT NULL,"
    " signature_sha256 VARCHAR(64) NOT NULL, subscriber_code VARCHAR(64) NOT NULL,"
    " period_from VARCHAR(7), period_to VARCHAR(7), consumption_m3 VARCHAR(20) NOT NULL,"
    " invoiced_amount VARCHAR(18) NOT NULL, paid_amount VARCHAR(18) NOT NULL,"
    " language VARCHAR(2) NOT NULL, request_id VARCHAR(36) NOT NULL, revoked_at DATETIME,"
    " revocation_reason VARCHAR(500), PRIMARY KEY (statement_number) )",
    "postgresql": "CREATE TABLE statement_registry ( statement_number VARCHAR(64) NOT NULL,"
    " issued_at TIMESTAMP WITH TIME ZONE NOT NULL, issuer VARCHAR(200) NOT NULL,"
    " signature_sha256 VARCHAR(64) NOT NULL, subscriber_code VARCHAR(64) NOT NULL,"
    " period_from VARCHAR(7), period_to VARCHAR(7), consumption_m3 NUMERIC(18, 3) NOT NULL,"
    " invoiced_amount NUMERIC(16, 2) NOT NULL, paid_amount NUMERIC(16, 2) NOT NULL,"
    " language VARCHAR(2) NOT NULL, request_id VARCHAR(36) NOT NULL,"
    " revoked_at TIMESTAMP WITH TIME ZONE, revocation_reason VARCHAR(500),"
    " PRIMARY KEY (statement_number) )",
    "oracle": "CREATE TABLE statement_registry ( statement_number VARCHAR2(64 CHAR) NOT NULL,"
    " issued_at DATE NOT NULL, issuer VARCHAR2(200 CHAR) NOT NULL,"
    " signature_sha256 VARCHAR2(64 CHAR) NOT NULL, subscriber_code VARCHAR2(64 CHAR) NOT NULL,"
    " period_from VARCHAR2(7 CHAR), period_to VARCHAR2(7 CHAR),"
    " consumption_m3 NUMERIC(18, 3) NOT NULL, invoiced_amount NUMERIC(16, 2) NOT NULL,"
    " paid_amount NUMERIC(16, 2) NOT NULL, language VARCHAR2(2 CHAR) NOT NULL,"
    " request_id VARCHAR2(36 CHAR) NOT NULL, revoked_at DATE,"
    " revocation_reason VARCHAR2(500 CHAR), PRIMARY KEY (statement_number) )",
}
DIALECTS = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.psycopg.dialect(),
    "oracle": oracle.oracledb.dialect(),
}


@pytest.mark.parametrize("dialect", sorted(EXPECTED_DDL))
def test_registry_table_ddl(dialect: str) -> None:
    """The DDL that opening the audit store runs when the table is missing (for the DBA)."""
    table = registry_table(MetaData())
    created = " ".join(str(CreateTable(table).compile(dialect=DIALECTS[dialect])).split())
    [index] = table.indexes
    indexed = " ".join(str(CreateIndex(index).compile(dialect=DIALECTS[dialect])).split())
    assert created == EXPECTED_DDL[dialect]
    assert indexed == "CREATE INDEX ix_statement_registry_issued ON statement_registry (issued_at)"


def test_registry_statements_for_oracle() -> None:
    """Oracle can't run here: its statements are compared with what was reviewed."""
    engine = create_engine("oracle+oracledb://audit:secret@db.example:1521/?service_name=AUDIT")
    registry = StatementRegistry(engine, MetaData())  # compiles; connects to nothing
    assert " ".join(registry.insert.sql.split()) == (
        "INSERT INTO statement_registry (statement_number, issued_at, issuer, signature_sha256,"
        " subscriber_code, period_from, period_to, consumption_m3, invoiced_amount, paid_amount,"
        " language, request_id, revoked_at, revocation_reason) VALUES (:statement_number,"
        " :issued_at, :issuer, :signature_sha256, :subscriber_code, :period_from, :period_to,"
        " :consumption_m3, :invoiced_amount, :paid_amount, :language, :request_id, :revoked_at,"
        " :revocation_reason)"
    )
    assert " ".join(registry.revoke_statement.sql.split()) == (
        "UPDATE statement_registry SET revoked_at=:revoked_on, revocation_reason=:reason_text"
        " WHERE statement_registry.statement_number = :target"
        " AND statement_registry.revoked_at IS NULL"
    )


def test_the_service_on_a_postgresql_audit_store_registers_its_answers(
    settings, serve_app, postgres_server: PostgresServer, portal_identity, trust
) -> None:
    url = postgres_server.create_database(f"registry_{uuid.uuid4().hex[:16]}")
    server = serve_app(create_app(dataclasses.replace(settings, audit_url=url)))
    client = StatementClient(server.url, portal_identity, trust)
    proof = client.call(bf.EXACT, bf.FIN, "en").statement
    with postgres_server.connect(url.rsplit("/", 1)[1]) as outside:
        stored = outside.execute(
            "SELECT signature_sha256, invoiced_amount, language FROM statement_registry"
            " WHERE statement_number = %s",
            (proof.statement_number,),
        ).fetchone()
    totals = client.call(bf.EXACT, bf.FIN).response.Statement.Totals
    assert stored == (proof.signature_value_sha256, totals.InvoicedAmount, "en")


# --- the operators' commands ------------------------------------------------------------


def run_cli(audit_url: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
    env.update(AZERSU_AUDIT_URL=audit_url, PYTHONIOENCODING="utf-8", **settings)
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        capture_output=True, text=True, encoding="utf-8", env=env, timeout=120, check=False,
    )  # fmt: skip


def test_revoke_then_show(registered, tmp_path: Path) -> None:
    server, client = registered
    audit_url = str(server.app.audit.engine.url)
    proof = client.call(bf.OVERPAID, bf.FIN).statement
    number = proof.statement_number

    shown = run_cli(audit_url, "registry", "show", number.lower())
    assert shown.returncode == 0, shown.stderr
    fields = dict(line.split(":", 1) for line in shown.stdout.splitlines())
    assert fields["Status"].strip() == "VALID"
    assert fields["Subscriber code"].strip() == bf.OVERPAID  # the operator sees it unmasked
    assert fields["SHA-256"].strip() == proof.signature_value_sha256

    revoked = run_cli(audit_url, "revoke", number, "--reason", "Məbləğ  səhvdir; yenisi verilib")
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"Revoked {number} at ")
    row = server.app.audit.registry.find(number)
    assert row.revoked and row.revocation_reason == "Məbləğ səhvdir; yenisi verilib"
    [record] = [e for e in server.app.audit.search() if e.outcome == "REVOKED"]
    assert record.statement_number == number and record.subscriber_code == bf.OVERPAID
    assert record.client_subject.startswith("operator ") and "revoke" in record.client_subject
    assert record.request_id in revoked.stdout

    shown = run_cli(audit_url, "registry", "show", number)
    status = dict(line.split(":", 1) for line in shown.stdout.splitlines())["Status"]
    assert status.strip().startswith("REVOKED at ") and "yenisi verilib" in status

    again = run_cli(audit_url, "revoke", number, "--reason", "again")
    assert again.returncode == 1 and "already revoked" in again.stderr
    assert len([e for e in server.app.audit.search() if e.outcome == "REVOKED"]) == 1


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (("revoke", "AZS-20260101-000000000000", "--reason", "x"), 1, "no statement"),
        (("revoke", "AZS-1", "--reason", "   "), 2, "--reason must be"),
        (("revoke", "AZS-1", "--reason", "x" * 501), 2, "--reason must be"),
        (("registry", "show", "AZS-20260101-000000000000"), 1, "no statement"),
    ],
)
def test_operators_commands_refuse_what_they_cannot_do(
    tmp_path: Path, args: tuple[str, ...], status: int, message: str
) -> None:
    result = run_cli(f"sqlite:///{tmp_path / 'audit.sqlite'}", *args)
    assert result.returncode == status, result.stderr
    assert message in result.stderr
    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    try:
        assert store.search() == []  # nothing done, nothing audited
    finally:
        store.close()


def test_registry_purge_keeps_the_retention_days(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    store = AuditStore.from_url(url)
    now = dt.datetime.now(dt.UTC)
    try:
        for days in (10, 29, 31, 400):
            store.record(entry_for(issued(f"AZS-{days}", now - dt.timedelta(days=days))))
    finally:
        store.close()
    result = run_cli(url, "registry", "purge", AZERSU_REGISTRY_RETENTION_DAYS="30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Deleted 2 statement(s) issued before ")
    assert "AZERSU_REGISTRY_RETENTION_DAYS=30" in result.stdout
    store = AuditStore.from_url(url)
    try:
        assert store.registry.find("AZS-29") is not None and store.registry.find("AZS-31") is None
    finally:
        store.close()
    default = run_cli(url, "registry", "purge")
    assert "AZERSU_REGISTRY_RETENTION_DAYS=1825" in default.stdout
