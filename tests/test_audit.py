"""The access audit: exactly one committed record per request, or no answer at all."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import itertools
import logging
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy
from lxml import etree
from sqlalchemy import text

from service.app import create_app
from service.audit import SLOW_COMMIT_S, AuditEntry, AuditStore, wal_checkpointer
from service.client import StatementClient
from service.errors import AuditUnavailable, ConfigurationError
from service.replay_store import SqlReplayCache
from service.shared_table import SharedTable
from service.signing.wsse import WsseVerifier
from service.verification.rate_limit import SqlRateCounter
from tests import billing_fixtures as bf
from tests.gunicorn_process import ServedProcess, fixture_service_env
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


def _metric(text: str, name: str) -> float:
    [value] = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(value)


def test_every_audit_commit_is_timed_in_the_metrics(audited) -> None:
    server, client = audited
    before = requests.get(f"{server.base_url}/metrics", timeout=10).text
    client.call(bf.FULL, bf.FIN)
    client.call(bf.UNKNOWN, bf.FIN)
    after = requests.get(f"{server.base_url}/metrics", timeout=10).text
    count = "azersu_audit_commit_seconds_count"
    assert _metric(after, count) - _metric(before, count) == 2  # one commit each, one after another
    slowest = _metric(after, "azersu_audit_commit_max_seconds")
    assert 0 < slowest <= _metric(after, "azersu_audit_commit_seconds_sum")
    assert _metric(after, 'azersu_audit_commit_seconds_bucket{le="+Inf"}') == _metric(after, count)


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


def test_an_unexpected_commit_error_refuses_at_once_and_is_logged(
    tmp_path, caplog, monkeypatch
) -> None:
    """A bug in the commit fails its requests closed at once (not at the timeout), and says why."""
    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'audit.sqlite'}", timeout_s=30)

    def broken(entries):
        raise TypeError("a bug in the insert")

    monkeypatch.setattr(store, "insert_now", broken)
    caplog.set_level(logging.ERROR, logger="service.audit")
    started = time.monotonic()
    with pytest.raises(AuditUnavailable, match="TypeError: a bug in the insert"):
        store.record(AuditEntry(request_id="bug", recorded_at=dt.datetime.now(dt.UTC)))
    assert time.monotonic() - started < 15, "it waited for the commit timeout (30 s)"
    message = "the audit commit failed unexpectedly"
    [logged] = [r for r in caplog.records if r.getMessage() == message]
    assert logged.exc_info is not None and logged.exc_info[0] is TypeError
    monkeypatch.undo()
    store.record(AuditEntry(request_id="after", recorded_at=dt.datetime.now(dt.UTC)))
    assert [e.request_id for e in store.search()] == ["after"], "the committer did not go on"
    store.close()


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


@contextlib.contextmanager
def writer_lock_held_elsewhere(database: Path, seconds: float) -> Iterator[None]:
    """Hold the SQLite audit store's writer lock in another process for ``seconds``."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n",
            f"{database}.writer-lock",
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.wait(timeout=10)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_audit_url(request, tmp_path) -> str:
    """The URL of an audit database that has no table yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"fresh_audit_{os.getpid()}_{next(_fresh_databases)}")


_fresh_databases = itertools.count()


def _indexes_missing(engine, metadata) -> list[str]:
    inspector = sqlalchemy.inspect(engine)
    return [
        str(index.name)
        for table in metadata.sorted_tables
        for index in table.indexes
        if not inspector.has_index(table.name, str(index.name))
    ]


def test_hosts_that_start_together_all_open_a_fresh_audit_database(fresh_audit_url) -> None:
    """Every host creates what is missing at start; the ones that lose the race go on.

    Eight starts at once, each with its own engines, as eight hosts would.
    """
    opened: list[AuditStore | SharedTable] = []
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def open_stores() -> None:
        try:
            start.wait(timeout=30)
            opened.append(AuditStore.from_url(fresh_audit_url))
            opened.append(SqlReplayCache.from_url(fresh_audit_url))
            opened.append(SqlRateCounter.from_url(fresh_audit_url))
        except BaseException as exc:  # a thread's failure must fail the test
            failures.append(exc)

    threads = [threading.Thread(target=open_stores) for _ in range(start.parties)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert not [t for t in threads if t.is_alive()], "a start hangs"
        assert not failures, f"a host did not start: {failures[0]!r}"
        assert len(opened) == 3 * start.parties
        for each in opened[:3]:
            assert not _indexes_missing(each.engine, each.metadata)
        store = opened[0]
        assert isinstance(store, AuditStore)
        store.record(AuditEntry(request_id="after-start", recorded_at=dt.datetime.now(dt.UTC)))
        assert [e.request_id for e in store.search()] == ["after-start"]
    finally:
        for each in opened:
            each.close()


def test_an_index_lost_between_table_and_index_is_made_at_the_next_start(
    fresh_audit_url,
) -> None:
    """A host that died after its CREATE TABLE (its own commit on SQLite) left no index."""
    store = AuditStore.from_url(fresh_audit_url)
    [index, *_] = sorted(store.table.indexes, key=lambda i: str(i.name))
    index.drop(store.engine)
    assert _indexes_missing(store.engine, store.metadata) == [index.name]
    store.close()
    store = AuditStore.from_url(fresh_audit_url)
    assert not _indexes_missing(store.engine, store.metadata)
    store.close()


def test_a_host_without_the_right_to_create_the_tables_does_not_start(
    postgres_server, caplog
) -> None:
    """An error that stays is no lost race: it stops the start at once, named."""
    name = f"no_create_{os.getpid()}_{next(_fresh_databases)}"
    postgres_server.create_database(name)
    with postgres_server.connect(name, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN")
        admin.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {name}")
    url = postgres_server.url(name).replace("postgres@", f"{name}@", 1)
    caplog.set_level(logging.INFO, logger="service.audit")
    with pytest.raises(ConfigurationError) as refused:
        AuditStore.from_url(url)
    assert refused.value.setting == "AZERSU_AUDIT_URL"
    assert "cannot open the audit store: ProgrammingError" in str(refused.value)
    assert "permission denied for schema public" in str(refused.value)
    assert not [r for r in caplog.records if "trying again" in r.getMessage()], "not a race"


def test_sqlite_writers_of_two_processes_take_turns(tmp_path) -> None:
    """A second process's commit waits for the writer lock, then goes at once (no busy sleep)."""
    database = tmp_path / "audit.sqlite"
    store = AuditStore.from_url(f"sqlite:///{database}")
    with writer_lock_held_elsewhere(database, seconds=1.0):
        started = time.monotonic()
        store.record(AuditEntry(request_id="after-lock", recorded_at=dt.datetime.now(dt.UTC)))
        waited = time.monotonic() - started
    assert waited >= 0.3, "the commit did not wait for the other process's writer lock"
    assert [e.request_id for e in store.search()] == ["after-lock"]
    store.close()


def test_a_slow_commit_is_logged_with_its_parts(tmp_path, caplog) -> None:
    """A commit over SLOW_COMMIT_S is a WARNING that says which part was slow; a fast one isn't."""
    database = tmp_path / "audit.sqlite"
    store = AuditStore.from_url(f"sqlite:///{database}")
    observed: list[float] = []
    store.on_commit = observed.append
    caplog.set_level(logging.WARNING, logger="service.audit")
    store.record(AuditEntry(request_id="fast", recorded_at=dt.datetime.now(dt.UTC)))
    # Logged exactly when it took longer (a loaded disk can make even this one slow).
    logged = [r for r in caplog.records if r.getMessage() == "slow audit commit"]
    assert len(logged) == (observed[-1] > SLOW_COMMIT_S)
    caplog.clear()
    with writer_lock_held_elsewhere(database, seconds=1.0):
        store.record(AuditEntry(request_id="slow", recorded_at=dt.datetime.now(dt.UTC)))
    [slow] = [r for r in caplog.records if r.getMessage() == "slow audit commit"]
    fields = vars(slow)
    assert slow.levelno == logging.WARNING and fields["records"] == 1
    assert fields["lock_wait_ms"] >= 500, "the wait for the other process's lock is not named"
    assert fields["lock_wait_ms"] > fields["statements_ms"] + fields["commit_ms"], "not the lock"
    assert observed[-1] * 1000 >= fields["lock_wait_ms"], "the metric got less than the whole"
    store.close()


# --- the WAL checkpoint, off the request path (SQLite) -----------------------------------

WAL_FRAME_BYTES = 24 + 4096  # a frame: its header and one page (SQLite's default page size)


def _wal_pages(database: Path) -> int:
    """Return how many pages the WAL file has room for (it never shrinks)."""
    size = Path(f"{database}-wal").stat().st_size
    return max(0, size - 32) // WAL_FRAME_BYTES  # 32: the WAL header


def _entries(prefix: str, count: int) -> list[AuditEntry]:
    now = dt.datetime.now(dt.UTC)
    return [
        AuditEntry(
            request_id=f"{prefix}-{i}",
            recorded_at=now,
            outcome="OK",
            client_subject="CN=Gülşən Əliyeva",
            client_fingerprint=os.urandom(32).hex(),
            citizen_fin="5ZT3K9M",
            subscriber_code=f"{100000000 + i}",
            statement_number=f"AZS-{prefix}-{i}",
            duration_ms=2.5,
        )
        for i in range(count)
    ]


@pytest.fixture
def sqlite_audit(tmp_path: Path) -> Iterator[tuple[Path, AuditStore, SqlReplayCache]]:
    """An SQLite audit database with its store and replay table; the checkpointer stopped after."""
    database = tmp_path / "audit.sqlite"
    store = AuditStore.from_url(f"sqlite:///{database}")
    replay = SqlReplayCache.from_url(f"sqlite:///{database}")
    yield database, store, replay
    wal_checkpointer(database).stop()
    store.close()
    replay.close()


def test_no_commit_copies_the_wal_into_the_database(sqlite_audit) -> None:
    """Audit commits and replay checks leave the checkpoint to the checkpointer."""
    database, store, replay = sqlite_audit
    checkpointer = wal_checkpointer(database)
    checkpointer.after_writes, checkpointer.within_s = 10**9, 1e9  # it waits: only a commit could
    size = database.stat().st_size
    for batch in range(300):
        store.insert_now(_entries(f"b{batch}", 4))
        assert replay.first_seen(os.urandom(32).hex(), 60)
    assert _wal_pages(database) > 1000, "fewer pages than SQLite's own checkpoint needs"
    assert database.stat().st_size == size, "a commit copied the WAL into the database file"
    assert checkpointer.checkpoints == 0
    checkpointer.after_writes = 1
    store.insert_now(_entries("last", 1))
    deadline = time.monotonic() + 10
    while database.stat().st_size == size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert database.stat().st_size > size, "the checkpointer did not copy the WAL either"
    assert store.count() == 1201


def _checkpoint_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "audit-checkpoint" and t.is_alive()}


def test_the_checkpointer_stops_when_the_last_store_of_its_database_closes(tmp_path) -> None:
    """Closing every store of a database stops its checkpointer's thread and forgets it."""
    database = tmp_path / "audit.sqlite"
    # Threads of earlier tests' checkpointers may still be finishing: follow ours by identity.
    before = _checkpoint_threads()
    store = AuditStore.from_url(f"sqlite:///{database}")
    replay = SqlReplayCache.from_url(f"sqlite:///{database}")
    checkpointer = wal_checkpointer(database)
    store.insert_now(_entries("one", 1))  # the first write starts it
    [ours] = _checkpoint_threads() - before
    store.close()
    assert replay.first_seen(os.urandom(32).hex(), 60), "the other store still writes"
    assert ours.is_alive(), "stopped while a store of it was open"
    replay.close()
    ours.join(timeout=5)
    assert not ours.is_alive(), "the checkpointer's thread outlived its stores"
    assert wal_checkpointer(database) is not checkpointer, "the closed one is still handed out"


def test_the_wal_stays_bounded_under_writers_that_never_pause(sqlite_audit) -> None:
    """The WAL starts over although writers never leave a gap for a checkpoint to catch up."""
    database, store, replay = sqlite_audit
    checkpointer = wal_checkpointer(database)
    checkpointer.after_writes, checkpointer.restart_at_frames = 50, 500
    checkpointer.poll_s = 0.005
    stop = threading.Event()
    writes = collections.Counter()
    failures: list[BaseException] = []

    def replay_checks() -> None:
        try:
            while not stop.is_set():
                assert replay.first_seen(os.urandom(32).hex(), 60)
                writes["replay"] += 1
        except BaseException as exc:  # a thread's failure must fail the test
            failures.append(exc)

    def audit_commits(name: str) -> None:
        try:
            for batch in itertools.count():
                if stop.is_set():
                    return
                store.record(_entries(f"{name}-{batch}", 1)[0])
                writes["audit"] += 1
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=replay_checks) for _ in range(2)]
    threads += [threading.Thread(target=audit_commits, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    largest = 0

    def pages_written() -> int:
        return 2 * writes["replay"] + 3 * writes["audit"]  # at the least

    # Write a fixed amount, not for a fixed time: on a loaded machine the
    # writers are slower, and so is the checkpointer that has to keep up.
    target_pages = 32 * checkpointer.restart_at_frames  # below the 20,000-page fallback
    try:
        deadline = time.monotonic() + 60
        while pages_written() < target_pages and time.monotonic() < deadline and not failures:
            largest = max(largest, _wal_pages(database))
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not failures, f"a writer failed: {failures[0]!r}"
    assert pages_written() >= target_pages, f"too few writes: {writes}"
    assert checkpointer.restarts >= 2
    # Past the restart size, the WAL grows by what is written while the
    # checkpointer catches up (more on a loaded machine: 2,166 pages were
    # seen in CI against about 800 on a quiet one).  Without the restart it
    # holds everything written (measured: 20,001 pages of 21,638 written),
    # so a third of what was written tells the two apart with room.
    assert largest <= target_pages // 3, f"the WAL grew to {largest} pages ({writes})"


def _write_in_forked_child(store: AuditStore, database: Path) -> None:
    store.engine.dispose(close=False)  # the parent's connections stay the parent's
    size = database.stat().st_size
    for batch in range(60):
        store.insert_now(_entries(f"child-{batch}", 2))
    deadline = time.monotonic() + 10
    while database.stat().st_size == size and time.monotonic() < deadline:
        time.sleep(0.05)
    os._exit(0 if database.stat().st_size > size else 3)


def test_a_forked_process_runs_its_own_checkpointer(sqlite_audit) -> None:
    """A gunicorn worker is a fork: the first writer there starts a checkpointer of its own."""
    database, store, _ = sqlite_audit
    checkpointer = wal_checkpointer(database)
    checkpointer.after_writes, checkpointer.within_s = 20, 1e9
    store.insert_now(_entries("parent", 1))  # the parent's checkpointer runs, and waits
    child = multiprocessing.get_context("fork").Process(
        target=_write_in_forked_child, args=(store, database)
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "no checkpointer copied the child's writes"
    assert checkpointer.checkpoints == 0, "the parent's checkpointer ran (it should have waited)"


def _records_in_the_file_itself(database: Path, copy: Path) -> int:
    """Count the audit records in the database file alone, without its WAL."""
    shutil.copyfile(database, copy)  # no -wal beside the copy: SQLite reads the file as it is
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        return int(conn.execute("SELECT count(*) FROM audit_record").fetchone()[0])


@pytest.mark.slow
def test_a_served_worker_checkpoints_its_audit_wal(pki, billing_db, tmp_path, sign) -> None:
    """In gunicorn's gevent worker the checkpointer runs, and copies the records into the file."""
    env = fixture_service_env(pki, billing_db, tmp_path / "var")
    server = ServedProcess(env, tmp_path / "serve.log")
    database = tmp_path / "var" / "audit.sqlite"
    try:
        for _ in range(3):
            response = requests.post(
                server.url, data=sign(envelope(request_body())), headers=HEADERS, timeout=10
            )
            assert response.status_code == 200, response.text
        copied = _records_in_the_file_itself(database, tmp_path / "copy.sqlite")
        assert copied < 3, "the records were in the file before any checkpoint"
        deadline = time.monotonic() + 15  # the checkpointer's 5 s, on a busy machine
        while copied < 3 and time.monotonic() < deadline:
            time.sleep(0.25)
            copied = _records_in_the_file_itself(database, tmp_path / "copy.sqlite")
    finally:
        server.stop()
    assert copied == 3, f"{copied} of 3 records reached the database file:\n{server.log_text()}"
