"""The replay cache: a signed message is accepted at most once inside its window.

:class:`ReplayCache` is the interface; :class:`InMemoryReplayCache` serves a
single process.  A shared store (Redis, for several workers or hosts) implements
the same one method.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from service.errors import ConfigurationError, ReplayStoreUnavailable


class ReplayCache(Protocol):
    """Remembers message fingerprints for a while."""

    def first_seen(self, key: str, ttl_s: float) -> bool:
        """Record ``key`` for ``ttl_s`` seconds; return False if it was already there."""


class InMemoryReplayCache:
    """A bounded, thread-safe, expiring set of fingerprints for one process.

    Entries expire after their TTL.  When ``max_entries`` live entries are
    held, a new message is refused (fail closed) rather than an unexpired
    entry being evicted, which would reopen a replay window.
    """

    def __init__(
        self, max_entries: int = 1_000_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[str, float] = OrderedDict()  # key -> expiry, oldest first
        self._lock = threading.Lock()
        self._clock = clock
        self.max_entries = max_entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def first_seen(self, key: str, ttl_s: float) -> bool:
        """Record ``key``; return False if it is already known and unexpired."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            if key in self._entries:
                return False
            if len(self._entries) >= self.max_entries:
                raise ReplayStoreUnavailable(f"replay cache full: {len(self._entries)} entries")
            self._entries[key] = now + ttl_s
            return True

    def _expire(self, now: float) -> None:
        # Entries are appended with one common TTL, so expiry times are ordered.
        while self._entries:
            key, expiry = next(iter(self._entries.items()))
            if expiry > now:
                break
            del self._entries[key]


def create_replay_cache(url: str, max_entries: int) -> ReplayCache:
    """Return the replay cache for ``AZERSU_REPLAY_URL``: empty for in-memory, or redis://."""
    if not url:
        return InMemoryReplayCache(max_entries)
    raise ConfigurationError("AZERSU_REPLAY_URL", f"unsupported replay store {url!r}")
