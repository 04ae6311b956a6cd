"""A throwaway PostgreSQL server for tests and benchmarks: a real ``postgres``, no mocks.

Usage::

    from tests.postgres_server import PostgresServer, postgres_available

    if postgres_available():
        with PostgresServer() as pg:           # initdb + start on a free port
            url = pg.create_database("billing")  # postgresql+psycopg://postgres@127.0.0.1:PORT/billing
            ...
            pg.stop("immediate")                 # simulate a crash; pg.start() brings it back
        # leaving the block stops the server and deletes its files

The server lives in a fresh temporary directory (data, unix socket, log) and
listens on a free TCP port on 127.0.0.1 (kept across ``stop``/``start``), with
``trust`` authentication for the superuser ``postgres``.  Durability is off
(``fsync=off``): the data survives a server crash
(``stop("immediate")``), not an OS crash.  When the process runs as root,
``initdb``, ``pg_ctl`` and the server run as the ``postgres`` OS user (initdb
refuses root).  The binaries come from ``pg_config --bindir``, else the newest
``/usr/lib/postgresql/*/bin``, else the PATH; ``PG_BINDIR`` overrides them.

The public API is small on purpose: :func:`find_bindir`,
:func:`postgres_available`, :func:`unavailable_reason`, and
:class:`PostgresServer` with ``url``, ``create_database``, ``connect``,
``start``, ``stop``, ``restart``, ``cleanup``, ``port``, ``host``, ``running``
and ``log_tail``.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

__all__ = [
    "PostgresServer",
    "PostgresServerError",
    "find_bindir",
    "postgres_available",
    "unavailable_reason",
]

#: The OS user that runs the server when we are root.
OS_USER = "postgres"
#: The database superuser (trust authentication, no password).
SUPERUSER = "postgres"
#: Seconds allowed for initdb and for pg_ctl start/stop.
COMMAND_TIMEOUT_S = 60
_BINARIES = ("initdb", "pg_ctl", "postgres")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
StopMode = Literal["smart", "fast", "immediate"]


class PostgresServerError(RuntimeError):
    """initdb or pg_ctl failed; the message holds the command's output and the log tail."""


def _has_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in _BINARIES)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def find_bindir() -> Path | None:
    """Return the directory of initdb, pg_ctl and postgres, or None when not installed."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))
    candidates.extend(
        sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    return next((c for c in candidates if _has_binaries(c)), None)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def unavailable_reason() -> str | None:
    """Return why no PostgreSQL server can be started here, or None when one can."""
    if find_bindir() is None:
        return (
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: "
            "install the postgresql package or set PG_BINDIR"
        )
    if _running_as_root():
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"running as root and there is no {OS_USER!r} OS user to run initdb as"
        if not shutil.which("runuser"):
            return "running as root and runuser is missing"
    return None


def postgres_available() -> bool:
    """Return whether :class:`PostgresServer` can run on this machine."""
    return unavailable_reason() is None


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A disposable PostgreSQL cluster in a temporary directory, on a free port.

    The constructor runs initdb and, unless ``start=False``, starts the server.
    Always call :meth:`cleanup` (or use the object as a context manager); an
    ``atexit`` hook is a last resort so that no server outlives the process.
    """

    host = "127.0.0.1"

    def __init__(
        self, *, start: bool = True, bindir: Path | None = None, parent: Path | None = None
    ) -> None:
        """Create the cluster in a new directory under ``parent`` (default: the temp dir).

        When running as root, the ``postgres`` user must be able to reach ``parent``.
        """
        reason = unavailable_reason() if bindir is None else None
        if reason:
            raise PostgresServerError(reason)
        self.bindir = bindir or find_bindir()
        assert self.bindir is not None
        self.as_root = _running_as_root()
        self.base_dir = Path(tempfile.mkdtemp(prefix="azersu-pg-", dir=parent))
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        self.log_path = self.base_dir / "postgres.log"
        self.port = free_port(self.host)
        self._started_once = False
        self._cleaned = False
        atexit.register(self.cleanup)
        try:
            self.socket_dir.mkdir()
            if self.as_root:
                entry = pwd.getpwnam(OS_USER)
                for path in (self.base_dir, self.socket_dir):
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            self._initdb()
            if start:
                self.start()
        except BaseException:
            self.cleanup()
            raise

    # ------------------------------------------------------------------ public API

    def url(self, database: str = "postgres") -> str:
        """Return the SQLAlchemy URL of ``database`` (psycopg 3, trust auth, TCP)."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty UTF-8 database ``name`` (a lower-case identifier); return its URL."""
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"not a plain lower-case identifier: {name!r}")
        with self.connect(autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        return self.url(name)

    def terminate_connections(self, database: str) -> int:
        """Terminate every other session on ``database`` (as a restart or a firewall would)."""
        with self.connect(autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
        return int(row[0])

    def connect(self, database: str = "postgres", **kwargs: Any) -> Any:
        """Open a psycopg 3 connection to ``database`` as the superuser (caller closes it)."""
        import psycopg

        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(
            host=self.host, port=self.port, user=SUPERUSER, dbname=database, **kwargs
        )

    @property
    def running(self) -> bool:
        """Return whether the server is running (``pg_ctl status``)."""
        if self._cleaned or not (self.data_dir / "PG_VERSION").exists():
            return False
        result = self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False)
        return result.returncode == 0

    def start(self) -> None:
        """Start the server and wait until it accepts connections (same port as before)."""
        attempts = 1 if self._started_once else 3
        for attempt in range(attempts):
            try:
                self._pg_ctl("start", "-l", str(self.log_path))
            except PostgresServerError:
                # Someone took the free port between the probe and the start: pick another.
                if attempt + 1 < attempts and "could not bind" in self.log_tail():
                    self.port = free_port(self.host)
                    self._write_config()
                    continue
                raise
            self._started_once = True
            return

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server: ``fast`` (roll back, disconnect) or ``immediate`` (a crash)."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown stop mode {mode!r}")
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: StopMode = "fast") -> None:
        """Stop (if running) and start again on the same port."""
        if self.running:
            self.stop(mode)
        self.start()

    def cleanup(self) -> None:
        """Stop the server if it runs and delete its directory; safe to call twice."""
        if self._cleaned:
            return
        try:
            if self.running:
                self._pg_ctl("stop", "-m", "immediate", check=False)
        finally:
            self._cleaned = True
            shutil.rmtree(self.base_dir, ignore_errors=True)
            atexit.unregister(self.cleanup)

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines of the server log (for failure messages)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"PostgresServer({self.host}:{self.port}, {self.base_dir})"

    # ------------------------------------------------------------------ internals

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        self._write_config()

    def _write_config(self) -> None:
        """Write our settings to postgresql.auto.conf (read last, so it wins)."""
        settings = {
            "listen_addresses": f"'{self.host}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "60",
            "shared_buffers": "'32MB'",
            # Durability against an OS crash is not needed; against a server crash it
            # is (tests stop the server with -m immediate and expect their rows back),
            # so synchronous_commit stays on: commits reach the OS before returning.
            "fsync": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
            "timezone": "'UTC'",
        }
        auto = self.data_dir / "postgresql.auto.conf"
        auto.write_text(
            "# written by tests/postgres_server.py\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items()),
            encoding="utf-8",
        )
        if self.as_root:
            entry = pwd.getpwnam(OS_USER)
            os.chown(auto, entry.pw_uid, entry.pw_gid)

    def _pg_ctl(self, action: str, *args: str, check: bool = True) -> None:
        self._run(
            "pg_ctl",
            action,
            "-D", str(self.data_dir),
            "-w",
            "-t", str(COMMAND_TIMEOUT_S),
            *args,
            check=check,
        )  # fmt: skip

    def _run(self, binary: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.bindir is not None
        argv = [str(self.bindir / binary), *args]
        if self.as_root:
            argv = ["runuser", "-u", OS_USER, "--", *argv]
        # Output goes to a file, never a pipe: the server that pg_ctl forks must
        # not hold our pipe open (it would block us until the server stops).
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as output:
            try:
                result = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    text=True,
                    cwd=self.base_dir,
                    timeout=COMMAND_TIMEOUT_S + 10,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise PostgresServerError(f"{binary} {' '.join(args)} timed out") from exc
            output.seek(0)
            text = output.read()
        if check and result.returncode != 0:
            raise PostgresServerError(
                f"{binary} {' '.join(args)} exited with {result.returncode}:\n{text}\n"
                f"--- server log ---\n{self.log_tail()}"
            )
        return subprocess.CompletedProcess(argv, result.returncode, text, "")
