"""A database wait stops no other connection of a gevent worker.

The worker serves all its connections on one thread.  A billing read that
waits for PostgreSQL (here: for a table lock another session holds) must
leave the worker free to answer others, and so must a Redis replay store
that stops answering.
"""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from service.client import StatementClient
from service.cooperative import driver_blocks_in_c
from service.signing.keys import SigningIdentity
from service.signing.trust import TrustStore
from tests import billing_fixtures as bf
from tests.conftest import require_tool
from tests.gunicorn_process import ServedProcess, fixture_service_env
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer

#: Longer than the test waits for /healthz: a worker stopped by the read can't answer in time.
SLOW_READ_TIMEOUT_S = 30
#: How long the test waits for /healthz while the read is stuck.
HEALTHZ_WAIT_S = 5


def _wait_until_a_query_waits_for_the_lock(
    postgres: PostgresServer, database: str, table: str
) -> None:
    """Return once a query of the service on ``table`` waits for a lock (pg_stat_activity)."""
    deadline = time.monotonic() + 20
    with postgres.connect(database, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = %s AND wait_event_type = 'Lock' AND query ILIKE %s",
                (database, f"%{table}%"),
            ).fetchone()[0]
            if waiting:
                return
            time.sleep(0.05)
    pytest.fail(f"no query of the service waited for the lock on {table}")


#: Where a request meets PostgreSQL: the database, and the table a lock there stops it on.
POSTGRESQL_WAITS = {
    "billing read": ("billing_locked", "subscriber"),
    "replay check": ("audit_locked", "replay_fingerprint"),
    "audit commit": ("audit_locked", "audit_record"),
}


@pytest.mark.slow
@pytest.mark.parametrize("wait", POSTGRESQL_WAITS)
def test_a_request_waiting_on_postgresql_stops_no_other_connection(
    wait: str,
    private_postgres_server: PostgresServer,
    pki: dict[str, Path],
    portal_identity: SigningIdentity,
    trust: TrustStore,
    tmp_path: Path,
) -> None:
    billing_url = private_postgres_server.create_database("billing_locked")
    bf.create_billing_db(billing_url)
    audit_url = private_postgres_server.create_database("audit_locked")
    env = fixture_service_env(
        pki,
        billing_url,
        tmp_path / "var",
        AZERSU_AUDIT_URL=audit_url,
        AZERSU_DB_TIMEOUT_S=str(SLOW_READ_TIMEOUT_S),
    )
    assert env["AZERSU_WORKERS"] == "1"  # the stuck request and /healthz share the one worker
    server = ServedProcess(env, tmp_path / "serve.log")
    client = StatementClient(server.url, portal_identity, trust, timeout_s=SLOW_READ_TIMEOUT_S + 10)
    database, table = POSTGRESQL_WAITS[wait]
    try:
        assert client.call(bf.FULL, bf.FIN).response.Status == "OK"  # connections pooled, warm
        with private_postgres_server.connect(database) as locker:
            locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                stuck = pool.submit(client.call, bf.FULL, bf.FIN)
                _wait_until_a_query_waits_for_the_lock(private_postgres_server, database, table)
                health = requests.get(f"{server.base_url}/healthz", timeout=HEALTHZ_WAIT_S)
                assert health.status_code == 200
                assert not stuck.done()  # it still waits: the worker answered around it
                locker.rollback()  # the lock goes; the stuck request completes
                assert stuck.result(timeout=30).response.Status == "OK"
    finally:
        assert server.stop() == 0, server.log_text()


@pytest.mark.parametrize(
    ("dialect", "driver", "blocks"),
    [
        ("sqlite", "pysqlite", True),  # a local file: its fsync and locks wait in C
        ("oracle", "cx_oracle", True),  # Oracle Client libraries
        ("postgresql", "psycopg", False),  # waits through gevent once made cooperative
        ("oracle", "oracledb", False),  # thin mode: pure-Python sockets
    ],
)
def test_which_drivers_wait_in_c(dialect: str, driver: str, blocks: bool) -> None:
    assert driver_blocks_in_c(dialect, driver) is blocks


def _wait_until_redis_holds_unread_bytes(ss: str, port: int) -> None:
    """Return once a connection to the stopped Redis holds bytes it hasn't read (``ss``)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        listing = subprocess.run(
            [ss, "-Htn", "state", "established", f"( sport = :{port} )"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        if any(int(line.split()[0]) > 0 for line in listing.splitlines()):
            return
        time.sleep(0.05)
    pytest.fail("the service never sent its replay check to Redis")


@pytest.mark.slow
def test_a_redis_that_stops_answering_stops_no_other_connection(
    billing_db: str,
    pki: dict[str, Path],
    portal_identity: SigningIdentity,
    trust: TrustStore,
    tmp_path: Path,
) -> None:
    ss = require_tool("ss", "iproute2")
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        _serve_while_redis_stops(redis, ss, billing_db, pki, portal_identity, trust, tmp_path)
    finally:
        redis.stop()


def _serve_while_redis_stops(
    redis: RedisServer,
    ss: str,
    billing_db: str,
    pki: dict[str, Path],
    portal_identity: SigningIdentity,
    trust: TrustStore,
    tmp_path: Path,
) -> None:
    # Redis's own wait, longer than the test waits for /healthz (redis-py takes it from the URL)
    replay_url = f"{redis.url}?socket_timeout={SLOW_READ_TIMEOUT_S}"
    env = fixture_service_env(pki, billing_db, tmp_path / "var", AZERSU_REPLAY_URL=replay_url)
    server = ServedProcess(env, tmp_path / "serve.log")
    client = StatementClient(server.url, portal_identity, trust, timeout_s=SLOW_READ_TIMEOUT_S + 10)
    assert redis.process is not None
    try:
        assert client.call(bf.FULL, bf.FIN).response.Status == "OK"  # Redis connection pooled
        redis.process.send_signal(signal.SIGSTOP)  # connected, but never answers
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                stuck = pool.submit(client.call, bf.FULL, bf.FIN)
                _wait_until_redis_holds_unread_bytes(ss, redis.port)  # the replay check is sent
                health = requests.get(f"{server.base_url}/healthz", timeout=HEALTHZ_WAIT_S)
                assert health.status_code == 200
                assert not stuck.done()
                redis.process.send_signal(signal.SIGCONT)  # Redis answers: the request goes on
                assert stuck.result(timeout=30).response.Status == "OK"
        finally:
            redis.process.send_signal(signal.SIGCONT)
    finally:
        assert server.stop() == 0, server.log_text()
