"""Apache WSS4J, the WS-Security engine of Java callers, against the real server.

Java agencies call the service through Apache CXF, whose WS-Security is WSS4J,
or through WSS4J directly.  The client of ``examples/java`` (Debian's
``libwss4j-java``, WSS4J 1.6) is compiled with ``javac`` and run against
``azersu-statement serve`` over loopback: it signs with each key reference
WSS4J offers, posts the request itself, and verifies our signed answer -- a
statement or a Fault -- with WSS4J's ``WSSecurityEngine``.  The same exchange
is run once more configured by the Apache CXF interceptor properties of the
example, through WSS4J's ``WSHandler``, which CXF's interceptors delegate to;
with one of those properties left out, WSS4J's own default (RSA-SHA1, SHA-1
digests, the Body alone signed) is refused for its reason.
The Java verifier is shown to refuse what it must (a tampered answer, another
signer, an unknown CA, algorithms the properties don't allow), so that its
"verified" means something.

Without java, javac, keytool, openssl or the WSS4J jars the tests are skipped,
except on CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from lxml import etree

from service import namespaces as ns
from service.audit import AuditStore
from service.cli import main
from service.pki import IssuedPair, create_ca, issue
from service.signing.keys import fingerprint
from service.signing.policy import WSSE_POLICY
from service.signing.wsse import SKI_VALUE_TYPE, THUMBPRINT_SHA1_VALUE_TYPE
from service.signing.xmldsig import XmlSigner
from tests import billing_fixtures as bf
from tests.conftest import require
from tests.gunicorn_process import ServedProcess, fixture_service_env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "java"
JAVA_DIR = Path("/usr/share/java")
#: WSS4J, Apache Santuario (xmlsec), and the logging APIs they need (slf4j-nop: no log output).
JARS = ("wss4j.jar", "xmlsec.jar", "commons-logging.jar", "slf4j-api.jar", "slf4j-nop.jar")
TOOLS = ("java", "javac", "keytool", "openssl")
FAST_START = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")

SOAP = ns.SOAP11_ENV
WSSE = ns.WSSE
DS = ns.DS
TNS = "http://azersu.az/egov/billing-statement/v1"
BODY = f"{{{SOAP}}}Body"
TIMESTAMP = f"{{{ns.WSU}}}Timestamp"

#: The key reference forms, by the names of CXF's signatureKeyIdentifier property.
FORMS = ("DirectReference", "IssuerSerial", "X509KeyIdentifier", "SKIKeyIdentifier", "Thumbprint")
#: The forms resolved against AZERSU_CLIENT_CERTS (the others carry the certificate).
RESOLVED_FORMS = ("IssuerSerial", "SKIKeyIdentifier", "Thumbprint")


# --- the tool chain ------------------------------------------------------------------------------


def _java_unavailable() -> str | None:
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: default-jdk-headless, openssl)"
    missing = [jar for jar in JARS if not (JAVA_DIR / jar).is_file()]
    if missing:
        return f"{', '.join(missing)} not in {JAVA_DIR} (Debian: libwss4j-java)"
    return None


@dataclass(frozen=True)
class JavaRun:
    """One run of a Java client: its exit status and its output lines."""

    returncode: int
    stdout: str
    stderr: str

    def values(self, key: str) -> list[str]:
        """Return the values of the output lines ``key: value``, in order."""
        prefix = key + ": "
        return [line[len(prefix) :] for line in self.stdout.splitlines() if line.startswith(prefix)]

    def value(self, key: str) -> str:
        found = self.values(key)
        assert len(found) == 1, (key, self.stdout, self.stderr)
        return found[0]


@dataclass
class Java:
    """The compiled example and the stores it signs and verifies with."""

    classpath: str
    env: dict[str, str]
    keystore: Path
    truststore: Path
    folder: Path
    runs: int = field(default=0)

    def run(self, main_class: str, *args: str) -> JavaRun:
        completed = subprocess.run(
            # C1 only and the serial collector: a short run starts in half the CPU time.
            ["java", *FAST_START, "-cp", self.classpath, main_class, *args],
            env=self.env,
            capture_output=True,
            timeout=180,
            check=False,
        )
        self.runs += 1
        return JavaRun(
            completed.returncode,
            completed.stdout.decode("utf-8"),
            completed.stderr.decode("utf-8", errors="replace"),
        )

    def client(self, url: str, *args: str) -> JavaRun:
        """Run the WSSecSignature / WSSecurityEngine client of the example."""
        return self.run(
            "AzersuStatementClient",
            "--url", url,
            "--keystore", str(self.keystore),
            "--truststore", str(self.truststore),
            *args,
        )  # fmt: skip

    def cxf(self, url: str, *args: str) -> JavaRun:
        """Run the client configured by the CXF interceptor properties of the example."""
        return self.run(
            "CxfPropertiesClient",
            "--url", url,
            "--out", str(EXAMPLE / "cxf-wss4j-out.properties"),
            "--in", str(EXAMPLE / "cxf-wss4j-in.properties"),
            *args,
        )  # fmt: skip

    def saved(self, name: str) -> Path:
        """Return a fresh file name in the test folder."""
        return self.folder / f"{self.runs:03d}-{name}"


def _merlin(kind: str, path: Path, password: str, alias: str | None = None) -> str:
    prefix = "org.apache.ws.security.crypto"
    lines = [
        f"{prefix}.provider=org.apache.ws.security.components.crypto.Merlin",
        f"{prefix}.merlin.{kind}.type=PKCS12",
        f"{prefix}.merlin.{kind}.file={path}",
        f"{prefix}.merlin.{kind}.password={password}",
    ]
    if alias:
        lines.append(f"{prefix}.merlin.{kind}.alias={alias}")
    else:
        lines.append(f"{prefix}.merlin.load.cacerts=false")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def java(pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Java:
    """Compile examples/java and make the portal's keystore and the CA's truststore.

    The password is made here and passed in the environment (never on a command
    line); the crypto properties CXF reads from the classpath are written here too.
    """
    require(_java_unavailable(), "the WSS4J interop tests")
    folder = tmp_path_factory.mktemp("wss4j")
    classes = folder / "classes"
    jars = os.pathsep.join(str(JAVA_DIR / jar) for jar in JARS)
    sources = sorted(str(p) for p in EXAMPLE.glob("*.java"))
    compiled = subprocess.run(
        ["javac", "-encoding", "UTF-8", "-Xlint:all,-path", "-Werror", "-d", str(classes),
         "-cp", jars, *sources],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr

    password = secrets.token_urlsafe(18)
    env = {**os.environ, "STORE_PASSWORD": password}
    keystore, truststore = folder / "portal.p12", folder / "trust.p12"
    subprocess.run(
        ["openssl", "pkcs12", "-export", "-name", "portal", "-inkey", str(pki["portal.key"]),
         "-in", str(pki["portal.pem"]), "-out", str(keystore), "-passout", "env:STORE_PASSWORD"],
        env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    _trust_store(truststore, pki["ca.pem"], env)
    crypto = folder / "crypto"
    crypto.mkdir()
    (crypto / "client-crypto.properties").write_text(
        _merlin("keystore", keystore, password, alias="portal")
    )
    (crypto / "service-trust.properties").write_text(_merlin("truststore", truststore, password))
    return Java(
        classpath=os.pathsep.join([str(classes), str(crypto), jars]),
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")},
            "KEYSTORE_PASSWORD": password,
            "TRUSTSTORE_PASSWORD": password,
        },
        keystore=keystore,
        truststore=truststore,
        folder=folder,
    )


def _trust_store(path: Path, ca_pem: Path, env: dict[str, str]) -> None:
    subprocess.run(
        ["keytool", "-importcert", "-noprompt", "-alias", "azersu-ca", "-file", str(ca_pem),
         "-keystore", str(path), "-storetype", "PKCS12", "-storepass:env", "STORE_PASSWORD"],
        env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip


# --- the servers ---------------------------------------------------------------------------------


def _certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def other_agency(pki: dict[str, Path]) -> IssuedPair:
    """Another registered caller of the same CA: references must pick the portal among them."""
    ca = IssuedPair(
        serialization.load_pem_private_key(pki["ca.key"].read_bytes(), None),  # type: ignore[arg-type]
        _certificate(pki["ca.pem"]),
    )
    return issue(ca, "other-agency.example", "Other agency", client=True)


@dataclass
class Server:
    process: ServedProcess
    var: Path
    client_certs: Path | None

    @property
    def url(self) -> str:
        return self.process.url


def _serve(folder: Path, env: dict[str, str], client_certs: Path | None) -> Server:
    return Server(ServedProcess(env, folder / "serve.log"), folder / "var", client_certs)


@pytest.fixture(scope="module")
def registered_server(
    pki: dict[str, Path],
    billing_db: str,
    other_agency: IssuedPair,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """The portal registered by its certificate in AZERSU_CLIENT_CERTS alone."""
    folder = tmp_path_factory.mktemp("wss4j-registered")
    bundle = folder / "callers.pem"
    bundle.write_bytes(other_agency.cert_pem() + pki["portal.pem"].read_bytes())
    env = fixture_service_env(
        pki,
        billing_db,
        folder / "var",
        AZERSU_CLIENT_CERTS=str(bundle),
        AZERSU_TRUSTED_CLIENTS="",
    )
    server = _serve(folder, env, bundle)
    yield server
    assert server.process.stop() == 0, server.process.log_text()


@pytest.fixture(scope="module")
def fingerprint_server(
    pki: dict[str, Path], billing_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The portal registered by its fingerprint only: no certificate to resolve a reference to."""
    folder = tmp_path_factory.mktemp("wss4j-fingerprint")
    server = _serve(folder, fixture_service_env(pki, billing_db, folder / "var"), None)
    yield server
    assert server.process.stop() == 0, server.process.log_text()


def _new_records(server: Server, before: int, timeout_s: float = 5) -> list[dict[str, Any]]:
    """Return the log records written after the first ``before``, once a request line is in."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = server.process.log_records()[before:]
        if any(r.get("message") == "request" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("AZERSU_")]:
        monkeypatch.delenv(name)


# --- what the requests must be -------------------------------------------------------------------


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _expected_ski(cert: x509.Certificate) -> bytes:
    """The extension's value, or RFC 5280's SHA-1 of the key when the certificate has none."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest  # type: ignore[arg-type]


def check_key_reference(request: etree._Element, form: str, portal: x509.Certificate) -> None:
    """Assert that the request names the portal's certificate in the form under test, only so."""
    security = request.find(f"{_q(SOAP, 'Header')}/{_q(WSSE, 'Security')}")
    assert security is not None
    token_reference = security.find(
        f"{_q(DS, 'Signature')}/{_q(DS, 'KeyInfo')}/{_q(WSSE, 'SecurityTokenReference')}"
    )
    assert token_reference is not None
    (reference,) = list(token_reference)
    tokens = security.findall(_q(WSSE, "BinarySecurityToken"))
    if form == "DirectReference":
        assert reference.tag == _q(WSSE, "Reference")
        (token,) = tokens
        assert reference.get("URI") == "#" + token.get(_q(ns.WSU, "Id"))
        assert base64.b64decode(token.text or "") == _der(portal)
        return
    assert tokens == []  # the reference alone names the signer
    if form == "IssuerSerial":
        assert reference.tag == _q(DS, "X509Data")
        issuer = reference.findtext(f"{_q(DS, 'X509IssuerSerial')}/{_q(DS, 'X509IssuerName')}")
        serial = reference.findtext(f"{_q(DS, 'X509IssuerSerial')}/{_q(DS, 'X509SerialNumber')}")
        assert x509.Name.from_rfc4514_string(issuer or "") == portal.issuer  # Azərsu in the name
        assert int(serial or "") == portal.serial_number
        return
    value_type, value = {
        "X509KeyIdentifier": (ns.X509V3, _der(portal)),
        "SKIKeyIdentifier": (SKI_VALUE_TYPE, _expected_ski(portal)),
        "Thumbprint": (THUMBPRINT_SHA1_VALUE_TYPE, portal.fingerprint(hashes.SHA1())),  # noqa: S303
    }[form]
    assert reference.tag == _q(WSSE, "KeyIdentifier")
    assert reference.get("ValueType") == value_type
    assert reference.get("EncodingType") == ns.BASE64_BINARY
    assert base64.b64decode(reference.text or "") == value


def check_signature_profile(request: etree._Element) -> None:
    """Assert the policy's profile: RSA-SHA256, SHA-256, exclusive C14N, Body and Timestamp."""
    signature = request.find(f".//{_q(DS, 'Signature')}")
    assert signature is not None
    signed_info = signature.find(_q(DS, "SignedInfo"))
    assert signed_info is not None
    c14n = signed_info.find(_q(DS, "CanonicalizationMethod"))
    method = signed_info.find(_q(DS, "SignatureMethod"))
    assert c14n is not None and c14n.get("Algorithm") == ns.EXC_C14N
    assert method is not None and method.get("Algorithm") == ns.RSA_SHA256
    ids = {
        element.get(_q(ns.WSU, "Id")): element.tag
        for element in request.iter()
        if element.get(_q(ns.WSU, "Id"))
    }
    covered = set()
    for reference in signed_info.iter(_q(DS, "Reference")):
        transforms = [t.get("Algorithm") for t in reference.iter(_q(DS, "Transform"))]
        digest = reference.find(_q(DS, "DigestMethod"))
        assert transforms == [ns.EXC_C14N]
        assert digest is not None and digest.get("Algorithm") == ns.SHA256
        covered.add(ids[(reference.get("URI") or "").lstrip("#")])
    assert covered == {BODY, TIMESTAMP}


# --- what the answers must be --------------------------------------------------------------------


def check_verified_by_wss4j(run: JavaRun, service: x509.Certificate) -> None:
    """WSS4J's own report on our answer: the signer, the method, and what it signed."""
    answers = run.values("answer")
    assert f"verified by WSS4J, signer {service.subject.rfc4514_string()}" in answers, run.stdout
    assert f"signature method {ns.RSA_SHA256}" in answers
    signed = {a for a in answers if a.startswith("signed ")}
    assert signed == {f"signed {BODY} digest {ns.SHA256}", f"signed {TIMESTAMP} digest {ns.SHA256}"}


def check_statement(run: JavaRun) -> None:
    """The hand-made subscriber's statement, as the Java client read it from the verified Body."""
    assert run.value("Status") == "OK"
    assert run.value("Message") == "Son 12 ay üzrə faktura və ödəniş məlumatları hazırdır."
    assert re.fullmatch(r"AZS-\d{8}-[0-9A-F]{12}", run.value("StatementNumber"))
    assert run.value("Issuer") == "“Azərsu” Açıq Səhmdar Cəmiyyəti"
    name = f"{bf.AZ_LAST} | {bf.AZ_FIRST} | {bf.AZ_PATRONYMIC}"
    assert run.value("Subscriber") == f"{bf.FULL} | {name}"
    assert run.value("Address") == bf.AZ_ADDRESS
    # Consumption, invoiced and paid, as BigDecimal kept them: two decimals for money.
    assert run.values("Period") == [f"{y}-{m:02d} 24 12.00 12.00" for y, m in bf.WINDOW]
    assert run.value("Totals") == "288 144.00 144.00 AZN"


def check_caller_recorded(
    server: Server, records: list[dict[str, Any]], statement_number: str, portal: x509.Certificate
) -> None:
    """The log line and the access audit record name the portal as the caller."""
    (line,) = [r for r in records if r.get("message") == "request"]
    assert line["outcome"] == "OK"
    assert line["statement_number"] == statement_number
    assert line["client"] == portal.subject.rfc4514_string()
    assert line["client_fingerprint"] == fingerprint(portal)
    store = AuditStore.from_url(f"sqlite:///{server.var / 'audit.sqlite'}")
    try:
        (entry,) = [e for e in store.search(code=bf.FULL) if e.statement_number == statement_number]
    finally:
        store.close()
    assert (entry.outcome, entry.client_subject, entry.client_fingerprint, entry.citizen_fin) == (
        "OK",
        portal.subject.rfc4514_string(),
        fingerprint(portal),
        bf.FIN,
    )


# --- WSSecSignature with each key reference ------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_wss4j_signs_with_each_key_reference_and_verifies_the_answer(
    form: str,
    java: Java,
    registered_server: Server,
    pki: dict[str, Path],
    clean_environment: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    portal, service = _certificate(pki["portal.pem"]), _certificate(pki["service.pem"])
    request_file, answer_file = java.saved(f"{form}-request.xml"), java.saved(f"{form}-answer.xml")
    before = len(registered_server.process.log_records())
    run = java.client(
        registered_server.url,
        "--code", bf.FULL, "--fin", bf.FIN, "--key-reference", form,
        "--save-request", str(request_file), "--save-response", str(answer_file),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.values("request") == [f"signed with key reference {form}"]

    request = etree.fromstring(request_file.read_bytes())
    check_key_reference(request, form, portal)
    check_signature_profile(request)

    assert run.values("answer")[0] == "HTTP 200"
    check_verified_by_wss4j(run, service)
    check_statement(run)
    answer = etree.fromstring(answer_file.read_bytes())
    number = run.value("StatementNumber")
    assert answer.findtext(f".//{{{TNS}}}Statement/{{{TNS}}}StatementNumber") == number
    records = _new_records(registered_server, before)
    check_caller_recorded(registered_server, records, number, portal)

    # The offline check reaches the live server's verdict on the same captured request.
    assert registered_server.client_certs is not None
    argv = ["check-request", str(request_file), "--trust", str(pki["ca.pem"])]
    assert main([*argv, "--client-certs", str(registered_server.client_certs)]) == 0
    assert f"would be accepted: signed by {portal.subject.rfc4514_string()}" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("form", RESOLVED_FORMS)
def test_a_reference_to_a_certificate_not_in_client_certs_is_refused_for_its_reason(
    form: str,
    java: Java,
    fingerprint_server: Server,
    pki: dict[str, Path],
    clean_environment: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The portal is registered by fingerprint only: its certificate is nowhere to resolve.

    The answer is a signed Fault, which WSS4J verifies; the log gives the reason.
    """
    request_file = java.saved(f"{form}-unresolved.xml")
    before = len(fingerprint_server.process.log_records())
    run = java.client(
        fingerprint_server.url, "--code", bf.FULL, "--fin", bf.FIN, "--key-reference", form,
        "--save-request", str(request_file),
    )  # fmt: skip
    assert run.returncode == 3, run.stdout + run.stderr
    assert run.values("answer")[0] == "HTTP 500"
    check_verified_by_wss4j(run, _certificate(pki["service.pem"]))
    assert run.value("Fault") == f"{{{WSSE}}}FailedAuthentication"
    assert run.value("faultstring") == "The security token could not be authenticated or authorized"

    records = _new_records(fingerprint_server, before)
    reasons = [r["message"] for r in records if r.get("message", "").startswith("security fault")]
    assert len(reasons) == 1 and reasons[0].startswith(
        "security fault FailedAuthentication (key_reference_unresolved): "
    ), reasons
    (line,) = [r for r in records if r.get("message") == "request"]
    assert line["outcome"] == "wsse:FailedAuthentication"

    portal_fingerprint = fingerprint(_certificate(pki["portal.pem"]))
    argv = ["check-request", str(request_file), "--trust", str(pki["ca.pem"])]
    assert main([*argv, "--trusted-clients", portal_fingerprint]) == 1
    assert "would be refused: FailedAuthentication (key_reference_unresolved)" in (
        capsys.readouterr().out
    )


def test_the_same_caller_signing_with_its_token_is_accepted_there(
    java: Java, fingerprint_server: Server, pki: dict[str, Path]
) -> None:
    """The refusals above are about the reference form: the token's certificate is the caller."""
    run = java.client(fingerprint_server.url, "--code", bf.FULL, "--fin", bf.FIN)
    assert run.returncode == 0, run.stdout + run.stderr
    check_verified_by_wss4j(run, _certificate(pki["service.pem"]))
    check_statement(run)


def test_wss4j_verifies_our_signed_client_fault(
    java: Java, registered_server: Server, pki: dict[str, Path]
) -> None:
    """A Language the schema doesn't allow: Client.SchemaValidation, signed like any answer."""
    before = len(registered_server.process.log_records())
    run = java.client(registered_server.url, "--code", bf.FULL, "--fin", bf.FIN, "--lang", "xx")
    assert run.returncode == 3, run.stdout + run.stderr
    assert run.values("answer")[0] == "HTTP 500"
    check_verified_by_wss4j(run, _certificate(pki["service.pem"]))
    assert run.value("Fault") == f"{{{SOAP}}}Client.SchemaValidation"
    assert run.value("faultstring") == "The request does not match the service's schema"
    (line,) = [r for r in _new_records(registered_server, before) if r.get("message") == "request"]
    assert line["outcome"] == "Client.SchemaValidation"


def test_the_example_against_make_run_with_wss4j_s_default_reference(
    java: Java, pki: dict[str, Path], billing_db: str, tmp_path: Path
) -> None:
    """README.md's way: the server as ``make run`` starts it, WSS4J's default IssuerSerial."""
    bin_dir = Path(sys.executable).parent
    planned = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", f"PKI={pki['ca.pem'].parent}",
         f"BIN={bin_dir}", f"DEMO_DB={billing_db.removeprefix('sqlite:///')}"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    serve_line = planned.stdout.strip().splitlines()[-1]
    command = f" {bin_dir}/azersu-statement serve"
    assert serve_line.endswith(command), planned.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
    env.update(
        AZERSU_BILLING_URL=billing_db,
        AZERSU_REPORT_PERIOD=bf.REPORT_PERIOD,
        AZERSU_VAR_DIR=str(tmp_path / "var"),
        AZERSU_WORKERS="1",
    )
    exec_line = serve_line.removesuffix(command) + " exec" + command
    server = ServedProcess(env, tmp_path / "serve.log", shell_command=exec_line)
    try:
        run = java.client(
            server.url, "--code", bf.FULL, "--fin", bf.FIN, "--key-reference", "IssuerSerial"
        )
        assert run.returncode == 0, run.stdout + run.stderr + server.log_text()
        check_verified_by_wss4j(run, _certificate(pki["service.pem"]))
        check_statement(run)
    finally:
        assert server.stop() == 0, server.log_text()


# --- the Java verifier refuses what it must ------------------------------------------------------


@pytest.fixture(scope="module")
def saved_answer(java: Java, registered_server: Server) -> bytes:
    """A statement answer as the service sent it, saved by the Java client."""
    path = java.saved("answer-to-tamper.xml")
    run = java.client(
        registered_server.url, "--code", bf.FULL, "--fin", bf.FIN, "--save-response", str(path)
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return path.read_bytes()


def _verify_saved(java: Java, answer: bytes, *args: str) -> JavaRun:
    path = java.saved("answer.xml")
    path.write_bytes(answer)
    return java.run("AzersuStatementClient", "--verify", str(path), *args)


def test_the_saved_answer_verifies_as_it_was_sent(
    java: Java, saved_answer: bytes, pki: dict[str, Path]
) -> None:
    run = _verify_saved(java, saved_answer, "--truststore", str(java.truststore))
    assert run.returncode == 0, run.stdout + run.stderr
    check_verified_by_wss4j(run, _certificate(pki["service.pem"]))
    check_statement(run)


def _other_ca_truststore(java: Java) -> Path:
    path = java.folder / "other-ca.p12"
    if not path.exists():
        pem = java.folder / "other-ca.pem"
        pem.write_bytes(create_ca("Another CA").cert_pem())
        _trust_store(path, pem, {**java.env, "STORE_PASSWORD": java.env["TRUSTSTORE_PASSWORD"]})
    return path


def _later_expiry(answer: bytes) -> bytes:
    """The answer's Timestamp expiring a year later (still in the future, no longer signed)."""
    return re.sub(
        rb"<wsu:Expires>(\d{4})",
        lambda m: b"<wsu:Expires>" + str(int(m.group(1)) + 1).encode(),
        answer,
        count=1,
    )


@dataclass(frozen=True)
class Distrust:
    tamper: Callable[[bytes], bytes] | None
    options: Callable[[Java], list[str]]
    message: str


_INVALID = "The signature or decryption was invalid"
_NOT_AUTHENTICATED = "The security token could not be authenticated or authorized"
VERIFIER_REFUSALS = {
    "a paid amount changed in the Body": Distrust(
        lambda answer: answer.replace(b"<tns:PaidAmount>144.00<", b"<tns:PaidAmount>145.00<", 1),
        lambda java: ["--truststore", str(java.truststore)],
        _INVALID,
    ),
    "the Timestamp expiring a year later": Distrust(
        _later_expiry, lambda java: ["--truststore", str(java.truststore)], _INVALID
    ),
    "another signer expected": Distrust(
        None,
        lambda java: ["--truststore", str(java.truststore), "--signer", "portal.e-gov.az"],
        _NOT_AUTHENTICATED,
    ),
    "a truststore without the service's CA": Distrust(
        None, lambda java: ["--truststore", str(_other_ca_truststore(java))], _NOT_AUTHENTICATED
    ),
}


@pytest.mark.parametrize("name", list(VERIFIER_REFUSALS))
def test_the_java_verifier_refuses_an_answer_it_must_not_trust(
    name: str, java: Java, saved_answer: bytes
) -> None:
    distrust = VERIFIER_REFUSALS[name]
    answer = saved_answer
    if distrust.tamper is not None:
        answer = distrust.tamper(saved_answer)
        assert answer != saved_answer
    run = _verify_saved(java, answer, *distrust.options(java))
    assert run.returncode == 5, run.stdout + run.stderr
    assert run.value("answer") == (
        f"NOT VERIFIED: org.apache.ws.security.WSSecurityException: {distrust.message}"
    )
    assert run.values("Status") == []


# --- Apache CXF's interceptor properties ---------------------------------------------------------


@pytest.mark.parametrize("form", [None, *FORMS[1:]], ids=["as in the file", *FORMS[1:]])
def test_the_cxf_interceptor_properties_sign_and_verify(
    form: str | None, java: Java, registered_server: Server, pki: dict[str, Path]
) -> None:
    """WSS4J's WSHandler, driven by cxf-wss4j-out/in.properties as CXF drives it."""
    request_file = java.saved(f"cxf-{form}-request.xml")
    args = ["--code", bf.FULL, "--fin", bf.FIN, "--save-request", str(request_file)]
    run = java.cxf(registered_server.url, *args, *(["--key-reference", form] if form else []))
    assert run.returncode == 0, run.stdout + run.stderr
    expected_form = (
        form or read_properties(EXAMPLE / "cxf-wss4j-out.properties")["signatureKeyIdentifier"]
    )
    assert run.values("request") == [
        "signed by WSS4J's WSHandler from the WSS4JOutInterceptor properties, "
        f"key reference {expected_form}"
    ]
    request = etree.fromstring(request_file.read_bytes())
    check_key_reference(request, expected_form, _certificate(pki["portal.pem"]))
    check_signature_profile(request)
    check_verified_by_wss4j(run, _certificate(pki["service.pem"]))
    check_statement(run)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("signatureAlgorithm", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
         "An error was discovered processing the <wsse:Security> header"),
        ("signatureDigestAlgorithm", "http://www.w3.org/2001/04/xmlenc#sha512",
         "An error was discovered processing the <wsse:Security> header"),
        ("sigSubjectCertConstraints", "CN=portal[.]e-gov[.]az.*",
         "The security token could not be authenticated or authorized"),
        ("action", "Signature", "Security processing failed (actions mismatch)"),
    ],
)  # fmt: skip
def test_the_cxf_inbound_properties_are_enforced(
    setting: str, value: str, message: str, java: Java, registered_server: Server
) -> None:
    """Changed inbound properties refuse our answer: WSS4J applies them, they are not decoration."""
    properties = (EXAMPLE / "cxf-wss4j-in.properties").read_text()
    changed, count = re.subn(rf"(?m)^{setting}=.*$", f"{setting}={value}", properties)
    assert count == 1
    path = java.saved("cxf-in-changed.properties")
    path.write_text(changed)
    run = java.cxf(registered_server.url, "--code", bf.FULL, "--fin", bf.FIN, "--in", str(path))
    assert run.returncode == 5, run.stdout + run.stderr
    assert run.values("answer") == [
        "HTTP 200",
        f"NOT VERIFIED: org.apache.ws.security.WSSecurityException: {message}",
    ]


#: Outbound properties the example sets and the service needs: left out, WSS4J 1.6 uses its
#: own default, which the policy refuses -- (property, fault code, logged reason and detail).
WSS4J_DEFAULTS_REFUSED = [
    pytest.param(
        "signatureAlgorithm", "UnsupportedAlgorithm",
        "(signature_method): signature method 'http://www.w3.org/2000/09/xmldsig#rsa-sha1' "
        "is not allowed",
        id="default-rsa-sha1",
    ),
    pytest.param(
        "signatureDigestAlgorithm", "UnsupportedAlgorithm",
        "(digest_method): digest method 'http://www.w3.org/2000/09/xmldsig#sha1' is not allowed",
        id="default-sha1-digests",
    ),
    pytest.param(
        "signatureParts", "InvalidSecurity",
        f"(required_reference): {TIMESTAMP} is not signed",
        id="default-body-only",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("setting", "faultcode", "reason"), WSS4J_DEFAULTS_REFUSED)
def test_wss4j_s_own_defaults_are_refused_for_their_reason(
    setting: str,
    faultcode: str,
    reason: str,
    java: Java,
    registered_server: Server,
    pki: dict[str, Path],
    clean_environment: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without the property, WSS4J signs with its 1.6 default; the service says which rule it broke.

    So the settings docs/integration.md lists for WSS4J are needed, each for the reason it names,
    and check-request gives the service's reason for the request WSS4J saved.
    """
    properties = (EXAMPLE / "cxf-wss4j-out.properties").read_text()
    changed, count = re.subn(rf"(?m)^{setting}=.*\n", "", properties)
    assert count == 1
    out = java.saved(f"cxf-out-without-{setting}.properties")
    out.write_text(changed)
    request_file = java.saved(f"cxf-without-{setting}-request.xml")
    before = len(registered_server.process.log_records())
    run = java.cxf(
        registered_server.url, "--code", bf.FULL, "--fin", bf.FIN, "--out", str(out),
        "--save-request", str(request_file),
    )  # fmt: skip
    assert run.returncode == 3, run.stdout + run.stderr
    assert run.values("answer")[0] == "HTTP 500"
    check_verified_by_wss4j(run, _certificate(pki["service.pem"]))  # the Fault is signed
    assert run.value("Fault") == f"{{{WSSE}}}{faultcode}"

    records = _new_records(registered_server, before)
    expected = f"security fault {faultcode} {reason}"
    logged = [r["message"] for r in records if r.get("message", "").startswith("security fault")]
    assert logged == [expected], logged

    argv = ["check-request", str(request_file), "--trust", str(pki["ca.pem"])]
    assert main([*argv, "--client-certs", str(pki["portal.pem"])]) == 1
    assert capsys.readouterr().out.splitlines()[0] == f"would be refused: {faultcode} {reason}"


def read_properties(path: Path) -> dict[str, str]:
    """Read a .properties file written in the plain subset Java's Properties reads the same way.

    ASCII, one ``key=value`` a line, ``#`` comments, no escapes or continuation
    lines, no space around the ``=`` or at the end of a line (all asserted).
    """
    text = path.read_text(encoding="ascii")
    assert "\\" not in text
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        assert equals and key == key.strip() and value == value.strip() and key not in values, line
        values[key] = value
    return values


def _signature_parts(text: str) -> set[str]:
    parts = set()
    for part in text.split(";"):
        match = re.fullmatch(r"\{Element\}(\{[^}]+\}\w+)", part.strip())
        assert match, part
        parts.add(match.group(1))
    return parts


def test_the_cxf_properties_follow_the_service_policy(pki: dict[str, Path]) -> None:
    """The interceptor properties against the policy the service enforces (service/signing).

    Without CXF itself this is read from the files; the tests above run them
    through WSS4J's WSHandler, the part of CXF that acts on them.
    """
    out = read_properties(EXAMPLE / "cxf-wss4j-out.properties")
    assert out["action"].split() == ["Timestamp", "Signature"]
    assert _signature_parts(out["signatureParts"]) == set(WSSE_POLICY.required_references)
    assert out["signatureAlgorithm"] in WSSE_POLICY.signature_methods
    assert out["signatureAlgorithm"] == ns.RSA_SHA256  # the portal's key is RSA
    assert out["signatureDigestAlgorithm"] in WSSE_POLICY.digest_methods
    assert out["signatureC14nAlgorithm"] in WSSE_POLICY.c14n_methods
    assert out["signatureKeyIdentifier"] in FORMS
    assert out["mustUnderstand"] == "true"
    assert 0 < int(out["timeToLive"]) <= 300  # within AZERSU_WSSE_MAX_AGE_S's default

    inbound = read_properties(EXAMPLE / "cxf-wss4j-in.properties")
    assert inbound["action"].split() == ["Timestamp", "Signature"]
    service_key = serialization.load_pem_private_key(pki["service.key"].read_bytes(), None)
    assert inbound["signatureAlgorithm"] == XmlSigner(service_key).signature_method  # type: ignore[arg-type]
    assert inbound["signatureDigestAlgorithm"] == ns.SHA256  # what the service digests with
    assert inbound["timestampStrict"] == "true"
    constraint = inbound["sigSubjectCertConstraints"]
    assert "," not in constraint  # WSS4J splits the value at commas
    service = _certificate(pki["service.pem"]).subject.rfc4514_string()
    assert re.fullmatch(constraint, service)
    for impostor in (
        _certificate(pki["portal.pem"]).subject.rfc4514_string(),
        service.replace("CN=billing-statement.azersu.az", "CN=billing-statement.azersu.az.evil"),
        "OU=x,CN=billing-statement.azersu.az",
    ):
        assert not re.fullmatch(constraint, impostor), impostor
    assert out["signaturePropFile"] == "client-crypto.properties"
    assert inbound["signaturePropFile"] == "service-trust.properties"
