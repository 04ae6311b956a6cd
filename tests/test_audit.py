"""The access audit: exactly one committed record per request, or no answer at all."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
import time

import pytest
import requests
from lxml import etree
from sqlalchemy import text

from service.app import create_app
from service.audit import AuditEntry, AuditStore
from service.client import StatementClient
from service.errors import AuditUnavailable
from service.signing.wsse import WsseVerifier
from tests import billing_fixtures as bf
from tests.test_app import HEADERS, envelope, request_body


@pytest.fixture
def audited(settings, serve_app, tmp_path, portal_identity, trust):
    """A server with an audit store of its own, and a client for it."""
    app = create_app(
        dataclasses.replace(settings, audit_url=f"sqlite:///{tmp_path / 'audit.sqlite'}")
    )
    server = serve_app(app)
    return server, StatementClient(server.url, portal_identity, trust)


def _outcomes(app) -> list[str]:
    return [e.outcome for e in reversed(app.audit.search())]


def test_every_outcome_gets_exactly_one_record(audited, sign) -> None:
    server, client = audited
    app = server.app
    ok = client.call(bf.FULL, bf.FIN.lower())
    client.call("", bf.FIN)
    client.call(bf.UNKNOWN, bf.FIN)
    client.call(bf.BUSINESS, bf.FIN)
    client.call(bf.FULL, "bad")
    schema = requests.post(
        server.url,
        data=sign(envelope(request_body(extra="<t:Language>fr</t:Language>"))),
        headers=HEADERS,
        timeout=10,
    )
    unsigned = requests.post(server.url, data=envelope(request_body()), headers=HEADERS, timeout=10)
    media = requests.post(
        server.url, data=b"{}", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert (schema.status_code, unsigned.status_code, media.status_code) == (500, 500, 415)
    assert _outcomes(app) == [
        "OK",
        "SUBSCRIBER_CODE_EMPTY",
        "SUBSCRIBER_NOT_FOUND",
        "NOT_RESIDENTIAL",
        "FIN_INVALID",
        "Client.SchemaValidation",
        "wsse:InvalidSecurity",
        "HTTP_415",
    ]
    first = app.audit.search(code=bf.FULL, fin=bf.FIN)[-1]
    assert first.statement_number == ok.statement.statement_number
    assert first.citizen_fin == bf.FIN  # normalized
    assert first.client_subject.startswith("CN=portal.e-gov.az")
    assert len(first.client_fingerprint) == 64
    assert first.duration_ms > 0
    assert first.request_id and first.recorded_at


def test_billing_fault_is_audited_with_what_was_asked(settings, serve_app, tmp_path, sign) -> None:
    db = tmp_path / "billing.sqlite"
    bf.create_billing_db(f"sqlite:///{db}")
    app = create_app(
        dataclasses.replace(
            settings,
            billing_url=f"sqlite:///{db}",
            audit_url=f"sqlite:///{tmp_path / 'audit.sqlite'}",
        )
    )
    server = serve_app(app)
    db.write_bytes(b"not a database" * 100)
    response = requests.post(
        server.url, data=sign(envelope(request_body())), headers=HEADERS, timeout=10
    )
    assert response.status_code == 500
    [entry] = app.audit.search()
    assert entry.outcome == "Server.BillingUnavailable"
    assert (entry.subscriber_code, entry.citizen_fin, entry.statement_number) == (
        bf.FULL,
        bf.FIN,
        "",
    )


def test_audit_store_down_means_no_answer(audited, trust) -> None:
    server, client = audited
    app = server.app
    with app.audit.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_record"))
    with pytest.raises(Exception) as raised:
        client.call(bf.FULL, bf.FIN)
    assert "cannot record" in str(raised.value)
    raw = requests.post(server.url, data=b"x", headers=HEADERS, timeout=10)
    root = etree.fromstring(raw.content)
    WsseVerifier(trust, None).verify(root)  # the refusal is signed
    assert root.findtext(".//faultcode").endswith("Server.AuditUnavailable")
    assert bf.AZ_LAST.encode() not in raw.content


def test_store_round_trip_and_filters(tmp_path) -> None:
    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'a' / 'audit.sqlite'}")
    base = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
    for i in range(5):
        store.record(
            AuditEntry(
                request_id=f"r{i}",
                recorded_at=base + dt.timedelta(days=i),
                outcome="OK",
                citizen_fin="5ZT3K9M" if i % 2 else "7AB2C4D",
                subscriber_code=f"10000000{i}",
                statement_number=f"AZS-{i}",
                client_subject="CN=Gülşən Əliyeva",
                duration_ms=1.5,
            )
        )
    assert store.count() == 5
    assert [e.request_id for e in store.search()] == ["r4", "r3", "r2", "r1", "r0"]
    assert [e.request_id for e in store.search(fin="5ZT3K9M")] == ["r3", "r1"]
    assert [e.request_id for e in store.search(code="100000002")] == ["r2"]
    assert [e.request_id for e in store.search(since=base + dt.timedelta(days=3))] == ["r4", "r3"]
    assert store.search(code="100000002")[0].client_subject == "CN=Gülşən Əliyeva"
    with pytest.raises(AuditUnavailable):
        store.record(AuditEntry(request_id="r0", recorded_at=base))  # the id is unique
    store.close()


def test_sqlite_writers_of_two_processes_take_turns(tmp_path) -> None:
    """A second process's commit waits for the writer lock, then goes at once (no busy sleep)."""
    database = tmp_path / "audit.sqlite"
    store = AuditStore.from_url(f"sqlite:///{database}")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(1.0)\n",
            f"{database}.writer-lock",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        store.record(AuditEntry(request_id="after-lock", recorded_at=dt.datetime.now(dt.UTC)))
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=10)
    assert waited >= 0.3, "the commit did not wait for the other process's writer lock"
    assert [e.request_id for e in store.search()] == ["after-lock"]
    store.close()
