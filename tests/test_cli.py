"""The azersu-statement command: serve (gunicorn), call, init-demo, configuration errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests import billing_fixtures as bf
from tests.gunicorn_process import (  # noqa: F401 (fixtures: pytest injects them by name)
    ServedProcess,
    free_port,
    gunicorn_server,
    gunicorn_service,
    registered_portal,
)

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        capture_output=True,
        text=True,
        env=env or clean_env(),
        timeout=timeout,
        check=False,
    )


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
    env.update(overrides)
    return env


def trust_env(pki: dict[str, Path], **overrides: str) -> dict[str, str]:
    return clean_env(
        AZERSU_SIGN_KEY=str(pki["service.key"]),
        AZERSU_SIGN_CERT=str(pki["service.pem"]),
        AZERSU_TRUST_CA=str(pki["ca.pem"]),
        AZERSU_TRUSTED_CLIENTS=registered_portal(pki),
        **overrides,
    )


def portal_args(pki: dict[str, Path]) -> list[str]:
    return [
        "--key", str(pki["portal.key"]),
        "--cert", str(pki["portal.pem"]),
        "--trust", str(pki["ca.pem"]),
    ]  # fmt: skip


def test_call_prints_the_statement_as_a_table(gunicorn_server: str, pki) -> None:
    result = run_cli(
        "call", "--url", gunicorn_server, "--code", bf.FULL, "--fin", bf.FIN, *portal_args(pki)
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Status:  OK" in out
    assert f"{bf.AZ_LAST} {bf.AZ_FIRST} {bf.AZ_PATRONYMIC}" in out
    assert bf.AZ_ADDRESS in out
    for year, month in bf.WINDOW:
        assert f"{year}-{month:02d}" in out
    assert "144.00" in out


def test_call_prints_raw_xml(gunicorn_server: str, pki) -> None:
    result = run_cli(
        "call", "--url", gunicorn_server, "--code", bf.FULL, "--fin", bf.FIN, "--xml",
        *portal_args(pki),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "<tns:Statement Id=" in result.stdout
    assert bf.AZ_LAST in result.stdout


def test_call_business_status_exits_one(gunicorn_server: str, pki) -> None:
    result = run_cli(
        "call", "--url", gunicorn_server, "--code", "", "--fin", bf.FIN, "--lang", "en",
        *portal_args(pki),
    )  # fmt: skip
    assert result.returncode == 1
    assert "SUBSCRIBER_CODE_EMPTY" in result.stdout
    assert "Please enter your subscriber code" in result.stdout


def test_call_unreachable_service(pki) -> None:
    url = f"http://127.0.0.1:{free_port()}/soap"
    result = run_cli(
        "call", "--url", url, "--code", bf.FULL, "--fin", bf.FIN, "--timeout", "2",
        *portal_args(pki),
    )  # fmt: skip
    assert result.returncode == 4
    assert "cannot reach" in result.stderr


def _request_lines(server: ServedProcess) -> list[dict]:
    return [r for r in server.log_records() if r.get("message") == "request"]


def _replays(server: ServedProcess) -> list[dict]:
    refused = "security fault InvalidSecurity (replay): the message was already accepted"
    return [r for r in server.log_records() if r.get("message") == refused]


@pytest.mark.parametrize("destination", ["file", "-"])
def test_call_dump_request_writes_a_signed_request_and_sends_nothing(
    gunicorn_service: ServedProcess, pki, tmp_path: Path, destination: str
) -> None:
    path = tmp_path / "request.xml"
    before = len(_request_lines(gunicorn_service))
    replays_before = len(_replays(gunicorn_service))
    result = run_cli(
        "call", "--url", gunicorn_service.url, "--code", bf.FULL, "--fin", bf.FIN,
        "--dump-request", str(path) if destination == "file" else "-",
        *portal_args(pki),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    if destination == "file":
        assert result.stdout == ""
    else:
        path.write_text(result.stdout, encoding="utf-8")
    data = path.read_bytes()
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<soap-env:Envelope ")
    assert "not sent" in result.stderr
    headers = dict(re.findall(r"-H '([^:]+): ([^']*)'", result.stderr))
    assert headers == {
        "SOAPAction": '"GetBillingStatement"',
        "Content-Type": "text/xml; charset=utf-8",
    }
    assert len(_request_lines(gunicorn_service)) == before  # written, not sent

    # The service's own verifier, offline, would take it.
    check = run_cli(
        "check-request", str(path),
        "--trust", str(pki["ca.pem"]),
        "--trusted-clients", registered_portal(pki),
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("would be accepted: signed by CN=portal.e-gov.az")

    # Posted as printed: taken once; the second post is a replay.
    first = requests.post(gunicorn_service.url, data=data, headers=headers, timeout=10)
    second = requests.post(gunicorn_service.url, data=data, headers=headers, timeout=10)
    assert first.status_code == 200, first.text
    assert f"<tns:LastName>{bf.AZ_LAST}</tns:LastName>" in first.text
    assert second.status_code == 500
    assert "<faultcode>wsse:InvalidSecurity</faultcode>" in second.text
    outcomes = [line["outcome"] for line in _request_lines(gunicorn_service)[before:]]
    assert outcomes == ["OK", "wsse:InvalidSecurity"]
    assert len(_replays(gunicorn_service)) == replays_before + 1


def test_call_dump_request_to_an_unwritable_file(gunicorn_server: str, pki, tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "request.xml"
    result = run_cli(
        "call", "--url", gunicorn_server, "--code", bf.FULL, "--fin", bf.FIN,
        "--dump-request", str(target), *portal_args(pki),
    )  # fmt: skip
    assert result.returncode == 2
    assert f"cannot write {target}" in result.stderr
    assert not target.exists()


def test_serve_with_a_missing_database_stops_with_one_line(tmp_path: Path, pki) -> None:
    env = trust_env(pki, AZERSU_BILLING_URL=f"sqlite:///{tmp_path}/missing.sqlite")
    result = run_cli("serve", "--port", str(free_port()), env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "AZERSU_BILLING_URL" in lines[0]


def test_unknown_setting_stops_the_start() -> None:
    result = run_cli("serve", env=clean_env(AZERSU_PROT="80"))
    assert result.returncode == 2
    assert "AZERSU_PROT: unknown setting" in result.stderr


def test_init_demo_then_call(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite"
    result = run_cli(
        "init-demo",
        "--db",
        f"sqlite:///{db}",
        "--subscribers",
        "200",
        "--months",
        "14",
        "--end-period",
        "2026-10",
    )
    assert result.returncode == 0, result.stderr
    assert "residential" in result.stdout
    again = run_cli("init-demo", "--db", f"sqlite:///{db}", "--subscribers", "200")
    assert again.returncode == 1
    assert "--replace" in again.stderr


def test_call_with_xroad_headers(gunicorn_server: str, pki) -> None:
    result = run_cli(
        "call", "--url", gunicorn_server, "--code", bf.FULL,
        "--xroad-client", "AZ/GOV/1400057421/portal",
        "--xroad-service", "AZ/COM/9900015741/billing",
        "--xroad-user-id", "AZ" + bf.FIN,
        *portal_args(pki),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Status:  OK" in result.stdout
    assert bf.AZ_LAST in result.stdout


def test_call_with_a_malformed_xroad_client() -> None:
    result = run_cli(
        "call", "--code", bf.FULL, "--fin", bf.FIN,
        "--xroad-client", "AZ/GOV", "--xroad-service", "AZ/COM/1/billing",
    )  # fmt: skip
    assert result.returncode == 2
    assert "INSTANCE/CLASS/CODE" in result.stderr


def test_pki_fingerprint_prints_what_registers_a_caller(pki) -> None:
    from cryptography import x509

    from service.signing.keys import fingerprint

    result = run_cli("pki", "fingerprint", str(pki["portal.pem"]))
    assert result.returncode == 0, result.stderr
    portal = x509.load_pem_x509_certificate(pki["portal.pem"].read_bytes())
    assert result.stdout == fingerprint(portal) + "\n"


@pytest.mark.parametrize(
    ("certificate", "status", "message"),
    [
        pytest.param("ca.pem", 1, "not fit to sign (signer_is_ca)", id="the-ca"),
        pytest.param("missing.pem", 2, "cannot read a PEM certificate", id="missing-file"),
        pytest.param("portal.key", 2, "cannot read a PEM certificate", id="a-key"),
        pytest.param("two.pem", 2, "holds 2 certificates, not one", id="two-certificates"),
    ],
)
def test_pki_fingerprint_refuses(
    pki, tmp_path: Path, certificate: str, status: int, message: str
) -> None:
    (tmp_path / "two.pem").write_bytes(pki["portal.pem"].read_bytes() + pki["ca.pem"].read_bytes())
    path = pki.get(certificate) or tmp_path / certificate
    result = run_cli("pki", "fingerprint", str(path))
    assert result.returncode == status
    assert message in result.stderr
    assert result.stdout == ""


def test_make_run_serves_the_development_portal(tmp_path: Path, billing_db: str) -> None:
    """The command ``make run`` runs, on a fresh ``pki init``: it starts and answers the portal."""
    pki_dir = tmp_path / "pki"
    created = run_cli("pki", "init", "--out", str(pki_dir))
    assert created.returncode == 0, created.stderr
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "azersu-statement").exists(), "the project is not installed in this venv"
    # The demo database exists (the billing data comes from the environment), so
    # `make -n run` prints the one command that `make run` would run.
    planned = subprocess.run(
        [
            "make",
            "--no-print-directory",  # under `make test` this make is a nested one
            "-n",
            "run",
            f"PKI={pki_dir}",
            f"BIN={bin_dir}",
            f"DEMO_DB={billing_db.removeprefix('sqlite:///')}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    serve_line = planned.stdout.strip().splitlines()[-1]
    command = f" {bin_dir}/azersu-statement serve"
    assert serve_line.endswith(command), planned.stdout
    assert "AZERSU_TRUSTED_CLIENTS=" in serve_line
    # Run as make runs it, but exec'd: the shell's process is the server, which stop() signals.
    exec_line = serve_line.removesuffix(command) + " exec" + command
    env = clean_env(
        AZERSU_BILLING_URL=billing_db,
        AZERSU_REPORT_PERIOD=bf.REPORT_PERIOD,
        AZERSU_VAR_DIR=str(tmp_path / "var"),
        AZERSU_WORKERS="1",
    )
    server = ServedProcess(env, tmp_path / "serve.log", shell_command=exec_line)
    try:
        portal = ["--key", str(pki_dir / "portal.key"), "--cert", str(pki_dir / "portal.pem")]
        result = run_cli(
            "call", "--url", server.url, "--code", bf.FULL, "--fin", bf.FIN,
            *portal, "--trust", str(pki_dir / "ca.pem"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + server.log_text()
        assert "Status:  OK" in result.stdout
    finally:
        assert server.stop() == 0, server.log_text()
    assert "ACCEPT_ANY_CALLER" not in server.log_text()
