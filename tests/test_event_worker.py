"""The event-loop worker's HTTP: parsing, framing, keep-alive, limits -- over real sockets.

The rest of the suite already runs the service through this worker (SQLite
billing, in-memory replay cache: what ``service.serving.worker_class``
chooses); these cases are the HTTP edges that zeep and requests never send.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from service.event_worker import EventLoopWorker, HttpError, parse_head, read_chunked
from service.serving import worker_class
from service.settings import Settings
from service.signing.wsse import WsseVerifier
from tests import billing_fixtures as bf
from tests.gunicorn_process import ServedProcess, fixture_service_env
from tests.test_properties import request_envelope

MAX_BODY = 4096


@pytest.fixture(scope="module")
def server(
    billing_db: str, pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    folder = tmp_path_factory.mktemp("event-worker")
    env = fixture_service_env(
        pki,
        billing_db,
        folder / "var",
        AZERSU_KEEPALIVE_S="2",
        AZERSU_MAX_BODY_BYTES=str(MAX_BODY),
    )
    served = ServedProcess(env, folder / "serve.log")
    yield served
    assert served.stop() == 0, served.log_text()


@pytest.fixture
def signed_body(sign: Callable[[bytes], bytes]) -> bytes:
    return sign(request_envelope((bf.FULL, bf.FIN, "az")))


def _connect(server: ServedProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """Read one response (status, lower-cased headers, body) from ``sock``."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response head")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buffer) < end + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the body")
        buffer += chunk
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return int(lines[0].split()[1]), headers, body


def _closed(sock: socket.socket, within_s: float = 5) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _post(body: bytes, extra: str = "") -> bytes:
    return (
        f"POST /soap HTTP/1.1\r\nHost: test\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _chunked(body: bytes, size: int = 700) -> bytes:
    chunks = b"".join(
        f"{len(body[i : i + size]):x}\r\n".encode() + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    )
    return chunks + b"0\r\n\r\n"


def test_keep_alive_and_pipelining_answer_in_order(server: ServedProcess) -> None:
    with _connect(server) as sock:
        buffer = bytearray()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_response(sock, buffer)[0] == 200
        # Two requests in one packet: both answered, in order, on the same connection.
        sock.sendall(
            b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        first, second = _read_response(sock, buffer), _read_response(sock, buffer)
        assert (first[0], second[0]) == (404, 200)
        assert second[1]["connection"] == "keep-alive"


def test_signed_request_with_content_length_and_chunked(
    server: ServedProcess, signed_body: bytes, sign: Callable[[bytes], bytes]
) -> None:
    with _connect(server) as sock:
        buffer = bytearray()
        sock.sendall(_post(signed_body))
        status, headers, body = _read_response(sock, buffer)
        assert status == 200 and b">OK</" in body, body[:300]
        assert headers["content-type"] == "text/xml; charset=utf-8"
        # The same connection, a fresh request, sent chunked (as a streaming client would).
        again = sign(request_envelope((bf.FULL, bf.FIN, "en")))
        head = (
            "POST /soap HTTP/1.1\r\nHost: t\r\nContent-Type: text/xml; charset=utf-8\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode() + _chunked(again))
        status, _, body = _read_response(sock, buffer)
        assert status == 200 and b">OK</" in body, body[:300]


def test_expect_100_continue(server: ServedProcess, signed_body: bytes) -> None:
    with _connect(server) as sock:
        sock.sendall(
            _post(b"", "Expect: 100-continue\r\n").replace(
                b"Length: 0", b"Length: %d" % len(signed_body)
            )
        )
        interim = sock.recv(64)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        buffer = bytearray(interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :])
        sock.sendall(signed_body)
        status, _, body = _read_response(sock, buffer)
        assert status == 200 and b">OK</" in body


@pytest.mark.parametrize(
    ("name", "request_bytes", "status"),
    [
        ("garbage", b"HELLO\r\n\r\n", 400),
        ("no_version", b"GET /healthz\r\n\r\n", 400),
        ("http2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ("http_0_9_version", b"GET /healthz HTTP/0.9\r\n\r\n", 505),
        ("absolute_form", b"GET http://x/healthz HTTP/1.1\r\n\r\n", 400),
        ("folded_header", b"GET /healthz HTTP/1.1\r\nHost: t\r\n x: y\r\n\r\n", 400),
        ("space_in_name", b"GET /healthz HTTP/1.1\r\nHo st: t\r\n\r\n", 400),
        (
            "both_framings",
            b"POST /soap HTTP/1.1\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "two_lengths",
            b"POST /soap HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            400,
        ),
        ("signed_length", b"POST /soap HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", 400),
        ("gzip_coding", b"POST /soap HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("bad_chunk_size", b"POST /soap HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ("too_many_fields", b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
        ("line_too_long", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 400),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_malformed_requests_are_refused_and_closed(
    server: ServedProcess, name: str, request_bytes: bytes, status: int
) -> None:
    with _connect(server) as sock:
        sock.sendall(request_bytes)
        got, headers, _ = _read_response(sock, bytearray())
        assert got == status
        assert headers["connection"] == "close"
        assert _closed(sock)
    # The worker is still there for the next client.
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_response(sock, bytearray())[0] == 200


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_unread(server: ServedProcess, framing: str) -> None:
    """A client that sends all of a big body before it reads (as requests does) gets the 413."""
    body = b"<x>" + b"a" * 600_000 + b"</x>"
    with _connect(server) as sock:
        if framing == "chunked":
            head = (
                b"POST /soap HTTP/1.1\r\nHost: t\r\nContent-Type: text/xml\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            sock.sendall(head + _chunked(body))
        else:
            sock.sendall(_post(b"").replace(b"Length: 0", b"Length: %d" % len(body)))
        status, headers, _ = _read_response(sock, bytearray())
        assert status == 413 and headers["connection"] == "close"
        assert _closed(sock)


def test_http_1_0_closes_and_head_has_no_body(server: ServedProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /soap?wsdl HTTP/1.0\r\nHost: t\r\n\r\n")
        status, headers, wsdl = _read_response(sock, bytearray())
        assert status == 200 and wsdl.startswith(b"<?xml") and headers["connection"] == "close"
        assert _closed(sock)
    with _connect(server) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
        buffer = bytearray()
        while buffer.count(b"\r\n\r\n") < 2:
            buffer += sock.recv(4096)
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        # The same length as the GET's body, and no body: the next bytes are the GET's answer.
        assert b"Content-Length: 3\r\n" in head and rest.startswith(b"HTTP/1.1 200 OK")


def test_idle_and_half_sent_connections_are_closed(server: ServedProcess) -> None:
    with _connect(server) as idle:
        started = time.monotonic()
        assert _closed(idle, within_s=10)
        assert time.monotonic() - started < 6  # AZERSU_KEEPALIVE_S=2, checked about once a second


def test_every_refused_soap_post_is_audited(server: ServedProcess) -> None:
    """A 413 from the gateway is a request too: it gets an audit record (HTTP_413)."""
    with _connect(server) as sock:
        sock.sendall(_post(b"").replace(b"Length: 0", b"Length: %d" % (MAX_BODY + 1)))
        assert _read_response(sock, bytearray())[0] == 413
    records = [r for r in server.log_records() if r.get("message") == "request"]
    assert any(r.get("outcome") == "HTTP_413" for r in records)


# ------------------------------------------------------------ closing, one loop turn at a time


class LoopHarness:
    """An :class:`EventLoopWorker` in the test's own process, driven turn by turn.

    It serves one TCP loopback connection with a plain WSGI app, so a case can
    put the loop exactly where a signal or a late packet would find it.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        cfg = Config()
        cfg.set("keepalive", 5)
        self.worker = EventLoopWorker(
            0, os.getpid(), [], None, 30, cfg, logging.getLogger("tests.event_worker")
        )
        self.worker.PIPE = list(os.pipe())
        for fd in self.worker.PIPE:
            os.set_blocking(fd, False)
        self.worker.init_loop()
        self.worker.wsgi = app
        with socket.create_server(("127.0.0.1", 0)) as listener:
            self.client = socket.create_connection(listener.getsockname(), timeout=5)
            accepted, address = listener.accept()
        self.connection = self.worker.adopt(accepted, address)

    def turns(self, count: int = 5) -> None:
        for _ in range(count):
            self.worker._turn(0.02)

    def close(self) -> None:
        self.client.close()
        for connection in list(self.worker.connections.values()):
            self.worker._close(connection)
        self.worker.selector.close()
        for fd in self.worker.PIPE:
            os.close(fd)
        self.worker.tmp.close()


def _hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.fixture
def loop() -> Iterator[LoopHarness]:
    harness = LoopHarness(_hello)
    yield harness
    harness.close()


def _read_to_eof(sock: socket.socket) -> bytes:
    """Read until the peer's FIN; a reset raises (it may have destroyed unread data)."""
    sock.settimeout(5)
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def test_a_stop_during_an_answer_keeps_the_kept_alive_connection(
    loop: LoopHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM lands while an answer announcing keep-alive is written (the CI flake).

    The client may reuse the connection at once: the worker answers that next
    request with "Connection: close" instead of closing under it.
    """
    write_date = loop.worker._http_date

    def stop_mid_answer() -> str:
        loop.worker.alive = False  # what gunicorn's SIGTERM handler does
        return write_date()

    monkeypatch.setattr(loop.worker, "_http_date", stop_mid_answer)
    loop.client.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
    loop.turns()
    buffer = bytearray()
    status, headers, body = _read_response(loop.client, buffer)
    assert (status, headers["connection"], body) == (200, "keep-alive", b"hello")
    assert loop.connection.state == "idle"
    loop.client.sendall(b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n")
    loop.turns()
    status, headers, body = _read_response(loop.client, buffer)
    assert (status, headers["connection"], body) == (200, "close", b"hello")
    assert _read_to_eof(loop.client) == b""


def test_unread_input_after_the_last_answer_is_drained_not_reset(loop: LoopHarness) -> None:
    """Closing with unread bytes makes the kernel reset the connection.

    A reset can destroy the answer before the client reads it. The worker
    half-closes and drops what still comes, so the client reads its answer
    and then a clean end of stream.
    """
    trailing = b"x" * 300_000  # more than one read of the loop
    loop.client.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + trailing)
    loop.turns()
    assert loop.connection.state == "closing"
    loop.client.shutdown(socket.SHUT_WR)
    loop.turns(20)
    status, headers, body = _read_response(loop.client, bytearray(_read_to_eof(loop.client)))
    assert (status, headers["connection"], body) == (200, "close", b"hello")
    assert loop.worker.connections == {}


def test_a_lingering_close_ends_for_a_client_that_keeps_sending(
    loop: LoopHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.event_worker.CLOSE_LINGER_BYTES", 1000)
    loop.client.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    loop.turns()
    assert loop.connection.state == "closing"
    loop.client.sendall(b"y" * 5000)  # over the drain budget: the worker stops listening
    loop.turns()
    assert loop.worker.connections == {}


def test_an_expired_idle_connection_with_a_request_waiting_is_answered(
    loop: LoopHarness,
) -> None:
    """The keep-alive time ran out just as the request arrived: answer it, don't drop it."""
    loop.client.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
    time.sleep(0.05)  # on loopback the bytes are there now; the loop hasn't looked yet
    loop.connection.deadline = 0.0
    loop.worker._next_expiry_check = 0.0
    loop.worker._expire(time.monotonic())
    assert loop.connection.state == "idle" and loop.worker.connections
    loop.turns()
    assert _read_response(loop.client, bytearray())[:1] == (200,)


# --------------------------------------------------------------------------- the parser alone


def test_parse_head_gives_the_wsgi_environ() -> None:
    request = parse_head(
        b"POST /soap%20x?wsdl HTTP/1.1\r\nHost: e-gov.az:8080\r\nContent-Type: text/xml\r\n"
        b"Content-Length: 12\r\nX-Road-Client: a\r\nX-Road-Client: b\r\nConnection: Keep-Alive"
    )
    environ = request.environ
    assert environ["PATH_INFO"] == "/soap x" and environ["QUERY_STRING"] == "wsdl"
    assert environ["CONTENT_TYPE"] == "text/xml" and environ["CONTENT_LENGTH"] == "12"
    assert environ["HTTP_X_ROAD_CLIENT"] == "a,b" and request.keep_alive
    assert parse_head(b"GET / HTTP/1.0\r\nHost: x").keep_alive is False
    assert parse_head(b"GET / HTTP/1.1\r\nConnection: close").keep_alive is False


@pytest.mark.parametrize(
    ("data", "limit", "expected"),
    [
        (b"5\r\nhello\r\n0\r\n\r\n", 100, (b"hello", 15)),
        (
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT",
            100,
            (b"hello world", 44),
        ),
        (b"5\r\nhel", 100, None),
        (b"5\r\nhello\r\n0\r\n", 100, None),
        (b"a\r\n0123456789\r\n0\r\n\r\n", 4, (b"01234", 15)),
    ],
)
def test_read_chunked(data: bytes, limit: int, expected: tuple[bytes, int] | None) -> None:
    assert read_chunked(bytearray(data), 0, limit) == expected


@pytest.mark.parametrize("data", [b"5\r\nhelloXX0\r\n\r\n", b"-1\r\n", b"x" * 2000])
def test_read_chunked_refuses_malformed_chunks(data: bytes) -> None:
    with pytest.raises(HttpError):
        read_chunked(bytearray(data), 0, 100)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "service.event_worker.EventLoopWorker"),
        ({"replay_url": "redis://localhost:6379/0"}, "gthread"),
        ({"billing_url": "postgresql://billing@db/billing"}, "gthread"),
        ({"worker": "gthread"}, "gthread"),
        (
            {"worker": "event", "billing_url": "postgresql://billing@db/billing"},
            "service.event_worker.EventLoopWorker",
        ),
    ],
)
def test_worker_class_follows_where_requests_wait(overrides: dict[str, str], expected: str) -> None:
    import dataclasses

    assert worker_class(dataclasses.replace(Settings(), **overrides)) == expected


# --------------------------------------------------------------------------- fuzzing the parser

_HEAD_PARTS = st.sampled_from(
    [
        b"GET / HTTP/1.1",
        b"POST /soap HTTP/1.1",
        b"Content-Length: 5",
        b"Content-Length: -1",
        b"Transfer-Encoding: chunked",
        b"Connection: close",
        b"Expect: 100-continue",
        b"Host: x",
        b" folded",
        b":",
        b"\x00",
        b"HTTP/1.0",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_HEAD_PARTS, st.binary(max_size=40)), max_size=12))
def test_parse_head_raises_only_http_errors(parts: list[bytes]) -> None:
    try:
        request = parse_head(b"\r\n".join(parts))
    except HttpError as error:
        assert error.code in (400, 431, 501, 505)
    else:
        assert request.environ["REQUEST_METHOD"].isalpha()
        assert request.length >= 0


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=64))
def test_read_chunked_raises_only_http_errors(data: bytes, limit: int) -> None:
    try:
        result = read_chunked(bytearray(data), 0, limit)
    except HttpError as error:
        assert error.code == 400
    else:
        if result is not None:
            body, end = result
            assert len(body) <= limit + 1 and 0 < end <= len(data)


def test_no_answer_leaves_without_its_record(
    billing_db: str,
    pki: dict[str, Path],
    tmp_path: Path,
    signed_body: bytes,
    sign: Callable[[bytes], bytes],
    trust,
) -> None:
    """The deferred path fails closed: a record that can't be committed withholds the answer."""
    audit = tmp_path / "audit.sqlite"
    env = fixture_service_env(
        pki, billing_db, tmp_path / "var", AZERSU_AUDIT_URL=f"sqlite:///{audit}"
    )
    served = ServedProcess(env, tmp_path / "serve.log")
    try:
        with _connect(served) as sock:
            buffer = bytearray()
            sock.sendall(_post(signed_body))
            status, _, body = _read_response(sock, buffer)
            assert status == 200 and b">OK</" in body
            with sqlite3.connect(audit) as outside:
                outside.execute("DROP TABLE audit_record")
            # A fresh, valid request: its statement is built and signed, then withheld.
            sock.sendall(_post(sign(request_envelope((bf.FULL, bf.FIN, "en")))))
            status, _, body = _read_response(sock, buffer)
        assert status == 500
        root = etree.fromstring(body)
        WsseVerifier(trust, None).verify(root)  # the refusal is signed
        assert root.findtext(".//faultcode").endswith("Server.AuditUnavailable")
        assert b"Statement" not in body and bf.AZ_LAST.encode() not in body
        outcomes = [r.get("outcome") for r in served.log_records() if r.get("message") == "request"]
        assert outcomes == ["OK", "Server.AuditUnavailable"]
    finally:
        assert served.stop() == 0, served.log_text()
