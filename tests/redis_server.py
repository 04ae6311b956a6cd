"""A real, throwaway redis-server on loopback for the tests.

No persistence (``--save "" --appendonly no``), its working directory in a
temporary folder, a free port on 127.0.0.1.  It can be stopped and started
again on the same port (the Redis-outage tests).  Without a redis-server on
the machine the tests are skipped, except on CI (``CI=true``), where a
missing server is a failure: the shared replay store must be tested there.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import require_tool

DEBIAN_REDIS_SERVER = "/usr/bin/redis-server"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_executable() -> str:
    """Return the redis-server program; skip the test (fail on CI) if there is none."""
    return require_tool("redis-server", "redis-server", also=(DEBIAN_REDIS_SERVER,))


def ping(port: int, timeout: float = 0.5) -> bool:
    """Return whether a Redis on 127.0.0.1:``port`` answers PING (raw RESP, no client)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process, started and stopped on demand on a fixed port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.executable = redis_server_executable()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 15) -> None:
        """Start the server and wait until it answers PING."""
        if self.running:
            return
        argv = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--maxmemory-policy", "noeviction",
            "--logfile", "",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if ping(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self.log()}")

    def stop(self, timeout: float = 10) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)

    def restart(self) -> None:
        """Stop, then start again on the same port (and with an empty data set)."""
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    """Run a redis-server for the ``with`` block; it is always stopped afterwards."""
    server = RedisServer(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
