"""The gunicorn worker: gevent's, with the limits a public front door needs.

gunicorn parses HTTP/1.1 (request line, header fields, chunked bodies and
trailers, with its size limits and the RFC 9110 checks that refuse CR, LF and
NUL in field values), and its gevent worker gives each connection a greenlet:
a slow client holds a greenlet, never a thread or the process, and a request
that waits on the network (PostgreSQL, Oracle's thin driver, Redis) or on its
audit commit lets the others run.  What neither bounds is how much of a
worker one client may hold.  This worker adds that, and nothing else:

* at most ``AZERSU_MAX_CONNECTIONS_PER_CLIENT`` open connections per client
  address and worker; one more is held unread for ``REFUSED_HOLD_S`` and
  closed (:meth:`ConnectionTable.hold_refused` says why not at once);
* a request's head must arrive within ``AZERSU_KEEPALIVE_S`` (gunicorn's
  gevent worker already bounds it so) and its body within
  ``AZERSU_REQUEST_TIMEOUT_S``: the body is read here, before the
  application runs, so a body trickled in byte by byte costs its
  connection, not an application slot;
* a chunked body may have at most ``AZERSU_MAX_BODY_CHUNKS`` chunks
  (:class:`CountedChunkedReader`);
* when the worker holds nearly ``AZERSU_WORKER_CONNECTIONS`` connections, the
  ones that have waited longest for a request (idle keep-alive connections,
  heads arriving slowly) are closed to make room for the new one;
* a request that gunicorn itself refuses (400, 414, 431, 501 ...) is reported
  to the application, which audits it like every other outcome on ``/soap``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import ssl
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.monkey import MonkeyPatchWarning
from gunicorn import util
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.errors import (
    ConfigurationProblem,
    ExpectationFailed,
    ForbiddenProxyRequest,
    InvalidChunkSize,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    UnsupportedTransferCoding,
)
from gunicorn.workers.ggevent import GeventWorker

from service.client_address import client_key
from service.cooperative import make_drivers_cooperative

log = logging.getLogger("service.worker")

#: Share of ``worker_connections`` kept free by shedding waiting connections.
SHED_HEADROOM = 0.1
#: Seconds a connection refused for its client's limit is held before it is closed.
REFUSED_HOLD_S = 10.0
#: Seconds a stopping worker keeps its idle kept-alive connections open: a
#: request already on its way is answered (with ``Connection: close``).
STOP_KEEPALIVE_LINGER_S = 2.0


@dataclass
class _Connection:
    sock: Any
    client: str


@dataclass
class ConnectionTable:
    """The open connections of one worker: counted per client, shed when the worker is full.

    ``waiting`` holds the connections that are waiting for a request, oldest
    wait first: they are the ones closed under pressure.  A connection that
    is answering a request is never shed.
    """

    capacity: int
    per_client: int
    #: Told the reason of every connection closed to protect the worker.
    closed: Callable[[str], None] = lambda reason: None
    open: dict[int, _Connection] = field(default_factory=dict)
    by_client: dict[str, int] = field(default_factory=dict)
    waiting: OrderedDict[int, _Connection] = field(default_factory=OrderedDict)
    refused: deque[tuple[float, Any]] = field(default_factory=deque)

    def admit(self, sock: Any, client: str) -> _Connection | None:
        """Register a new connection, or return None if its client holds too many."""
        if self.by_client.get(client, 0) >= self.per_client:
            self.closed("per_client_limit")
            return None
        self._make_room()
        connection = _Connection(sock, client)
        self.open[id(connection)] = connection
        self.by_client[client] = self.by_client.get(client, 0) + 1
        return connection

    def release(self, connection: _Connection) -> None:
        """Forget a closed connection."""
        if self.open.pop(id(connection), None) is None:
            return
        self.waiting.pop(id(connection), None)
        left = self.by_client[connection.client] - 1
        if left:
            self.by_client[connection.client] = left
        else:
            del self.by_client[connection.client]

    @contextlib.contextmanager
    def waiting_for_request(self, connection: _Connection) -> Iterator[None]:
        """Mark the connection as sheddable while it waits for a request head."""
        self.waiting[id(connection)] = connection
        try:
            yield
        finally:
            self.waiting.pop(id(connection), None)

    def hold_refused(self, sock: Any) -> None:
        """Keep a refused connection open, unread, for ``REFUSED_HOLD_S``, then close it.

        Closing it at once would only send the client back into the listen
        queue: a client that reconnects as fast as it is refused keeps that
        queue full, and everyone else's connection waits behind it.  Held,
        it costs a file descriptor and no greenlet; at most ``capacity`` are
        held, the oldest closed first.
        """
        # gevent closes the accepted socket when the handler returns: a
        # duplicate of its descriptor keeps the connection open meanwhile.
        try:
            held = sock.dup()
        except OSError:
            return
        self.refused.append((time.monotonic() + REFUSED_HOLD_S, held))
        while len(self.refused) > self.capacity:
            _close(self.refused.popleft()[1])

    def close_refused(self, now: float) -> None:
        """Close the refused connections whose hold is over."""
        while self.refused and self.refused[0][0] <= now:
            _close(self.refused.popleft()[1])

    def close_waiting(self) -> None:
        """Close every connection that is waiting for a request (the worker is stopping)."""
        while self.waiting:
            _, connection = self.waiting.popitem(last=False)
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)

    def _make_room(self) -> None:
        limit = self.capacity - max(1, int(self.capacity * SHED_HEADROOM))
        while len(self.open) >= limit and self.waiting:
            _, victim = self.waiting.popitem(last=False)
            self.closed("shed")
            # The greenlet reading it sees the end of the stream and closes it;
            # it no longer counts from now on (release() is idempotent).
            with contextlib.suppress(OSError):
                victim.sock.shutdown(socket.SHUT_RDWR)
            self.release(victim)


class CountedChunkedReader(ChunkedReader):
    """gunicorn's chunked decoder, refusing a body of more than ``max_chunks`` chunks.

    Decoding costs gunicorn some microseconds per chunk whatever its size, so
    a body of one-byte chunks costs a thousand times more CPU than the same
    body in one chunk: seconds for a megabyte, during which the worker's other
    connections wait.  Clients send chunks of kilobytes; the bound keeps the
    cost of a request proportional to its size.
    """

    def __init__(self, req: Any, unreader: Any, max_chunks: int) -> None:
        self.max_chunks = max_chunks
        self.chunks = 0
        super().__init__(req, unreader)

    def parse_chunk_size(self, unreader: Any, data: bytes | None = None) -> Any:
        """Count the chunk, then parse its size line as gunicorn does."""
        self.chunks += 1
        if self.chunks > self.max_chunks + 1:  # the last, empty chunk is not counted
            raise InvalidChunkSize(b"more than %d chunks" % self.max_chunks)
        return super().parse_chunk_size(unreader, data)


class ServiceWorker(GeventWorker):
    """gunicorn's gevent worker with per-client limits, shedding, and audited refusals."""

    def patch(self) -> None:
        """Monkey-patch as gunicorn's gevent worker does, then make psycopg wait through gevent.

        (See :func:`service.cooperative.make_drivers_cooperative`.)  gevent's
        warning about ``ssl`` is silenced: the master imported ``ssl`` before
        the fork, but no SSL object exists before the patch (gunicorn builds
        its TLS context in :meth:`run`, after it), so it says nothing here.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MonkeyPatchWarning)
            super().patch()
        make_drivers_cooperative()

    def init_process(self) -> None:
        """Set up the connection table, then gunicorn's gevent worker (patches, app, loop)."""
        settings = self.app.settings
        self.connections = ConnectionTable(
            capacity=self.worker_connections,
            per_client=settings.max_connections_per_client,
            closed=self._count_closed,
        )
        self.request_timeout_s = settings.request_timeout_s
        self.max_body_bytes = settings.max_body_bytes
        self.max_body_chunks = settings.max_body_chunks
        self._current: dict[Any, _Connection] = {}
        super().init_process()

    def run(self) -> None:
        """Serve as gunicorn's gevent worker does, closing held refused connections meanwhile."""
        gevent.spawn(self._close_refused_forever)
        super().run()

    def _close_refused_forever(self) -> None:
        while True:
            gevent.sleep(REFUSED_HOLD_S / 4)
            self.connections.close_refused(time.monotonic())

    def _count_closed(self, reason: str) -> None:
        self.wsgi.metrics.connections_closed.labels(reason=reason).inc()

    def handle_exit(self, sig: int, frame: Any) -> None:
        """Stop gracefully: idle kept-alive connections close after a short linger."""
        super().handle_exit(sig, frame)
        gevent.spawn_later(STOP_KEEPALIVE_LINGER_S, self.connections.close_waiting)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        """Serve one connection if its client is within its limit."""
        connection = self.connections.admit(client, client_key(addr))
        if connection is None:
            self.connections.hold_refused(client)
            return
        greenlet = gevent.getcurrent()
        self._current[greenlet] = connection
        try:
            if isinstance(client, ssl.SSLSocket) and not self._handshake(client, connection):
                return
            super().handle(listener, client, addr)
        finally:
            self._current.pop(greenlet, None)
            self.connections.release(connection)

    def timeout_ctx(self) -> Any:
        """Bound the wait for a request head, and let it be shed meanwhile."""
        connection = self._current.get(gevent.getcurrent())
        stack = contextlib.ExitStack()
        stack.enter_context(gevent.Timeout(self.cfg.keepalive, False))
        if connection is not None:
            stack.enter_context(self.connections.waiting_for_request(connection))
        return stack

    def _handshake(self, client: Any, connection: _Connection) -> bool:
        """Complete the TLS handshake within the keep-alive time; return whether it completed.

        The connection counts for its client and may be shed meanwhile
        (:func:`service.serving.handshake_in_the_worker` defers it to here).
        """
        with self.connections.waiting_for_request(connection), gevent.Timeout(
            self.cfg.keepalive, False
        ):
            try:
                client.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS handshake failed: %s", exc)
                return False
            return True
        log.debug("TLS handshake not complete within %s s", self.cfg.keepalive)
        return False

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        """Read the body within the request deadline, then run the application."""
        # Every read and write of this request (the answer too: a client that
        # never reads it) waits at most the request deadline.
        sock.settimeout(self.request_timeout_s)
        if req.body is not None and not self._read_body(req, sock):
            req.must_close = True
            return None
        return super().handle_request(listener_name, req, sock, addr)

    def _read_body(self, req: Any, sock: Any) -> bool:
        """Replace the body by its bytes, read within ``request_timeout_s``.

        A declared length above the limit is left unread: the application
        refuses it (413) and the connection closes.  Returns False when the
        body did not arrive in time.  ``Expect: 100-continue`` is answered
        here, since the body is read here.
        """
        reader = req.body.reader
        if isinstance(reader, LengthReader) and reader.length > self.max_body_bytes:
            req.must_close = True
            req._expected_100_continue = False  # refused (413): the body must not come
            return True
        if isinstance(reader, ChunkedReader):
            req.body = Body(CountedChunkedReader(req, req.unreader, self.max_body_chunks))
        if req._expected_100_continue:
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            req._expected_100_continue = False
        with gevent.Timeout(self.request_timeout_s, False):
            data = req.body.read(self.max_body_bytes + 1)
            if len(data) > self.max_body_bytes:
                req.must_close = True
            req.body = Body(io.BytesIO(data))
            return True
        log.warning("request body not complete within %s s: closed", self.request_timeout_s)
        with contextlib.suppress(OSError):
            util.write_error(sock, 408, "Request Timeout", "The body did not arrive in time")
        self.wsgi.http_refused(408, "body not complete in time", _peer(req), _path(req))
        return False

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer as gunicorn does, then have the application audit the refusal."""
        super().handle_error(req, client, addr, exc)
        status = refusal_status(exc)
        if status is not None:
            peer = addr[0] if isinstance(addr, tuple) else ""
            self.wsgi.http_refused(status, f"{type(exc).__name__}: {exc}", peer, _path(req))


def _close(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def refusal_status(exc: BaseException) -> int | None:
    """Return the 4xx/5xx status gunicorn answers a request it refuses itself, or None."""
    from gunicorn.http import errors

    if isinstance(exc, InvalidResponseHeader | InvalidResponseHeaderName | ConfigurationProblem):
        return None  # the application's or the configuration's fault, not a refused request
    if isinstance(exc, ForbiddenProxyRequest):
        return 403
    if isinstance(exc, LimitRequestLine):
        return 414
    if isinstance(exc, LimitRequestHeaders):
        return 431
    if isinstance(exc, UnsupportedTransferCoding):
        return 501
    if isinstance(exc, ExpectationFailed):
        return 417
    if isinstance(exc, errors.ParseException):
        return 400
    return None


def _path(req: Any) -> str:
    return str(getattr(req, "path", "") or "") if req is not None else ""


def _peer(req: Any) -> str:
    peer = getattr(req, "peer_addr", None)
    return peer[0] if isinstance(peer, tuple) else ""
