"""Run ``azersu-statement serve`` (gunicorn) as a real process for a test."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def registered_portal(pki: dict[str, Path]) -> str:
    """Return the SHA-256 fingerprint of the test PKI's portal, for AZERSU_TRUSTED_CLIENTS."""
    from cryptography import x509

    from service.signing.keys import fingerprint

    return fingerprint(x509.load_pem_x509_certificate(pki["portal.pem"].read_bytes()))


def service_env(pki: dict[str, Path], **overrides: str) -> dict[str, str]:
    """Return an environment without the caller's AZERSU_* settings, with the test PKI.

    The portal is the one registered caller.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
    env.update(
        AZERSU_SIGN_KEY=str(pki["service.key"]),
        AZERSU_SIGN_CERT=str(pki["service.pem"]),
        AZERSU_TRUST_CA=str(pki["ca.pem"]),
        AZERSU_TRUSTED_CLIENTS=registered_portal(pki),
    )
    env.update(overrides)
    return env


def fixture_service_env(
    pki: dict[str, Path], billing_url: str, var_dir: Path, **overrides: str
) -> dict[str, str]:
    """Return :func:`service_env` for one worker on the hand-made billing data (period pinned)."""
    from tests.billing_fixtures import REPORT_PERIOD

    settings = {
        "AZERSU_BILLING_URL": billing_url,
        "AZERSU_REPORT_PERIOD": REPORT_PERIOD,
        "AZERSU_VAR_DIR": str(var_dir),
        "AZERSU_WORKERS": "1",
    }
    return service_env(pki, **{**settings, **overrides})


class ServedProcess:
    """A gunicorn master with its workers, its stderr kept in a file."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        scheme: str = "http",
        client_cert: tuple[str, str] | None = None,
        shell_command: str | None = None,
        port: int | None = None,
    ) -> None:
        """Start the server; with ``scheme="https"``, ``client_cert`` opens the TLS door.

        ``shell_command`` is an ``sh`` command line that execs ``serve`` (it is
        given ``--port``), such as the one ``make run`` runs.  ``port`` is a
        port to serve on (default: a free one), such as a stopped server's.
        """
        self.port = port or free_port()
        self.scheme = scheme
        self.ca = env.get("AZERSU_TLS_CLIENT_CA")
        self.client_cert = client_cert
        host = "localhost" if scheme == "https" else "127.0.0.1"
        self.base_url = f"{scheme}://{host}:{self.port}"
        self.url = f"{self.base_url}/soap"
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [sys.executable, "-m", "service", "serve", "--port", str(self.port)]
        if shell_command is not None:
            command = ["sh", "-c", f"{shell_command} --port {self.port}"]
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        options: dict[str, Any] = {}
        if self.scheme == "https":
            # Any certificate of the client CA opens the TLS door for /healthz.
            options.update(verify=self.ca, cert=self.client_cert)
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                health = requests.get(f"{self.base_url}/healthz", timeout=1, **options)
                if health.status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or a busy machine
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"serve did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """Return the JSON log lines (other lines are ignored)."""
        records = []
        for line in self.log_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout_s: float = 30) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def gunicorn_service(
    billing_db: str, pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    """Serve the hand-made billing data with ``azersu-statement serve``; yield the process."""
    folder = tmp_path_factory.mktemp("gunicorn")
    env = fixture_service_env(pki, billing_db, folder / "var")
    server = ServedProcess(env, folder / "serve.log")
    yield server
    assert server.stop() == 0, server.log_text()


@pytest.fixture(scope="module")
def gunicorn_server(gunicorn_service: ServedProcess) -> str:
    """The /soap URL of :func:`gunicorn_service` (one server per module either way)."""
    return gunicorn_service.url
