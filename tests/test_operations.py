"""Operations: health, readiness, metrics, JSON logs, graceful shutdown, key rotation, crashes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from service.app import create_app
from service.audit import AuditStore
from service.client import StatementClient
from service.pki import IssuedPair, issue
from service.signing.keys import fingerprint
from tests import billing_fixtures as bf
from tests.gunicorn_process import ServedProcess, service_env

pytestmark = pytest.mark.slow


def _ca(pki: dict[str, Path]) -> IssuedPair:
    key = serialization.load_pem_private_key(pki["ca.key"].read_bytes(), None)
    cert = x509.load_pem_x509_certificate(pki["ca.pem"].read_bytes())
    return IssuedPair(key, cert)  # type: ignore[arg-type]


def _write_pair(pair: IssuedPair, key_path: Path, cert_path: Path) -> None:
    key_path.write_bytes(pair.key_pem())
    cert_path.write_bytes(pair.cert_pem())


@pytest.fixture
def billing_copy(tmp_path: Path) -> Path:
    path = tmp_path / "billing.sqlite"
    bf.create_billing_db(f"sqlite:///{path}")
    return path


@pytest.fixture
def served(tmp_path: Path, pki, billing_copy: Path):
    """Start gunicorn with the given extra settings; stop every server after the test."""
    started: list[ServedProcess] = []

    def start(**overrides: str) -> ServedProcess:
        settings = {
            "AZERSU_BILLING_URL": f"sqlite:///{billing_copy}",
            "AZERSU_REPORT_PERIOD": bf.REPORT_PERIOD,
            "AZERSU_VAR_DIR": str(tmp_path / "var"),
            "AZERSU_WORKERS": "1",
        }
        env = service_env(pki, **{**settings, **overrides})
        server = ServedProcess(env, tmp_path / f"serve-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_health_readiness_and_metrics(served, portal_identity, trust) -> None:
    server = served(AZERSU_WORKERS="2")
    client = StatementClient(server.url, portal_identity, trust)
    for _ in range(3):
        assert client.call(bf.FULL, bf.FIN).response.Status == "OK"
    client.call("", bf.FIN)
    assert requests.get(f"{server.base_url}/healthz", timeout=5).text == "ok\n"
    ready = requests.get(f"{server.base_url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "billing": "ok",
        "audit": "ok",
        "replay": "ok",
        "verify_rate": "ok",
        "keys": "ok",
    }
    metrics = requests.get(f"{server.base_url}/metrics", timeout=5).text
    # Summed over both workers, whichever of them answers the scrape.
    assert 'azersu_requests_total{outcome="OK"} 3.0' in metrics
    assert 'azersu_requests_total{outcome="SUBSCRIBER_CODE_EMPTY"} 1.0' in metrics
    assert "azersu_request_duration_seconds_bucket" in metrics
    [gauge] = [
        line for line in metrics.splitlines() if line.startswith("azersu_signing_certificate_days")
    ]
    # The development certificate is valid for years: the master's start-up
    # check must leave no gauge of its own behind (a livemin 0 would win).
    assert float(gauge.split()[-1]) > 300
    assert "Using worker: service.worker.ServiceWorker" in server.log_text()


def test_one_json_log_line_per_request_without_personal_data(served, portal_identity, trust):
    server = served()
    client = StatementClient(server.url, portal_identity, trust)
    numbers = {client.call(bf.FULL, bf.FIN).statement.statement_number for _ in range(3)}
    client.call(bf.UNKNOWN, bf.FIN)
    time.sleep(0.2)
    lines = [r for r in server.log_records() if r.get("message") == "request"]
    assert len(lines) == 4
    assert {r["statement_number"] for r in lines} - {""} == numbers
    assert len({r["request_id"] for r in lines}) == 4
    assert [r["outcome"] for r in lines].count("OK") == 3
    log = server.log_text()
    for personal in (bf.AZ_LAST, bf.AZ_FIRST, bf.AZ_ADDRESS, bf.FIN, "Məmmədov"):
        assert personal not in log


def test_readiness_fails_when_billing_is_gone(settings, serve_app, tmp_path: Path) -> None:
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
    assert requests.get(f"{server.base_url}/readyz", timeout=5).status_code == 200
    db.write_bytes(b"not a database" * 100)
    app.billing_engine.dispose()
    ready = requests.get(f"{server.base_url}/readyz", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["checks"]["billing"].startswith("unavailable")


def test_readiness_warns_30_days_before_the_certificate_expires(
    settings, serve_app, tmp_path: Path, pki
) -> None:
    pair = issue(
        _ca(pki),
        "billing-statement.azersu.az",
        "e-xidmətlər",
        client=False,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
        days=11,
    )
    _write_pair(pair, tmp_path / "s.key", tmp_path / "s.pem")
    app = create_app(
        dataclasses.replace(
            settings,
            sign_key=str(tmp_path / "s.key"),
            sign_cert=str(tmp_path / "s.pem"),
            audit_url=f"sqlite:///{tmp_path / 'audit.sqlite'}",
        )
    )
    server = serve_app(app)
    ready = requests.get(f"{server.base_url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["warnings"] == ["the signing certificate expires in 10 days"]
    metrics = requests.get(f"{server.base_url}/metrics", timeout=5).text
    [gauge] = [
        line for line in metrics.splitlines() if line.startswith("azersu_signing_certificate_days")
    ]
    assert 9.9 < float(gauge.split()[-1]) <= 10.0


def test_sigterm_finishes_the_request_in_flight(served, billing_copy, portal_identity, trust):
    server = served(AZERSU_DB_TIMEOUT_S="10")
    client = StatementClient(server.url, portal_identity, trust, timeout_s=30)
    assert client.call(bf.FULL, bf.FIN).response.Status == "OK"  # warm: pool open
    lock = sqlite3.connect(billing_copy, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the service's next read waits for this
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(client.call(bf.GAPS, bf.FIN)))
    worker.start()
    time.sleep(1.0)
    server.signal(signal.SIGTERM)
    time.sleep(1.0)
    assert server.process.poll() is None  # still finishing the request
    lock.execute("ROLLBACK")
    lock.close()
    worker.join(timeout=30)
    assert results and results[0].response.Status == "OK"  # type: ignore[attr-defined]
    assert server.process.wait(timeout=30) == 0


def test_sighup_rotates_the_signing_key_without_downtime(
    served, tmp_path: Path, pki, portal_identity, trust
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    key_path, cert_path = keys / "service.key", keys / "service.pem"
    shutil.copy(pki["service.key"], key_path)
    shutil.copy(pki["service.pem"], cert_path)
    server = served(
        AZERSU_SIGN_KEY=str(key_path), AZERSU_SIGN_CERT=str(cert_path), AZERSU_WORKERS="2"
    )
    client = StatementClient(server.url, portal_identity, trust)
    old = client.call(bf.FULL, bf.FIN).envelope.signer.fingerprint

    errors: list[BaseException] = []
    stop = threading.Event()
    seen: set[str] = set()

    def keep_calling() -> None:
        caller = StatementClient(server.url, portal_identity, trust)
        while not stop.is_set():
            try:
                seen.add(caller.call(bf.FULL, bf.FIN).envelope.signer.fingerprint)
            except BaseException as exc:  # any failed request is downtime
                errors.append(exc)

    traffic = threading.Thread(target=keep_calling)
    traffic.start()
    try:
        new_pair = issue(_ca(pki), "billing-statement.azersu.az", "e-xidmətlər", client=False)
        _write_pair(new_pair, key_path, cert_path)
        new = fingerprint(new_pair.certificate)
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and new not in seen:
            time.sleep(0.2)
        assert new in seen
        # A broken key on the next SIGHUP is refused; the service goes on with the new one.
        key_path.write_bytes(b"garbage where the new key should be\n")
        server.signal(signal.SIGHUP)
        time.sleep(3)
        assert client.call(bf.FULL, bf.FIN).envelope.signer.fingerprint == new
    finally:
        stop.set()
        traffic.join(timeout=30)
    assert old != new
    assert errors == []
    assert "new keys refused" in server.log_text()
    assert server.process.poll() is None


def test_kill_9_of_a_worker_loses_no_audit_record(
    served, tmp_path: Path, portal_identity, trust
) -> None:
    audit_url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    server = served(AZERSU_WORKERS="2", AZERSU_AUDIT_URL=audit_url)
    answered: list[str] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        if i == 25:
            os.kill(server.worker_pids()[0], signal.SIGKILL)
        try:  # the client fetches the WSDL first: that request can meet the kill too
            client = StatementClient(server.url, portal_identity, trust, timeout_s=30)
            result = client.call(bf.FULL, bf.FIN)
        except Exception:  # a request the killed worker was holding: no answer, fine
            return
        with lock:
            answered.append(result.statement.statement_number)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(call, range(80)))
    assert len(answered) >= 40  # most requests are answered; some die with the worker
    store = AuditStore.from_url(audit_url)
    try:
        recorded = {e.statement_number for e in store.search(limit=1000)}
    finally:
        store.close()
    missing = set(answered) - recorded
    assert missing == set()
