"""The gunicorn worker of the service: one thread runs every request of the process.

gunicorn's ``gthread`` worker runs each request on a thread of a pool, and the
request holds its thread while its audit record is committed (an fsync).  A
worker therefore needs several threads to keep its core busy, and threads of
one process take turns for the GIL: every time the running thread lets the
GIL go -- on each SQLite row, each socket call, each lock -- a waiting thread
is woken, mostly to find it taken again.  On the 2-core benchmark machine that
cost about 0.5 ms of CPU per request, a fifth of the total (measured in one
process: 2.2 ms per request from one thread, 3.0 ms from four).

This worker keeps gunicorn's master (process management, SIGHUP reload,
graceful stop, heartbeats) and replaces the request threads by one event
loop per process:

* the loop accepts connections, reads and parses HTTP/1.1 requests itself
  (keep-alive, ``Content-Length`` or ``chunked`` bodies, ``Expect:
  100-continue``) and runs the service for each complete request;
* a SOAP request is prepared in full -- verified, answered, signed -- then
  its audit entry goes to the group committer without waiting
  (:meth:`service.audit.AuditStore.record_later`); the loop goes on with the
  next request, and sends the answer when the commit is reported (or the
  Fault ``Server.AuditUnavailable`` if it fails or doesn't come in time).
  Requests prepared while a commit is on disk share the next one;
* other paths (WSDL, health, metrics) are plain WSGI calls.

Nothing waits inside the loop except the service's own bounded work: the
billing reads (SQLite is local; a network database is bounded by
``AZERSU_DB_TIMEOUT_S`` and its deadline) and a Redis replay check.  With a
network billing database the gthread worker overlaps those waits better:
:mod:`service.serving` uses this worker with SQLite billing and the in-memory
replay cache, gthread otherwise (and always with TLS, whose handshakes this
loop does not do).

Limits, as gunicorn's defaults: a request line of at most 4094 bytes, at most
100 header fields of 8190 bytes each; bodies up to ``AZERSU_MAX_BODY_BYTES``
(a larger one is answered 413 by the gateway without being read, and the
connection is closed); at most ``worker_connections`` open connections; an
idle connection closes after ``keepalive`` seconds, a request that doesn't
arrive in full within ``REQUEST_TIMEOUT_S`` is dropped.

Closing, the loop keeps its word to the client (RFC 9112 section 9.6):

* an answer says ``Connection: close`` exactly when the connection is closed
  after it.  A worker told to stop while an answer is being written doesn't
  close a connection that answer declared kept alive: the client may be
  sending its next request on it already.  That request is answered (with
  ``Connection: close``) within ``STOP_KEEPALIVE_LINGER``.  A CI run of the
  SIGHUP test lost a request to this: SIGTERM came between the answer's head
  and the close, and the client's next request was already in the socket;
* after its last answer a connection is half-closed (FIN) and what the client
  still sends is read and dropped until it closes too, for
  ``CLOSE_LINGER_S`` and ``CLOSE_LINGER_BYTES`` at most.  Closing a socket
  with unread data makes the kernel send a reset, which can destroy the
  answer before the client reads it;
* an idle connection whose time is up is not closed while a request is
  already waiting on it.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import errno
import functools
import io
import os
import re
import selectors
import socket
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from gunicorn.workers.base import Worker

from service.errors import AuditUnavailable
from service.soap_gateway import call_wsgi

#: Seconds a started request may take to arrive in full (slow clients are dropped).
REQUEST_TIMEOUT_S = 30.0
#: Seconds an answer may take to leave (a client that doesn't read is dropped).
WRITE_TIMEOUT_S = 30.0
#: Seconds a stopping worker keeps its kept-alive connections open (gthread's value).
STOP_KEEPALIVE_LINGER = 2.0
#: Seconds, and bytes, a closing connection is drained after its last answer (see ``_linger``).
CLOSE_LINGER_S = 2.0
CLOSE_LINGER_BYTES = 1 << 20
MAX_REQUEST_LINE = 4094
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD = 8190
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_METHOD = re.compile(rb"[A-Z]{1,16}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})(?:;[^\r\n]*)?")
_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """A request the loop refuses itself (it never reaches the service); the connection closes."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class Request:
    """One parsed request: the WSGI environ without its input, and the body when complete."""

    __slots__ = ("body", "chunked", "environ", "expect_continue", "keep_alive", "length")

    def __init__(self) -> None:
        self.environ: dict[str, Any] = {}
        self.keep_alive = True
        self.length = 0
        self.chunked = False
        self.expect_continue = False
        self.body = b""


def parse_head(head: bytes) -> Request:
    """Parse a request line and header fields (``head`` without the blank line)."""
    lines = head.split(b"\r\n")
    request_line = lines[0]
    if len(request_line) > MAX_REQUEST_LINE:
        raise HttpError(400, "request line too long")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not _METHOD.fullmatch(parts[0]):
        raise HttpError(400, f"malformed request line {request_line[:80]!r}")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise HttpError(505 if version.startswith(b"HTTP/") else 400, f"version {version[:20]!r}")
    if not target.startswith(b"/"):
        raise HttpError(400, "only origin-form request targets are served")
    if len(lines) - 1 > MAX_HEADER_FIELDS:
        raise HttpError(431, "too many header fields")
    request = Request()
    environ = request.environ
    path, _, query = target.partition(b"?")
    environ["REQUEST_METHOD"] = method.decode("ascii")
    environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1")
    environ["QUERY_STRING"] = query.decode("latin-1")
    environ["RAW_URI"] = target.decode("latin-1")
    environ["SERVER_PROTOCOL"] = version.decode("ascii")
    lengths: set[bytes] = set()
    connection_tokens: set[bytes] = set()
    transfer_encoding: bytes | None = None
    for line in lines[1:]:
        if len(line) > MAX_HEADER_FIELD:
            raise HttpError(431, "header field too long")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            # Also refuses obsolete line folding (a line starting with a space).
            raise HttpError(400, f"malformed header field {line[:40]!r}")
        value = value.strip(b" \t")
        key = name.upper()
        if key == b"CONTENT-LENGTH":
            lengths.add(value)
        elif key == b"TRANSFER-ENCODING":
            if transfer_encoding is not None:
                raise HttpError(400, "Transfer-Encoding given twice")
            transfer_encoding = value.lower()
        elif key == b"CONNECTION":
            connection_tokens.update(t.strip().lower() for t in value.split(b","))
        elif key == b"EXPECT":
            request.expect_continue = value.lower() == b"100-continue"
        text = value.decode("latin-1")
        if key == b"CONTENT-TYPE":
            environ["CONTENT_TYPE"] = text
            continue
        if key == b"CONTENT-LENGTH":
            continue
        wsgi_name = "HTTP_" + key.decode("ascii").replace("-", "_")
        environ[wsgi_name] = f"{environ[wsgi_name]},{text}" if wsgi_name in environ else text
    if transfer_encoding is not None:
        # Both framings at once is how requests are smuggled: refuse it.
        if lengths:
            raise HttpError(400, "both Content-Length and Transfer-Encoding")
        if transfer_encoding != b"chunked" or version == b"HTTP/1.0":
            raise HttpError(501, f"Transfer-Encoding {transfer_encoding[:20]!r}")
        request.chunked = True
    elif lengths:
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise HttpError(400, f"Content-Length {sorted(lengths)!r}")
        request.length = int(next(iter(lengths)))
        environ["CONTENT_LENGTH"] = str(request.length)
    if version == b"HTTP/1.0":
        request.keep_alive = b"keep-alive" in connection_tokens
    else:
        request.keep_alive = b"close" not in connection_tokens
    return request


def read_chunked(buffer: bytearray, start: int, limit: int) -> tuple[bytes, int] | None:
    """Decode a chunked body from ``buffer[start:]``: (body, end offset), or None if incomplete.

    A body past ``limit`` bytes is cut at ``limit + 1`` (the gateway answers
    413); the connection is closed after it, so the rest is never read.
    """
    body = bytearray()
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position, position + 1024)
        if line_end < 0:
            if len(buffer) - position > 1024:
                raise HttpError(400, "malformed chunk size")
            return None
        match = _CHUNK_SIZE.fullmatch(bytes(buffer[position:line_end]))
        if match is None:
            raise HttpError(400, "malformed chunk size")
        size = int(match.group(1), 16)
        position = line_end + 2
        if size == 0:
            # Trailer fields, then the blank line.
            while True:
                trailer_end = buffer.find(b"\r\n", position, position + MAX_HEADER_FIELD)
                if trailer_end < 0:
                    return None
                if trailer_end == position:
                    return bytes(body), trailer_end + 2
                position = trailer_end + 2
        if len(buffer) < position + size + 2:
            if len(body) + len(buffer) - position > limit:
                body += buffer[position:]
                return bytes(body[: limit + 1]), len(buffer)
            return None
        if buffer[position + size : position + size + 2] != b"\r\n":
            raise HttpError(400, "chunk without its CRLF")
        body += buffer[position : position + size]
        position += size + 2
        if len(body) > limit:
            return bytes(body[: limit + 1]), position


class Connection:
    """One client connection: its buffer, its request in progress, its answer in flight."""

    __slots__ = (
        "address",
        "buffer",
        "close_after",
        "continued",
        "deadline",
        "drain_budget",
        "head_end",
        "out",
        "pending",
        "request",
        "sock",
        "state",
        "token",
    )

    def __init__(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray()
        self.request: Request | None = None
        self.head_end = 0
        self.out = memoryview(b"")
        # idle, reading, waiting (for the audit commit), writing, closing (lingering), closed
        self.state = "idle"
        self.deadline = deadline
        self.close_after = False
        self.token = 0  # which request a late audit callback belongs to
        self.continued = False
        self.drain_budget = 0  # bytes still read and dropped while closing
        self.pending: Any = None  # the prepared answer waiting for its audit commit


class EventLoopWorker(Worker):
    """A gunicorn worker whose one thread serves every connection of the process."""

    alive: bool
    nr: int
    max_requests: int

    def init_process(self) -> None:
        """Set up the loop's state; gunicorn's init then loads the app and calls :meth:`run`."""
        self.init_loop()
        super().init_process()

    def init_loop(self) -> None:
        """Create the selector and the loop's queues (also used by tests, without a fork)."""
        self.selector = selectors.DefaultSelector()
        self.connections: dict[int, Connection] = {}
        self.committed: collections.deque[tuple[Connection, int, AuditUnavailable | None]]
        self.committed = collections.deque()
        self.buffered: collections.deque[Connection] = collections.deque()
        self.to_commit: list[tuple[Any, Callable[[AuditUnavailable | None], None]]] = []
        name = self.sockets[0].getsockname() if self.sockets else ("", 0)
        self.server_address = (str(name[0]), str(name[1])) if isinstance(name, tuple) else ("", "")
        self.accepting = False
        self._last_heartbeat = 0.0
        self._next_expiry_check = 0.0
        self.tokens = 0
        self._date = (0, "")

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until gunicorn stops the worker, then finish what is in flight."""
        for listener in self.sockets:
            listener.setblocking(False)
        self.selector.register(self.PIPE[0], selectors.EVENT_READ, None)
        self._set_accepting(True)
        while self.alive:
            self._heartbeat()
            self._set_accepting(len(self.connections) < self.cfg.worker_connections)
            self._turn(1.0)
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
        self._set_accepting(False)
        # Requests in flight finish; answers from now on say "Connection: close"
        # (see _respond). Kept-alive connections stay open STOP_KEEPALIVE_LINGER
        # at most, as in gthread: a request a client is already sending on one
        # is answered, not dropped.
        now = time.monotonic()
        graceful = now + self.cfg.graceful_timeout
        for connection in self.connections.values():
            if connection.state == "idle":
                connection.deadline = min(connection.deadline, now + STOP_KEEPALIVE_LINGER)
        while self.connections and time.monotonic() < graceful:
            self._heartbeat()
            self._turn(0.2)
        for connection in list(self.connections.values()):
            self._close(connection)
        for listener in self.sockets:
            listener.close()

    def _turn(self, timeout: float) -> None:
        try:
            events = self.selector.select(timeout)
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
            events = []
        # Answers whose records are on disk leave first, before this turn's new requests.
        self._deliver_committed()
        for key, mask in events:
            data = key.data
            if data is None:
                self._drain_wakeups()
            elif isinstance(data, Connection):
                if mask & selectors.EVENT_READ:
                    self._guarded(data, self._on_readable)
                if mask & selectors.EVENT_WRITE and data.state == "writing":
                    self._guarded(data, self._flush)
            else:
                self._accept(key.fileobj)  # type: ignore[arg-type]
        while self.buffered:
            connection = self.buffered.popleft()
            if connection.state == "reading":
                self._guarded(connection, self._advance)
        self._commit_prepared()
        self._expire(time.monotonic())

    def _commit_prepared(self) -> None:
        """Hand the records of this turn's answers to the group committer, together.

        Their answers could not leave before the turn ends anyway; queued
        together they share one commit (one fsync) instead of one each.
        """
        if not self.to_commit:
            return
        audit = self.wsgi.audit
        for entry, committed in self.to_commit:
            audit.record_later(entry, committed)
        self.to_commit.clear()

    def _guarded(self, connection: Connection, step: Callable[[Connection], None]) -> None:
        """Run one step of a connection; a bug costs that connection, never the worker."""
        try:
            step(connection)
        except Exception:
            self.log.exception("the event loop failed on a connection; closing it")
            self._close(connection)

    def _set_accepting(self, accepting: bool) -> None:
        if accepting == self.accepting:
            return
        for listener in self.sockets:
            if accepting:
                self.selector.register(listener, selectors.EVENT_READ, "listener")
            else:
                self.selector.unregister(listener)
        self.accepting = accepting

    def _accept(self, listener: socket.socket) -> None:
        """Accept one connection per turn.

        The workers share the listening socket, and a service bus keeps its
        connections open for long: a worker that took every waiting
        connection at once would serve them all while the other idles.
        Taking one per turn leaves the next to whichever worker is free first.
        """
        try:
            sock, address = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # e.g. EMFILE: leave it to the next turn
            if exc.errno not in (errno.ECONNABORTED, errno.EPROTO):
                self.log.warning("accept failed: %s", exc)
            return
        self.adopt(sock, address)

    def adopt(self, sock: socket.socket, address: Any) -> Connection:
        """Serve an accepted connection from now on."""
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = Connection(sock, address, time.monotonic() + self.cfg.keepalive)
        self.connections[sock.fileno()] = connection
        self.selector.register(sock, selectors.EVENT_READ, connection)
        return connection

    def _expire(self, now: float) -> None:
        """Act on connections past their deadline (checked at most four times a second)."""
        if now < self._next_expiry_check:
            return
        self._next_expiry_check = now + 0.25
        for connection in list(self.connections.values()):
            if now < connection.deadline:
                continue
            if connection.state == "waiting":
                # The commit did not come in time: fail closed, as the gateway does.
                failure = AuditUnavailable(f"no commit within {self._audit_timeout():g} s")
                # A late report is then ignored.
                self._guarded(
                    connection, functools.partial(self._respond_prepared, failure=failure)
                )
            elif connection.state == "idle" and self._input_waiting(connection):
                continue  # a request arrived since the select: the next turn reads it
            else:
                self._close(connection)

    @staticmethod
    def _input_waiting(connection: Connection) -> bool:
        try:
            return bool(connection.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:
            return False

    # -- reading --------------------------------------------------------------------------------

    def _on_readable(self, connection: Connection) -> None:
        if connection.state == "closing":
            self._drain(connection)
            return
        try:
            data = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(connection)
            return
        if not data:
            self._close(connection)
            return
        if connection.state == "idle":
            connection.state = "reading"
            connection.deadline = time.monotonic() + REQUEST_TIMEOUT_S
        connection.buffer += data
        self._advance(connection)

    def _advance(self, connection: Connection) -> None:
        """Parse what the buffer holds; dispatch a complete request."""
        try:
            ready = self._parse(connection)
        except HttpError as error:
            self._refuse(connection, error)
            return
        if ready:
            self._dispatch(connection)

    def _parse(self, connection: Connection) -> bool:
        buffer = connection.buffer
        if connection.request is None:
            end = buffer.find(
                b"\r\n\r\n", 0, MAX_REQUEST_LINE + MAX_HEADER_FIELDS * (MAX_HEADER_FIELD + 2)
            )
            if end < 0:
                if len(buffer) > MAX_REQUEST_LINE + MAX_HEADER_FIELDS * (MAX_HEADER_FIELD + 2):
                    raise HttpError(431, "request head too large")
                if b"\r\n" not in buffer[: MAX_REQUEST_LINE + 2] and len(buffer) > MAX_REQUEST_LINE:
                    raise HttpError(400, "request line too long")
                return False
            connection.request = parse_head(bytes(buffer[:end]))
            connection.head_end = end + 4
            connection.continued = False
        request = connection.request
        limit = self._max_body()
        start = connection.head_end
        if request.chunked:
            decoded = read_chunked(buffer, start, limit)
            if decoded is None:
                self._maybe_continue(connection)
                return False
            body, end_offset = decoded
            request.body = body
            if len(body) > limit:
                connection.close_after = True
            del buffer[:end_offset]
            return True
        if request.length > limit:
            # The gateway refuses it by its Content-Length (413) without reading it.
            connection.close_after = True
            del buffer[:start]
            return True
        if len(buffer) - start < request.length:
            self._maybe_continue(connection)
            return False
        request.body = bytes(buffer[start : start + request.length])
        del buffer[: start + request.length]
        return True

    def _maybe_continue(self, connection: Connection) -> None:
        request = connection.request
        if request is not None and request.expect_continue and not connection.continued:
            connection.continued = True
            with contextlib.suppress(OSError):
                connection.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    # -- answering ------------------------------------------------------------------------------

    def _environ(self, connection: Connection, request: Request) -> dict[str, Any]:
        environ = request.environ
        address = connection.address
        host, port = (address[0], str(address[1])) if isinstance(address, tuple) else ("", "")
        environ.update(
            {
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(request.body),
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": False,
                "wsgi.multiprocess": True,
                "wsgi.run_once": False,
                "SCRIPT_NAME": "",
                "REMOTE_ADDR": host,
                "REMOTE_PORT": port,
                "SERVER_NAME": self.server_address[0],
                "SERVER_PORT": self.server_address[1],
            }
        )
        if "HTTP_HOST" in environ:
            environ["SERVER_NAME"] = environ["HTTP_HOST"].rsplit(":", 1)[0]
        return environ

    def _dispatch(self, connection: Connection) -> None:
        request = connection.request
        assert request is not None
        connection.request = None
        if not request.keep_alive:  # (a stopping worker: _respond closes too)
            connection.close_after = True
        environ = self._environ(connection, request)
        self.selector.unregister(connection.sock)  # nothing is read while a request is answered
        begin: Callable[..., Any] | None = getattr(self.wsgi, "begin_deferred", None)
        prepared = begin(environ) if begin is not None else None
        if prepared is None:
            self._respond(connection, *self._call_wsgi(environ))
            return
        self.tokens += 1
        token = connection.token = self.tokens
        connection.state = "waiting"
        connection.pending = prepared
        connection.deadline = time.monotonic() + self._audit_timeout()

        def committed(failure: AuditUnavailable | None) -> None:  # runs in the committer thread
            self.committed.append((connection, token, failure))
            # A full pipe means the loop is being woken anyway.
            with contextlib.suppress(OSError):
                os.write(self.PIPE[1], b".")

        self.to_commit.append((prepared.entry, committed))

    def _deliver_committed(self) -> None:
        while self.committed:
            connection, token, failure = self.committed.popleft()
            if connection.token == token and connection.state == "waiting":
                self._guarded(
                    connection, functools.partial(self._respond_prepared, failure=failure)
                )
            # else: answered already (the commit came too late) or the connection is gone

    def _respond_prepared(self, connection: Connection, failure: AuditUnavailable | None) -> None:
        prepared, connection.pending, connection.token = connection.pending, None, 0
        status, headers, payload = self.wsgi.finish_deferred(prepared, failure)
        self._respond(connection, status, headers, payload)

    def _call_wsgi(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        try:
            status, headers, body = call_wsgi(self.wsgi, environ)
        except Exception:
            self.log.exception("the application failed")
            return (
                "500 Internal Server Error",
                [("Content-Type", "text/plain")],
                b"internal error\n",
            )
        if environ["REQUEST_METHOD"] == "HEAD":
            headers = [h for h in headers if h[0].lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
            return status, headers, b""
        return status, headers, body

    def _refuse(self, connection: Connection, error: HttpError) -> None:
        self.log.debug("request refused: %s %s", error.code, error)
        connection.close_after = True
        connection.request = None
        self.selector.unregister(connection.sock)
        reason = _REASONS.get(error.code, "Bad Request")
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        self._respond(connection, f"{error.code} {reason}", headers, f"{reason}\n".encode())

    def _respond(
        self, connection: Connection, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:  # gunicorn's max_requests
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        if not self.alive:
            connection.close_after = True
        # From here on close_after is what the answer says, and what happens after it.
        lines = [f"HTTP/1.1 {status}"]
        has_length = False
        for name, value in headers:
            lowered = name.lower()
            if lowered in ("connection", "transfer-encoding", "keep-alive"):
                continue
            has_length |= lowered == "content-length"
            lines.append(f"{name}: {value}")
        if not has_length:
            lines.append(f"Content-Length: {len(body)}")
        lines.append(f"Date: {self._http_date()}")
        lines.append("Connection: close" if connection.close_after else "Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        connection.out = memoryview(head + body)
        connection.state = "writing"
        connection.deadline = time.monotonic() + WRITE_TIMEOUT_S
        connection.request = None
        self._flush(connection, registered=False)

    def _flush(self, connection: Connection, registered: bool = True) -> None:
        try:
            sent = connection.sock.send(connection.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(connection)
            return
        connection.out = connection.out[sent:]
        if connection.out:
            if registered:
                self.selector.modify(connection.sock, selectors.EVENT_WRITE, connection)
            else:
                self.selector.register(connection.sock, selectors.EVENT_WRITE, connection)
            return
        if registered:
            self.selector.unregister(connection.sock)
        if connection.close_after:
            self._linger(connection)
            return
        connection.state = "idle"
        # The answer said keep-alive: even a stopping worker keeps its word a while.
        keepalive = self.cfg.keepalive if self.alive else STOP_KEEPALIVE_LINGER
        connection.deadline = time.monotonic() + min(self.cfg.keepalive, keepalive)
        self.selector.register(connection.sock, selectors.EVENT_READ, connection)
        if connection.buffer:  # a pipelined request: parsed in this turn, not recursively
            connection.state = "reading"
            connection.deadline = time.monotonic() + REQUEST_TIMEOUT_S
            self.buffered.append(connection)

    def _linger(self, connection: Connection) -> None:
        """Half-close after the last answer; read and drop what still comes, then close."""
        try:
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(connection)
            return
        connection.state = "closing"
        connection.buffer.clear()
        connection.deadline = time.monotonic() + CLOSE_LINGER_S
        connection.drain_budget = CLOSE_LINGER_BYTES
        self.selector.register(connection.sock, selectors.EVENT_READ, connection)

    def _drain(self, connection: Connection) -> None:
        try:
            data = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        connection.drain_budget -= len(data)
        if not data or connection.drain_budget <= 0:
            self._close(connection)

    def _close(self, connection: Connection) -> None:
        fileno = connection.sock.fileno()
        if fileno >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(connection.sock)
            connection.sock.close()
        self.connections.pop(fileno, None)
        connection.state = "closed"
        connection.token = 0

    # -- helpers --------------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        """Tell the master the worker lives, once a second (a file timestamp: a syscall)."""
        now = time.monotonic()
        if now - self._last_heartbeat >= 1.0:
            self._last_heartbeat = now
            self.notify()

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.PIPE[0], 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _max_body(self) -> int:
        return int(getattr(getattr(self.wsgi, "settings", None), "max_body_bytes", 256 * 1024))

    def _audit_timeout(self) -> float:
        return float(self.wsgi.audit.commit_timeout_s)

    def _http_date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]
