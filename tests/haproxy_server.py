"""HAProxy started from the shipped deploy/haproxy/haproxy.cfg, for the tests.

The configuration takes its addresses from the environment (``AZERSU_*``
variables, see the file's header), so the tests run the very file an operator
deploys.  HAProxy runs in the foreground (``-db``) and logs one JSON line per
request on stdout, kept in a file; its status page (``fe_stats``) tells the
state of each host as its health checks see it.  Without an ``haproxy``
program the tests are skipped, except on CI (``CI=true``), where that fails.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
#: The backend of the service instances in haproxy.cfg.
BACKEND = "be_azersu_statement"


def haproxy_executable() -> str:
    """Return the haproxy program; skip the test (fail on CI) if there is none."""
    return require_tool("haproxy", "haproxy", also=("/usr/sbin/haproxy",))


def haproxy_environment(backends: Sequence[str], **binds: str) -> dict[str, str]:
    """Return an environment for haproxy.cfg: ``AZERSU_BACKEND_<n>`` and the binds given.

    The caller's ``AZERSU_*`` variables are left out, so that nothing of the
    machine's own configuration leaks into the test.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
    for number, address in enumerate(backends, start=1):
        env[f"AZERSU_BACKEND_{number}"] = address
    env.update(binds)
    return env


def check_config(
    env: Mapping[str, str], path: Path = HAPROXY_CFG
) -> subprocess.CompletedProcess[str]:
    """Run ``haproxy -c -f path``; return its result (output in stdout)."""
    return subprocess.run(
        [haproxy_executable(), "-c", "-f", str(path)],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class HaproxyProcess:
    """One ``haproxy -db -f deploy/haproxy/haproxy.cfg`` process and its JSON log."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.stats_url = f"http://{self.env['AZERSU_HAPROXY_STATS_BIND']}/stats;csv"
        self.soap_url = f"http://{self.env['AZERSU_SOAP_BIND']}/soap"
        self.verify_base = f"http://{self.env['AZERSU_VERIFY_BIND']}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [haproxy_executable(), "-db", "-f", str(HAPROXY_CFG)],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if requests.get(self.stats_url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"haproxy did not start:\n{self.log_text()}")

    def server_states(self) -> dict[str, str]:
        """Return the health-check status of each host: ``UP``, ``DOWN``, ``UP 1/2``, ..."""
        text = requests.get(self.stats_url, timeout=5).text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_for_states(self, wanted: Mapping[str, str], timeout_s: float) -> float:
        """Wait until the hosts named have the status given; return the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout_s
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.server_states()
            if all(states.get(name) == status for name, status in wanted.items()):
                return time.monotonic() - started
            time.sleep(0.05)
        pytest.fail(f"HAProxy's hosts are {states}, not {dict(wanted)} after {timeout_s} s")

    def admin(self, command: str) -> str:
        """Send a command to the runtime API (AZERSU_HAPROXY_ADMIN_SOCKET); return the reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(self.env["AZERSU_HAPROXY_ADMIN_SOCKET"])
            sock.sendall(command.encode() + b"\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        return reply.decode()

    def server_sessions(self, server: str) -> int:
        """Return the requests HAProxy has at a host right now (its current sessions)."""
        text = requests.get(self.stats_url, timeout=5).text
        for row in csv.DictReader(io.StringIO(text.lstrip("# "))):
            if row["pxname"] == BACKEND and row["svname"] == server:
                return int(row["scur"] or 0)
        raise KeyError(server)

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """Return the request log lines (HAProxy's other messages are plain text)."""
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def wait_for_log_records(
        self, request_ids: Iterable[str], timeout_s: float = 10
    ) -> dict[str, dict[str, Any]]:
        """Return the request log lines by request id, once every id named has its line.

        HAProxy writes a request's line when the request ends, which may be a
        moment after the client has read the answer: wait for it (``timeout_s``).
        """
        wanted = set(request_ids)
        deadline = time.monotonic() + timeout_s
        while True:
            by_id = {record["request_id"]: record for record in self.log_records()}
            missing = wanted - by_id.keys()
            if not missing:
                return by_id
            if time.monotonic() > deadline:
                pytest.fail(
                    f"HAProxy logged no line for {len(missing)} request(s) in {timeout_s} s: "
                    f"{sorted(missing)[:5]}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
