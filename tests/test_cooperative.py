"""A database wait stops no other connection of a gevent worker.

The worker serves all its connections on one thread.  A billing read that
waits for PostgreSQL (here: for a table lock another session holds) must
leave the worker free to answer others; and an audit store on a network
database commits on the worker's loop, while SQLite's commits go to native
threads.
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import pytest
import requests

from service.client import StatementClient
from service.cooperative import driver_blocks_in_c
from service.signing.keys import SigningIdentity
from service.signing.trust import TrustStore
from tests import billing_fixtures as bf
from tests.gunicorn_process import ServedProcess, fixture_service_env
from tests.postgres_server import PostgresServer

#: Longer than the test waits for /healthz: a worker stopped by the read can't answer in time.
SLOW_READ_TIMEOUT_S = 30
#: How long the test waits for /healthz while the read is stuck.
HEALTHZ_WAIT_S = 5


def _wait_until_the_read_waits_for_the_lock(postgres: PostgresServer, database: str) -> None:
    """Return once a billing query of the service waits for a lock (pg_stat_activity says so)."""
    deadline = time.monotonic() + 20
    with postgres.connect(database, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = %s AND wait_event_type = 'Lock' AND query ILIKE '%%subscriber%%'",
                (database,),
            ).fetchone()[0]
            if waiting:
                return
            time.sleep(0.05)
    pytest.fail("the service's billing read never waited for the lock")


@pytest.mark.slow
def test_a_billing_read_waiting_on_postgresql_stops_no_other_connection(
    private_postgres_server: PostgresServer,
    pki: dict[str, Path],
    portal_identity: SigningIdentity,
    trust: TrustStore,
    tmp_path: Path,
) -> None:
    url = private_postgres_server.create_database("billing_locked")
    bf.create_billing_db(url)
    env = fixture_service_env(
        pki, url, tmp_path / "var", AZERSU_DB_TIMEOUT_S=str(SLOW_READ_TIMEOUT_S)
    )
    assert env["AZERSU_WORKERS"] == "1"  # the stuck read and /healthz share the one worker
    server = ServedProcess(env, tmp_path / "serve.log")
    client = StatementClient(server.url, portal_identity, trust, timeout_s=SLOW_READ_TIMEOUT_S + 10)
    try:
        assert client.call(bf.FULL, bf.FIN).response.Status == "OK"  # connections pooled, warm
        with private_postgres_server.connect("billing_locked") as locker:
            locker.execute("LOCK TABLE subscriber IN ACCESS EXCLUSIVE MODE")
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                stuck = pool.submit(client.call, bf.FULL, bf.FIN)
                _wait_until_the_read_waits_for_the_lock(private_postgres_server, "billing_locked")
                health = requests.get(f"{server.base_url}/healthz", timeout=HEALTHZ_WAIT_S)
                assert health.status_code == 200
                assert not stuck.done()  # the read still waits: the worker answered around it
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
