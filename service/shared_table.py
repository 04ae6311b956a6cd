"""A table that every worker and host shares, kept in the audit database.

The replay fingerprints and the verification page's counts must be seen alike
by every process that answers, and the audit database is the one store all of
them write to already; so both tables live there, and are opened, written and
failed in one way, here: never failing open.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar, cast

from sqlalchemy import Engine, MetaData, Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection

from service.audit import WriterLock, create_missing_tables, open_audit_engine
from service.cooperative import driver_blocks_in_c, run_blocking
from service.errors import ConfigurationError

log = logging.getLogger("service.shared_table")
T = TypeVar("T")


class SharedTable:
    """One table of the audit database, shared by every worker and host.

    It is opened as the audit opens its own (:func:`service.audit.open_audit_engine`)
    and created if missing.  Writes take turns with the audit's on SQLite
    (:class:`service.audit.WriterLock`), off the gevent worker's loop when the
    driver blocks in C; a use that finds its pooled connection dropped runs
    once more on a new one; every database failure becomes the owner's
    :attr:`unavailable`, which the owner answers with a refusal.

    A subclass names its table (:meth:`define_table`), prepares its
    statements (:meth:`prepare_statements`), names the exception a
    failure becomes (:attr:`unavailable`), and does its work through
    :meth:`write` (under the writer lock, off the loop where needed) and
    :meth:`on_connection` (one pooled connection, failures translated).
    Expiry and windows use the wall clock (``time.time``), the one clock that
    all processes and hosts share.
    """

    #: What a database failure becomes; the owner's callers refuse on it.
    unavailable: ClassVar[type[Exception]]

    def __init__(
        self,
        engine: Engine,
        writer_lock: WriterLock | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self._writer_lock: contextlib.AbstractContextManager[object] = (
            writer_lock or contextlib.nullcontext()
        )
        self._clock = clock
        #: A local file (SQLite) blocks in C: its writes go to a native thread.
        self._blocks = driver_blocks_in_c(engine.dialect.name, engine.dialect.driver)
        self.metadata = MetaData()
        self.table = self.define_table(self.metadata)
        dbapi = engine.dialect.loaded_dbapi
        self._duplicate_key: type[Exception] = dbapi.IntegrityError
        self._driver_error: type[Exception] = dbapi.Error
        self.prepare_statements()

    @staticmethod
    def define_table(metadata: MetaData) -> Table:
        """Return the table, defined in ``metadata``."""
        raise NotImplementedError

    def prepare_statements(self) -> None:
        """Compile the subclass's statements for :attr:`table` and set up its own state.

        Called last in ``__init__``, once :attr:`table` and :attr:`engine` are set.
        """
        raise NotImplementedError

    @classmethod
    def from_url(
        cls, url_text: str, timeout_s: float = 3.0, *, clock: Callable[[], float] = time.time
    ) -> Self:
        """Open the audit database at ``url_text``; create the table if it is missing.

        The pool doesn't ping a connection before lending it (a round trip
        on every request): a use that finds it dead is run again instead
        (:meth:`on_connection`).  On SQLite the commits are ``NORMAL``: no
        fsync of their own (the owners say why that is enough for them).
        """
        engine, writer_lock = open_audit_engine(
            url_text, timeout_s, pre_ping=False, synchronous="NORMAL"
        )
        shared = cls(engine, writer_lock, clock=clock)
        try:
            create_missing_tables(engine, shared.metadata)
        except SQLAlchemyError as exc:
            raise ConfigurationError(
                "AZERSU_AUDIT_URL",
                f"cannot create the table {shared.table.name}: {type(exc).__name__}: {exc}",
            ) from exc
        return shared

    def close(self) -> None:
        """Release the connections and, on SQLite, the writer lock."""
        self.engine.dispose()
        if isinstance(self._writer_lock, WriterLock):
            self._writer_lock.close()

    def now_ms(self) -> int:
        """Return the wall clock in whole milliseconds."""
        return math.floor(self._clock() * 1000)

    def write(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(*args)`` under the writer lock; off the gevent loop if the driver blocks.

        The lock is not reentrant: ``work`` must not call :meth:`write` (or a
        method that does) again; it uses :meth:`on_connection` and
        :meth:`purge_in_passing`.
        """
        if self._blocks:
            return run_blocking(self._locked, work, *args)
        return self._locked(work, *args)

    def _locked(self, work: Callable[..., T], *args: Any) -> T:
        with self._writer_lock:
            return work(*args)

    def purge_in_passing(self, work: Callable[[PoolProxiedConnection], object]) -> None:
        """Delete expired rows with ``work``; a failure is logged, never a refusal.

        Housekeeping, not a decision: an expired row is never taken for a live
        one, and the write it comes with decides (and fails closed) by itself.
        """
        try:
            self.on_connection(work)
        except self.unavailable as exc:
            log.warning("%s: expired rows not purged: %s", self.table.name, exc)

    def on_connection(self, work: Callable[[PoolProxiedConnection], T]) -> T:
        """Run ``work`` on a pooled connection; raise :attr:`unavailable` if it fails.

        A network database drops pooled connections (a restart, a failover,
        a firewall).  Instead of a ping before every use, a use that finds
        its connection dead runs once more on a new one.  The owners' writes
        are safe to run twice: a replay row committed just before its
        connection died makes the second insert a refusal (wrong, never a
        wrong acceptance), and a count added twice limits a client sooner.  A
        connection that failed is invalidated: nothing half-done goes back to
        the pool.
        """
        for attempt in (1, 2):
            try:
                conn = self.engine.raw_connection()
            except (SQLAlchemyError, self._driver_error, OSError) as exc:
                raise self.unavailable(f"{type(exc).__name__}: {exc}") from exc
            try:
                return work(conn)
            except (SQLAlchemyError, self._driver_error, OSError) as exc:
                dead = self.engine.dialect.is_disconnect(
                    cast(Any, exc), conn.driver_connection, None
                )
                conn.invalidate()
                if attempt == 1 and dead:
                    log.info("%s: connection lost, trying a new one: %s", self.table.name, exc)
                    continue
                raise self.unavailable(f"{type(exc).__name__}: {exc}") from exc
            except BaseException:
                conn.invalidate()
                raise
            finally:
                conn.close()
        raise AssertionError("not reached: the second attempt returns or raises")
