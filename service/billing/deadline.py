"""One deadline on all the billing reads of a request, whatever the driver does.

The engine bounds every wait that a driver option can bound (connecting,
waiting for a pooled connection, running a statement: see
:mod:`service.billing.engine`).  Some waits no option bounds: libpq never waits
less than 2 s to connect, python-oracledb's thin mode has no timeout on the
Oracle Net handshake after the TCP connect, and no driver notices a database
that stops answering in the middle of a query (PostgreSQL's statement_timeout
runs inside the server that stopped).  :class:`BillingDeadline` runs the
reads in a worker thread and stops waiting for them at the deadline: the
caller gets :class:`~service.errors.BillingUnavailable` in time, and the
worker finishes or fails in the background, returning its connection to the
pool.  The workers are as many as the pool's connections, so reads stuck on a
dead database can't pile up: later requests wait in the queue and fail at
their own deadline.

In the gevent worker the reads run on greenlets when the driver waits
through gevent (psycopg, python-oracledb's thin mode: see
:mod:`service.cooperative`), and on native threads of gevent's pool when it
waits in C (cx_Oracle), so that a stuck read never stops the worker's other
connections.

An SQLite billing file needs no deadline (every wait on it is bounded by the
engine), so :func:`service.app.build_statement_context` gives it none.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TypeVar

from service.cooperative import gevent_is_patched
from service.errors import BillingUnavailable

T = TypeVar("T")

#: Time left, within the contract's AZERSU_DB_TIMEOUT_S + 1 s, to sign and send the Fault.
DEADLINE_MARGIN_S = 0.5


class BillingDeadline:
    """Run a request's billing reads with a deadline of ``seconds``."""

    def __init__(self, seconds: float, workers: int, *, driver_blocks_in_c: bool = False) -> None:
        self.seconds = seconds
        self._executor: Executor
        if driver_blocks_in_c and gevent_is_patched():
            from gevent.threadpool import ThreadPoolExecutor as NativeThreadPoolExecutor

            self._executor = NativeThreadPoolExecutor(max_workers=workers)
        else:
            self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="billing")

    def run(self, read: Callable[[], T]) -> T:
        """Return ``read()``; raise BillingUnavailable past the deadline."""
        context = contextvars.copy_context()  # the request's log context goes along
        future = self._executor.submit(context.run, read)
        try:
            return future.result(timeout=self.seconds)
        except TimeoutError:
            future.cancel()  # still queued behind stuck reads: never start it
            raise BillingUnavailable(f"no answer from billing within {self.seconds:g} s") from None

    def close(self) -> None:
        """Stop the workers (those stuck on a dead database are left to end on their own)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
