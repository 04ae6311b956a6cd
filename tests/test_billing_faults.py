"""Billing failures against real databases: the Fault ``Server.BillingUnavailable``, in time.

The contract: when billing can't be read, the answer is the SOAP Fault
``Server.BillingUnavailable`` within ``AZERSU_DB_TIMEOUT_S`` + 1 s, and the
service recovers by itself (no restart) once billing is back.  Everything
here is real: a PostgreSQL server (:mod:`tests.postgres_server`) that is
locked, slowed, killed, stopped and started, sockets that refuse or never
answer, and the python-oracledb driver in thin mode.  The elapsed time of a
Fault is the only wall-clock assertion; every request also has an HTTP
timeout, so a hanging service fails the test instead of hanging it.

Waits that no driver option bounds (libpq's 2-second connect minimum, the
Oracle Net handshake of a mute listener, a database frozen mid-query) are
bounded by the request's billing deadline (:mod:`service.billing.deadline`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import oracledb
import pytest
import requests
from lxml import etree
from sqlalchemy.engine import make_url

from service.app import create_app
from service.namespaces import SOAP11_ENV, TNS
from service.settings import Settings
from tests import billing_fixtures as bf
from tests.conftest import LiveServer
from tests.postgres_server import PostgresServer
from tests.test_app import HEADERS, envelope, fault_of, request_body

FAULT = "Server.BillingUnavailable"
#: AZERSU_DB_TIMEOUT_S for these tests (short, for speed).
TIMEOUT_S = 1.0
#: Per-request HTTP timeout beyond the contract's budget: a hang ends the request.
HTTP_GRACE_S = 1.5
#: Text that must never reach the caller (the cause goes to the server log only).
LEAKS = (b"psycopg", b"oracledb", b"OperationalError", b"Traceback", b"DPY-", b"timeout")

Serve = Callable[..., LiveServer]
Sign = Callable[[bytes], bytes]


def budget(timeout_s: float = TIMEOUT_S) -> float:
    """Return the contract's bound on a Fault: AZERSU_DB_TIMEOUT_S + 1 s."""
    return timeout_s + 1.0


@dataclass(frozen=True)
class Answer:
    """What the service answered to one request."""

    status: str | None  # the Status element of an ordinary response
    fault: str | None  # the faultcode's local part of a Fault
    elapsed: float
    raw: bytes = b""
    hung: bool = False  # no answer before the HTTP timeout


def post(url: str, message: bytes, timeout: float) -> Answer:
    """POST a signed request; return the answer and how long it took."""
    started = time.monotonic()
    try:
        response = requests.post(url, data=message, headers=HEADERS, timeout=timeout)
    except requests.exceptions.ReadTimeout:
        return Answer(None, None, time.monotonic() - started, hung=True)
    elapsed = time.monotonic() - started
    root = etree.fromstring(response.content)
    if root.find(f".//{{{SOAP11_ENV}}}Fault") is not None:
        assert response.status_code == 500
        return Answer(None, fault_of(response)[0], elapsed, response.content)
    assert response.status_code == 200
    return Answer(root.findtext(f".//{{{TNS}}}Status"), None, elapsed, response.content)


def ask(url: str, sign: Sign, *, timeout_s: float = TIMEOUT_S, code: str = bf.FULL) -> Answer:
    """Sign a request for ``code`` and POST it, with an HTTP timeout past the budget."""
    message = sign(envelope(request_body(code)))  # signed before the clock starts
    return post(url, message, budget(timeout_s) + HTTP_GRACE_S)


def assert_billing_fault(answer: Answer, timeout_s: float = TIMEOUT_S) -> None:
    """Assert the Fault Server.BillingUnavailable within the budget, with no cause shown."""
    assert not answer.hung, f"no answer within {answer.elapsed:.1f} s: the service hangs"
    assert answer.fault == FAULT, answer
    assert answer.elapsed < budget(timeout_s), f"Fault after {answer.elapsed:.2f} s"
    for leak in LEAKS:
        assert leak not in answer.raw, leak


def answers_ok_again(url: str, sign: Sign, attempts: int = 5) -> list[Answer]:
    """Ask until the answer is OK (at most ``attempts`` times); return every answer."""
    answers: list[Answer] = []
    for _ in range(attempts):
        answers.append(ask(url, sign))
        if answers[-1].status == "OK":
            break
        time.sleep(0.2)
    return answers


@pytest.fixture
def serve(serve_app: type[LiveServer], settings: Settings) -> Serve:
    """Serve the app for a billing URL (AZERSU_DB_TIMEOUT_S = TIMEOUT_S unless overridden)."""

    def _serve(billing_url: str, **overrides: object) -> LiveServer:
        overrides.setdefault("db_timeout_s", TIMEOUT_S)
        changed = dataclasses.replace(settings, billing_url=billing_url, **overrides)
        return serve_app(create_app(changed))

    return _serve


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def mute_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts TCP connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def faults_db(postgres_server: PostgresServer) -> str:
    """A database with the fixture rows, and a schema ``slow`` whose PAYMENT view sleeps."""
    url = postgres_server.create_database("billing_faults")
    bf.create_billing_db(url)
    with postgres_server.connect("billing_faults", autocommit=True) as conn:
        conn.execute("CREATE SCHEMA slow")
        conn.execute("CREATE VIEW slow.subscriber AS SELECT * FROM public.subscriber")
        conn.execute("CREATE VIEW slow.invoice AS SELECT * FROM public.invoice")
        conn.execute(
            "CREATE VIEW slow.payment AS SELECT p.* FROM public.payment p CROSS JOIN pg_sleep(10)"
        )
    return url


def _database(url: str) -> str:
    return make_url(url).database or ""


def _log_count(server: PostgresServer, text: str) -> int:
    return server.log_tail(100_000).count(text)


def _waiting_backend(server: PostgresServer, database: str, wait_s: float = 10.0) -> int:
    """Return the pid of the backend that waits on a lock in ``database``."""
    deadline = time.monotonic() + wait_s
    with server.connect(database, autocommit=True) as observer:
        while time.monotonic() < deadline:
            row = observer.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                (database,),
            ).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.02)
    pytest.fail(f"no query of the service blocked on the lock within {wait_s} s")


def _load_fixtures(server: PostgresServer) -> str:
    url = server.create_database("billing")
    bf.create_billing_db(url)
    return url


# --------------------------------------------------------------------------- unreachable

PG_URL = "postgresql://postgres@127.0.0.1:{port}/billing"
ORACLE_URL = "oracle+oracledb://u:p@127.0.0.1:{port}/?service_name=x"


@pytest.mark.parametrize(
    ("port_kind", "timeout_s"),
    [
        pytest.param("closed", TIMEOUT_S, id="closed-port"),
        pytest.param("mute", 2.0, id="mute-listener"),
        pytest.param("mute", TIMEOUT_S, id="mute-listener-timeout-below-2s"),
    ],
)
def test_postgresql_unreachable_is_a_fault_in_time(
    serve: Serve,
    sign: Sign,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    port_kind: str,
    timeout_s: float,
) -> None:
    port = request.getfixturevalue(f"{port_kind}_port")
    server = serve(PG_URL.format(port=port), db_timeout_s=timeout_s)
    for _ in range(2):  # and again: nothing is cached, nothing is stuck
        assert_billing_fault(ask(server.url, sign, timeout_s=timeout_s), timeout_s)
    # The cause is in the service's log (whatever it is), not in the answer.
    causes = [
        record.getMessage().partition(FAULT)[2].strip(": ")
        for record in caplog.records
        if record.name.startswith("service.") and FAULT in record.getMessage()
    ]
    assert causes and all(causes), caplog.text


@pytest.mark.parametrize(
    "port_kind",
    [
        pytest.param("closed", id="closed-port"),
        pytest.param("mute", id="mute-listener"),
    ],
)
def test_oracle_unreachable_is_a_fault_in_time(
    serve: Serve, sign: Sign, request: pytest.FixtureRequest, port_kind: str
) -> None:
    port = request.getfixturevalue(f"{port_kind}_port")
    server = serve(ORACLE_URL.format(port=port))  # the engine is lazy: no connection yet
    assert server.app.billing_engine.dialect.driver == "oracledb"
    assert_billing_fault(ask(server.url, sign))
    assert oracledb.is_thin_mode()  # the real driver, without Oracle Client libraries


# --------------------------------------------------------------------------- slower than timeout


@pytest.mark.parametrize(
    ("locked", "schema", "cause"),
    [
        pytest.param("subscriber", "", "canceling statement due to", id="lock-on-subscriber"),
        pytest.param("invoice", "", "canceling statement due to", id="lock-on-invoice"),
        pytest.param("payment", "", "canceling statement due to", id="lock-on-payment"),
        pytest.param(
            "", "slow", "canceling statement due to statement timeout", id="pg_sleep-in-view"
        ),
    ],
)
def test_slower_than_the_timeout_is_a_fault_in_time(
    postgres_server: PostgresServer,
    faults_db: str,
    serve: Serve,
    sign: Sign,
    locked: str,
    schema: str,
    cause: str,
) -> None:
    server = serve(faults_db, billing_schema=schema)
    database = _database(faults_db)
    cancelled_before = _log_count(postgres_server, cause)
    with postgres_server.connect(database) as locker:
        if locked:  # held until the end of the block (the transaction is rolled back)
            locker.execute(f"LOCK TABLE {locked} IN ACCESS EXCLUSIVE MODE")
        assert_billing_fault(ask(server.url, sign))
        locker.rollback()
    # The server cancelled the statement (the service's own deadline, not a dead socket).
    assert _log_count(postgres_server, cause) > cancelled_before
    if locked:  # once the lock is gone, the same service answers again
        assert ask(server.url, sign).status == "OK"


# --------------------------------------------------------------------------- fails mid-query

MIDQUERY_TIMEOUT_S = 30.0  # long: only the failure, never the timeout, may end the query
MIDQUERY_HTTP_TIMEOUT_S = 10.0


def _fail_mid_query(
    server: PostgresServer, database: str, url: str, sign: Sign, action: Callable[[int], None]
) -> Answer:
    """Block the service's query on a lock, then ``action(backend_pid)``; return the answer."""
    message = sign(envelope(request_body(bf.FULL)))
    locker = server.connect(database)
    try:
        locker.execute("LOCK TABLE subscriber IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(post, url, message, MIDQUERY_HTTP_TIMEOUT_S)
            action(_waiting_backend(server, database))
            return future.result(timeout=MIDQUERY_HTTP_TIMEOUT_S + 5)
    finally:
        with contextlib.suppress(Exception):  # the server may already be gone
            locker.close()  # rolls back


def test_backend_terminated_mid_query_is_a_fault(
    postgres_server: PostgresServer, faults_db: str, serve: Serve, sign: Sign
) -> None:
    server = serve(faults_db, db_timeout_s=MIDQUERY_TIMEOUT_S)
    database = _database(faults_db)
    assert ask(server.url, sign).status == "OK"  # a pooled connection exists

    def terminate(pid: int) -> None:
        with postgres_server.connect(database, autocommit=True) as admin:
            row = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
            assert row == (True,)

    answer = _fail_mid_query(postgres_server, database, server.url, sign, terminate)
    assert not answer.hung, "the service hangs after its backend was terminated"
    assert answer.fault == FAULT, answer
    # The dead connection is not handed out again: the next request is OK.
    assert ask(server.url, sign).status == "OK"


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_server_stopped_mid_query_is_a_fault_then_recovers(
    private_postgres_server: PostgresServer, serve: Serve, sign: Sign, mode: str
) -> None:
    pg = private_postgres_server
    url = _load_fixtures(pg)
    server = serve(url, db_timeout_s=MIDQUERY_TIMEOUT_S)
    answer = _fail_mid_query(pg, _database(url), server.url, sign, lambda _pid: pg.stop(mode))
    assert not answer.hung, f"the service hangs after pg_ctl stop -m {mode}"
    assert answer.fault == FAULT, answer
    pg.start()
    answers = answers_ok_again(server.url, sign)
    assert answers[-1].status == "OK", answers


# --------------------------------------------------------------------------- recovery


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_recovers_without_restart_when_postgresql_comes_back(
    private_postgres_server: PostgresServer, serve: Serve, sign: Sign, mode: str
) -> None:
    pg = private_postgres_server
    server = serve(_load_fixtures(pg))
    assert ask(server.url, sign).status == "OK"
    port = pg.port

    pg.stop(mode)
    assert not pg.running
    assert_billing_fault(ask(server.url, sign))
    assert_billing_fault(ask(server.url, sign))  # still down: still the Fault, in time

    pg.start()
    assert pg.port == port  # the same address the service was configured with
    answers = answers_ok_again(server.url, sign)
    assert answers[-1].status == "OK", answers
    assert all(a.fault == FAULT for a in answers[:-1]), answers


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_frozen_database_is_a_fault_in_time(
    private_postgres_server: PostgresServer, serve: Serve, sign: Sign
) -> None:
    pg = private_postgres_server
    url = _load_fixtures(pg)
    server = serve(url)
    assert ask(server.url, sign).status == "OK"  # the pool now holds a connection
    with pg.connect(_database(url), autocommit=True) as observer:
        pids = [
            int(pid)
            for (pid,) in observer.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                (_database(url),),
            )
        ]
    assert pids
    for pid in pids:  # the service's backends stop answering, their sockets stay open
        os.kill(pid, signal.SIGSTOP)
    try:
        answer = ask(server.url, sign)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert_billing_fault(answer)
