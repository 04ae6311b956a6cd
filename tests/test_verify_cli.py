"""The offline commands as subprocesses: `pki init`, `verify`, and `call --save-statement`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from service import namespaces as ns
from service.client import StatementClient
from service.namespaces import TNS
from service.signing.statement_signature import StatementSigner
from tests import billing_fixtures as bf
from tests.gunicorn_process import (  # noqa: F401 (fixtures: pytest injects them by name)
    gunicorn_server,
    gunicorn_service,
)

pytestmark = pytest.mark.slow

PKI_FILES = ("ca.pem", "ca.key", "service.key", "service.pem", "portal.key", "portal.pem")
PRIVATE = ("ca.key", "service.key", "portal.key")
AZ_NAME = f"{bf.AZ_LAST} {bf.AZ_FIRST} {bf.AZ_PATRONYMIC}"


def clean_env(**overrides: str) -> dict[str, str]:
    """Return the environment without any AZERSU_* setting, UTF-8 on the pipes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(overrides)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env or clean_env(),
        timeout=timeout,
        check=False,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- pki init --------------------------------------------------------------------------------


def test_pki_init_creates_six_files_with_private_keys_0600(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    result = run_cli("pki", "init", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(PKI_FILES)
    for name in PKI_FILES:
        assert str(out / name) in result.stdout
    for name in PRIVATE:
        assert mode(out / name) == 0o600, name
        assert b"PRIVATE KEY" in (out / name).read_bytes()
    for name in set(PKI_FILES) - set(PRIVATE):
        assert b"BEGIN CERTIFICATE" in (out / name).read_bytes()


@pytest.mark.parametrize("existing", ["all", "one"])
def test_pki_init_refuses_to_overwrite_without_force(tmp_path: Path, existing: str) -> None:
    out = tmp_path / "pki"
    assert run_cli("pki", "init", "--out", str(out)).returncode == 0
    if existing == "one":
        for name in PKI_FILES:
            if name != "portal.key":
                (out / name).unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = run_cli("pki", "init", "--out", str(out))
    assert result.returncode == 1
    assert "--force" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_pki_init_force_replaces_everything(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert run_cli("pki", "init", "--out", str(out)).returncode == 0
    before = {name: (out / name).read_bytes() for name in PKI_FILES}
    result = run_cli("pki", "init", "--out", str(out), "--force")
    assert result.returncode == 0, result.stderr
    for name in PKI_FILES:
        assert (out / name).read_bytes() != before[name], name
    for name in PRIVATE:
        assert mode(out / name) == 0o600, name


def test_pki_init_force_makes_a_loose_key_file_private(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert run_cli("pki", "init", "--out", str(out)).returncode == 0
    (out / "service.key").chmod(0o644)
    assert run_cli("pki", "init", "--out", str(out), "--force").returncode == 0
    assert mode(out / "service.key") == 0o600


# --- verify ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def statement_bytes(portal: StatementClient) -> bytes:
    """Return a Statement cut out of a real response, as ``call --save-statement`` saves it."""
    result = portal.call(bf.FULL, bf.FIN)
    assert result.statement is not None
    return etree.tostring(result.statement.statement, encoding="UTF-8")


@pytest.fixture
def statement_file(tmp_path: Path, statement_bytes: bytes) -> Path:
    path = tmp_path / "statement.xml"
    path.write_bytes(statement_bytes)
    return path


def assert_verified(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("VERIFIED: signed by ")
    assert "CN=billing-statement.azersu.az" in out.splitlines()[0]
    assert AZ_NAME in out
    assert bf.AZ_ADDRESS in out
    assert bf.FULL in out
    for year, month in bf.WINDOW:
        assert f"{year}-{month:02d}" in out
    assert "144.00" in out  # the invoiced total of the twelve months


def test_verify_a_saved_statement(statement_file: Path, pki: dict[str, Path]) -> None:
    assert_verified(run_cli("verify", str(statement_file), "--trust", str(pki["ca.pem"])))


def test_verify_takes_the_trust_anchor_from_the_setting(
    statement_file: Path, pki: dict[str, Path]
) -> None:
    env = clean_env(AZERSU_TRUST_CA=str(pki["ca.pem"]))
    assert_verified(run_cli("verify", str(statement_file), env=env))


def assert_not_verified(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    """The command refused the file and showed nothing of what the file claims."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert result.stdout == ""
    assert "NOT VERIFIED" in result.stderr
    for secret in (bf.AZ_LAST, bf.AZ_FIRST, bf.AZ_PATRONYMIC, bf.AZ_ADDRESS, bf.FULL, *secrets):
        assert secret not in output, secret


def edit(data: bytes, name: str, old: str, new: str) -> bytes:
    """Return ``data`` with the first tns:``name`` text changed from ``old`` to ``new``."""
    root = etree.fromstring(data)
    element = next(root.iter(f"{{{TNS}}}{name}"))
    assert element.text == old
    element.text = new
    return etree.tostring(root, encoding="UTF-8")


TAMPERING = [
    pytest.param("InvoicedAmount", "12.00", "1.00", id="amount"),
    pytest.param("PaidAmount", "12.00", "120.00", id="paid"),
    pytest.param("FirstName", bf.AZ_FIRST, "Gulsen", id="name"),
    pytest.param("Address", bf.AZ_ADDRESS, "Sumqayıt şəhəri, ev 1", id="address"),
    pytest.param("Year", "2025", "2024", id="year"),
]


@pytest.mark.parametrize(("element", "old", "new"), TAMPERING)
def test_verify_refuses_a_tampered_statement(
    tmp_path: Path, statement_bytes: bytes, pki: dict[str, Path], element: str, old: str, new: str
) -> None:
    path = tmp_path / "tampered.xml"
    path.write_bytes(edit(statement_bytes, element, old, new))
    result = run_cli("verify", str(path), "--trust", str(pki["ca.pem"]))
    assert_not_verified(result, new if element in ("FirstName", "Address") else bf.AZ_LAST)


def test_verify_refuses_a_statement_under_another_ca(tmp_path: Path, statement_file: Path) -> None:
    other = tmp_path / "other-pki"
    assert run_cli("pki", "init", "--out", str(other)).returncode == 0
    result = run_cli("verify", str(statement_file), "--trust", str(other / "ca.pem"))
    assert_not_verified(result)
    assert "trust anchor" in result.stderr


def test_verify_refuses_a_statement_signed_by_a_client_certificate(
    tmp_path: Path, statement_bytes: bytes, pki: dict[str, Path], portal_identity
) -> None:
    root = etree.fromstring(statement_bytes)
    root.remove(root[-1])  # the service's signature
    forged = edit(etree.tostring(root), "InvoicedAmount", "12.00", "999.00")
    root = etree.fromstring(forged)
    StatementSigner(portal_identity).sign(root)  # the portal's key, issued by the same CA
    path = tmp_path / "forged.xml"
    path.write_bytes(etree.tostring(root, encoding="UTF-8"))
    assert_not_verified(run_cli("verify", str(path), "--trust", str(pki["ca.pem"])), "999.00")


def test_verify_refuses_a_file_with_a_doctype(
    tmp_path: Path, statement_bytes: bytes, pki: dict[str, Path]
) -> None:
    path = tmp_path / "doctype.xml"
    path.write_bytes(b'<!DOCTYPE Statement [<!ENTITY x "y">]>\n' + statement_bytes)
    assert_not_verified(run_cli("verify", str(path), "--trust", str(pki["ca.pem"])))


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not xml at all", id="not-xml"),
        pytest.param(b"<Statement/>", id="not-a-statement"),
        pytest.param(None, id="signature-removed"),
    ],
)
def test_verify_refuses_what_is_not_a_signed_statement(
    tmp_path: Path, statement_bytes: bytes, pki: dict[str, Path], content: bytes | None
) -> None:
    if content is None:
        root = etree.fromstring(statement_bytes)
        signature = root[-1]
        assert signature.tag == f"{{{ns.DS}}}Signature"
        root.remove(signature)
        content = etree.tostring(root, encoding="UTF-8")
    path = tmp_path / "file.xml"
    path.write_bytes(content)
    assert_not_verified(run_cli("verify", str(path), "--trust", str(pki["ca.pem"])))


def test_verify_a_missing_file_exits_two(tmp_path: Path, pki: dict[str, Path]) -> None:
    result = run_cli("verify", str(tmp_path / "missing.xml"), "--trust", str(pki["ca.pem"]))
    assert result.returncode == 2
    assert "cannot read" in result.stderr
    assert "VERIFIED" not in result.stdout


def test_verify_with_a_missing_trust_file_is_a_configuration_error(
    tmp_path: Path, statement_file: Path
) -> None:
    result = run_cli("verify", str(statement_file), "--trust", str(tmp_path / "missing.pem"))
    assert result.returncode == 2
    assert "configuration error: --trust" in result.stderr
    assert result.stdout == ""


# --- call --save-statement, then verify, against gunicorn ------------------------------------


def test_call_save_statement_then_verify(
    gunicorn_server: str, pki: dict[str, Path], tmp_path: Path
) -> None:
    saved = tmp_path / "saved.xml"
    call = run_cli(
        "call", "--url", gunicorn_server, "--code", bf.FULL, "--fin", bf.FIN,
        "--key", str(pki["portal.key"]), "--cert", str(pki["portal.pem"]),
        "--trust", str(pki["ca.pem"]), "--save-statement", str(saved),
    )  # fmt: skip
    assert call.returncode == 0, call.stderr
    assert saved.is_file()
    root = etree.fromstring(saved.read_bytes())
    assert root.tag == f"{{{TNS}}}Statement"
    assert root.findtext(f"{{{TNS}}}StatementNumber") in call.stdout
    assert_verified(run_cli("verify", str(saved), "--trust", str(pki["ca.pem"])))
