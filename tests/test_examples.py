"""The integration kit in examples/ works against the real server.

* ``examples/python/client.py``: zeep's ``BinarySignature`` gets in, and the
  example refuses an answer that the service's certificate did not sign;
* ``examples/shell/call.sh``: ``azersu-statement call --dump-request``, then
  ``curl`` posts the request;
* ``examples/soapui/``: SoapUI cannot run here, so its project file is read
  and the request SoapUI would send with its outgoing WS-Security
  configuration is built (:mod:`tests.soapui_project`) and posted with
  ``curl``.  Each setting of the file counts: changed to one the policy
  refuses, the replay is refused for that reason.

The node-soap example is run by tests/test_node_soap.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from lxml import etree

from service import namespaces as ns
from service.client import StatementClient
from service.pki import IssuedPair, issue
from service.signing.trust import TrustStore
from tests import billing_fixtures as bf
from tests import soapui_project
from tests.conftest import ROOT, node_version_problem, require, require_tool
from tests.gunicorn_process import (  # noqa: F401 (a fixture: pytest injects it by name)
    ServedProcess,
    gunicorn_service,
)

pytestmark = pytest.mark.slow

EXAMPLES = ROOT / "examples"
SOAPUI_PROJECT = EXAMPLES / "soapui" / "azersu-billing-statement-soapui-project.xml"
SOAPUI_CALL = "GetBillingStatement (signed)"
#: The values the tests give the project's properties (SoapUI's -P option).
SOAPUI_PROPERTIES = {"SubscriberCode": bf.FULL, "CitizenFin": bf.FIN, "Language": "az"}


def t(name: str) -> str:
    return f"{{{ns.TNS}}}{name}"


@pytest.fixture
def verifier(
    gunicorn_service: ServedProcess, portal_identity, trust: TrustStore
) -> StatementClient:
    """Our strict client, to check the answers the examples received."""
    return StatementClient(gunicorn_service.url, portal_identity, trust)


def request_lines(server: ServedProcess) -> list[dict]:
    return [r for r in server.log_records() if r.get("message") == "request"]


def security_faults(server: ServedProcess) -> list[str]:
    return [
        str(r["message"])
        for r in server.log_records()
        if str(r.get("message")).startswith("security fault ")
    ]


def load_ca(pki: dict[str, Path]) -> IssuedPair:
    key = serialization.load_pem_private_key(pki["ca.key"].read_bytes(), None)
    cert = x509.load_pem_x509_certificate(pki["ca.pem"].read_bytes())
    return IssuedPair(key, cert)  # type: ignore[arg-type]


# --- Python: zeep ------------------------------------------------------------------------------


def run_python_example(
    server: ServedProcess, pki: dict[str, Path], service_cert: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, str(EXAMPLES / "python" / "client.py"),
            "--url", server.url,
            "--code", bf.FULL,
            "--fin", bf.FIN,
            "--key", str(pki["portal.key"]),
            "--cert", str(pki["portal.pem"]),
            "--service-cert", str(service_cert),
        ],
        capture_output=True, text=True, encoding="utf-8", timeout=60, check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )  # fmt: skip


def test_the_zeep_example_gets_its_statement(
    gunicorn_service: ServedProcess, pki: dict[str, Path]
) -> None:
    result = run_python_example(gunicorn_service, pki, pki["service.pem"])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Status: OK"
    assert f"Subscriber: {bf.FULL} {bf.AZ_LAST} {bf.AZ_FIRST} {bf.AZ_PATRONYMIC}" in lines
    assert f"Address: {bf.AZ_ADDRESS}" in lines
    assert len([line for line in lines if re.match(r"\d{4}-\d{2}  ", line)]) == len(bf.WINDOW)
    assert lines[-1] == "Totals: 288 m3  invoiced 144.00  paid 144.00 AZN"
    number = next(line for line in lines if line.startswith("Statement: ")).split()[1]
    assert request_lines(gunicorn_service)[-1]["statement_number"] == number


def test_the_zeep_example_refuses_an_answer_the_service_did_not_sign(
    gunicorn_service: ServedProcess, pki: dict[str, Path]
) -> None:
    # The portal's certificate in place of the service's: the answer's signature is not its.
    result = run_python_example(gunicorn_service, pki, pki["portal.pem"])
    assert result.returncode == 5, result.stdout + result.stderr
    assert "the answer is NOT trusted" in result.stderr
    assert bf.AZ_LAST not in result.stdout


# --- shell: azersu-statement call --dump-request, then curl -------------------------------------


def run_shell_example(
    server: ServedProcess, pki: dict[str, Path], key: Path, cert: Path, curl: str
) -> subprocess.CompletedProcess[bytes]:
    command = Path(sys.executable).parent / "azersu-statement"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
    env.update(
        STATEMENT_COMMAND=str(command),
        CODE=bf.FULL,
        FIN=bf.FIN,
        KEY=str(key),
        CERT=str(cert),
        TRUST=str(pki["ca.pem"]),
        # The script's curl is the one the curl fixture found.
        PATH=f"{Path(curl).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return subprocess.run(
        ["sh", str(EXAMPLES / "shell" / "call.sh"), server.url],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_shell_example_posts_a_dumped_request_with_curl(
    curl: str, gunicorn_service: ServedProcess, pki: dict[str, Path], verifier: StatementClient
) -> None:
    before = len(request_lines(gunicorn_service))
    result = run_shell_example(gunicorn_service, pki, pki["portal.key"], pki["portal.pem"], curl)
    assert result.returncode == 0, result.stdout + result.stderr
    envelope, statement = verifier.verify_response(result.stdout.strip())
    assert envelope.body.findtext(f".//{t('Status')}") == "OK"
    assert statement is not None
    assert statement.statement.findtext(f"{t('Subscriber')}/{t('LastName')}") == bf.AZ_LAST
    # One request reached the service: curl's (the dump itself sent nothing).
    lines = request_lines(gunicorn_service)
    assert len(lines) == before + 1
    assert lines[-1]["outcome"] == "OK"
    assert lines[-1]["statement_number"] == statement.statement_number


def test_the_shell_example_passes_on_a_refusal_as_curl_s_status(
    curl: str,
    gunicorn_service: ServedProcess,
    pki: dict[str, Path],
    verifier: StatementClient,
    tmp_path: Path,
) -> None:
    # A caller of the right CA that is not registered: FailedAuthentication, HTTP 500.
    stranger = issue(load_ca(pki), "stranger.e-gov.az", "e-gov.az", client=True)
    (tmp_path / "stranger.key").write_bytes(stranger.key_pem())
    (tmp_path / "stranger.pem").write_bytes(stranger.cert_pem())
    subject = stranger.certificate.subject.rfc4514_string()
    reason = "security fault FailedAuthentication (signer_not_registered)"
    expected = f"{reason}: certificate {subject} "
    before = [m for m in security_faults(gunicorn_service) if m.startswith(expected)]
    result = run_shell_example(
        gunicorn_service, pki, tmp_path / "stranger.key", tmp_path / "stranger.pem", curl
    )
    assert result.returncode == 22, result.stdout + result.stderr  # curl --fail-with-body
    envelope, statement = verifier.verify_response(result.stdout.strip())
    assert statement is None
    assert envelope.body.findtext(f".//{{{ns.SOAP11_ENV}}}Fault/faultcode") == (
        "wsse:FailedAuthentication"
    )
    # The reason: the stranger's certificate is not registered (logged once, for this call).
    refused = [m for m in security_faults(gunicorn_service) if m.startswith(expected)]
    assert len(refused) == len(before) + 1, gunicorn_service.log_text()[-3000:]


# --- SoapUI: the project's request, replayed with curl ------------------------------------------


@pytest.fixture
def soapui_folder(tmp_path: Path, pki: dict[str, Path]) -> Path:
    """A copy of examples/soapui/ with the keystore its project names, made from the test PKI.

    The keystore is what a SoapUI user makes from the portal's key and
    certificate (README.md there); its password is the test's own.
    """
    folder = tmp_path / "soapui"
    folder.mkdir()
    (folder / SOAPUI_PROJECT.name).write_bytes(SOAPUI_PROJECT.read_bytes())
    return folder


KEYSTORE_PASSWORD = "test-only"


def write_keystore(folder: Path, call: soapui_project.SignedCall, pki: dict[str, Path]) -> None:
    """Write the keystore the project's crypto names, under its default alias."""
    (crypto,) = call.cryptos.values()
    key = serialization.load_pem_private_key(pki["portal.key"].read_bytes(), None)
    cert = x509.load_pem_x509_certificate(pki["portal.pem"].read_bytes())
    (folder / crypto.source).write_bytes(
        pkcs12.serialize_key_and_certificates(
            crypto.default_alias.encode(),
            key,  # type: ignore[arg-type]
            cert,
            None,
            serialization.BestAvailableEncryption(KEYSTORE_PASSWORD.encode()),
        )
    )


def replay_with_curl(
    curl: str, server: ServedProcess, project: Path, folder: Path, pki: dict[str, Path]
) -> tuple[int, bytes]:
    """Sign the project's call as SoapUI would and post it with curl; return (status, body)."""
    call = soapui_project.read_signed_call(project, SOAPUI_CALL, SOAPUI_PROPERTIES)
    # The project is meant for `make run`: the same service at another address.
    assert call.endpoint == "http://127.0.0.1:8080/soap"
    assert call.wsdl == f"{call.endpoint}?wsdl"
    write_keystore(folder, call, pki)
    request = folder / "request.xml"
    request.write_bytes(soapui_project.sign_as_soapui(call, folder, KEYSTORE_PASSWORD))
    answer = folder / "answer.xml"
    result = subprocess.run(
        [
            curl, "--silent", "--show-error",
            "--output", str(answer), "--write-out", "%{http_code}",
            "--header", f"Content-Type: {call.content_type}",
            "--header", f'SOAPAction: "{call.soap_action}"',
            "--data-binary", f"@{request}",
            server.url,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return int(result.stdout), answer.read_bytes()


def test_the_soapui_project_s_request_gets_in(
    curl: str,
    gunicorn_service: ServedProcess,
    pki: dict[str, Path],
    soapui_folder: Path,
    verifier: StatementClient,
) -> None:
    status, answer = replay_with_curl(
        curl, gunicorn_service, soapui_folder / SOAPUI_PROJECT.name, soapui_folder, pki
    )
    assert status == 200, answer.decode(errors="replace")
    envelope, statement = verifier.verify_response(answer)
    assert envelope.body.findtext(f".//{t('Status')}") == "OK"
    assert statement is not None
    assert statement.statement.findtext(f"{t('Subscriber')}/{t('FirstName')}") == bf.AZ_FIRST
    line = request_lines(gunicorn_service)[-1]
    assert (line["outcome"], line["statement_number"]) == ("OK", statement.statement_number)

    # The request was laid out as WSS4J lays it out, from the project's settings.
    request = etree.parse(str(soapui_folder / "request.xml")).getroot()
    security = request.find(f"{{{ns.SOAP11_ENV}}}Header/{{{ns.WSSE}}}Security")
    assert [etree.QName(e).localname for e in security] == [
        "BinarySecurityToken",
        "Signature",
        "Timestamp",
    ]
    assert [e.get("PrefixList") for e in request.iter(f"{{{ns.EXC_C14N}}}InclusiveNamespaces")] == [
        "soapenv v1",  # SignedInfo: the prefixes above the Security header
        "v1",  # the Body
        "wsse soapenv v1",  # the Timestamp
    ]


def _set_signature_setting(root: etree._Element, name: str, value: str) -> None:
    (element,) = root.iter(name)
    element.text = value


def _drop_timestamp_part(root: etree._Element) -> None:
    (part,) = [p for p in root.iter("signaturePart") if 'value="Timestamp"' in (p.text or "")]
    part.getparent().remove(part)


def _no_timestamp(root: etree._Element) -> None:
    (ttl,) = root.iter("timeToLive")
    ttl.text = "0"  # SoapUI then adds no Timestamp...
    _drop_timestamp_part(root)  # ...and WSS4J could not sign one


#: Edits of the project that the policy refuses: (edit, fault code, logged reason and detail).
SOAPUI_REFUSALS = [
    pytest.param(
        lambda root: _set_signature_setting(
            root, "signatureAlgorithm", soapui_project.WSS4J_DEFAULTS["signatureAlgorithm"]
        ),
        "UnsupportedAlgorithm",
        "(signature_method): signature method 'http://www.w3.org/2000/09/xmldsig#rsa-sha1'",
        id="rsa-sha1",
    ),
    pytest.param(
        # Left at SoapUI's "<default>": WSS4J's RSA-SHA1.
        lambda root: _set_signature_setting(root, "signatureAlgorithm", ""),
        "UnsupportedAlgorithm",
        "(signature_method): signature method 'http://www.w3.org/2000/09/xmldsig#rsa-sha1'",
        id="default-signature-algorithm",
    ),
    pytest.param(
        lambda root: _set_signature_setting(root, "digestAlgorithm", ""),
        "UnsupportedAlgorithm",
        "(digest_method): digest method 'http://www.w3.org/2000/09/xmldsig#sha1'",
        id="default-digest",
    ),
    pytest.param(
        _drop_timestamp_part,
        "InvalidSecurity",
        f"(required_reference): {{{ns.WSU}}}Timestamp is not signed",
        id="body-only",
    ),
    pytest.param(
        _no_timestamp,
        "InvalidSecurity",
        "(structure): expected exactly one wsu:Timestamp, found 0",
        id="no-timestamp",
    ),
]


@pytest.mark.parametrize(("edit", "faultcode", "reason"), SOAPUI_REFUSALS)
def test_the_soapui_replay_follows_the_project_s_settings(
    curl: str,
    gunicorn_service: ServedProcess,
    pki: dict[str, Path],
    soapui_folder: Path,
    verifier: StatementClient,
    edit,
    faultcode: str,
    reason: str,
) -> None:
    project = soapui_folder / SOAPUI_PROJECT.name
    tree = etree.parse(str(project))
    edit(tree.getroot())
    tree.write(str(project), xml_declaration=True, encoding="UTF-8")
    status, answer = replay_with_curl(curl, gunicorn_service, project, soapui_folder, pki)
    assert status == 500
    envelope, statement = verifier.verify_response(answer)
    assert statement is None
    assert envelope.body.findtext(f".//{{{ns.SOAP11_ENV}}}Fault/faultcode") == f"wsse:{faultcode}"
    expected = f"security fault {faultcode} {reason}"
    assert any(m.startswith(expected) for m in security_faults(gunicorn_service)), (
        gunicorn_service.log_text()
    )


def test_the_soapui_project_commits_no_secret() -> None:
    root = etree.parse(str(SOAPUI_PROJECT)).getroot()
    con = soapui_project.CON
    (crypto,) = root.iter(f"{{{con}}}crypto")
    assert crypto.findtext(f"{{{con}}}password") == ""
    assert crypto.findtext(f"{{{con}}}aliasPassword") == ""
    assert all(e.get("password") in (None, "") for e in root.iter(f"{{{con}}}entry"))
    assert not list((EXAMPLES / "soapui").glob("*.p12"))
    text = SOAPUI_PROJECT.read_text(encoding="utf-8")
    assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text


# --- the tools these tests need ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_tool_fails_on_ci_and_is_skipped_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome) as raised:
        require_tool("azersu-no-such-tool", "no-such-package")
    assert "azersu-no-such-tool is not installed (Debian package no-such-package)" in str(
        raised.value
    )


def test_a_missing_need_that_is_no_command_fails_on_ci_and_is_skipped_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require(None, "tests that need nothing missing")  # nothing missing: the test goes on
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        require("a.jar not in /usr/share/java", "the jar tests")
    assert str(failed.value) == "CI=true but the jar tests can't run: a.jar not in /usr/share/java"
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception) as skipped:
        require("a.jar not in /usr/share/java", "the jar tests")
    assert str(skipped.value) == "the jar tests: a.jar not in /usr/share/java"


#: (what ``node --version`` prints, its exit status, whether node-soap 1.13 can run on it).
NODE_VERSIONS = [
    pytest.param("v18.19.0", 0, False, id="debian-12-nodejs-18"),
    pytest.param("v20.18.3", 0, False, id="20.18-one-minor-short"),
    pytest.param("v20.19.0", 0, True, id="20.19.0-the-least"),
    pytest.param("v20.20.2", 0, True, id="20.20"),
    pytest.param("v22.1.0", 0, True, id="22"),
    pytest.param("v100.0.0", 0, True, id="three-digit-major"),
    pytest.param("not a version", 0, False, id="no-version"),
    pytest.param("v22.1.0", 1, False, id="exit-status-1"),
]


@pytest.mark.parametrize(("printed", "status", "fit"), NODE_VERSIONS)
def test_node_soap_needs_node_20_19_or_newer(
    tmp_path: Path, printed: str, status: int, fit: bool
) -> None:
    node = tmp_path / "node"
    node.write_text(f"#!/bin/sh\necho '{printed}'\nexit {status}\n", encoding="utf-8")
    node.chmod(0o755)
    problem = node_version_problem(str(node))
    if fit:
        assert problem is None
        return
    assert problem is not None
    assert problem.startswith("node-soap 1.13.0 needs Node.js 20.19.0 or newer; "), problem
    assert printed in problem
