"""Blocking calls that must not stop a gevent worker's other connections.

In the gevent worker every connection of a process shares one thread.  A
call that blocks in C without going through a patched socket -- an SQLite
commit waiting for its fsync, an ``flock``, a query of a driver that waits in
C -- would stop them all for its duration.  :func:`run_blocking` runs such a
call on a native thread of gevent's pool while the calling greenlet waits;
outside a gevent worker (tests, the command line) it just calls the function.
:func:`make_drivers_cooperative` makes psycopg wait through gevent,
:func:`driver_blocks_in_c` tells which engines still need :func:`run_blocking`,
and :func:`start_native_thread` runs a background loop that blocks in C.
"""

from __future__ import annotations

import os
import selectors
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def gevent_is_patched() -> bool:
    """Return whether this process's threading runs on gevent (the serving worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def native_lock() -> Any:
    """Return a lock of the operating system's threads, even where gevent patched ``threading``.

    For a lock that only :func:`run_blocking`'s native threads take: a
    gevent lock waited on across native threads costs far more.
    """
    if gevent_is_patched():
        from gevent import monkey

        return monkey.get_original("threading", "Lock")()
    return threading.Lock()


def start_native_thread(function: Callable[[], object], name: str) -> None:
    """Run ``function`` on a new daemon thread of the operating system, even under gevent.

    For a loop that blocks in C for long stretches (an SQLite checkpoint's
    writes and fsync): after the patch, ``threading.Thread`` is a greenlet of
    the worker's one thread, and would stop every connection while it blocks.
    Such a thread coordinates on :func:`native_lock` locks.  It may log: the
    logging handler's lock is a gevent lock after the patch, and gevent
    (20.12 and later) lets a native thread take one.
    """
    if gevent_is_patched():
        from gevent import monkey

        monkey.get_original("_thread", "start_new_thread")(function, ())
        return
    threading.Thread(target=function, name=name, daemon=True).start()


def run_blocking(function: Callable[..., T], *args: object) -> T:
    """Call ``function(*args)`` where its blocking doesn't stop the other greenlets."""
    if not gevent_is_patched():
        return function(*args)
    import gevent

    return gevent.get_hub().threadpool.apply(function, args)


def make_drivers_cooperative() -> None:
    """Make psycopg wait for the server through gevent; call it right after the patch.

    psycopg picks its wait function when it is first imported: the C one,
    which polls the socket without yielding, unless gevent has already
    patched ``select``.  The gunicorn master imports it (building the app
    once to check the configuration) before a worker patches, so a worker
    would keep the C wait and every query would stop the worker's other
    connections until it returned, a billing deadline included.  This points
    psycopg at what it would have picked after the patch: its ``poll`` wait
    (``select.poll`` is gevent's now) and the patched selector its connect
    wait uses.  Before psycopg's import it does nothing: psycopg then sees
    the patch itself; where ``PSYCOPG_WAIT_FUNC`` names a wait (an
    experiment), psycopg keeps it.
    """
    waiting = sys.modules.get("psycopg.waiting")
    if waiting is None or "PSYCOPG_WAIT_FUNC" in os.environ:  # not imported yet, or chosen
        return
    waiting.wait = waiting.wait_poll  # type: ignore[attr-defined]
    waiting._ready = waiting._ready_poll  # type: ignore[attr-defined]
    waiting.DefaultSelector = selectors.DefaultSelector  # type: ignore[attr-defined]


def driver_blocks_in_c(dialect_name: str, driver: str) -> bool:
    """Return whether the DB-API driver waits in C, out of gevent's sight.

    SQLite (a local file, its fsync and locks) and cx_Oracle (Oracle Client
    libraries) do; psycopg (after :func:`make_drivers_cooperative`) and
    python-oracledb's thin mode (pure-Python sockets) wait through gevent.
    """
    return dialect_name == "sqlite" or driver == "cx_oracle"
