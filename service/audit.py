"""The access audit: personal data leaves only with a record.

Every request to ``/soap`` produces exactly one :class:`AuditEntry`, whatever
its outcome (a Status, a SOAP Fault, or an HTTP refusal), and the record is
committed before the response is sent.  If the audit store can't commit, the
request fails closed with the Fault ``Server.AuditUnavailable``: no statement
leaves without its record.

The record of a request answered with a statement carries that statement's
row of the registry (:mod:`service.registry`), and both are inserted in one
transaction: the answer that leaves after the commit has its row, and an
answer whose commit failed never leaves.

The store is a separate, writable database (``AZERSU_AUDIT_URL``): SQLite
under ``var/`` by default (WAL, ``synchronous=FULL``: each commit is on disk),
PostgreSQL or Oracle in production.  The tables are created when missing.  On
SQLite the WAL is copied into the database file by a thread of each worker,
never by a commit that a request waits for (:class:`WalCheckpointer`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import SQLAlchemyError

from service.billing.engine import DriverStatement, normalize_url
from service.cooperative import (
    driver_blocks_in_c,
    native_lock,
    run_blocking,
    start_native_thread,
)
from service.errors import AuditUnavailable, ConfigurationError
from service.registry import IssuedStatement, StatementRegistry

log = logging.getLogger("service.audit")

#: A worker's checkpointer copies the WAL into the database file after this many
#: writes of its process (an audit commit, a replay or rate-count write: a few pages each)...
CHECKPOINT_AFTER_WRITES = 250
#: ... or this long after the first write, if there were fewer.
CHECKPOINT_WITHIN_S = 5.0
#: It looks at the count this often.
CHECKPOINT_POLL_S = 0.1
#: Past this many pages in the WAL (about 32 MB), it has the WAL start over.
RESTART_AT_FRAMES = 8000
#: A writing connection checkpoints by itself only past this many pages (about
#: 80 MB), should its process's checkpointer stop; SQLite's default is 1000.
FALLBACK_AUTOCHECKPOINT_FRAMES = 20_000


@dataclass
class AuditEntry:
    """One request, as the audit keeps it (never a name or an address)."""

    request_id: str
    recorded_at: dt.datetime
    outcome: str = ""  # a Status, a fault code, or HTTP_<status>
    client_subject: str = ""
    client_fingerprint: str = ""
    citizen_fin: str = ""
    subscriber_code: str = ""
    statement_number: str = ""
    duration_ms: float = 0.0
    remote_addr: str = ""
    xroad_client: str = ""
    xroad_service: str = ""
    xroad_message_id: str = ""
    #: The statement the request was answered with (Status OK), signed: its
    #: registry row, committed with this record.  Not a column of the audit.
    issued: IssuedStatement | None = None


#: The audit table's columns, as named in :class:`AuditEntry`.
AUDIT_COLUMNS = tuple(f.name for f in fields(AuditEntry) if f.name != "issued")


def _audit_table(metadata: MetaData, name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Column("request_id", String(36), nullable=False, unique=True),
        Column("outcome", String(64), nullable=False),
        Column("client_subject", String(512)),
        Column("client_fingerprint", String(64)),
        Column("citizen_fin", String(16)),
        Column("subscriber_code", String(64)),
        Column("statement_number", String(64)),
        Column("duration_ms", Float),
        Column("remote_addr", String(64)),
        Column("xroad_client", String(256)),
        Column("xroad_service", String(256)),
        Column("xroad_message_id", String(256)),
        Index(f"ix_{name}_fin_time", "citizen_fin", "recorded_at"),
        Index(f"ix_{name}_code_time", "subscriber_code", "recorded_at"),
        Index(f"ix_{name}_time", "recorded_at"),
    )


#: An audit commit longer than this is logged with its parts (WARNING "slow
#: audit commit"): every answer of its group waited for it.
SLOW_COMMIT_S = 0.1


@dataclass(frozen=True)
class CommitTiming:
    """How long one commit of grouped audit records took, part by part.

    ``lock_wait_s`` is the wait for the writer lock and a pooled connection.
    On SQLite the lock is held by any writer of the database on this host:
    another commit (of this worker or another), a replay or rate-count write,
    a revocation, or the checkpointer's restart step.  On a network database
    there is no lock, and the connection may need a ping or a reconnect.
    ``statements_s`` is the inserts; ``commit_s`` the commit: on SQLite the
    WAL write and its fsync, on a network database the round trip to the
    server's own WAL flush.
    """

    lock_wait_s: float
    statements_s: float
    commit_s: float

    @property
    def total_s(self) -> float:
        """The whole commit, as ``azersu_audit_commit_seconds`` counts it."""
        return self.lock_wait_s + self.statements_s + self.commit_s


class _GroupCommitter:
    """Commit the records of concurrent requests together: one transaction, one fsync.

    Each request still waits until its own record is committed (the answer
    is sent only after), but requests that arrive while a commit is on disk
    share the next one instead of queueing for a commit each.  The thread
    starts on first use, in the worker process (never before a fork).
    """

    MAX_BATCH = 256

    def __init__(self, store: AuditStore) -> None:
        self.store = store
        dialect = store.engine.dialect
        self._blocks = driver_blocks_in_c(dialect.name, dialect.driver)
        self.queue: queue.SimpleQueue[tuple[AuditEntry, _Pending]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = 0

    def submit(self, entry: AuditEntry, timeout_s: float) -> None:
        """Queue the record and wait until it is committed; raise AuditUnavailable if not."""
        pending = _Pending()
        self._queue(entry, pending)
        if not pending.committed.acquire(timeout=timeout_s):
            raise AuditUnavailable(f"no commit within {timeout_s} s")
        if pending.error is not None:
            raise pending.error

    def _queue(self, entry: AuditEntry, pending: _Pending) -> None:
        if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
            self._start_thread()
        self.queue.put((entry, pending))

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="audit-commit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            error: AuditUnavailable | None = None
            entries = [entry for entry, _ in batch]
            started = time.perf_counter()
            took: CommitTiming | None = None
            try:
                # A commit that waits in C (SQLite's fsync): in the gevent
                # worker, on a native thread, so the worker's other requests go on.
                if self._blocks:
                    took = run_blocking(self.store.insert_now, entries)
                else:
                    took = self.store.insert_now(entries)
            except AuditUnavailable as exc:
                error = exc
            except Exception as exc:  # a bug: fail the batch closed at once, say why
                log.exception("the audit commit failed unexpectedly")
                error = AuditUnavailable(f"{type(exc).__name__}: {exc}")
            try:
                # Reported before the requests it carried are answered: a slow
                # commit is in the log, and every commit in /metrics, by the
                # time its callers see their answers.
                self._report(took, time.perf_counter() - started, len(entries))
            finally:
                for _, pending in batch:
                    pending.finish(error)

    def _report(self, took: CommitTiming | None, elapsed_s: float, records: int) -> None:
        """Log a slow commit with its parts and hand every commit's seconds to the metrics."""
        seconds = took.total_s if took is not None else elapsed_s
        if took is not None and seconds > SLOW_COMMIT_S:
            log.warning(
                "slow audit commit",
                extra={
                    "records": records,
                    "lock_wait_ms": round(took.lock_wait_s * 1000, 1),
                    "statements_ms": round(took.statements_s * 1000, 1),
                    "commit_ms": round(took.commit_s * 1000, 1),
                },
            )
        if self.store.on_commit is not None:
            try:
                self.store.on_commit(seconds)
            except Exception:  # the metrics must not stop the committer
                log.exception("the audit commit's metrics failed")


class _Pending:
    """A record waiting for its commit: a lock the committer releases.

    One bare lock per request instead of a ``Future`` (a condition variable,
    its own lock and a waiter list): the hand-off happens on every request.
    """

    __slots__ = ("committed", "error")

    def __init__(self) -> None:
        self.committed = threading.Lock()
        self.committed.acquire()
        self.error: AuditUnavailable | None = None

    def finish(self, error: AuditUnavailable | None) -> None:
        """Tell the waiter how the commit went."""
        self.error = error
        self.committed.release()


class AuditStore:
    """Write and read audit records in their own database."""

    def __init__(
        self,
        engine: Engine,
        table_name: str = "audit_record",
        commit_timeout_s: float = 3.0,
        writer_lock: contextlib.AbstractContextManager[object] | None = None,
    ) -> None:
        self.engine = engine
        self._writer_lock = writer_lock or contextlib.nullcontext()
        #: Called with the seconds of every commit of grouped records (the
        #: writer lock, the insert and the commit; for a failed one, until it
        #: failed), in the committer's thread: the metrics.
        self.on_commit: Callable[[float], None] | None = None
        self.metadata = MetaData()
        self.table = _audit_table(self.metadata, table_name)
        self.commit_timeout_s = commit_timeout_s
        self._committer = _GroupCommitter(self)
        self.registry = StatementRegistry(engine, self.metadata, self._writer_lock)
        self._insert = DriverStatement(
            insert(self.table).values(
                {name: bindparam(name, type_=self.table.c[name].type) for name in AUDIT_COLUMNS}
            ),
            engine.dialect,
        )
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    @classmethod
    def from_url(cls, url_text: str, timeout_s: float = 3.0) -> AuditStore:
        """Open (and if needed create) the audit store at ``url_text``."""
        engine, writer_lock = open_audit_engine(url_text, timeout_s)
        store = cls(engine, commit_timeout_s=timeout_s, writer_lock=writer_lock)
        try:
            create_missing_tables(engine, store.metadata)
        except SQLAlchemyError as exc:
            raise ConfigurationError(
                "AZERSU_AUDIT_URL", f"cannot open the audit store: {type(exc).__name__}: {exc}"
            ) from exc
        return store

    def record(self, entry: AuditEntry) -> None:
        """Commit one record (grouped with concurrent ones), or raise AuditUnavailable.

        The caller answers only after this returns, and fails closed if it raises.
        """
        self._committer.submit(entry, self.commit_timeout_s)

    def insert_now(self, entries: Sequence[AuditEntry]) -> CommitTiming:
        """Insert and commit records in one transaction, or raise AuditUnavailable.

        The registry rows of the statements they answered with go in the
        same transaction.  Return how long it waited for the writer lock,
        ran the inserts and committed.  The inserts run on the pooled DBAPI connection
        (:class:`service.billing.engine.DriverStatement`), which costs a
        fraction of SQLAlchemy's execution layer on every commit.
        """
        started = time.perf_counter()
        try:
            records = [{name: getattr(e, name) for name in AUDIT_COLUMNS} for e in entries]
            issued = [e.issued.row() for e in entries if e.issued is not None]
            with self._writer_lock:
                conn = self.engine.raw_connection()
                locked = time.perf_counter()
                try:
                    # A failed statement or commit invalidates the connection:
                    # nothing half-done goes back to the pool.
                    self._insert.execute_many(conn, records)
                    if issued:
                        self.registry.insert.execute_many(conn, issued)
                    written = time.perf_counter()
                    try:
                        conn.commit()
                    except BaseException:
                        conn.invalidate()
                        raise
                finally:
                    conn.close()
                committed = time.perf_counter()
        except (SQLAlchemyError, self._driver_error, OSError, ValueError) as exc:
            raise AuditUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return CommitTiming(locked - started, written - locked, committed - written)

    def search(
        self,
        *,
        fin: str | None = None,
        code: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Return records, newest first, filtered by FIN, subscriber code and time."""
        t = self.table
        query = select(t).order_by(t.c.recorded_at.desc(), t.c.id.desc()).limit(limit)
        if fin:
            query = query.where(t.c.citizen_fin == fin)
        if code:
            query = query.where(t.c.subscriber_code == code)
        if since:
            query = query.where(t.c.recorded_at >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [AuditEntry(**{name: row[name] for name in AUDIT_COLUMNS}) for row in rows]

    def revoke(self, number: str, reason: str, entry: AuditEntry) -> bool:
        """Revoke a statement and commit ``entry`` (its audit record) in one transaction.

        Return False, committing nothing, when no unrevoked statement has
        that number.
        """
        values = {"target": number, "revoked_on": entry.recorded_at, "reason_text": reason}
        try:
            with self._writer_lock:
                conn = self.engine.raw_connection()
                try:
                    cursor = conn.cursor()
                    try:
                        statement = self.registry.revoke_statement
                        cursor.execute(statement.sql, statement.parameters(values))
                        revoked = cursor.rowcount == 1
                    finally:
                        cursor.close()
                    if not revoked:
                        conn.rollback()
                        return False
                    record = {name: getattr(entry, name) for name in AUDIT_COLUMNS}
                    self._insert.execute_many(conn, [record])
                    conn.commit()
                    return True
                except BaseException:
                    conn.invalidate()
                    raise
                finally:
                    conn.close()
        except (SQLAlchemyError, self._driver_error, OSError) as exc:
            raise AuditUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def count(self) -> int:
        """Return the number of records."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.table)).scalar_one())

    def check(self) -> None:
        """Raise AuditUnavailable unless the store answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(self.table.c.id).where(self.table.c.id == -1))
        except SQLAlchemyError as exc:
            raise AuditUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Release the connections and, on SQLite, the writer lock."""
        self.engine.dispose()
        if isinstance(self._writer_lock, WriterLock):
            self._writer_lock.close()


def open_audit_engine(
    url_text: str, timeout_s: float, *, pre_ping: bool = True, synchronous: str = "FULL"
) -> tuple[Engine, WriterLock | None]:
    """Open the engine of the audit database and, on SQLite, its writer lock.

    The tables shared beside the audit's (:class:`service.shared_table.SharedTable`:
    the replay fingerprints, the verification page's counts) open it here
    too: the same timeouts, the same turn-taking of writers.
    ``pre_ping`` tests a pooled connection of a network database before
    lending it (a round trip; an SQLite file is never pinged).  ``synchronous``
    is SQLite's pragma for the engine's commits (WAL mode always).  The writer
    lock of an SQLite file starts the file's :class:`WalCheckpointer` in the
    process that first writes through it.
    """
    url = normalize_url(url_text, "AZERSU_AUDIT_URL")
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:":
            raise ConfigurationError("AZERSU_AUDIT_URL", "an SQLite audit store needs a file")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        connect_args["timeout"] = timeout_s
    elif url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = max(2, int(timeout_s + 0.999))
        # A statement or a lock wait (an insert behind another transaction's
        # uncommitted row with the same key) ends with an error, not a hang.
        timeout_ms = int(timeout_s * 1000)
        connect_args["options"] = f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}"
    try:
        # Only a network store can drop a pooled connection.
        engine = create_engine(
            url,
            connect_args=connect_args,
            pool_pre_ping=pre_ping and url.get_backend_name() != "sqlite",
        )
    except Exception as exc:
        raise ConfigurationError("AZERSU_AUDIT_URL", f"{type(exc).__name__}: {exc}") from exc
    if url.get_backend_name() != "sqlite":
        return engine, None
    _durable_sqlite(engine, synchronous)
    file = Path(url.database or "")
    checkpointer = wal_checkpointer(file, timeout_s)
    checkpointer.add_user()
    return engine, WriterLock(_lock_path(file), checkpointer=checkpointer)


def create_missing_tables(engine: Engine, metadata: MetaData) -> None:
    """Create the tables and indexes of ``metadata`` that the database lacks, beside other hosts.

    ``create_all`` looks, then creates.  Hosts that start together against
    a fresh database all see a table missing; the first CREATE TABLE wins
    and the others fail (PostgreSQL: a unique violation in ``pg_type`` or
    42P07; SQLite: "table ... already exists"; Oracle: ORA-00955).  A host
    whose try failed looks again: if a table it missed is there now,
    another host made it, and it tries once more; if nothing changed (no
    right to create, a lock timeout, no database), the error is raised.
    An unreachable database fails the first look, after one timeout.  The
    indexes are then looked up one by one: on SQLite and Oracle every DDL
    statement commits by itself, so a host that died between its CREATE
    TABLE and its CREATE INDEX leaves the index to the next start.
    """
    missing = _missing_tables(engine, metadata)
    while missing:
        try:
            metadata.create_all(engine)
            break
        except SQLAlchemyError as exc:
            still_missing = _missing_tables(engine, metadata)
            if not still_missing < missing:
                raise
            log.info(
                "another host created a table meanwhile; trying again",
                extra={"tables": sorted(missing - still_missing), "error": type(exc).__name__},
            )
            missing = still_missing
    for table in metadata.sorted_tables:
        for index in table.indexes:
            try:
                index.create(engine, checkfirst=True)
            except SQLAlchemyError:
                # Another host's CREATE INDEX won between the look and ours.
                if not sa_inspect(engine).has_index(table.name, str(index.name)):
                    raise


def _missing_tables(engine: Engine, metadata: MetaData) -> set[str]:
    inspector = sa_inspect(engine)
    return {name for name in metadata.tables if not inspector.has_table(name)}


def _lock_path(database: Path) -> Path:
    return Path(f"{database}.writer-lock")


class WriterLock:
    """One writer at a time on an SQLite audit store, across the gunicorn workers.

    SQLite lets one connection write at a time; a second writer gets
    SQLITE_BUSY and its busy handler *sleeps* -- 1, 2, 5, 10 ms and more --
    before it retries, although the first writer's commit (an fsync) takes
    about a millisecond.  Under load that turned into tens of milliseconds of
    latency and idle CPU.  An exclusive ``flock(2)`` on a file beside the
    database makes the second worker's committer wait in the kernel and go
    the moment the first is done.  The file is opened per process: a lock
    descriptor inherited across fork() would be shared, not exclusive.  The
    threads (gevent's greenlets) of one process share the descriptor, which
    flock() doesn't tell apart, so they take turns on a thread lock first.
    With a ``checkpointer``, the first writer of a process starts it there,
    and every release counts a write for it.
    """

    def __init__(self, path: Path, checkpointer: WalCheckpointer | None = None) -> None:
        self.path = path
        self._checkpointer = checkpointer
        self._fd: int | None = None
        self._pid = 0
        # Taken by the native threads that run the commits (run_blocking).
        self._threads = native_lock()

    def __enter__(self) -> WriterLock:
        if self._checkpointer is not None:
            self._checkpointer.ensure_running()
        self._threads.acquire()
        try:
            if self._fd is None or self._pid != os.getpid():
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()
        if self._checkpointer is not None:
            self._checkpointer.wrote()

    def close(self) -> None:
        """Close the lock file; the last store of a database to close stops its checkpointer."""
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.remove_user()
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


class WalCheckpointer:
    """Copy an SQLite audit store's WAL into the database file, off the request path.

    Left to itself, SQLite checkpoints in the commit that takes the WAL past
    1000 pages: that commit copies the pages into the database file and
    fsyncs it while it holds the write lock, and every writer of every
    worker -- audit commits, replay and rate-count writes, which answers wait
    for -- waits behind it (docs/performance.md has the timeline).  The service's
    connections checkpoint only past :data:`FALLBACK_AUTOCHECKPOINT_FRAMES`;
    a native thread of each worker process does it instead:

    1. after :data:`CHECKPOINT_AFTER_WRITES` writes of its process (or
       :data:`CHECKPOINT_WITHIN_S` after the first), a PASSIVE checkpoint
       copies the WAL into the database file beside the writers, without
       stopping them;
    2. once the WAL holds :data:`RESTART_AT_FRAMES` pages, it takes the
       writer lock and checkpoints again -- only the pages committed during
       step 1 -- so that the next writer finds the WAL wholly copied and
       starts it over from its beginning.  A checkpoint beside writers that
       never pause never catches up, and the WAL would grow without end.

    The WAL file keeps its size when it starts over (SQLite overwrites it),
    so a commit's fsync never has to extend a file.
    """

    def __init__(
        self,
        database: Path,
        writer_lock: WriterLock,
        timeout_s: float = 3.0,
        *,
        after_writes: int = CHECKPOINT_AFTER_WRITES,
        within_s: float = CHECKPOINT_WITHIN_S,
        restart_at_frames: int = RESTART_AT_FRAMES,
        poll_s: float = CHECKPOINT_POLL_S,
    ) -> None:
        self.database = database
        self.writer_lock = writer_lock
        self.timeout_s = timeout_s
        self.after_writes = after_writes
        self.within_s = within_s
        self.restart_at_frames = restart_at_frames
        self.poll_s = poll_s
        #: Checkpoints run, and those of them that held the writer lock.
        self.checkpoints = 0
        self.restarts = 0
        # Writes since the last checkpoint: counted without a lock, so roughly.
        self._writes = 0
        self._pid = 0
        self._starting = native_lock()
        self._stop: Any = None
        # The open stores whose writer lock counts writes for it.
        self._users = 0

    def add_user(self) -> None:
        """Count a store that writes through this checkpointer's database."""
        with _checkpointers_lock:
            self._users += 1

    def remove_user(self) -> None:
        """Uncount a closed store; after the last, stop the thread and forget the checkpointer."""
        with _checkpointers_lock:
            self._users -= 1
            last = self._users <= 0
            key = os.path.realpath(self.database)
            if last and _checkpointers.get(key) is self:
                del _checkpointers[key]
        if last:
            self.stop()

    def wrote(self) -> None:
        """Count a write transaction of this process (its writer lock was just released)."""
        self._writes += 1

    def ensure_running(self) -> None:
        """Start the thread in this process unless it runs (after a fork it doesn't)."""
        if self._pid == os.getpid():
            return
        with self._starting:
            if self._pid == os.getpid():
                return
            self._stop = native_lock()
            self._stop.acquire()
            self._writes = 0
            start_native_thread(self._run, "audit-checkpoint")
            self._pid = os.getpid()

    def stop(self) -> None:
        """Stop this process's thread (after its current checkpoint, if one runs)."""
        if self._pid == os.getpid() and self._stop is not None:
            self._stop.release()
            self._pid = 0

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int]:
        """Copy the WAL into the database; return (pages in the WAL, pages copied)."""
        _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        # Only after a step 1 that copied everything (no reader held an older
        # snapshot): under the lock there is then only what came meanwhile.
        if frames >= self.restart_at_frames and copied >= frames:
            with self.writer_lock:
                _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.restarts += 1
        return int(frames), int(copied)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.database, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
        )
        # A checkpoint syncs the WAL before it copies and the database file after.
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _run(self) -> None:
        stop = self._stop
        conn: sqlite3.Connection | None = None
        last = time.monotonic()
        resume = 0.0
        while not stop.acquire(timeout=self.poll_s):
            now = time.monotonic()
            writes = self._writes
            if now < resume or not (
                writes >= self.after_writes or (writes and now - last >= self.within_s)
            ):
                continue
            self._writes = 0
            last = now
            try:
                conn = conn or self._connect()
                self.checkpoint(conn)
            except Exception as exc:  # the thread must outlive any failure
                # The commits go on, and past the fallback they checkpoint themselves.
                log.warning("audit WAL checkpoint failed: %s: %s", type(exc).__name__, exc)
                if conn is not None:
                    conn.close()
                conn = None
                resume = now + 10 * self.within_s
        if conn is not None:
            conn.close()


_checkpointers: dict[str, WalCheckpointer] = {}
_checkpointers_lock = threading.Lock()


def wal_checkpointer(database: Path, timeout_s: float = 3.0) -> WalCheckpointer:
    """Return the one checkpointer of ``database`` (started by the first writer of a process)."""
    key = os.path.realpath(database)
    with _checkpointers_lock:
        checkpointer = _checkpointers.get(key)
        if checkpointer is None:
            checkpointer = WalCheckpointer(database, WriterLock(_lock_path(database)), timeout_s)
            _checkpointers[key] = checkpointer
        return checkpointer


def _durable_sqlite(engine: Engine, synchronous: str = "FULL") -> None:
    """WAL, ``synchronous`` (FULL: a commit is on disk before it returns), no checkpoints.

    Checkpoints are :class:`WalCheckpointer`'s; a connection runs one only
    past the fallback size.
    """
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous={synchronous!r}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_AUTOCHECKPOINT_FRAMES}")
        cursor.close()


def format_entries(entries: Sequence[AuditEntry]) -> str:
    """Return records as aligned text, one per line."""
    lines = []
    for e in entries:
        lines.append(
            f"{e.recorded_at:%Y-%m-%d %H:%M:%S%z}  {e.request_id}  {e.outcome:<28} "
            f"fin={e.citizen_fin or '-':<8} code={e.subscriber_code or '-':<12} "
            f"stmt={e.statement_number or '-'}  {e.duration_ms:.1f} ms  {e.client_subject or '-'}"
        )
    return "\n".join(lines)
