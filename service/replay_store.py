"""The default replay store: the fingerprints in a table of the audit database.

Every worker of a host writes to the audit database already, and so does
every host that shares it: a table there is shared by all the processes that
can answer a message, survives the replacement of workers, and adds no
service to run.  :class:`SqlReplayCache` implements
:class:`service.signing.replay.ReplayCache` on it; :func:`create_replay_cache`
returns it, or Redis when ``AZERSU_REPLAY_URL`` is set.

**Why one INSERT is enough.**  The fingerprint is the table's primary key,
and the database enforces a primary key whatever the number of sessions:
of any number of transactions that insert the same key at the same moment,
from any process or host, exactly one commits, and every other fails with a
unique-key violation (PostgreSQL and Oracle make the later insert wait for
the first transaction, then fail it; SQLite runs one writer at a time).
That failure means "seen".  An expired row with the same key is deleted and
the insert retried in one transaction, so an expiry can't let two through
either.  Other expired rows are deleted in small batches every
:data:`PURGE_EVERY` checks, which keeps the table at about the messages of
one window.

**Failing closed.**  Every database error is
:class:`service.errors.ReplayStoreUnavailable` (see
:mod:`service.signing.replay` for why), and every wait is bounded by
``AZERSU_DB_TIMEOUT_S``: connecting; on SQLite a lock; on PostgreSQL a
statement or a lock, such as an insert waiting behind another transaction's
uncommitted row with the same key.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
)
from sqlalchemy.pool import PoolProxiedConnection

from service.billing.engine import DriverStatement
from service.errors import ReplayStoreUnavailable
from service.settings import Settings
from service.shared_table import SharedTable
from service.signing.replay import RedisReplayCache, ReplayCache, redis_url

#: The table of fingerprints in the audit database.
REPLAY_TABLE = "replay_fingerprint"
#: Every this many checks, a process deletes expired fingerprints...
PURGE_EVERY = 50
#: ... at most this many at a time: four times what those checks added.
PURGE_BATCH = 200


def replay_table(metadata: MetaData) -> Table:
    """Return the table of fingerprints: the key, and when it expires (Unix time in ms)."""
    return Table(
        REPLAY_TABLE,
        metadata,
        Column("fingerprint", String(64), primary_key=True),  # SHA-256, hex
        Column("expires_at_ms", BigInteger, nullable=False),
        Index(f"ix_{REPLAY_TABLE}_expires", "expires_at_ms"),
    )


class SqlReplayCache(SharedTable):
    """Fingerprints in a table of the audit database: one INSERT against its primary key.

    Every database error becomes :class:`ReplayStoreUnavailable` (fail
    closed).  On SQLite the writes take turns with the audit's through its
    writer lock (:class:`service.audit.WriterLock`).  Their commits are
    ``NORMAL``, with no fsync of their own: an answer leaves only after its
    audit record's commit, a FULL one into the same WAL file, which puts this
    row on disk too; a message whose answer never left may be forgotten by a
    power cut, and that is no replay.
    """

    unavailable = ReplayStoreUnavailable

    define_table = staticmethod(replay_table)

    def prepare_statements(self) -> None:
        """Compile this table's statements (see :class:`SharedTable`)."""
        t, dialect = self.table, self.engine.dialect
        self._insert = DriverStatement(
            insert(t).values(
                fingerprint=bindparam("fingerprint"), expires_at_ms=bindparam("expires_at_ms")
            ),
            dialect,
        )
        self._delete_expired = DriverStatement(
            delete(t).where(
                t.c.fingerprint == bindparam("fingerprint"),
                t.c.expires_at_ms <= bindparam("now_ms"),
            ),
            dialect,
        )
        oldest_expired = (
            select(t.c.fingerprint)
            .where(t.c.expires_at_ms <= bindparam("now_ms"))
            .order_by(t.c.expires_at_ms)
            # A literal: a bound limit renders only at execution on Oracle.
            .limit(literal_column(str(PURGE_BATCH)))
        )
        self._purge = DriverStatement(delete(t).where(t.c.fingerprint.in_(oldest_expired)), dialect)
        self._lookup = DriverStatement(
            select(t.c.fingerprint).where(t.c.fingerprint == bindparam("fingerprint")),
            dialect,
        )
        self._checks = itertools.count(1)

    def first_seen(self, key: str, ttl_s: float) -> bool:
        """Insert ``key`` to expire in ``ttl_s``; return False if an unexpired row has it."""
        purge = next(self._checks) % PURGE_EVERY == 0
        now_ms = self.now_ms()
        row = {"fingerprint": key, "expires_at_ms": now_ms + max(1, math.ceil(ttl_s * 1000))}
        return self.write(self._test_and_set_now, row, now_ms, purge)

    def _test_and_set_now(self, row: dict[str, Any], now_ms: int, purge: bool) -> bool:
        if purge:
            self.purge_in_passing(lambda conn: self._purged(conn, now_ms))
        return self.on_connection(lambda conn: self._test_and_set(conn, row, now_ms))

    def purge_expired(self) -> int:
        """Delete at most :data:`PURGE_BATCH` expired rows, oldest first; return how many."""
        now_ms = self.now_ms()
        return self.write(lambda: self.on_connection(lambda conn: self._purged(conn, now_ms)))

    def check(self) -> None:
        """Look a key up: return if the table answers; raise ReplayStoreUnavailable if not."""
        self.on_connection(self._looked_up)

    def _test_and_set(self, conn: PoolProxiedConnection, row: dict[str, Any], now_ms: int) -> bool:
        if self._inserted(conn, row):
            return True
        # The key is there: a replay, unless its row has expired.
        return self._inserted(conn, row, expired_by_ms=now_ms)

    def _inserted(
        self, conn: PoolProxiedConnection, row: dict[str, Any], expired_by_ms: int | None = None
    ) -> bool:
        """Insert ``row`` in one transaction; return False if its key is taken.

        With ``expired_by_ms``, the transaction first deletes the key's row if
        it expired by then, and returns False at once if there was none.  A
        duplicate key rolls back; other errors are raised.
        """
        cursor = conn.cursor()
        try:
            if expired_by_ms is not None:
                removal = {"fingerprint": row["fingerprint"], "now_ms": expired_by_ms}
                cursor.execute(self._delete_expired.sql, self._delete_expired.parameters(removal))
                if cursor.rowcount != 1:
                    conn.rollback()
                    return False
            cursor.execute(self._insert.sql, self._insert.parameters(row))
            conn.commit()
            return True
        except self._duplicate_key:
            conn.rollback()
            return False
        finally:
            cursor.close()

    def _purged(self, conn: PoolProxiedConnection, now_ms: int) -> int:
        cursor = conn.cursor()
        try:
            cursor.execute(self._purge.sql, self._purge.parameters({"now_ms": now_ms}))
            deleted = int(cursor.rowcount)
            conn.commit()
            return deleted
        finally:
            cursor.close()

    def _looked_up(self, conn: PoolProxiedConnection) -> None:
        cursor = conn.cursor()
        try:
            cursor.execute(self._lookup.sql, self._lookup.parameters({"fingerprint": ""}))
            cursor.fetchall()
            conn.rollback()
        finally:
            cursor.close()


def create_replay_cache(settings: Settings) -> ReplayCache:
    """Return the replay cache: the audit database by default, or ``AZERSU_REPLAY_URL``'s Redis."""
    url = redis_url(settings.replay_url)
    if url is None:
        return SqlReplayCache.from_url(settings.resolved_audit_url, settings.db_timeout_s)
    return RedisReplayCache.from_url(url)
