"""A real install works: ``pip install .`` into a fresh venv, commands from an empty folder.

This is what an operator does on a new host, so nothing here may lean on the
source tree: the package is installed (not editable) and every command runs
from an empty working folder.  The interpreter is this test's own, or the
one named by ``AZERSU_TEST_PYTHON`` (``.ci/run`` runs this module on the
newest Python the machine has).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gunicorn_process import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PYTHON = os.environ.get("AZERSU_TEST_PYTHON") or sys.executable


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the bin folder of a fresh venv with the package installed from a copy of the tree."""
    base = tmp_path_factory.mktemp("install")
    venv = base / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZERSU_", "PYTHON"))}
    run([PYTHON, "-m", "venv", str(venv)], base, env)
    # Build from a clean export of the tracked files: what a release would hold.
    source = base / "source"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, archive):
        target = source / name.decode()
        if (ROOT / name.decode()).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((ROOT / name.decode()).read_bytes())
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)], base, env)
    return venv / "bin"


def test_installed_package_serves_calls_renders_and_verifies(
    installed: Path, tmp_path: Path
) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZERSU_", "PYTHON"))}
    tool = str(installed / "azersu-statement")
    run([tool, "init-demo", "--db", "sqlite:///demo.sqlite", "--subscribers", "300"], work, env)
    run([tool, "pki", "init", "--out", "pki"], work, env)
    portal = run([tool, "pki", "fingerprint", "pki/portal.pem"], work, env).strip()
    with sqlite3.connect(work / "demo.sqlite") as conn:
        code, fin = conn.execute(
            "SELECT subscriber_code, fin FROM subscriber WHERE category = 'RESIDENTIAL' "
            "AND status = 'ACTIVE' ORDER BY subscriber_code LIMIT 1"
        ).fetchone()
    port = free_port()
    serve_env = {
        **env,
        "AZERSU_BILLING_URL": "sqlite:///demo.sqlite",
        "AZERSU_SIGN_KEY": "pki/service.key",
        "AZERSU_SIGN_CERT": "pki/service.pem",
        "AZERSU_TRUST_CA": "pki/ca.pem",
        "AZERSU_TRUSTED_CLIENTS": portal,
        "AZERSU_PORT": str(port),
        "AZERSU_WORKERS": "1",
    }
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [tool, "serve"], cwd=work, env=serve_env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}/soap"
        wait_until_up(url, server, tmp_path / "serve.log")
        printed = run(
            [tool, "call", "--url", url, "--code", code, "--fin", fin,
             "--key", "pki/portal.key", "--cert", "pki/portal.pem",
             "--trust", "pki/ca.pem", "--save-statement", "statement.xml"],
            work, env,
        )  # fmt: skip
        assert code in printed
        run([tool, "verify", "statement.xml", "--trust", "pki/ca.pem"], work, env)
        rendered = run(
            [tool, "render", "statement.xml", "--format", "html", "-o", "statement.html",
             "--trust", "pki/ca.pem"],
            work, {**env, "AZERSU_PORT": str(port)},
        )  # fmt: skip
        page = (work / "statement.html").read_text(encoding="utf-8")
        assert code in page
        assert "Azərsu" in page  # the issuer, with its ə intact
        # The printed link opens the installed page (its template and stylesheet packaged).
        [link] = [line.split(": ", 1)[1] for line in rendered.splitlines() if "(QR code)" in line]
        assert link.startswith(f"http://127.0.0.1:{port}/verify?n=")
        import requests

        answer = requests.get(link, timeout=10)
        assert answer.status_code == 200 and 'data-result="VALID"' in answer.text
        assert requests.get(f"http://127.0.0.1:{port}/verify.css", timeout=10).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    import time

    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if requests.get(url + "?wsdl", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    pytest.fail(f"serve did not start:\n{log.read_text(errors='replace')[-3000:]}")
