"""The replay caches: in the audit database and in Redis, and replays caught across processes.

The SQL tests run on SQLite and on a real PostgreSQL (see
:mod:`tests.postgres_server`), the Redis tests on a real redis-server (see
:mod:`tests.redis_server`).  The cross-process tests run the service under
gunicorn: one signed message sent many times at once to the workers of one
host, and again after the workers were replaced (SIGHUP); two servers (or
two workers) sharing one Redis, and a Redis outage that must fail closed.
"""

from __future__ import annotations

import collections
import json
import logging
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from prometheus_client.mmap_dict import MmapedDict
from sqlalchemy import MetaData, create_engine
from sqlalchemy.dialects import oracle, postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from service import namespaces as ns
from service.app import create_app
from service.errors import ConfigurationError, ReplayStoreUnavailable
from service.pki import IssuedPair
from service.replay_store import (
    PURGE_BATCH,
    PURGE_EVERY,
    REPLAY_TABLE,
    SqlReplayCache,
    create_replay_cache,
    replay_table,
)
from service.settings import Settings
from service.signing.replay import REDIS_KEY_PREFIX, RedisReplayCache
from service.signing.trust import TrustStore
from service.signing.wsse import WsseVerifier
from tests import billing_fixtures as bf
from tests.gunicorn_process import ServedProcess, fixture_service_env, registered_portal
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer, free_port
from tests.wsse_forge import SOAP, forge, q

HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetBillingStatement"'}
TNS_STATUS = "{http://azersu.az/egov/billing-statement/v1}Status"
#: Generous: a guard against hangs, not a performance target.
HANG_GUARD_S = 5.0
PERSONAL = (bf.AZ_LAST, bf.AZ_FIRST, bf.AZ_ADDRESS)


def _key() -> str:
    return uuid.uuid4().hex


# --- Redis fixtures -------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the module (tests use keys of their own)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for one test, which may stop and start it."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_cache(shared_redis: RedisServer) -> Iterator[RedisReplayCache]:
    cache = RedisReplayCache.from_url(shared_redis.url)
    yield cache
    cache.close()


# --- RedisReplayCache -------------------------------------------------------------


def test_redis_first_seen_then_replay(redis_cache: RedisReplayCache) -> None:
    key = _key()
    assert redis_cache.first_seen(key, 60) is True
    assert redis_cache.first_seen(key, 60) is False
    assert redis_cache.first_seen(key, 60) is False


def test_redis_key_is_prefixed_and_expires_by_itself(
    redis_cache: RedisReplayCache, shared_redis: RedisServer
) -> None:
    key = _key()
    assert redis_cache.first_seen(key, 0.2) is True
    raw = redis.Redis.from_url(shared_redis.url, socket_timeout=2)
    try:
        assert raw.get(REDIS_KEY_PREFIX + key) == b"1"
        assert 0 < raw.pttl(REDIS_KEY_PREFIX + key) <= 200
        assert raw.exists(key) == 0  # never unprefixed
    finally:
        raw.close()
    assert redis_cache.first_seen(key, 0.2) is False
    time.sleep(0.4)
    assert redis_cache.first_seen(key, 0.2) is True


def test_redis_keys_are_independent(redis_cache: RedisReplayCache) -> None:
    a, b = _key(), _key()
    assert redis_cache.first_seen(a, 60) is True
    assert redis_cache.first_seen(b, 60) is True
    assert redis_cache.first_seen(a, 60) is False
    assert redis_cache.first_seen(b, 60) is False


def test_redis_caches_sharing_a_server_share_the_keys(shared_redis: RedisServer) -> None:
    one, other = (RedisReplayCache.from_url(shared_redis.url) for _ in range(2))
    try:
        key = _key()
        assert one.first_seen(key, 60) is True
        assert other.first_seen(key, 60) is False
    finally:
        one.close()
        other.close()


def test_redis_same_key_from_many_threads_is_first_once(redis_cache: RedisReplayCache) -> None:
    key = _key()
    assert _race(lambda: redis_cache.first_seen(key, 60), threads=32) == [True]


def test_redis_check_answers_when_up(redis_cache: RedisReplayCache) -> None:
    redis_cache.check()  # returns None, raises if Redis doesn't answer
    redis_cache.ping()


def test_redis_down_fails_closed_at_once() -> None:
    cache = RedisReplayCache.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nobody listens
    started = time.monotonic()
    with pytest.raises(ReplayStoreUnavailable) as raised:
        cache.first_seen(_key(), 60)
    with pytest.raises(ReplayStoreUnavailable):
        cache.check()
    assert time.monotonic() - started < HANG_GUARD_S
    assert raised.value.faultcode == "Server.ReplayStoreUnavailable"
    assert "Connection" in raised.value.detail


def test_redis_that_never_answers_times_out() -> None:
    # A socket that accepts connections but never replies: the read timeout,
    # not the kernel, ends the wait.
    with _silent_listener() as port:
        cache = RedisReplayCache.from_url(f"redis://127.0.0.1:{port}/0", timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(ReplayStoreUnavailable) as raised:
            cache.first_seen(_key(), 60)
        assert time.monotonic() - started < HANG_GUARD_S
        assert "Timeout" in raised.value.detail


def test_redis_stopped_then_started_again(own_redis: RedisServer) -> None:
    cache = RedisReplayCache.from_url(own_redis.url)
    try:
        assert cache.first_seen(_key(), 60) is True
        own_redis.stop()
        started = time.monotonic()
        with pytest.raises(ReplayStoreUnavailable):
            cache.first_seen(_key(), 60)
        with pytest.raises(ReplayStoreUnavailable):
            cache.check()
        assert time.monotonic() - started < HANG_GUARD_S
        own_redis.start()
        # The pooled connections died with the server: the cache reconnects.
        cache.check()
        assert cache.first_seen(_key(), 60) is True
    finally:
        cache.close()


def test_redis_refused_login_fails_closed(shared_redis: RedisServer) -> None:
    url = f"redis://nobody:wrong@127.0.0.1:{shared_redis.port}/0"
    cache = RedisReplayCache.from_url(url)
    with pytest.raises(ReplayStoreUnavailable) as raised:
        cache.first_seen(_key(), 60)
    assert "wrong" not in raised.value.detail


# --- SqlReplayCache ---------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return the URL of an empty audit database: an SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'audit.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"replay_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sql_cache(audit_url: str, clock: FakeClock) -> Iterator[SqlReplayCache]:
    cache = SqlReplayCache.from_url(audit_url, clock=clock)
    yield cache
    cache.close()


def _rows(cache: SqlReplayCache) -> dict[str, int]:
    """Return the table's rows, fingerprint -> expiry, read on a connection of their own."""
    engine = create_engine(cache.engine.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(cache.table.select()).all()
    finally:
        engine.dispose()
    return {fingerprint: expires_at_ms for fingerprint, expires_at_ms in rows}


def test_sql_first_seen_then_replay(sql_cache: SqlReplayCache) -> None:
    key, other = _key(), _key()
    assert sql_cache.first_seen(key, 60) is True
    assert sql_cache.first_seen(key, 60) is False
    assert sql_cache.first_seen(key, 60) is False
    assert sql_cache.first_seen(other, 60) is True
    assert sql_cache.first_seen(other, 60) is False
    assert set(_rows(sql_cache)) == {key, other}


def test_sql_caches_sharing_a_database_share_the_keys(audit_url: str) -> None:
    one, other = (SqlReplayCache.from_url(audit_url) for _ in range(2))
    try:
        key = _key()
        assert one.first_seen(key, 60) is True
        assert other.first_seen(key, 60) is False
    finally:
        one.close()
        other.close()


def test_sql_fingerprint_expires_after_its_ttl(sql_cache: SqlReplayCache, clock: FakeClock) -> None:
    key = _key()
    assert sql_cache.first_seen(key, 10) is True
    assert _rows(sql_cache) == {key: 1_800_000_010_000}
    clock.now += 9.999
    assert sql_cache.first_seen(key, 10) is False
    clock.now += 0.001  # the expiry itself: the row is gone for the check
    assert sql_cache.first_seen(key, 10) is True
    assert _rows(sql_cache) == {key: 1_800_000_020_000}  # the expired row was replaced
    assert sql_cache.first_seen(key, 10) is False


def test_sql_expiry_with_the_real_clock(audit_url: str) -> None:
    cache = SqlReplayCache.from_url(audit_url)
    try:
        key = _key()
        assert cache.first_seen(key, 0.2) is True
        assert cache.first_seen(key, 0.2) is False
        time.sleep(0.3)
        assert cache.first_seen(key, 0.2) is True
    finally:
        cache.close()


def test_sql_purge_deletes_expired_rows_oldest_first_in_bounded_batches(
    sql_cache: SqlReplayCache, clock: FakeClock
) -> None:
    expiring = [f"old-{i:04d}" for i in range(PURGE_BATCH + 10)]
    for seconds, key in enumerate(expiring, start=1):
        assert sql_cache.first_seen(key, seconds) is True
    live = _key()
    assert sql_cache.first_seen(live, 3600) is True
    clock.now += len(expiring) + 1  # every "old" row has expired, the live one has not
    assert sql_cache.purge_expired() == PURGE_BATCH
    assert set(_rows(sql_cache)) == {*expiring[PURGE_BATCH:], live}  # the oldest went first
    assert sql_cache.purge_expired() == 10
    assert sql_cache.purge_expired() == 0
    assert set(_rows(sql_cache)) == {live}
    assert sql_cache.first_seen(live, 3600) is False


def test_sql_purges_in_passing_every_purge_every_checks(audit_url: str, clock: FakeClock) -> None:
    cache = SqlReplayCache.from_url(audit_url, clock=clock)
    try:
        expiring = [_key() for _ in range(5)]
        for key in expiring:
            cache.first_seen(key, 1)
        clock.now += 2
        fresh = [_key() for _ in range(PURGE_EVERY - len(expiring) - 1)]
        for key in fresh:
            cache.first_seen(key, 60)
        assert set(expiring) <= set(_rows(cache))  # PURGE_EVERY - 1 checks so far
        last = _key()
        cache.first_seen(last, 60)  # the PURGE_EVERY-th check purges first
        assert set(_rows(cache)) == {*fresh, last}
    finally:
        cache.close()


def test_sql_same_key_from_many_threads_is_first_once(sql_cache: SqlReplayCache) -> None:
    for key in [_key() for _ in range(5)]:
        assert _race(lambda key=key: sql_cache.first_seen(key, 60), threads=16) == [True]


def _first_seen_in_lockstep(
    url: str, keys: list[str], barrier: Any, results: multiprocessing.Queue[Any]
) -> None:
    """Child process: open the cache, then try every key at the barrier's signal."""
    cache = SqlReplayCache.from_url(url)
    try:
        for key in keys:
            barrier.wait(timeout=60)
            try:
                results.put((os.getpid(), key, cache.first_seen(key, 60)))
            except ReplayStoreUnavailable as exc:
                results.put((os.getpid(), key, f"unavailable: {exc.detail}"))
    finally:
        cache.close()


def test_sql_same_key_from_many_processes_is_first_once(audit_url: str) -> None:
    """Processes of their own (as gunicorn's workers are) race for the same keys."""
    processes, keys = 6, [_key() for _ in range(8)]
    SqlReplayCache.from_url(audit_url).close()  # the table exists before the race
    # A fork server: a clean process (none of pytest's threads or connections)
    # that imports this module once, then forks each child from it.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    barrier = context.Barrier(processes)
    results: multiprocessing.Queue[Any] = context.Queue()
    children = [
        context.Process(target=_first_seen_in_lockstep, args=(audit_url, keys, barrier, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        outcomes = [results.get(timeout=120) for _ in range(processes * len(keys))]
    finally:
        for child in children:
            child.join(timeout=60)
    assert [child.exitcode for child in children] == [0] * processes
    for key in keys:
        answers = [answer for _, k, answer in outcomes if k == key]
        assert sorted(answers, key=str) == [False] * (processes - 1) + [True], answers
    assert len({pid for pid, _, _ in outcomes}) == processes


def test_sql_check_answers_when_up(sql_cache: SqlReplayCache) -> None:
    sql_cache.check()  # returns None, raises if the table doesn't answer
    assert sql_cache.first_seen(_key(), 60) is True
    sql_cache.check()


def _drop_table_sqlite(path: str) -> None:
    with sqlite3.connect(path) as outside:
        outside.execute(f"DROP TABLE {REPLAY_TABLE}")


def test_sqlite_table_dropped_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    cache = SqlReplayCache.from_url(f"sqlite:///{path}")
    try:
        assert cache.first_seen(_key(), 60) is True
        _drop_table_sqlite(str(path))
        with pytest.raises(ReplayStoreUnavailable) as raised:
            cache.first_seen(_key(), 60)
        assert raised.value.faultcode == "Server.ReplayStoreUnavailable"
        assert "no such table" in raised.value.detail
        with pytest.raises(ReplayStoreUnavailable, match="no such table"):
            cache.check()
    finally:
        cache.close()


def test_sqlite_write_lock_held_past_the_timeout_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    cache = SqlReplayCache.from_url(f"sqlite:///{path}", timeout_s=0.3)
    outside = sqlite3.connect(path, isolation_level=None)
    try:
        outside.execute("BEGIN IMMEDIATE")  # another writer that doesn't let go
        key = _key()
        started = time.monotonic()
        with pytest.raises(ReplayStoreUnavailable, match="locked") as raised:
            cache.first_seen(key, 60)
        assert time.monotonic() - started < HANG_GUARD_S
        assert raised.value.faultcode == "Server.ReplayStoreUnavailable"
        outside.execute("ROLLBACK")
        assert cache.first_seen(key, 60) is True  # nothing of the refused attempt stayed
    finally:
        outside.close()
        cache.close()


def test_postgres_stopped_fails_closed_then_recovers_with_its_keys(
    private_postgres_server: PostgresServer,
) -> None:
    url = private_postgres_server.create_database("replay")
    cache = SqlReplayCache.from_url(url, timeout_s=1.0)
    try:
        known = _key()
        assert cache.first_seen(known, 600) is True
        private_postgres_server.stop("fast")
        started = time.monotonic()
        with pytest.raises(ReplayStoreUnavailable) as raised:
            cache.first_seen(_key(), 60)
        with pytest.raises(ReplayStoreUnavailable):
            cache.check()
        assert time.monotonic() - started < HANG_GUARD_S
        assert raised.value.faultcode == "Server.ReplayStoreUnavailable"
        private_postgres_server.start()
        cache.check()
        assert cache.first_seen(_key(), 60) is True
        assert cache.first_seen(known, 600) is False  # the fingerprint outlived the restart
    finally:
        cache.close()


def test_postgres_table_dropped_fails_closed(postgres_server: PostgresServer) -> None:
    name = f"replay_{uuid.uuid4().hex[:16]}"
    cache = SqlReplayCache.from_url(postgres_server.create_database(name))
    try:
        assert cache.first_seen(_key(), 60) is True
        with postgres_server.connect(name, autocommit=True) as outside:
            outside.execute(f"DROP TABLE {REPLAY_TABLE}")
        with pytest.raises(ReplayStoreUnavailable, match="UndefinedTable"):
            cache.first_seen(_key(), 60)
        with pytest.raises(ReplayStoreUnavailable, match="UndefinedTable"):
            cache.check()
    finally:
        cache.close()


def test_postgres_key_held_by_an_open_transaction_fails_closed_in_time(
    postgres_server: PostgresServer,
) -> None:
    """A worker that stopped between its insert and its commit holds the key: wait, then refuse."""
    name = f"replay_{uuid.uuid4().hex[:16]}"
    cache = SqlReplayCache.from_url(postgres_server.create_database(name), timeout_s=0.5)
    try:
        key = _key()
        with postgres_server.connect(name) as outside:
            outside.execute(
                "INSERT INTO replay_fingerprint (fingerprint, expires_at_ms) VALUES (%s, %s)",
                (key, 2**62),
            )  # not committed
            started = time.monotonic()
            with pytest.raises(ReplayStoreUnavailable, match=r"due to (lock|statement) timeout"):
                cache.first_seen(key, 60)
            assert time.monotonic() - started < HANG_GUARD_S
            outside.rollback()
        assert cache.first_seen(key, 60) is True
    finally:
        cache.close()


def test_postgres_dropped_connection_is_replaced_without_a_refusal(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No ping before each use: a use that finds the pooled connection dead runs again."""
    name = f"replay_{uuid.uuid4().hex[:16]}"
    cache = SqlReplayCache.from_url(postgres_server.create_database(name))
    try:
        known = _key()
        assert cache.first_seen(known, 60) is True
        assert postgres_server.terminate_connections(name) == 1  # the pool's one connection
        with caplog.at_level(logging.INFO, logger="service.shared_table"):
            assert cache.first_seen(known, 60) is False
        assert "replay_fingerprint: connection lost, trying a new one" in caplog.text
        assert cache.first_seen(_key(), 60) is True
    finally:
        cache.close()


EXPECTED_DDL = {
    "sqlite": "CREATE TABLE replay_fingerprint ( fingerprint VARCHAR(64) NOT NULL,"
    " expires_at_ms BIGINT NOT NULL, PRIMARY KEY (fingerprint) )",
    "postgresql": "CREATE TABLE replay_fingerprint ( fingerprint VARCHAR(64) NOT NULL,"
    " expires_at_ms BIGINT NOT NULL, PRIMARY KEY (fingerprint) )",
    "oracle": "CREATE TABLE replay_fingerprint ( fingerprint VARCHAR2(64 CHAR) NOT NULL,"
    " expires_at_ms NUMBER(19) NOT NULL, PRIMARY KEY (fingerprint) )",
}
DIALECTS = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.psycopg.dialect(),
    "oracle": oracle.oracledb.dialect(),
}


@pytest.mark.parametrize("dialect", sorted(EXPECTED_DDL))
def test_sql_table_ddl(dialect: str) -> None:
    """The DDL that ``from_url`` runs when the table is missing (for the DBA's review)."""
    table = replay_table(MetaData())
    created = " ".join(str(CreateTable(table).compile(dialect=DIALECTS[dialect])).split())
    [index] = table.indexes
    indexed = " ".join(str(CreateIndex(index).compile(dialect=DIALECTS[dialect])).split())
    assert created == EXPECTED_DDL[dialect]
    assert (
        indexed
        == "CREATE INDEX ix_replay_fingerprint_expires ON replay_fingerprint (expires_at_ms)"
    )


def test_sql_statements_for_oracle() -> None:
    """Oracle can't run here: its statements are compared with what was reviewed."""
    engine = create_engine("oracle+oracledb://audit:secret@db.example:1521/?service_name=AUDIT")
    cache = SqlReplayCache(engine)  # compiles its statements; connects to nothing
    statements = {
        name: " ".join(statement.sql.split())
        for name, statement in (
            ("insert", cache._insert),
            ("delete_expired", cache._delete_expired),
            ("purge", cache._purge),
            ("lookup", cache._lookup),
        )
    }
    assert statements == {
        "insert": "INSERT INTO replay_fingerprint (fingerprint, expires_at_ms)"
        " VALUES (:fingerprint, :expires_at_ms)",
        "delete_expired": "DELETE FROM replay_fingerprint"
        " WHERE replay_fingerprint.fingerprint = :fingerprint"
        " AND replay_fingerprint.expires_at_ms <= :now_ms",
        "purge": "DELETE FROM replay_fingerprint WHERE replay_fingerprint.fingerprint IN"
        " (SELECT replay_fingerprint.fingerprint FROM replay_fingerprint"
        " WHERE replay_fingerprint.expires_at_ms <= :now_ms"
        " ORDER BY replay_fingerprint.expires_at_ms FETCH FIRST 200 ROWS ONLY)",
        "lookup": "SELECT replay_fingerprint.fingerprint FROM replay_fingerprint"
        " WHERE replay_fingerprint.fingerprint = :fingerprint",
    }


# --- create_replay_cache ----------------------------------------------------------


def test_create_empty_url_is_the_audit_database(settings: Settings, tmp_path: Path) -> None:
    settings = replace(settings, var_dir=str(tmp_path / "var"))
    first, second = create_replay_cache(settings), create_replay_cache(settings)
    try:
        assert isinstance(first, SqlReplayCache)
        assert str(first.engine.url) == settings.resolved_audit_url
        with sqlite3.connect(tmp_path / "var" / "audit.sqlite") as audit:
            tables = {row[0] for row in audit.execute("SELECT name FROM sqlite_master")}
            assert audit.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert REPLAY_TABLE in tables
        key = _key()
        assert first.first_seen(key, 60) is True
        assert second.first_seen(key, 60) is False  # another worker, the same store
    finally:
        first.close()
        second.close()


def test_create_empty_url_follows_a_postgres_audit_url(
    settings: Settings, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database(f"replay_{uuid.uuid4().hex[:16]}")
    cache = create_replay_cache(replace(settings, audit_url=url))
    try:
        assert isinstance(cache, SqlReplayCache)
        assert cache.engine.dialect.name == "postgresql"
        key = _key()
        assert cache.first_seen(key, 60) is True
        with postgres_server.connect(url.rsplit("/", 1)[1]) as outside:
            stored = outside.execute(
                "SELECT count(*) FROM replay_fingerprint WHERE fingerprint = %s", (key,)
            ).fetchone()
        assert stored == (1,)
    finally:
        cache.close()


def test_readiness_reports_the_replay_table(settings: Settings, tmp_path: Path) -> None:
    audit = tmp_path / "audit.sqlite"
    app = create_app(replace(settings, audit_url=f"sqlite:///{audit}"))
    try:
        assert app.readiness()["checks"]["replay"] == "ok"
        _drop_table_sqlite(str(audit))
        report = app.readiness()
        assert report["checks"]["replay"] == "unavailable: ReplayStoreUnavailable"
        assert report["ready"] is False
    finally:
        app.close()


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://user:pw@redis.example:6380/2", "REDIS://h"]
)
def test_create_redis_url_is_redis(url: str) -> None:
    cache = create_replay_cache(Settings(replay_url=url))  # connects lazily: nothing listens
    assert isinstance(cache, RedisReplayCache)
    cache.close()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("memcached://x", "memcached://"),
        ("memcached://user:s3cret@x:11211", "memcached://"),
        ("unix:///run/redis.sock", "unix://"),
        ("x", "URL"),
        # Not a scheme before the first "://": the error names no part of it.
        ("user:s3cret@host://x", "URL"),
    ],
)
def test_create_other_url_is_a_configuration_error(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_replay_cache(Settings(replay_url=url))
    assert raised.value.setting == "AZERSU_REPLAY_URL"
    assert f"unsupported replay store {named}:" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_create_malformed_redis_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_replay_cache(Settings(replay_url="redis://h:port/0"))
    assert raised.value.setting == "AZERSU_REPLAY_URL"


# --- across processes: gunicorn servers sharing one Redis -----------------------------


def _load_pair(key_path: Path, cert_path: Path) -> IssuedPair:
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    return IssuedPair(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def portal_pair(pki: dict[str, Path]) -> IssuedPair:
    return _load_pair(pki["portal.key"], pki["portal.pem"])


@pytest.fixture(scope="module")
def response_verifier(trust: TrustStore) -> WsseVerifier:
    # An OK answer also carries the Statement's own (enveloped) signature.
    return WsseVerifier(trust, None, allow_body_signatures=True)


@dataclass
class Service:
    """A running ``azersu-statement serve`` (gunicorn) process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/soap"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def post(self, payload: bytes) -> requests.Response:
        return requests.post(self.url, data=payload, headers=HEADERS, timeout=(5, 20))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


StartService = Callable[..., Service]


@pytest.fixture
def start_service(billing_db: str, pki: dict[str, Path], tmp_path: Path) -> Iterator[StartService]:
    """Return a starter of gunicorn servers; every one is stopped after the test."""
    started: list[Service] = []

    def _start(replay_url: str, workers: int = 1) -> Service:
        port = free_port()
        run_dir = tmp_path / f"run-{port}"
        run_dir.mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
        env.update(
            # gunicorn (25.1+) opens a control socket in $XDG_RUNTIME_DIR, else in
            # ~/.gunicorn: one of its own for each server, none in the home folder.
            XDG_RUNTIME_DIR=str(run_dir),
            AZERSU_BILLING_URL=billing_db,
            AZERSU_REPORT_PERIOD=bf.REPORT_PERIOD,
            AZERSU_SIGN_KEY=str(pki["service.key"]),
            AZERSU_SIGN_CERT=str(pki["service.pem"]),
            AZERSU_TRUST_CA=str(pki["ca.pem"]),
            AZERSU_TRUSTED_CLIENTS=registered_portal(pki),
            AZERSU_REPLAY_URL=replay_url,
            AZERSU_WORKERS=str(workers),
        )
        log_path = tmp_path / f"gunicorn-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        service = Service(process, port, log_path)
        started.append(service)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                if health.status_code == 200:
                    return service
            except requests.RequestException:
                pass
            time.sleep(0.1)
        pytest.fail(f"serve did not start: {service.log()}")

    yield _start
    for service in started:
        service.stop()


def _fault_code(content: bytes) -> tuple[str | None, str]:
    """Return the Fault's faultcode as (namespace, local part)."""
    root = etree.fromstring(content)
    fault = root.find(f"{q(SOAP, 'Body')}/{q(SOAP, 'Fault')}")
    assert fault is not None, content
    prefix, _, local = (fault.findtext("faultcode") or "").partition(":")
    return fault.nsmap.get(prefix), local


def _assert_ok(response: requests.Response, verifier: WsseVerifier) -> None:
    assert response.status_code == 200, response.text
    root = etree.fromstring(response.content)
    verifier.verify(root)
    assert root.findtext(f".//{TNS_STATUS}") == "OK"
    assert bf.AZ_LAST in response.content.decode()


def _assert_fault(
    response: requests.Response, verifier: WsseVerifier, namespace: str, local: str
) -> None:
    assert response.status_code == 500, response.text
    verifier.verify(etree.fromstring(response.content))  # faults are signed too
    assert _fault_code(response.content) == (namespace, local)
    text = response.content.decode("utf-8", "replace")
    assert "Statement" not in text
    assert TNS_STATUS not in text
    for personal in PERSONAL:
        assert personal not in text


@pytest.mark.slow
def test_replay_is_caught_across_two_servers(
    shared_redis: RedisServer,
    start_service: StartService,
    portal_pair: IssuedPair,
    response_verifier: WsseVerifier,
) -> None:
    server_a = start_service(shared_redis.url)
    server_b = start_service(shared_redis.url)
    payload = forge(portal_pair).bytes()

    _assert_ok(server_a.post(payload), response_verifier)
    replayed = server_b.post(payload)
    _assert_fault(replayed, response_verifier, ns.WSSE, "InvalidSecurity")
    assert ns.WSSE == (
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    )
    # ... and back on the first server too.
    _assert_fault(server_a.post(payload), response_verifier, ns.WSSE, "InvalidSecurity")
    # A fresh message is still welcome on either.
    _assert_ok(server_b.post(forge(portal_pair).bytes()), response_verifier)


@pytest.mark.slow
def test_replay_is_caught_across_two_workers(
    shared_redis: RedisServer,
    start_service: StartService,
    portal_pair: IssuedPair,
    response_verifier: WsseVerifier,
) -> None:
    server = start_service(shared_redis.url, workers=2)
    payload = forge(portal_pair).bytes()
    # Sent all at once, on separate connections, so both workers take some.
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: server.post(payload), range(10)))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(ok) == 1, [r.status_code for r in responses]
    _assert_ok(ok[0], response_verifier)
    for response in refused:
        _assert_fault(response, response_verifier, ns.WSSE, "InvalidSecurity")


@pytest.mark.slow
def test_redis_down_fails_closed_then_recovers(
    own_redis: RedisServer,
    start_service: StartService,
    portal_pair: IssuedPair,
    response_verifier: WsseVerifier,
) -> None:
    server = start_service(own_redis.url)
    _assert_ok(server.post(forge(portal_pair).bytes()), response_verifier)

    own_redis.stop()
    started = time.monotonic()
    refused = server.post(forge(portal_pair).bytes())
    assert time.monotonic() - started < HANG_GUARD_S
    _assert_fault(refused, response_verifier, ns.SOAP11_ENV, "Server.ReplayStoreUnavailable")

    own_redis.start()
    _assert_ok(server.post(forge(portal_pair).bytes()), response_verifier)


# --- across the workers of one host: the default store, the audit database ---------------

#: The worker configurations to hold under, by test id: the settings that
#: select each (``serve`` has one worker model, gevent's, with no setting).
WORKER_SETTINGS: dict[str, dict[str, str]] = {"gevent": {}}
#: Copies of one signed message an attacker sends at once, each on a fresh connection.
ATTACK_COPIES = 6
#: Rounds (each with a new message) allowed until the copies reach both workers.
SPREAD_ROUNDS = 10
REPLAY_OUTCOME = "wsse:InvalidSecurity"


def _serve_two_workers(
    worker: str, pki: dict[str, Path], billing_db: str, folder: Path
) -> ServedProcess:
    """Serve with the default replay store (no AZERSU_REPLAY_URL, the SQLite audit database)."""
    env = fixture_service_env(
        pki, billing_db, folder / "var", AZERSU_WORKERS="2", **WORKER_SETTINGS[worker]
    )
    assert "AZERSU_REPLAY_URL" not in env and "AZERSU_AUDIT_URL" not in env
    return ServedProcess(env, folder / "serve.log")


def _post_fresh(url: str, payload: bytes) -> requests.Response:
    """POST on a connection of its own, closed after the answer (no keep-alive)."""
    return requests.post(
        url, data=payload, headers={**HEADERS, "Connection": "close"}, timeout=(5, 30)
    )


def _send_at_once(url: str, payload: bytes, copies: int) -> list[requests.Response]:
    """Send ``copies`` of ``payload`` from as many threads, released together."""
    barrier = threading.Barrier(copies)

    def send(_: int) -> requests.Response:
        barrier.wait(timeout=10)
        return _post_fresh(url, payload)

    with ThreadPoolExecutor(max_workers=copies) as pool:
        return list(pool.map(send, range(copies)))


def _requests_by_worker(var_dir: Path) -> dict[int, collections.Counter[str]]:
    """Return what each worker answered, from its own prometheus file: outcome -> count.

    ``serve`` runs prometheus_client in multiprocess mode: every process
    counts in a file named after its pid, which stays after it exits.  The
    key ``replay`` counts WS-Security refusals whose reason was a replay.
    """
    counts: dict[int, collections.Counter[str]] = {}
    for path in var_dir.glob("metrics/gunicorn-*/counter_*.db"):
        answered: collections.Counter[str] = collections.Counter()
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample == "azersu_requests_total":
                answered[labels["outcome"]] += int(value)
            elif sample == "azersu_signature_failures_total" and labels["reason"] == "replay":
                answered["replay"] += int(value)
        counts[int(path.stem.rsplit("_", 1)[1])] = answered
    return counts


def _answered_since(
    before: dict[int, collections.Counter[str]], after: dict[int, collections.Counter[str]]
) -> dict[int, collections.Counter[str]]:
    """Return each worker's answers between two readings, for the workers that answered."""
    changes = {
        pid: counts - before.get(pid, collections.Counter()) for pid, counts in after.items()
    }
    return {pid: counts for pid, counts in changes.items() if counts}


def _wait_for_new_workers(server: ServedProcess, old: set[int], count: int) -> set[int]:
    """Wait until the master's workers are ``count`` processes, none of them in ``old``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = set(server.worker_pids())
        if len(current) == count and not current & old:
            return current
        time.sleep(0.1)
    pytest.fail(f"workers {sorted(old)} were not replaced:\n{server.log_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("worker", sorted(WORKER_SETTINGS))
def test_copies_sent_at_once_to_two_workers_get_one_statement(
    worker: str,
    pki: dict[str, Path],
    billing_db: str,
    tmp_path: Path,
    portal_pair: IssuedPair,
    response_verifier: WsseVerifier,
) -> None:
    server = _serve_two_workers(worker, pki, billing_db, tmp_path)
    var_dir = tmp_path / "var"
    try:
        spread_over: set[int] = set()
        # Each round is a new message.  Every round must give exactly one
        # statement; the rounds go on until one round's copies were answered by
        # both workers, so that the test can't pass because one worker took all.
        for _ in range(SPREAD_ROUNDS):
            payload = forge(portal_pair).bytes()
            before = _requests_by_worker(var_dir)
            responses = _send_at_once(server.url, payload, ATTACK_COPIES)
            answered = _answered_since(before, _requests_by_worker(var_dir))
            ok = [r for r in responses if r.status_code == 200]
            assert len(ok) == 1, [r.status_code for r in responses]
            _assert_ok(ok[0], response_verifier)
            for refused in (r for r in responses if r.status_code != 200):
                _assert_fault(refused, response_verifier, ns.WSSE, "InvalidSecurity")
            total = sum(answered.values(), collections.Counter())
            assert total == {
                "OK": 1,
                REPLAY_OUTCOME: ATTACK_COPIES - 1,
                "replay": ATTACK_COPIES - 1,
            }
            if len(answered) == 2:
                spread_over = set(answered)
                break
        assert len(spread_over) == 2, f"one worker took every copy in {SPREAD_ROUNDS} rounds"
        assert spread_over <= set(server.worker_pids())
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("worker", sorted(WORKER_SETTINGS))
def test_workers_that_replace_them_refuse_the_replay(
    worker: str,
    pki: dict[str, Path],
    billing_db: str,
    tmp_path: Path,
    portal_pair: IssuedPair,
    response_verifier: WsseVerifier,
) -> None:
    server = _serve_two_workers(worker, pki, billing_db, tmp_path)
    var_dir = tmp_path / "var"
    try:
        payload = forge(portal_pair).bytes()
        _assert_ok(_post_fresh(server.url, payload), response_verifier)
        old = set(server.worker_pids())
        assert len(old) == 2
        server.signal(signal.SIGHUP)
        new = _wait_for_new_workers(server, old, 2)
        refused_by: set[int] = set()
        # Copies at once, until each new worker has refused at least one.
        for _ in range(SPREAD_ROUNDS):
            before = _requests_by_worker(var_dir)
            responses = _send_at_once(server.url, payload, ATTACK_COPIES)
            answered = _answered_since(before, _requests_by_worker(var_dir))
            for response in responses:
                _assert_fault(response, response_verifier, ns.WSSE, "InvalidSecurity")
            assert set(answered) <= new  # the old workers are gone
            total = sum(answered.values(), collections.Counter())
            assert total == {REPLAY_OUTCOME: ATTACK_COPIES, "replay": ATTACK_COPIES}
            refused_by |= set(answered)
            if refused_by == new:
                break
        assert refused_by == new, f"only {refused_by} of {new} got a copy"
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]


# --- helpers ----------------------------------------------------------------------


def _race(fn: Callable[[], object], threads: int, keep_all: bool = False) -> list:
    """Run ``fn`` in ``threads`` threads released at once; return the True results.

    With ``keep_all``, return every result instead.
    """
    barrier = threading.Barrier(threads)

    def run() -> object:
        barrier.wait(timeout=10)
        return fn()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = [f.result(timeout=30) for f in [pool.submit(run) for _ in range(threads)]]
    return results if keep_all else [r for r in results if r is True]


@contextmanager
def _silent_listener() -> Iterator[int]:
    """Yield the port of a loopback socket that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])
