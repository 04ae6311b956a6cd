"""Who may sign a request: registered callers whose certificate is fit to sign.

Chaining to the trust anchor is not enough: the anchor itself, another CA, a
certificate whose key usage is not signing and a weak key are refused, each
with its own reason, whether or not they are also registered; a fit
certificate of the CA is refused while it is not registered.  The rules hold
for the trust store alone, for a signed request through the app, and for a TLS
client certificate with WS-Security off.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from lxml import etree

from service import namespaces as ns
from service.app import ServiceApp, create_app
from service.errors import ConfigurationError, FailedAuthentication
from service.pki import IssuedPair
from service.settings import Settings
from service.signing.keys import fingerprint
from service.signing.material import read_trust_material
from service.signing.trust import TrustStore, check_fit_to_sign
from service.signing.wsse import WsseVerifier
from tests import billing_fixtures as bf
from tests.gunicorn_process import ServedProcess, fixture_service_env
from tests.test_properties import call
from tests.wsse_forge import forge

NOW = dt.datetime.now(dt.UTC)
SOAP = ns.SOAP11_ENV
TNS = "http://azersu.az/egov/billing-statement/v1"
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetBillingStatement"'}
SIGNING = frozenset({"digital_signature"})
CERT_SIGN = frozenset({"key_cert_sign", "crl_sign"})
#: A KeyUsage extension whose value is not a BIT STRING.
MALFORMED_KEY_USAGE = x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x05\x00")


def _rsa(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _dsa() -> dsa.DSAPrivateKey:
    with warnings.catch_warnings():  # DSA is deprecated in cryptography: that is the point
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return dsa.generate_private_key(2048)


def _key_usage(names: frozenset[str]) -> x509.KeyUsage:
    flags = (
        "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
        "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
    )  # fmt: skip
    assert names <= set(flags), names
    return x509.KeyUsage(**{flag: flag in names for flag in flags})


def make_certificate(
    common_name: str,
    key: Any,
    issuer: IssuedPair | None,
    *,
    ca: bool | None = False,
    key_usage: frozenset[str] | None = SIGNING,
    client: bool = True,
    subject: x509.Name | None = None,
    not_before: dt.datetime | None = None,
    days: int = 365,
    extra: Sequence[x509.ExtensionType] = (),
) -> IssuedPair:
    """Return a certificate for ``key`` issued by ``issuer`` (None: self-signed).

    ``ca=None`` leaves BasicConstraints out, ``key_usage=None`` KeyUsage.
    """
    name = subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = not_before or NOW - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    if key_usage is not None:
        builder = builder.add_extension(_key_usage(key_usage), critical=True)
    purpose = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    signer = issuer.key if issuer else key
    return IssuedPair(key, builder.sign(signer, hashes.SHA256()))


def _load_pair(key_path: Path, cert_path: Path) -> IssuedPair:
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    return IssuedPair(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def certs(pki: dict[str, Path]) -> dict[str, IssuedPair]:
    """Return every certificate of the table, issued by the session's development CA."""
    anchor = _load_pair(pki["ca.key"], pki["ca.pem"])
    stranger = make_certificate("Stranger CA", _rsa(), None, ca=True, key_usage=CERT_SIGN)
    return {
        "anchor": anchor,
        # The anchor's own key in an end-entity certificate it signed itself.
        "anchor-key-twin": make_certificate(
            "", anchor.key, None, subject=anchor.certificate.subject
        ),
        "sub-ca": make_certificate(
            "Sub CA", _rsa(), anchor, ca=True, key_usage=CERT_SIGN | SIGNING
        ),
        "leaf-ca-true-cert-sign-only": make_certificate(
            "leaf CA:TRUE", _rsa(), anchor, ca=True, key_usage=CERT_SIGN
        ),
        "leaf-cert-sign-only": make_certificate(
            "leaf keyCertSign", _rsa(), anchor, key_usage=CERT_SIGN
        ),
        "tls-server-key-encipherment-only": make_certificate(
            "tls.e-gov.az", _rsa(), anchor, key_usage=frozenset({"key_encipherment"}), client=False
        ),
        "rsa-1024": make_certificate("rsa-1024", _rsa(1024), anchor),
        "ec-p192": make_certificate("ec-p192", ec.generate_private_key(ec.SECP192R1()), anchor),
        "ec-p224": make_certificate("ec-p224", ec.generate_private_key(ec.SECP224R1()), anchor),
        "dsa-2048": make_certificate("dsa-2048", _dsa(), anchor),
        "expired": make_certificate(
            "expired", _rsa(), anchor, not_before=NOW - dt.timedelta(days=30), days=1
        ),
        "stranger-ca-leaf": make_certificate("stranger's leaf", _rsa(), stranger),
        "good-rsa-2048": make_certificate("good rsa", _rsa(), anchor),
        "good-unlisted": make_certificate("good but not registered", _rsa(), anchor),
        "non-repudiation-only": make_certificate(
            "nonRepudiation", _rsa(), anchor, key_usage=frozenset({"content_commitment"})
        ),
        "no-key-usage-no-basic-constraints": make_certificate(
            "no extensions", _rsa(), anchor, ca=None, key_usage=None
        ),
        "ec-p256": make_certificate("ec-p256", ec.generate_private_key(ec.SECP256R1()), anchor),
        "ec-p384": make_certificate("ec-p384", ec.generate_private_key(ec.SECP384R1()), anchor),
        "ed25519": make_certificate("ed25519", ed25519.Ed25519PrivateKey.generate(), anchor),
        "malformed-key-usage": make_certificate(
            "malformed KeyUsage", _rsa(), anchor, key_usage=None, extra=[MALFORMED_KEY_USAGE]
        ),
    }


#: (certificate, registered?, the reason it is refused with; None: accepted).
TRUST_CASES = [
    pytest.param("anchor", True, "signer_is_trust_anchor", id="trust-anchor-listed"),
    pytest.param("anchor", False, "signer_is_trust_anchor", id="trust-anchor"),
    pytest.param("anchor-key-twin", True, "signer_is_trust_anchor", id="anchor-key-twin-listed"),
    pytest.param("sub-ca", True, "signer_is_ca", id="sub-ca-listed"),
    pytest.param("sub-ca", False, "signer_is_ca", id="sub-ca"),
    pytest.param("leaf-ca-true-cert-sign-only", True, "signer_is_ca", id="ca-true-leaf-listed"),
    pytest.param("leaf-cert-sign-only", True, "key_usage_not_signing", id="cert-sign-only-listed"),
    pytest.param(
        "tls-server-key-encipherment-only", True, "key_usage_not_signing", id="tls-server-listed"
    ),
    pytest.param(
        "tls-server-key-encipherment-only", False, "key_usage_not_signing", id="tls-server"
    ),
    pytest.param("rsa-1024", True, "weak_key", id="rsa-1024-listed"),
    pytest.param("rsa-1024", False, "weak_key", id="rsa-1024"),
    pytest.param("ec-p192", True, "weak_key", id="ec-p192-listed"),
    pytest.param("ec-p224", True, "weak_key", id="ec-p224-listed"),
    pytest.param("dsa-2048", True, "key_type_not_allowed", id="dsa-listed"),
    pytest.param("expired", True, "certificate_validity", id="expired-listed"),
    pytest.param("stranger-ca-leaf", True, "untrusted_issuer", id="other-ca-leaf-listed"),
    pytest.param("good-unlisted", False, "signer_not_registered", id="good-leaf-not-listed"),
    pytest.param("good-rsa-2048", True, None, id="good-leaf-listed"),
    pytest.param("non-repudiation-only", True, None, id="non-repudiation-listed"),
    pytest.param("no-key-usage-no-basic-constraints", True, None, id="no-extensions-listed"),
    pytest.param("ec-p256", True, None, id="ec-p256-listed"),
    pytest.param("ec-p384", True, None, id="ec-p384-listed"),
    pytest.param("ed25519", True, None, id="ed25519-listed"),
    pytest.param(
        "malformed-key-usage", True, "certificate_extensions_malformed", id="bad-extension-listed"
    ),
]

#: The reasons that check_fit_to_sign gives on its own (the rest need the store).
FIT_REASONS = {
    "signer_is_ca",
    "key_usage_not_signing",
    "weak_key",
    "key_type_not_allowed",
    "certificate_extensions_malformed",
}


@pytest.mark.parametrize(("name", "listed", "reason"), TRUST_CASES)
def test_trust_store_accepts_only_registered_certificates_fit_to_sign(
    certs: dict[str, IssuedPair], pki: dict[str, Path], name: str, listed: bool, reason: str | None
) -> None:
    cert = certs[name].certificate
    # Someone else is always registered: the store is never "anyone".
    registered = [fingerprint(certs["good-rsa-2048"].certificate)]
    if listed:
        registered.append(fingerprint(cert))
    store = TrustStore.from_pem_bytes(pki["ca.pem"].read_bytes(), registered)
    if reason is None:
        store.check(cert)
        return
    with pytest.raises(FailedAuthentication) as raised:
        store.check(cert)
    assert raised.value.reason == reason, raised.value.detail
    assert raised.value.faultcode == "FailedAuthentication"


@pytest.mark.parametrize(("name", "listed", "reason"), TRUST_CASES)
def test_check_fit_to_sign_alone(
    certs: dict[str, IssuedPair], name: str, listed: bool, reason: str | None
) -> None:
    cert = certs[name].certificate
    if reason in FIT_REASONS:
        with pytest.raises(FailedAuthentication) as raised:
            check_fit_to_sign(cert)
        assert raised.value.reason == reason
    elif name == "anchor":
        with pytest.raises(FailedAuthentication) as raised:
            check_fit_to_sign(cert)
        assert raised.value.reason == "signer_is_ca"  # the store names it the anchor
    else:
        check_fit_to_sign(cert)  # fit: refused, if at all, for who issued or registered it


@pytest.mark.parametrize(
    "name", ["anchor", "sub-ca", "tls-server-key-encipherment-only", "rsa-1024"]
)
def test_accepting_any_signer_of_the_ca_still_requires_fitness(
    certs: dict[str, IssuedPair], pki: dict[str, Path], name: str
) -> None:
    store = TrustStore.from_pem_file(str(pki["ca.pem"]), accept_any_signer_of_ca=True)
    store.check(certs["good-unlisted"].certificate)
    with pytest.raises(FailedAuthentication) as raised:
        store.check(certs[name].certificate)
    assert raised.value.reason != "signer_not_registered"
    assert raised.value.reason in FIT_REASONS | {"signer_is_trust_anchor"}


def test_an_intermediate_ca_in_the_bundle_is_an_anchor_and_never_signs(
    certs: dict[str, IssuedPair],
) -> None:
    sub_ca = certs["sub-ca"]
    bundle = b"".join(
        c.public_bytes(serialization.Encoding.PEM)
        for c in (certs["anchor"].certificate, sub_ca.certificate)
    )
    store = TrustStore.from_pem_bytes(bundle, [fingerprint(sub_ca.certificate)])
    with pytest.raises(FailedAuthentication) as raised:
        store.check(sub_ca.certificate)
    assert raised.value.reason == "signer_is_trust_anchor"


def test_a_store_cannot_both_register_signers_and_accept_any(pki: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="not both"):
        TrustStore.from_pem_file(str(pki["ca.pem"]), ["ab" * 32], accept_any_signer_of_ca=True)


def test_pki_init_certificates_are_fit_to_sign(pki: dict[str, Path]) -> None:
    """``make run``'s portal and service pass the rules; the development CA does not."""
    for name in ("portal.pem", "service.pem"):
        cert = x509.load_pem_x509_certificate(pki[name].read_bytes())
        check_fit_to_sign(cert)
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca = x509.load_pem_x509_certificate(pki["ca.pem"].read_bytes())
    portal = x509.load_pem_x509_certificate(pki["portal.pem"].read_bytes())
    store = TrustStore.from_pem_file(str(pki["ca.pem"]), [fingerprint(portal), fingerprint(ca)])
    store.check(portal)
    with pytest.raises(FailedAuthentication) as raised:
        store.check(ca)
    assert raised.value.reason == "signer_is_trust_anchor"


# --- through the app: a signed request ------------------------------------------------------

#: The certificates signing a request in-process (RSA keys, so the forger signs with them).
REFUSED_REQUESTS = [
    pytest.param("anchor", "signer_is_trust_anchor", id="signed-by-the-ca"),
    pytest.param("sub-ca", "signer_is_ca", id="signed-by-a-sub-ca"),
    pytest.param("leaf-ca-true-cert-sign-only", "signer_is_ca", id="signed-by-a-ca-true-leaf"),
    pytest.param(
        "tls-server-key-encipherment-only", "key_usage_not_signing", id="signed-by-a-tls-server"
    ),
    pytest.param("rsa-1024", "weak_key", id="signed-by-rsa-1024"),
    pytest.param("good-unlisted", "signer_not_registered", id="signed-by-an-unregistered-leaf"),
]


@pytest.fixture(scope="module")
def registering_app(
    base_settings: Settings,
    certs: dict[str, IssuedPair],
    portal_fingerprint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceApp]:
    """The app with the portal and every refused certificate but the unregistered one listed."""
    listed = [portal_fingerprint, fingerprint(certs["good-rsa-2048"].certificate)]
    listed += [
        fingerprint(certs[name].certificate)
        for name, _ in (p.values for p in REFUSED_REQUESTS)
        if name != "good-unlisted"
    ]
    folder = tmp_path_factory.mktemp("trust-app")
    app = create_app(
        dataclasses.replace(
            base_settings,
            trusted_clients=",".join(listed),
            audit_url=f"sqlite:///{folder / 'audit.sqlite'}",
        )
    )
    yield app
    app.close()


def _fault_code(root: etree._Element) -> tuple[str | None, str]:
    """Return the Fault's faultcode as (namespace, local name)."""
    fault = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None
    prefix, _, local = (fault.findtext("faultcode") or "").partition(":")
    return fault.nsmap.get(prefix), local


def _failures(app: ServiceApp, reason: str) -> float:
    value = app.metrics.registry.get_sample_value(
        "azersu_signature_failures_total", {"reason": reason}
    )
    return value or 0.0


@pytest.mark.parametrize(("name", "reason"), REFUSED_REQUESTS)
def test_a_request_signed_by_an_unfit_or_unregistered_certificate_is_failed_authentication(
    registering_app: ServiceApp,
    certs: dict[str, IssuedPair],
    trust: TrustStore,
    caplog: pytest.LogCaptureFixture,
    name: str,
    reason: str,
) -> None:
    before = _failures(registering_app, reason)
    with caplog.at_level(logging.WARNING, logger="service"):
        status, _headers, body = call(registering_app, forge(certs[name], code=bf.FULL).bytes())

    assert status.startswith("500")
    root = etree.fromstring(body)
    WsseVerifier(trust, None).verify(root)  # the refusal is signed by the service
    assert _fault_code(root) == (ns.WSSE, "FailedAuthentication")
    # The caller learns the code only; the reason is in the log and the metric.
    assert root.findtext(f".//{{{SOAP}}}Fault/faultstring") == FailedAuthentication.faultstring
    assert reason.encode() not in body
    assert bf.AZ_LAST.encode() not in body and b"Statement" not in body
    subject = certs[name].certificate.subject.rfc4514_string()
    logged = [r.getMessage() for r in caplog.records if "security fault" in r.getMessage()]
    assert logged == [
        f"security fault FailedAuthentication ({reason}): certificate {subject} "
        + logged[0].partition(f"certificate {subject} ")[2]
    ]
    assert _failures(registering_app, reason) == before + 1


def test_a_request_signed_by_a_registered_fit_certificate_is_answered(
    registering_app: ServiceApp, certs: dict[str, IssuedPair]
) -> None:
    status, _headers, body = call(
        registering_app, forge(certs["good-rsa-2048"], code=bf.FULL).bytes()
    )
    assert status.startswith("200")
    assert etree.fromstring(body).findtext(f".//{{{TNS}}}Status") == "OK"


# --- the start: registered callers, or any caller of the CA said out loud -------------------


def test_accept_any_caller_of_ca_starts_with_a_warning_at_every_start(
    settings: Settings,
    certs: dict[str, IssuedPair],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    any_caller = dataclasses.replace(
        settings,
        trusted_clients="",
        accept_any_caller_of_ca=True,
        audit_url=f"sqlite:///{tmp_path / 'audit.sqlite'}",
    )
    with caplog.at_level(logging.WARNING, logger="service"):
        app = create_app(any_caller)
        read_trust_material(any_caller)  # a reload (SIGHUP) is a start too
    try:
        warned = [
            r for r in caplog.records if "AZERSU_ACCEPT_ANY_CALLER_OF_CA=true" in r.getMessage()
        ]
        assert len(warned) == 2
        assert all(r.levelno == logging.WARNING and r.name == "service.trust" for r in warned)
        # Any fit certificate of the CA may call; the CA itself still may not.
        ok = call(app, forge(certs["good-unlisted"], code=bf.FULL).bytes())
        assert ok[0].startswith("200")
        assert etree.fromstring(ok[2]).findtext(f".//{{{TNS}}}Status") == "OK"
        before = _failures(app, "signer_is_trust_anchor")
        refused = call(app, forge(certs["anchor"], code=bf.FULL).bytes())
        assert refused[0].startswith("500")
        assert b"FailedAuthentication" in refused[2]
        assert _failures(app, "signer_is_trust_anchor") == before + 1
    finally:
        app.close()


def test_registered_callers_start_without_the_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="service"):
        material = read_trust_material(settings)
    assert material.registered_callers and not material.accept_any_caller_of_ca
    assert not [r for r in caplog.records if "ACCEPT_ANY_CALLER" in r.getMessage()]


def test_an_empty_caller_list_stops_the_start_naming_the_setting(settings: Settings) -> None:
    with pytest.raises(ConfigurationError) as raised:
        read_trust_material(dataclasses.replace(settings, trusted_clients=""))
    assert raised.value.setting == "AZERSU_TRUSTED_CLIENTS"
    assert "AZERSU_ACCEPT_ANY_CALLER_OF_CA=true" in raised.value.problem


# --- TLS client certificates (WS-Security off) ----------------------------------------------

#: (certificate, the reason; None: answered).  The TLS handshake itself already
#: refuses a client certificate whose KeyUsage lacks digitalSignature, whose key
#: is too small for OpenSSL's security level, or that is the anchor's key in
#: another certificate: those never reach the service.
TLS_CASES = [
    pytest.param("good-rsa-2048", None, id="registered-leaf"),
    pytest.param("good-unlisted", "signer_not_registered", id="unregistered-leaf"),
    pytest.param("sub-ca", "signer_is_ca", id="sub-ca-listed"),
]


@dataclasses.dataclass
class TlsService:
    server: ServedProcess
    folder: Path


@pytest.fixture(scope="module")
def tls_service(
    billing_db: str,
    pki: dict[str, Path],
    certs: dict[str, IssuedPair],
    portal_fingerprint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TlsService]:
    """Serve over TLS with WS-Security off; the listed TLS_CASES certificates are registered."""
    folder = tmp_path_factory.mktemp("tls-trust")
    listed = [portal_fingerprint] + [
        fingerprint(certs[name].certificate)
        for name, _ in (p.values for p in TLS_CASES)
        if name != "good-unlisted"
    ]
    for name in certs:
        (folder / f"{name}.key").write_bytes(certs[name].key_pem())
        (folder / f"{name}.pem").write_bytes(certs[name].cert_pem())
    env = fixture_service_env(
        pki,
        billing_db,
        folder / "var",
        AZERSU_WSSE_MODE="off",
        AZERSU_TLS_CERT=str(pki["service.pem"]),
        AZERSU_TLS_KEY=str(pki["service.key"]),
        AZERSU_TLS_CLIENT_CA=str(pki["ca.pem"]),
        AZERSU_TRUSTED_CLIENTS=" ".join(listed),
    )
    portal_cert = (str(pki["portal.pem"]), str(pki["portal.key"]))
    server = ServedProcess(env, folder / "serve.log", scheme="https", client_cert=portal_cert)
    yield TlsService(server, folder)
    assert server.stop() == 0, server.log_text()


def _unsigned_request() -> bytes:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns:b="{TNS}">'
        f"<soapenv:Body><b:GetBillingStatement><b:SubscriberCode>{bf.FULL}</b:SubscriberCode>"
        f"<b:CitizenFin>{bf.FIN}</b:CitizenFin></b:GetBillingStatement></soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "reason"), TLS_CASES)
def test_tls_client_certificates_follow_the_same_rules(
    tls_service: TlsService,
    pki: dict[str, Path],
    certs: dict[str, IssuedPair],
    name: str,
    reason: str | None,
) -> None:
    server, folder = tls_service.server, tls_service.folder
    response = requests.post(
        server.url,
        data=_unsigned_request(),
        headers=HEADERS,
        cert=(str(folder / f"{name}.pem"), str(folder / f"{name}.key")),
        verify=str(pki["ca.pem"]),
        timeout=10,
    )
    root = etree.fromstring(response.content)
    if reason is None:
        assert response.status_code == 200, response.text
        assert root.findtext(f".//{{{TNS}}}Status") == "OK"
        return
    assert response.status_code == 500
    assert _fault_code(root) == (ns.WSSE, "FailedAuthentication")
    assert bf.AZ_LAST.encode() not in response.content
    subject = certs[name].certificate.subject.rfc4514_string()
    expected = f"security fault FailedAuthentication ({reason}): certificate {subject} "
    logged = [r for r in server.log_records() if str(r.get("message")).startswith(expected)]
    assert len(logged) == 1, server.log_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "anchor",
        "anchor-key-twin",
        "leaf-ca-true-cert-sign-only",
        "leaf-cert-sign-only",
        "tls-server-key-encipherment-only",
        "rsa-1024",
        "ec-p192",
        "ec-p224",
        "dsa-2048",
        "expired",
        "stranger-ca-leaf",
    ],
)
def test_the_tls_handshake_already_refuses_these_client_certificates(
    tls_service: TlsService, pki: dict[str, Path], certs: dict[str, IssuedPair], name: str
) -> None:
    folder = tls_service.folder
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.post(
            tls_service.server.url,
            data=_unsigned_request(),
            headers=HEADERS,
            cert=(str(folder / f"{name}.pem"), str(folder / f"{name}.key")),
            verify=str(pki["ca.pem"]),
            timeout=10,
        )
    # Refused before any request is read: the service never saw it.
    subject = certs[name].certificate.subject.rfc4514_string()
    assert not [r for r in tls_service.server.log_records() if subject in str(r.get("message"))]
