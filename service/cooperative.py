"""Blocking calls that must not stop a gevent worker's other connections.

In the gevent worker every connection of a process shares one thread.  A
call that blocks in C without going through a patched socket -- an SQLite
commit waiting for its fsync, an ``flock`` -- would stop them all for its
duration.  :func:`run_blocking` runs such a call on a native thread of
gevent's pool while the calling greenlet waits; outside a gevent worker
(tests, the command line) it just calls the function.
"""

from __future__ import annotations

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


def run_blocking(function: Callable[..., T], *args: object) -> T:
    """Call ``function(*args)`` where its blocking doesn't stop the other greenlets."""
    if not gevent_is_patched():
        return function(*args)
    import gevent

    return gevent.get_hub().threadpool.apply(function, args)
