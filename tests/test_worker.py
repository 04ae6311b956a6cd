"""The front door under attack: a real ``serve`` (gunicorn, service.worker) on loopback.

Each attack comes from 127.0.0.3 while the legitimate caller signs and sends
real requests from 127.0.0.2, as two hosts would on a network.  During each
attack the caller's calls must keep a median under 0.5 s with none over 2 s,
and no worker may grow more than 50 MB over its resident size before the
attack.  The attack traffic is bounded in time and count.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
import selectors
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

from service.audit import AuditStore
from service.client import StatementClient
from service.worker import REFUSED_HOLD_S, ConnectionTable, client_key
from tests import billing_fixtures as bf
from tests.gunicorn_process import ServedProcess, fixture_service_env

pytestmark = pytest.mark.slow

ATTACKER = "127.0.0.3"
CALLER = "127.0.0.2"
MEDIAN_LIMIT_S = 0.5
MAX_LIMIT_S = 2.0
MEMORY_LIMIT_KB = 50 * 1024


class SourceAddressAdapter(HTTPAdapter):
    """A requests adapter whose connections leave from one local address."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]


def connect_from(source: str, port: int, timeout_s: float = 5.0) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(timeout_s)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_answer(sock: socket.socket, timeout_s: float = 10.0) -> bytes:
    """Read until the server closes the connection (or the time is up)."""
    sock.settimeout(timeout_s)
    data = bytearray()
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    return bytes(data)


def send_until_answered(sock: socket.socket, data: bytes, piece: int = 16384) -> bytes:
    """Send ``data`` piece by piece until the server answers; return the whole answer.

    Stopping at the first answer byte matters: a server that closes with
    unread input makes the kernel send a reset, which would drop the answer.
    """
    answer = bytearray()
    for start in range(0, len(data), piece):
        try:
            sock.sendall(data[start : start + piece])
        except OSError:
            break
        sock.settimeout(0.01)
        with contextlib.suppress(TimeoutError, BlockingIOError):
            answer += sock.recv(65536)
        if answer:
            break
    return bytes(answer) + read_answer(sock)


def worker_rss_kb(server: ServedProcess) -> dict[int, int]:
    sizes = {}
    for pid in server.worker_pids():
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[pid] = int(line.split()[1])
    return sizes


def closed_count(server: ServedProcess, reason: str) -> float:
    """Return ``azersu_connections_closed_total{reason=...}`` summed over the workers."""
    metrics = requests.get(f"{server.base_url}/metrics", timeout=5).text
    prefix = f'azersu_connections_closed_total{{reason="{reason}"}} '
    lines = metrics.splitlines()
    return sum(float(line[len(prefix) :]) for line in lines if line.startswith(prefix))


def audit_outcomes(var_dir: Path) -> list[str]:
    store = AuditStore.from_url(f"sqlite:///{var_dir / 'audit.sqlite'}")
    try:
        return [entry.outcome for entry in store.search(limit=100_000)]
    finally:
        store.close()


class Flood:
    """Many connections from one address, each fed ``tick`` every ``tick_s``, in a child process.

    A connection the server closes is opened again, so the pressure lasts
    until :meth:`stop`.  Whatever the server sends is read and dropped.  The
    attacker runs in its own process so that it never competes with the
    legitimate caller for this process's GIL.
    """

    def __init__(
        self,
        port: int,
        connections: int,
        opening: bytes,
        tick: bytes,
        tick_s: float,
        source: str = ATTACKER,
    ) -> None:
        self.port, self.size, self.source = port, connections, source
        self.opening, self.tick, self.tick_s = opening, tick, tick_s
        context = multiprocessing.get_context("fork")
        self._closed_by_server = context.Value("q", 0)
        self._stop = context.Event()
        self._process = context.Process(target=self._run, daemon=True)

    @property
    def closed_by_server(self) -> int:
        return int(self._closed_by_server.value)

    def __enter__(self) -> Flood:
        self._process.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()

    def _open(self, selector: selectors.BaseSelector) -> None:
        sock = socket.socket()
        sock.bind((self.source, 0))
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", self.port))
        selector.register(sock, selectors.EVENT_READ, bytearray(self.opening))

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        next_tick = time.monotonic()
        try:
            while not self._stop.is_set():
                while len(selector.get_map()) < self.size:
                    self._open(selector)
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + self.tick_s
                    for key in list(selector.get_map().values()):
                        key.data.extend(self.tick)
                for key in list(selector.get_map().values()):
                    if key.data:
                        self._send(selector, key)
                for key, _ in selector.select(timeout=0.05):
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        self._drop(selector, key.fileobj)
        finally:
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            selector.close()

    def _send(self, selector: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        try:
            sent = key.fileobj.send(key.data)  # type: ignore[union-attr]
            del key.data[:sent]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(selector, key.fileobj)

    def _drop(self, selector: selectors.BaseSelector, sock: object) -> None:
        with self._closed_by_server.get_lock():
            self._closed_by_server.value += 1
        selector.unregister(sock)
        sock.close()  # type: ignore[attr-defined]


class Caller:
    """The legitimate portal: signed calls from 127.0.0.2, each on a fresh connection."""

    def __init__(self, server: ServedProcess, portal_identity, trust) -> None:
        session = requests.Session()
        session.mount("http://", SourceAddressAdapter(CALLER))
        session.headers["Connection"] = "close"
        self.client = StatementClient(server.url, portal_identity, trust, session=session)

    def call_once(self) -> float:
        started = time.monotonic()
        assert self.client.call(bf.FULL, bf.FIN).response.Status == "OK"
        return time.monotonic() - started

    def during(self, seconds: float, sample: Callable[[], None] = lambda: None) -> list[float]:
        """Call for ``seconds``, one call after another; return each call's duration."""
        durations = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            durations.append(self.call_once())
            sample()
            time.sleep(0.05)
        return durations


@pytest.fixture(scope="module", autouse=True)
def _enough_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))


@pytest.fixture(scope="module")
def front_door(
    tmp_path_factory: pytest.TempPathFactory, pki, billing_db: str
) -> Iterator[ServedProcess]:
    """Two workers with the default limits, as ``make run`` serves."""
    var_dir = tmp_path_factory.mktemp("front-door")
    env = fixture_service_env(pki, billing_db, var_dir, AZERSU_WORKERS="2")
    server = ServedProcess(env, var_dir / "serve.log")
    server.var_dir = var_dir  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture
def caller(front_door: ServedProcess, portal_identity, trust) -> Caller:
    return Caller(front_door, portal_identity, trust)


def assert_served_well(durations: list[float]) -> None:
    assert durations, "no legitimate call was made"
    median = statistics.median(durations)
    assert median < MEDIAN_LIMIT_S, f"median {median:.3f} s over {len(durations)} calls"
    assert max(durations) < MAX_LIMIT_S, f"slowest {max(durations):.3f} s"


def attack_while_calling(
    server: ServedProcess, caller: Caller, flood: Flood, seconds: float = 8.0
) -> tuple[list[float], int]:
    """Run ``flood`` while the caller calls; return the durations and the largest RSS growth."""
    for _ in range(3):
        caller.call_once()  # warm: pools and caches as in service
    baseline = worker_rss_kb(server)
    growth = [0]

    def sample() -> None:
        for pid, size in worker_rss_kb(server).items():
            if pid in baseline:
                growth[0] = max(growth[0], size - baseline[pid])

    with flood:
        time.sleep(1.0)  # the attack is in full swing before the first measured call
        durations = caller.during(seconds, sample)
    return durations, growth[0]


_SLOW_HEAD = b"POST /soap HTTP/1.1\r\nHost: azersu\r\nX-Slow: "


@pytest.mark.parametrize(
    ("attack", "connections", "opening", "tick", "tick_s"),
    [
        # Slowloris: heads that never end, one byte a second.
        ("slowloris", 2100, _SLOW_HEAD, b"a", 1.0),
        # Keep-alive hoarding: a cheap request every 4 s on each connection.
        ("keepalive", 2100, b"", b"GET /healthz HTTP/1.1\r\nHost: azersu\r\n\r\n", 4.0),
    ],
)
def test_connection_floods_leave_the_caller_served(
    front_door: ServedProcess,
    caller: Caller,
    attack: str,
    connections: int,
    opening: bytes,
    tick: bytes,
    tick_s: float,
) -> None:
    flood = Flood(front_door.port, connections, opening, tick, tick_s)
    refused_before = closed_count(front_door, "per_client_limit")
    durations, growth_kb = attack_while_calling(front_door, caller, flood)
    assert_served_well(durations)
    assert growth_kb < MEMORY_LIMIT_KB
    # The defence at work: this attack's connections beyond its share were refused.
    assert closed_count(front_door, "per_client_limit") > refused_before + 1000


def _chunked_head() -> bytes:
    return (
        b"POST /soap HTTP/1.1\r\nHost: azersu\r\nContent-Type: text/xml; charset=utf-8\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )


class TinyChunks(Flood):
    """Four connections, each a megabyte of one-byte chunks, then one chunk every 50 ms."""

    def __init__(self, port: int) -> None:
        burst = _chunked_head() + b"1\r\na\r\n" * ((1 << 20) // 6)
        super().__init__(port, 4, burst, b"1\r\na\r\n", 0.05)


class TrailerFlood(Flood):
    """A chunked body whose trailer field never ends: 64 KiB more every 10 ms."""

    def __init__(self, port: int) -> None:
        super().__init__(
            port, 2, _chunked_head() + b"5\r\nhello\r\n0\r\nX-Trailer: ", b"A" * 65536, 0.01
        )


@pytest.mark.parametrize("flood_class", [TinyChunks, TrailerFlood])
def test_body_floods_are_refused_and_leave_the_caller_served(
    front_door: ServedProcess, caller: Caller, flood_class: type[Flood]
) -> None:
    flood = flood_class(front_door.port)
    durations, growth_kb = attack_while_calling(front_door, caller, flood)
    assert_served_well(durations)
    assert growth_kb < MEMORY_LIMIT_KB
    assert flood.closed_by_server > 0  # refused, not kept waiting


@pytest.mark.parametrize(
    ("name", "request_bytes", "status", "why"),
    [
        (
            "one-byte chunks",
            _chunked_head() + b"1\r\na\r\n" * 2000 + b"0\r\n\r\n",
            400,
            b"more than 1024 chunks",
        ),
        (
            "endless trailer",
            _chunked_head() + b"5\r\nhello\r\n0\r\nX-Trailer: " + b"A" * (2 << 20),
            431,
            b"",
        ),
    ],
)
def test_body_framing_limits_answer_with_their_status(
    front_door: ServedProcess, name: str, request_bytes: bytes, status: int, why: bytes
) -> None:
    with connect_from(ATTACKER, front_door.port) as sock:
        answer = send_until_answered(sock, request_bytes)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    assert why in answer
    assert f"HTTP_{status}" in audit_outcomes(front_door.var_dir)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("bare LF inside a value", b"X-Note: a\nContent-Length: 5"),
        ("bare CR inside a value", b"X-Note: a\rb"),
        ("NUL inside a value", b"X-Note: a\x00b"),
        ("obsolete line folding", b"X-Note: a\r\n folded"),
        ("space before the colon", b"Content-Length : 5"),
    ],
)
def test_dangerous_header_fields_are_refused_and_audited(
    front_door: ServedProcess, name: str, field: bytes
) -> None:
    request = b"POST /soap HTTP/1.1\r\nHost: azersu\r\n" + field + b"\r\n\r\n"
    before = audit_outcomes(front_door.var_dir).count("HTTP_400")  # type: ignore[attr-defined]
    with connect_from(ATTACKER, front_door.port) as sock:
        sock.sendall(request)
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    after = audit_outcomes(front_door.var_dir).count("HTTP_400")  # type: ignore[attr-defined]
    assert after == before + 1


@pytest.mark.parametrize(
    ("name", "request_bytes", "status"),
    [
        ("GET /soap without ?wsdl", b"GET /soap HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        ("PUT /soap", b"PUT /soap HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 405),
        (
            "too large",
            b"POST /soap HTTP/1.1\r\nHost: a\r\nContent-Type: text/xml\r\n"
            b"Content-Length: 999999999\r\n\r\n",
            413,
        ),
        (
            "not XML",
            b"POST /soap HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\n\r\n{}",
            415,
        ),
        (
            "header fields too large",
            b"POST /soap HTTP/1.1\r\nHost: a\r\n" + b"X-Big: " + b"b" * 9000 + b"\r\n\r\n",
            431,
        ),
        ("malformed request line", b"POST  /soap HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ],
)
def test_every_http_refusal_on_soap_is_audited(
    front_door: ServedProcess, name: str, request_bytes: bytes, status: int
) -> None:
    outcome = f"HTTP_{status}"
    before = audit_outcomes(front_door.var_dir).count(outcome)  # type: ignore[attr-defined]
    with connect_from(ATTACKER, front_door.port) as sock:
        sock.sendall(request_bytes)
        answer = read_answer(sock, timeout_s=10)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    after = audit_outcomes(front_door.var_dir).count(outcome)  # type: ignore[attr-defined]
    assert after == before + 1


def test_a_trickled_body_is_dropped_at_the_request_deadline(
    tmp_path: Path, pki, billing_db: str
) -> None:
    env = fixture_service_env(pki, billing_db, tmp_path, AZERSU_REQUEST_TIMEOUT_S="2")
    server = ServedProcess(env, tmp_path / "serve.log")
    try:
        with connect_from(ATTACKER, server.port) as sock:
            sock.sendall(
                b"POST /soap HTTP/1.1\r\nHost: a\r\nContent-Type: text/xml\r\n"
                b"Content-Length: 1000\r\n\r\n<"
            )
            started = time.monotonic()
            answer = read_answer(sock, timeout_s=10)
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 ")  # then closed: no application slot held
        assert 1.5 < waited < 5
        assert "HTTP_408" in audit_outcomes(tmp_path)
    finally:
        server.stop()


def test_idle_connections_are_shed_when_the_worker_is_full(
    tmp_path: Path, pki, billing_db: str, portal_identity, trust
) -> None:
    # One worker of 100 connections, no per-client limit to speak of: the
    # attacker parks 300 idle keep-alive connections from four addresses.
    env = fixture_service_env(
        pki,
        billing_db,
        tmp_path,
        AZERSU_WORKER_CONNECTIONS="100",
        AZERSU_MAX_CONNECTIONS_PER_CLIENT="10000",
        AZERSU_KEEPALIVE_S="60",
    )
    server = ServedProcess(env, tmp_path / "serve.log")
    floods = [
        Flood(server.port, 75, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", b"", 60.0, source)
        for source in ("127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6")
    ]
    try:
        for flood in floods:
            flood.__enter__()
        time.sleep(2.0)
        durations = Caller(server, portal_identity, trust).during(4.0)
        # Every call gets in and is answered in time, although the worker is
        # full and the attacker reconnects each shed connection at once (a
        # churn that costs the worker CPU: the 0.5 s median bound is for the
        # attacks above, which the per-client limit stops at the door).
        assert durations
        assert max(durations) < MAX_LIMIT_S, f"slowest {max(durations):.3f} s"
        assert closed_count(server, "shed") > 0
    finally:
        for flood in floods:
            flood.stop()
        server.stop()


# --- the connection table alone -----------------------------------------------------------------


class _FakeSocket:
    def __init__(self) -> None:
        self.shut = False
        self.closed = False

    def shutdown(self, _how: int) -> None:
        self.shut = True

    def dup(self) -> _FakeSocket:
        return _FakeSocket()

    def close(self) -> None:
        self.closed = True


def test_the_table_counts_per_client_and_forgets_on_release() -> None:
    closed: list[str] = []
    table = ConnectionTable(capacity=100, per_client=2, closed=closed.append)
    first, second = table.admit(_FakeSocket(), "a"), table.admit(_FakeSocket(), "a")
    assert first is not None and second is not None
    assert table.admit(_FakeSocket(), "a") is None
    assert closed == ["per_client_limit"]
    assert table.admit(_FakeSocket(), "b") is not None  # another client has its own share
    table.release(first)
    table.release(first)  # idempotent
    assert table.by_client == {"a": 1, "b": 1}
    assert table.admit(_FakeSocket(), "a") is not None


def test_one_admitted_connection_sheds_one_waiting_connection_the_oldest() -> None:
    closed: list[str] = []
    table = ConnectionTable(capacity=20, per_client=100, closed=closed.append)
    connections = [table.admit(_FakeSocket(), f"c{i}") for i in range(18)]
    waits = [table.waiting_for_request(c) for c in connections]  # all idle, oldest first
    for wait in waits:
        wait.__enter__()
    assert table.admit(_FakeSocket(), "new") is not None  # the 19th: over 90 % of 20
    assert closed == ["shed"]
    assert [c.sock.shut for c in connections] == [True] + [False] * 17
    assert len(table.open) == 18


def test_a_connection_answering_a_request_is_never_shed() -> None:
    table = ConnectionTable(capacity=10, per_client=100)
    busy = [table.admit(_FakeSocket(), f"c{i}") for i in range(9)]
    assert table.admit(_FakeSocket(), "new") is not None  # nobody waits: nobody is shed
    assert not any(c.sock.shut for c in busy)


def test_refused_connections_are_held_then_closed_oldest_first() -> None:
    table = ConnectionTable(capacity=2, per_client=1)
    held = []
    for _ in range(3):
        sock = _FakeSocket()
        table.hold_refused(sock)
    held = [sock for _, sock in table.refused]
    assert len(held) == 2  # at most `capacity` held: the oldest was closed at once
    table.close_refused(time.monotonic())
    assert not any(s.closed for s in held)  # not before their time
    table.close_refused(time.monotonic() + REFUSED_HOLD_S + 1)
    assert all(s.closed for s in held) and not table.refused


@pytest.mark.parametrize(
    ("addr", "key"),
    [
        (("192.0.2.7", 5000), "192.0.2.7"),
        (("2001:db8:1:2:aaaa::1", 5000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:bbbb::9", 5000, 0, 0), "2001:db8:1:2::/64"),
        (("::ffff:192.0.2.7", 5000, 0, 0), "192.0.2.7"),
        ("", ""),
    ],
)
def test_clients_are_counted_by_ipv4_address_or_ipv6_64(addr: object, key: str) -> None:
    assert client_key(addr) == key


def test_a_refused_connection_stays_open_while_it_is_held(
    tmp_path: Path, pki, billing_db: str
) -> None:
    env = fixture_service_env(pki, billing_db, tmp_path, AZERSU_MAX_CONNECTIONS_PER_CLIENT="1")
    server = ServedProcess(env, tmp_path / "serve.log")
    try:
        with connect_from(ATTACKER, server.port) as first:
            first.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            assert first.recv(100).startswith(b"HTTP/1.1 200")
            with connect_from(ATTACKER, server.port) as refused:
                refused.settimeout(2.0)
                started = time.monotonic()
                with pytest.raises(TimeoutError):
                    refused.recv(100)  # neither answered nor closed: held
                assert time.monotonic() - started >= 1.9
    finally:
        server.stop()
