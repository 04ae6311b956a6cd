"""Key references other than a BinarySecurityToken, as Apache WSS4J callers write them.

A request names its signer's certificate by a direct Reference to a
BinarySecurityToken, by a KeyIdentifier carrying the certificate, or -- resolved
against the registered caller certificates of ``AZERSU_CLIENT_CERTS`` -- by
IssuerSerial, SubjectKeyIdentifier or SHA-1 thumbprint.  Each form is accepted
through the app when its certificate is registered, and refused for its own
reason when it is not, when it names two registered certificates, or when the
certificate is unfit.  The requests are signed with python-xmlsec
(tests/wsse_forge.py) and their KeyInfo then written in the form under test
(KeyInfo is not covered by the signature); some are signed by signxml with
the reference as its KeyInfo.

``check-request`` gives the service's verdict offline, the gateway's rule that
X-Road headers be signed included: the same request is judged both ways.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from lxml import etree
from signxml import XMLSigner, methods
from signxml.algorithms import CanonicalizationMethod

from service import namespaces as ns
from service.app import create_app
from service.cli import main
from service.errors import (
    ConfigurationError,
    FailedAuthentication,
    FailedCheck,
    InvalidSecurity,
    SecurityFault,
)
from service.pki import IssuedPair, create_ca, new_key
from service.settings import Settings
from service.signing.hardened_xml import parse_request
from service.signing.material import read_trust_material
from service.signing.policy import Reason
from service.signing.trust import TrustStore
from service.signing.wsse import (
    KEY_REFERENCE_AMBIGUOUS,
    KEY_REFERENCE_UNRESOLVED,
    SKI_VALUE_TYPE,
    THUMBPRINT_SHA1_VALUE_TYPE,
    WsseVerifier,
)
from tests import billing_fixtures as bf
from tests.test_app import envelope, request_body
from tests.test_xroad import with_headers, xroad_headers
from tests.wsse_forge import SOAP, forge, q

HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetBillingStatement"'}


def _caller(
    ca: IssuedPair,
    name: str,
    *,
    ski: bytes | None = None,
    serial: int | None = None,
    signing: bool = True,
    is_ca: bool = False,
    with_ski: bool = True,
) -> IssuedPair:
    """Issue a caller certificate with a chosen SubjectKeyIdentifier (or none) and serial."""
    key = new_key()
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=signing,
                content_commitment=False,
                key_encipherment=not signing,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if with_ski:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier(ski)
            if ski is not None
            else x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
            critical=False,
        )
    return IssuedPair(key, builder.sign(ca.key, hashes.SHA256()))


@dataclass(frozen=True)
class Callers:
    ca: IssuedPair
    alice: IssuedPair  # registered
    bob: IssuedPair  # registered
    carol: IssuedPair  # registered, no SubjectKeyIdentifier extension
    stranger: IssuedPair  # issued by the CA, not registered
    ski_twins: tuple[IssuedPair, IssuedPair]  # registered, one SKI
    serial_twins: tuple[IssuedPair, IssuedPair]  # registered, one issuer and serial
    unfit: IssuedPair  # issued by the CA, KeyUsage keyEncipherment only
    sub_ca: IssuedPair  # a CA certificate issued by the CA
    rogue: IssuedPair  # issued by an untrusted CA

    @property
    def registered(self) -> tuple[IssuedPair, ...]:
        return (self.alice, self.bob, self.carol, *self.ski_twins, *self.serial_twins)


@pytest.fixture(scope="module")
def callers(pki: dict[str, Path]) -> Callers:
    ca = IssuedPair(
        serialization.load_pem_private_key(pki["ca.key"].read_bytes(), None),  # type: ignore[arg-type]
        x509.load_pem_x509_certificate(pki["ca.pem"].read_bytes()),
    )
    serial = x509.random_serial_number()
    return Callers(
        ca=ca,
        alice=_caller(ca, "alice.wss4j.example"),
        bob=_caller(ca, "bob.wss4j.example"),
        carol=_caller(ca, "carol.wss4j.example", with_ski=False),
        stranger=_caller(ca, "stranger.example"),
        ski_twins=(
            _caller(ca, "twin-ski-1", ski=b"\x01" * 20),
            _caller(ca, "twin-ski-2", ski=b"\x01" * 20),
        ),
        serial_twins=(
            _caller(ca, "twin-serial-1", serial=serial),
            _caller(ca, "twin-serial-2", serial=serial),
        ),
        unfit=_caller(ca, "encipher-only.example", signing=False),
        sub_ca=_caller(ca, "Sub CA", is_ca=True),
        rogue=_caller(create_ca("Rogue CA"), "alice.wss4j.example"),
    )


@pytest.fixture(scope="module")
def client_certs(callers: Callers, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("callers") / "callers.pem"
    path.write_bytes(b"".join(pair.cert_pem() for pair in callers.registered))
    return path


@pytest.fixture(scope="module")
def store(callers: Callers, pki: dict[str, Path]) -> TrustStore:
    return TrustStore.from_pem_bytes(
        pki["ca.pem"].read_bytes(),
        caller_certificates=tuple(p.certificate for p in callers.registered),
    )


# --- the key reference forms ---------------------------------------------------------------------


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _key_identifier(value_type: str, value: bytes) -> etree._Element:
    element = etree.Element(
        q(ns.WSSE, "KeyIdentifier"), {"EncodingType": ns.BASE64_BINARY, "ValueType": value_type}
    )
    element.text = base64.b64encode(value).decode()
    return element


def x509_key_identifier(cert: x509.Certificate) -> etree._Element:
    return _key_identifier(ns.X509V3, _der(cert))


def ski_key_identifier(cert: x509.Certificate) -> etree._Element:
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    return _key_identifier(SKI_VALUE_TYPE, ski)


def computed_ski_key_identifier(cert: x509.Certificate) -> etree._Element:
    """The SKI as WSS4J writes it for any certificate: SHA-1 of the key (RFC 5280 method 1)."""
    ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest  # type: ignore[arg-type]
    return _key_identifier(SKI_VALUE_TYPE, ski)


def thumbprint_key_identifier(cert: x509.Certificate) -> etree._Element:
    return _key_identifier(THUMBPRINT_SHA1_VALUE_TYPE, cert.fingerprint(hashes.SHA1()))  # noqa: S303


def issuer_serial(cert: x509.Certificate, issuer_text: str | None = None) -> etree._Element:
    data = etree.Element(q(ns.DS, "X509Data"))
    pair = etree.SubElement(data, q(ns.DS, "X509IssuerSerial"))
    name = issuer_text if issuer_text is not None else cert.issuer.rfc4514_string()
    etree.SubElement(pair, q(ns.DS, "X509IssuerName")).text = name
    etree.SubElement(pair, q(ns.DS, "X509SerialNumber")).text = str(cert.serial_number)
    return data


def issuer_serial_with_spaces(cert: x509.Certificate) -> etree._Element:
    """The issuer name as some stacks write it: a space after each comma."""
    return issuer_serial(cert, cert.issuer.rfc4514_string().replace(",", ", "))


KeyReference = Callable[[x509.Certificate], etree._Element]

FORMS: dict[str, KeyReference | None] = {
    "BinarySecurityToken": None,  # forge's own direct Reference
    "X509v3 KeyIdentifier": x509_key_identifier,
    "IssuerSerial": issuer_serial,
    "IssuerSerial, spaces after commas": issuer_serial_with_spaces,
    "SubjectKeyIdentifier": ski_key_identifier,
    "ThumbprintSHA1": thumbprint_key_identifier,
}


def signed_request(
    signer: IssuedPair,
    reference: etree._Element | None,
    *,
    code: str = bf.FULL,
) -> bytes:
    """Sign a request with python-xmlsec as ``signer``; KeyInfo names the key by ``reference``.

    With a reference, the BinarySecurityToken is removed: the request carries no certificate
    unless the reference does.
    """
    forged = forge(signer, code=code, fin=bf.FIN)
    if reference is not None:
        token_reference = forged.signature.find(
            f"{q(ns.DS, 'KeyInfo')}/{q(ns.WSSE, 'SecurityTokenReference')}"
        )
        assert token_reference is not None
        for child in list(token_reference):
            token_reference.remove(child)
        token_reference.append(reference)
        forged.security.remove(forged.token)
    return forged.bytes()


def signxml_request(signer: IssuedPair, reference: etree._Element) -> bytes:
    """Sign a request's Body and Timestamp with signxml, a detached signature in Security."""
    forged = forge(signer, code=bf.FULL, fin=bf.FIN)
    forged.security.remove(forged.signature)
    forged.security.remove(forged.token)
    key_info = etree.Element(q(ns.DS, "KeyInfo"))
    etree.SubElement(key_info, q(ns.WSSE, "SecurityTokenReference")).append(reference)
    signature = XMLSigner(
        method=methods.detached,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    ).sign(
        forged.envelope,
        key=signer.key,
        reference_uri=["#Body-1", "#TS-1"],
        key_info=key_info,
        id_attribute="Id",
    )
    forged.security.append(signature)
    return forged.bytes()


# --- accepted through the app ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def registered_settings(base_settings: Settings, client_certs: Path) -> Settings:
    """The callers are registered by AZERSU_CLIENT_CERTS alone (no fingerprint list)."""
    return dataclasses.replace(base_settings, trusted_clients="", client_certs=str(client_certs))


@pytest.mark.parametrize("form", list(FORMS))
def test_each_key_reference_form_is_accepted_when_registered(
    form: str, callers: Callers, registered_settings: Settings, serve_app
) -> None:
    server = serve_app(create_app(registered_settings))
    make_reference = FORMS[form]
    reference = make_reference(callers.alice.certificate) if make_reference else None
    payload = signed_request(callers.alice, reference)
    response = requests.post(server.url, data=payload, headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    root = etree.fromstring(response.content)
    assert root.find(f".//{q(SOAP, 'Fault')}") is None
    status = root.findtext(".//{http://azersu.az/egov/billing-statement/v1}Status")
    assert status == "OK"


@pytest.mark.parametrize(
    "form", ["X509v3 KeyIdentifier", "IssuerSerial", "SubjectKeyIdentifier", "ThumbprintSHA1"]
)
def test_a_request_signed_by_signxml_with_each_reference_is_accepted(
    form: str, callers: Callers, registered_settings: Settings, serve_app
) -> None:
    make_reference = FORMS[form]
    assert make_reference is not None
    payload = signxml_request(callers.alice, make_reference(callers.alice.certificate))
    assert b"BinarySecurityToken" not in payload  # the reference alone names the signer
    server = serve_app(create_app(registered_settings))
    response = requests.post(server.url, data=payload, headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    status = etree.fromstring(response.content).findtext(
        ".//{http://azersu.az/egov/billing-statement/v1}Status"
    )
    assert status == "OK"


# --- refused, each for its reason -----------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    build: Callable[[Callers], bytes]
    fault: type[SecurityFault]
    reason: str


REFUSALS: dict[str, Refusal] = {
    "SKI of an unregistered certificate": Refusal(
        lambda c: signed_request(c.stranger, ski_key_identifier(c.stranger.certificate)),
        FailedAuthentication,
        KEY_REFERENCE_UNRESOLVED,
    ),
    "thumbprint of an unregistered certificate": Refusal(
        lambda c: signed_request(c.stranger, thumbprint_key_identifier(c.stranger.certificate)),
        FailedAuthentication,
        KEY_REFERENCE_UNRESOLVED,
    ),
    "IssuerSerial of an unregistered certificate": Refusal(
        lambda c: signed_request(c.stranger, issuer_serial(c.stranger.certificate)),
        FailedAuthentication,
        KEY_REFERENCE_UNRESOLVED,
    ),
    "IssuerSerial with another issuer name": Refusal(
        lambda c: signed_request(c.alice, issuer_serial(c.alice.certificate, "CN=Rogue CA")),
        FailedAuthentication,
        KEY_REFERENCE_UNRESOLVED,
    ),
    "SKI computed from the key when the certificate's extension says otherwise": Refusal(
        lambda c: signed_request(
            c.ski_twins[0], computed_ski_key_identifier(c.ski_twins[0].certificate)
        ),
        FailedAuthentication,
        KEY_REFERENCE_UNRESOLVED,
    ),
    "SKI naming two registered certificates": Refusal(
        lambda c: signed_request(c.ski_twins[0], ski_key_identifier(c.ski_twins[0].certificate)),
        InvalidSecurity,
        KEY_REFERENCE_AMBIGUOUS,
    ),
    "IssuerSerial naming two registered certificates": Refusal(
        lambda c: signed_request(c.serial_twins[0], issuer_serial(c.serial_twins[0].certificate)),
        InvalidSecurity,
        KEY_REFERENCE_AMBIGUOUS,
    ),
    "X509v3 KeyIdentifier of an unregistered certificate": Refusal(
        lambda c: signed_request(c.stranger, x509_key_identifier(c.stranger.certificate)),
        FailedAuthentication,
        "signer_not_registered",
    ),
    "X509v3 KeyIdentifier of a certificate unfit to sign": Refusal(
        lambda c: signed_request(c.unfit, x509_key_identifier(c.unfit.certificate)),
        FailedAuthentication,
        "key_usage_not_signing",
    ),
    "X509v3 KeyIdentifier of a CA certificate": Refusal(
        lambda c: signed_request(c.sub_ca, x509_key_identifier(c.sub_ca.certificate)),
        FailedAuthentication,
        "signer_is_ca",
    ),
    "X509v3 KeyIdentifier of an untrusted CA's certificate": Refusal(
        lambda c: signed_request(c.rogue, x509_key_identifier(c.rogue.certificate)),
        FailedAuthentication,
        "signer_not_registered",
    ),
    "reference names a registered certificate that did not sign": Refusal(
        lambda c: signed_request(c.alice, ski_key_identifier(c.bob.certificate)),
        FailedCheck,
        Reason.SIGNED_INFO_SIGNATURE,
    ),
    "KeyIdentifier of an unknown ValueType": Refusal(
        lambda c: signed_request(c.alice, _key_identifier("urn:example#Other", b"x")),
        InvalidSecurity,
        Reason.TOKEN,
    ),
    "SKI that is not base64": Refusal(
        lambda c: signed_request(
            c.alice,
            etree.fromstring(
                f'<wsse:KeyIdentifier xmlns:wsse="{ns.WSSE}" ValueType="{SKI_VALUE_TYPE}">'
                "not base64!</wsse:KeyIdentifier>"
            ),
        ),
        InvalidSecurity,
        Reason.TOKEN,
    ),
    "KeyIdentifier of another EncodingType": Refusal(
        lambda c: signed_request(
            c.alice,
            etree.fromstring(
                f'<wsse:KeyIdentifier xmlns:wsse="{ns.WSSE}" ValueType="{SKI_VALUE_TYPE}" '
                'EncodingType="urn:example#Hex">00</wsse:KeyIdentifier>'
            ),
        ),
        InvalidSecurity,
        Reason.TOKEN,
    ),
    "IssuerSerial with a serial that is not a number": Refusal(
        lambda c: signed_request(
            c.alice,
            etree.fromstring(
                f'<ds:X509Data xmlns:ds="{ns.DS}"><ds:X509IssuerSerial>'
                "<ds:X509IssuerName>CN=x</ds:X509IssuerName>"
                "<ds:X509SerialNumber>twelve</ds:X509SerialNumber>"
                "</ds:X509IssuerSerial></ds:X509Data>"
            ),
        ),
        InvalidSecurity,
        Reason.TOKEN,
    ),
    "X509Data without X509IssuerSerial": Refusal(
        lambda c: signed_request(
            c.alice,
            etree.fromstring(
                f'<ds:X509Data xmlns:ds="{ns.DS}"><ds:X509SubjectName>CN=alice</ds:X509SubjectName>'
                "</ds:X509Data>"
            ),
        ),
        InvalidSecurity,
        Reason.TOKEN,
    ),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_key_reference_is_refused_for_its_reason(
    name: str, callers: Callers, store: TrustStore
) -> None:
    refusal = REFUSALS[name]
    with pytest.raises(SecurityFault) as raised:
        WsseVerifier(store, None).verify(parse_request(refusal.build(callers)))
    assert type(raised.value) is refusal.fault, raised.value
    assert raised.value.reason == refusal.reason, raised.value


@pytest.mark.parametrize(
    "name",
    [
        "SKI of an unregistered certificate",
        "SKI naming two registered certificates",
        "IssuerSerial naming two registered certificates",
        "X509v3 KeyIdentifier of a certificate unfit to sign",
    ],
)
def test_the_app_refuses_with_the_fault_code_and_logs_the_reason(
    name: str,
    callers: Callers,
    registered_settings: Settings,
    serve_app,
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusal = REFUSALS[name]
    server = serve_app(create_app(registered_settings))
    with caplog.at_level(logging.WARNING):
        response = requests.post(
            server.url, data=refusal.build(callers), headers=HEADERS, timeout=10
        )
    assert response.status_code == 500
    faultcode = etree.fromstring(response.content).findtext(f".//{q(SOAP, 'Fault')}/faultcode")
    assert faultcode is not None and faultcode.endswith(":" + refusal.fault.faultcode)
    assert any(
        f"security fault {refusal.fault.faultcode} ({refusal.reason})" in record.getMessage()
        for record in caplog.records
    ), [r.getMessage() for r in caplog.records]


def test_a_certificate_without_the_extension_is_named_by_the_ski_of_its_key(
    callers: Callers, store: TrustStore
) -> None:
    """WSS4J sends the SHA-1 of the key for a certificate without SubjectKeyIdentifier."""
    carol = callers.carol.certificate
    with pytest.raises(x509.ExtensionNotFound):
        carol.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    payload = signed_request(callers.carol, computed_ski_key_identifier(carol))
    verified = WsseVerifier(store, None).verify(parse_request(payload))
    assert verified.signer.subject == "CN=carol.wss4j.example"


def test_a_certificate_registered_twice_by_fingerprint_and_file_is_accepted(
    callers: Callers, pki: dict[str, Path]
) -> None:
    """AZERSU_TRUSTED_CLIENTS and AZERSU_CLIENT_CERTS may name the same caller."""
    from service.signing.keys import fingerprint

    store = TrustStore.from_pem_bytes(
        pki["ca.pem"].read_bytes(),
        [fingerprint(callers.alice.certificate)],
        caller_certificates=(callers.alice.certificate,),
    )
    payload = signed_request(callers.alice, ski_key_identifier(callers.alice.certificate))
    verified = WsseVerifier(store, None).verify(parse_request(payload))
    assert verified.signer.subject == "CN=alice.wss4j.example"


# --- start-up -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pick", "reason"),
    [
        (lambda c: c.rogue, "untrusted_issuer"),
        (lambda c: c.unfit, "key_usage_not_signing"),
        (lambda c: c.sub_ca, "signer_is_ca"),
        (lambda c: c.ca, "signer_is_trust_anchor"),
    ],
    ids=["does not chain", "unfit to sign", "a CA", "the trust anchor"],
)
def test_start_refuses_a_registered_certificate_naming_it(
    pick: Callable[[Callers], IssuedPair],
    reason: str,
    callers: Callers,
    base_settings: Settings,
    tmp_path: Path,
) -> None:
    bad = pick(callers)
    bundle = tmp_path / "callers.pem"
    bundle.write_bytes(callers.alice.cert_pem() + bad.cert_pem())
    settings = dataclasses.replace(base_settings, client_certs=str(bundle))
    with pytest.raises(ConfigurationError) as raised:
        read_trust_material(settings)
    assert raised.value.setting == "AZERSU_CLIENT_CERTS"
    assert bad.certificate.subject.rfc4514_string() in raised.value.problem
    assert f"({reason})" in raised.value.problem


def test_a_folder_of_pem_files_registers_its_callers(
    callers: Callers, base_settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "alice.pem").write_bytes(callers.alice.cert_pem())
    (tmp_path / "bob.pem").write_bytes(callers.bob.cert_pem())
    (tmp_path / "notes.txt").write_text("not a certificate")
    settings = dataclasses.replace(base_settings, trusted_clients="", client_certs=str(tmp_path))
    _, store = read_trust_material(settings).build()
    assert {c.subject.rfc4514_string() for c in store.caller_certificates} == {
        "CN=alice.wss4j.example",
        "CN=bob.wss4j.example",
    }
    payload = signed_request(callers.bob, thumbprint_key_identifier(callers.bob.certificate))
    assert WsseVerifier(store, None).verify(parse_request(payload)).signer.subject == (
        "CN=bob.wss4j.example"
    )


def test_a_certificate_in_two_files_is_one_caller(
    callers: Callers, base_settings: Settings, tmp_path: Path
) -> None:
    """Listed twice, a certificate is not an ambiguous thumbprint."""
    (tmp_path / "alice.pem").write_bytes(callers.alice.cert_pem())
    (tmp_path / "alice-again.pem").write_bytes(callers.alice.cert_pem())
    settings = dataclasses.replace(base_settings, trusted_clients="", client_certs=str(tmp_path))
    _, store = read_trust_material(settings).build()
    assert len(store.caller_certificates) == 1
    payload = signed_request(callers.alice, thumbprint_key_identifier(callers.alice.certificate))
    assert WsseVerifier(store, None).verify(parse_request(payload)).signer.subject == (
        "CN=alice.wss4j.example"
    )


def test_sighup_rereads_the_client_certificates(
    callers: Callers, base_settings: Settings, tmp_path: Path
) -> None:
    """A caller added to AZERSU_CLIENT_CERTS is resolved after a reload; a bad file is refused."""
    from service.serving import GunicornServer

    bundle = tmp_path / "callers.pem"
    bundle.write_bytes(callers.alice.cert_pem())
    settings = dataclasses.replace(base_settings, trusted_clients="", client_certs=str(bundle))
    server = GunicornServer(settings, read_trust_material(settings))
    payload = signed_request(callers.bob, ski_key_identifier(callers.bob.certificate))
    with pytest.raises(FailedAuthentication) as raised:
        WsseVerifier(server.material.build()[1], None).verify(parse_request(payload))
    assert raised.value.reason == KEY_REFERENCE_UNRESOLVED

    bundle.write_bytes(callers.alice.cert_pem() + callers.bob.cert_pem())
    server._on_reload(None)
    verified = WsseVerifier(server.material.build()[1], None).verify(parse_request(payload))
    assert verified.signer.subject == "CN=bob.wss4j.example"

    kept = server.material
    bundle.write_bytes(callers.bob.cert_pem() + callers.unfit.cert_pem())
    server._on_reload(None)
    assert server.material is kept  # the workers keep the material they have


def test_client_certs_with_accept_any_caller_of_ca_is_refused(
    base_settings: Settings, client_certs: Path
) -> None:
    settings = dataclasses.replace(
        base_settings,
        trusted_clients="",
        client_certs=str(client_certs),
        accept_any_caller_of_ca=True,
    )
    with pytest.raises(ConfigurationError) as raised:
        read_trust_material(settings)
    assert raised.value.setting == "AZERSU_ACCEPT_ANY_CALLER_OF_CA"


def test_an_empty_folder_is_refused(base_settings: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(base_settings, client_certs=str(tmp_path))
    with pytest.raises(ConfigurationError) as raised:
        read_trust_material(settings)
    assert raised.value.setting == "AZERSU_CLIENT_CERTS"
    assert "no *.pem" in raised.value.problem


# --- check-request --------------------------------------------------------------------------------


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("AZERSU_")]:
        monkeypatch.delenv(name)


def _tampered(payload: bytes) -> bytes:
    return payload.replace(bf.FULL.encode(), bf.FULL[:-1].encode() + b"9", 1)


@pytest.mark.parametrize(
    ("build", "status", "expected"),
    [
        (lambda c: signed_request(c.alice, ski_key_identifier(c.alice.certificate)), 0,
         "would be accepted: signed by CN=alice.wss4j.example"),
        (lambda c: signed_request(c.alice, issuer_serial(c.alice.certificate)), 0,
         "would be accepted: signed by CN=alice.wss4j.example"),
        (lambda c: _tampered(signed_request(c.alice, ski_key_identifier(c.alice.certificate))),
         1, "would be refused: FailedCheck (reference_digest): "),
        (lambda c: signed_request(c.stranger, thumbprint_key_identifier(c.stranger.certificate)),
         1, "would be refused: FailedAuthentication (key_reference_unresolved): the "
            "ThumbprintSHA1 key reference names no certificate of AZERSU_CLIENT_CERTS"),
        (lambda c: b"<not-xml", 1, "would be refused: Client.MalformedRequest (-): "),
    ],
    ids=["accepted SKI", "accepted IssuerSerial", "tampered Body", "unregistered", "not XML"],
)  # fmt: skip
def test_check_request_prints_the_verdict_and_the_reason(
    build: Callable[[Callers], bytes],
    status: int,
    expected: str,
    callers: Callers,
    client_certs: Path,
    pki: dict[str, Path],
    tmp_path: Path,
    clean_environment: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    captured = tmp_path / "request.xml"
    captured.write_bytes(build(callers))
    argv = ["check-request", str(captured), "--trust", str(pki["ca.pem"])]
    assert main([*argv, "--client-certs", str(client_certs)]) == status
    out = capsys.readouterr().out
    assert expected in out
    assert "replay check is not made" in out


def test_check_request_with_fingerprints_and_the_trust_setting(
    callers: Callers,
    pki: dict[str, Path],
    tmp_path: Path,
    clean_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--trust defaults to AZERSU_TRUST_CA; --trusted-clients registers by fingerprint."""
    from service.signing.keys import fingerprint

    monkeypatch.setenv("AZERSU_TRUST_CA", str(pki["ca.pem"]))
    captured = tmp_path / "request.xml"
    captured.write_bytes(signed_request(callers.alice, None))
    assert main(["check-request", str(captured)]) == 1
    assert "FailedAuthentication (signer_not_registered)" in capsys.readouterr().out
    registered = fingerprint(callers.alice.certificate)
    assert main(["check-request", str(captured), "--trusted-clients", registered]) == 0
    assert "would be accepted" in capsys.readouterr().out


def test_check_request_applies_accept_any_caller_of_ca_as_the_service_does(
    callers: Callers,
    pki: dict[str, Path],
    tmp_path: Path,
    clean_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AZERSU_TRUST_CA", str(pki["ca.pem"]))
    captured = tmp_path / "request.xml"
    captured.write_bytes(signed_request(callers.alice, None))
    assert main(["check-request", str(captured)]) == 1
    assert "FailedAuthentication (signer_not_registered)" in capsys.readouterr().out
    monkeypatch.setenv("AZERSU_ACCEPT_ANY_CALLER_OF_CA", "true")
    assert main(["check-request", str(captured)]) == 0
    assert "would be accepted" in capsys.readouterr().out


def test_check_request_refuses_an_unfit_registered_certificate(
    callers: Callers,
    pki: dict[str, Path],
    tmp_path: Path,
    clean_environment: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = tmp_path / "callers.pem"
    bundle.write_bytes(callers.unfit.cert_pem())
    captured = tmp_path / "request.xml"
    captured.write_bytes(signed_request(callers.alice, None))
    argv = ["check-request", str(captured), "--trust", str(pki["ca.pem"])]
    assert main([*argv, "--client-certs", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "AZERSU_CLIENT_CERTS" in err and "CN=encipher-only.example" in err


# --- check-request and the X-Road headers -------------------------------------------------------

WSA = "http://www.w3.org/2005/08/addressing"


def _xroad_request(sign: Callable[[bytes], bytes], signed: int, added: int) -> bytes:
    """A request whose first ``signed`` X-Road headers are signed; the next ``added`` aren't.

    The unsigned ones are put into the Header after signing, as a proxy or a
    handler that runs after the WS-Security step would.
    """
    blocks = xroad_headers()
    root = etree.fromstring(sign(with_headers(request_body(), blocks[:signed])))
    header = root.find(q(SOAP, "Header"))
    assert header is not None
    for position, block in enumerate(blocks[signed : signed + added], start=signed):
        header.insert(position, block)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _with_unsigned_addressing(sign: Callable[[bytes], bytes]) -> bytes:
    """A request with a WS-Addressing header added after signing: not an X-Road header."""
    root = etree.fromstring(sign(envelope(request_body())))
    header = root.find(q(SOAP, "Header"))
    assert header is not None
    message_id = etree.SubElement(header, q(WSA, "MessageID"), nsmap={"wsa": WSA})
    message_id.text = "urn:uuid:0b8e4f7c-3c2d-4f51-9d0e-2f6a1c9e7b21"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


XROAD_UNSIGNED = "InvalidSecurity (xroad_unsigned): an X-Road header is not signed"
ALL_XROAD = len(xroad_headers())


@pytest.mark.parametrize(
    ("build", "refusal"),
    [
        pytest.param(lambda sign: sign(envelope(request_body())), None, id="no X-Road headers"),
        pytest.param(lambda sign: _xroad_request(sign, ALL_XROAD, 0), None,
                     id="every X-Road header signed"),
        pytest.param(_with_unsigned_addressing, None, id="an unsigned header of another kind"),
        pytest.param(lambda sign: _xroad_request(sign, 0, ALL_XROAD), XROAD_UNSIGNED,
                     id="X-Road headers added after signing"),
        pytest.param(lambda sign: _xroad_request(sign, ALL_XROAD - 1, 1), XROAD_UNSIGNED,
                     id="the last X-Road header added after signing"),
    ],
)  # fmt: skip
def test_check_request_judges_x_road_headers_as_the_service_does(
    build: Callable[[Callable[[bytes], bytes]], bytes],
    refusal: str | None,
    sign: Callable[[bytes], bytes],
    base_settings: Settings,
    portal_identity,
    portal_fingerprint: str,
    pki: dict[str, Path],
    tmp_path: Path,
    clean_environment: None,
    serve_app,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same request, judged offline by check-request and by the service: one verdict.

    The rule that X-Road headers be signed is the gateway's, not the
    verifier's; check-request makes it through the gateway's own function, and
    prints the refusal as the service logs it.
    """
    payload = build(sign)
    captured = tmp_path / "request.xml"
    captured.write_bytes(payload)
    argv = ["check-request", str(captured), "--trust", str(pki["ca.pem"])]
    status = main([*argv, "--trusted-clients", portal_fingerprint])
    verdict = capsys.readouterr().out.splitlines()[0]

    server = serve_app(create_app(base_settings))
    with caplog.at_level(logging.WARNING, logger="service.gateway"):
        response = requests.post(server.url, data=payload, headers=HEADERS, timeout=10)
    logged = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("security fault ")
    ]
    root = etree.fromstring(response.content)
    if refusal is None:
        signer = portal_identity.certificate.subject.rfc4514_string()
        assert (status, verdict) == (0, f"would be accepted: signed by {signer}")
        assert response.status_code == 200, response.text
        assert root.findtext(f".//{{{ns.TNS}}}Status") == "OK"
        assert logged == []
    else:
        assert (status, verdict) == (1, f"would be refused: {refusal}")
        assert response.status_code == 500
        assert root.findtext(f".//{q(SOAP, 'Fault')}/faultcode") == "wsse:InvalidSecurity"
        assert logged == [f"security fault {refusal}"]
