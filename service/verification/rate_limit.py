"""The limit on answers that find nothing, per client address, over every worker and host.

Guessing a statement number and its 256-bit digest is hopeless, but a page
that answers as fast as it is asked invites anyone to try, and each try costs
a database lookup and an audit record.  So a client address (an IPv4
address, or an IPv6 /64: :func:`service.client_address.client_key`) may get
at most ``AZERSU_VERIFY_RATE_PER_MIN`` answers that find nothing (NOT_FOUND,
or a file whose signature does not verify) in one minute; once it has, every
lookup from it is answered 429 until the minute is over.

**Why every lookup, and not only those that find nothing.**  Answering 429 to
the misses alone would still answer VALID to a hit: beyond the limit, "429"
would mean "no" and a statement would mean "yes", and the limit would slow
nobody.  A client that looks up real statements is never limited however
many it checks, because hits are not counted.

**Shared, fixed windows.**  A limit kept in one worker's memory would be
multiplied by the workers (and hosts) behind the address the client reaches.
The counts live where the replay fingerprints live: a table of the audit
database by default (:class:`SqlRateCounter`), Redis when
``AZERSU_REPLAY_URL`` names one (:class:`RedisRateCounter`).  Windows are
whole minutes of the wall clock (Unix time // 60), the one clock every
process shares; a client may get up to twice the limit across a window's
edge, which is the price of one counter per minute.  If the store can't be
asked the lookup is refused (503): failing open would lift the limit.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.pool import PoolProxiedConnection

from service.billing.engine import DriverStatement
from service.settings import Settings
from service.shared_table import SharedTable
from service.signing.replay import redis_client, redis_url

#: The table of counts in the audit database.
RATE_TABLE = "verify_rate_window"
#: Prefix of every count's key in Redis.
REDIS_KEY_PREFIX = "azersu:verify-rate:"
WINDOW_S = 60
#: Every this many increments, a process deletes the counts of past windows.
PURGE_EVERY = 50


class RateStoreUnavailable(Exception):
    """The shared counts could not be read or written: the lookup is refused."""


class RateCounter(Protocol):
    """Counts per client and window, shared by every process that answers lookups."""

    def count(self, client: str, window: int) -> int:
        """Return the client's count in ``window`` (0 if none)."""

    def increment(self, client: str, window: int) -> int:
        """Add one to the client's count in ``window``; return the new count."""

    def check(self) -> None:
        """Return if the store answers; raise :class:`RateStoreUnavailable` if not."""

    def close(self) -> None:
        """Release connections."""


def rate_table(metadata: MetaData) -> Table:
    """Return the table of counts: one row per client and minute."""
    return Table(
        RATE_TABLE,
        metadata,
        Column("client_key", String(64), primary_key=True),
        Column("window_start", BigInteger, primary_key=True),  # Unix time // 60
        Column("hits", Integer, nullable=False),
        Index(f"ix_{RATE_TABLE}_window", "window_start"),
    )


class SqlRateCounter(SharedTable):
    """Counts in a table of the audit database: an UPDATE, or the INSERT of the first.

    The increment is one transaction: ``UPDATE ... SET hits = hits + 1``
    locks the row (PostgreSQL, Oracle) or the database (SQLite) until the
    commit, so concurrent increments from any process queue and none is
    lost; the first of a window INSERTs, and should two insert at once the
    primary key lets one commit and the other updates instead.  On SQLite the
    writes take turns with the audit's through its writer lock, off the
    gevent worker's loop, and commit without an fsync of their own: a count
    lost to a power cut costs nothing but a few lookups.
    """

    unavailable = RateStoreUnavailable

    define_table = staticmethod(rate_table)

    def prepare_statements(self) -> None:
        """Compile this table's statements (see :class:`SharedTable`)."""
        t, dialect = self.table, self.engine.dialect
        key = (t.c.client_key == bindparam("client")) & (t.c.window_start == bindparam("window"))
        self._add = DriverStatement(update(t).where(key).values(hits=t.c.hits + 1), dialect)
        self._first = DriverStatement(
            insert(t).values(
                client_key=bindparam("client"), window_start=bindparam("window"), hits=1
            ),
            dialect,
        )
        self._read = DriverStatement(select(t.c.hits).where(key), dialect)
        self._purge = DriverStatement(
            delete(t).where(t.c.window_start < bindparam("before")), dialect
        )
        self._increments = itertools.count(1)

    def count(self, client: str, window: int) -> int:
        """Return the client's count in ``window``."""
        values = {"client": client, "window": window}
        return self.on_connection(lambda conn: self._hits(conn, values))

    def increment(self, client: str, window: int) -> int:
        """Add one to the client's count in ``window``; return the new count."""
        purge = next(self._increments) % PURGE_EVERY == 0
        values = {"client": client, "window": window}
        return self.write(self._increment_now, values, purge)

    def check(self) -> None:
        """Read a count: return if the table answers."""
        self.count("", 0)

    def _increment_now(self, values: dict[str, Any], purge: bool) -> int:
        hits = self.on_connection(lambda conn: self._incremented(conn, values))
        if purge:
            before = math.floor(self._clock() / WINDOW_S) - 1
            self.purge_in_passing(lambda conn: self._purged(conn, before))
        return hits

    def _incremented(self, conn: PoolProxiedConnection, values: dict[str, Any]) -> int:
        for _ in range(2):
            cursor = conn.cursor()
            try:
                cursor.execute(self._add.sql, self._add.parameters(values))
                if cursor.rowcount == 0:
                    cursor.execute(self._first.sql, self._first.parameters(values))
                cursor.execute(self._read.sql, self._read.parameters(values))
                row = cursor.fetchone()
                conn.commit()
                if row is None:
                    raise RateStoreUnavailable("the window's row vanished before its commit")
                return int(row[0])
            except self._duplicate_key:
                conn.rollback()  # another process inserted the window's row: add to it
            finally:
                cursor.close()
        raise RateStoreUnavailable("the window's row could be neither inserted nor updated")

    def _hits(self, conn: PoolProxiedConnection, values: dict[str, Any]) -> int:
        cursor = conn.cursor()
        try:
            cursor.execute(self._read.sql, self._read.parameters(values))
            row = cursor.fetchone()
            conn.rollback()
            return int(row[0]) if row else 0
        finally:
            cursor.close()

    def _purged(self, conn: PoolProxiedConnection, before: int) -> None:
        cursor = conn.cursor()
        try:
            cursor.execute(self._purge.sql, self._purge.parameters({"before": before}))
            conn.commit()
        finally:
            cursor.close()


class RedisRateCounter:
    """Counts in Redis: ``INCR`` and ``EXPIRE`` in one MULTI/EXEC, atomic on its one thread."""

    def __init__(self, client: redis.Redis, prefix: str = REDIS_KEY_PREFIX) -> None:
        self._client = client
        self.prefix = prefix

    def _key(self, client: str, window: int) -> str:
        return f"{self.prefix}{client}:{window}"

    def count(self, client: str, window: int) -> int:
        """Return the client's count in ``window``."""
        try:
            value = self._client.get(self._key(client, window))
        except (redis.RedisError, OSError) as exc:
            raise RateStoreUnavailable(f"redis GET failed: {type(exc).__name__}: {exc}") from exc
        return int(cast(Any, value)) if value is not None else 0

    def increment(self, client: str, window: int) -> int:
        """Add one to the client's count in ``window``; return the new count."""
        key = self._key(client, window)
        try:
            pipeline = self._client.pipeline(transaction=True)
            pipeline.incr(key)
            pipeline.expire(key, 2 * WINDOW_S)  # the window, and a margin for clocks
            hits, _ = pipeline.execute()
        except (redis.RedisError, OSError) as exc:
            raise RateStoreUnavailable(f"redis INCR failed: {type(exc).__name__}: {exc}") from exc
        return int(hits)

    def check(self) -> None:
        """PING Redis."""
        try:
            self._client.ping()
        except (redis.RedisError, OSError) as exc:
            raise RateStoreUnavailable(f"redis PING failed: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()


@dataclass(frozen=True)
class Verdict:
    """Whether a client may be answered, and if not, in how many seconds it may ask again."""

    allowed: bool
    retry_after_s: int = 0


class NotFoundLimit:
    """At most ``per_minute`` answers that find nothing per client and minute."""

    def __init__(
        self,
        counter: RateCounter,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.counter = counter
        self.per_minute = per_minute
        self._clock = clock

    def _window(self) -> tuple[int, int]:
        now = self._clock()
        window = math.floor(now / WINDOW_S)
        retry_after = max(1, math.ceil((window + 1) * WINDOW_S - now))
        return window, retry_after

    def before_lookup(self, client: str) -> Verdict:
        """Return whether ``client`` may be answered at all in this window."""
        window, retry_after = self._window()
        if self.counter.count(client, window) >= self.per_minute:
            return Verdict(False, retry_after)
        return Verdict(True)

    def found_nothing(self, client: str) -> Verdict:
        """Count an answer that found nothing; return whether it may still be given."""
        window, retry_after = self._window()
        if self.counter.increment(client, window) > self.per_minute:
            return Verdict(False, retry_after)
        return Verdict(True)


def create_rate_counter(settings: Settings) -> RateCounter:
    """Return the counts' store: the replay store's (the audit database, or Redis)."""
    url = redis_url(settings.replay_url)
    if url is None:
        return SqlRateCounter.from_url(settings.resolved_audit_url, settings.db_timeout_s)
    return RedisRateCounter(redis_client(url))
