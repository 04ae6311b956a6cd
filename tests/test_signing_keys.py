"""The signing identity, its password, the trust store and the start-up checks of create_app."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import pkcs12
from lxml import etree
from zeep.exceptions import Fault

from service import namespaces as ns
from service.app import create_app
from service.client import StatementClient
from service.errors import ConfigurationError, FailedAuthentication
from service.pki import IssuedPair, create_ca, issue, new_key
from service.signing.keys import (
    fingerprint,
    load_signing_identity,
    read_password,
)
from service.signing.trust import TrustStore
from tests import billing_fixtures as bf

NOW = dt.datetime.now(dt.UTC)
PASSWORD = "şifrə-S3cret"  # Azerbaijani letters: the password is UTF-8


# --- helpers ---------------------------------------------------------------------------------


def load_ca(pki: dict[str, Path]) -> IssuedPair:
    """Return the session's development CA (to issue more certificates)."""
    key = serialization.load_pem_private_key(pki["ca.key"].read_bytes(), None)
    cert = x509.load_pem_x509_certificate(pki["ca.pem"].read_bytes())
    return IssuedPair(key, cert)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ca(pki: dict[str, Path]) -> IssuedPair:
    return load_ca(pki)


@pytest.fixture(scope="module")
def pair(ca: IssuedPair) -> IssuedPair:
    """Return a fresh RSA service pair issued by the session CA."""
    return issue(ca, "billing-statement.azersu.az", "e-xidmətlər", client=False)


def write_pem_pair(folder: Path, pair: IssuedPair, name: str = "service") -> tuple[str, str]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    key.write_bytes(pair.key_pem())
    cert.write_bytes(pair.cert_pem())
    return str(key), str(cert)


def write_pkcs12(folder: Path, pair: IssuedPair, password: str | None) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    data = pkcs12.serialize_key_and_certificates(
        b"service", pair.key, pair.certificate, None, encryption
    )
    path = folder / "service.p12"
    path.write_bytes(data)
    return str(path)


def write_ca_bundle(path: Path, *cas: IssuedPair) -> str:
    path.write_bytes(b"".join(ca.cert_pem() for ca in cas))
    return str(path)


# --- PEM and PKCS#12 -------------------------------------------------------------------------


def test_pem_key_and_certificate_load(pki: dict[str, Path]) -> None:
    identity = load_signing_identity(str(pki["service.key"]), str(pki["service.pem"]), None)
    certificate = x509.load_pem_x509_certificate(pki["service.pem"].read_bytes())
    assert identity.certificate == certificate
    assert identity.certificate_der == certificate.public_bytes(serialization.Encoding.DER)
    assert "CN=billing-statement.azersu.az" in identity.subject
    assert identity.signature_method == ns.RSA_SHA256
    assert identity.signature_method == ns.RSA_SHA256
    assert 800 < identity.days_left() <= 825


@pytest.mark.parametrize("source", ["password", "password file"])
def test_pkcs12_loads_with_its_password(tmp_path: Path, pair: IssuedPair, source: str) -> None:
    p12 = write_pkcs12(tmp_path, pair, PASSWORD)
    if source == "password":
        password = read_password(PASSWORD, "")
    else:
        password_file = tmp_path / "password.txt"
        password_file.write_text(PASSWORD + "\n", encoding="utf-8")
        password = read_password("", str(password_file))
    assert password == PASSWORD.encode()
    identity = load_signing_identity(p12, "", password)
    assert fingerprint(identity.certificate) == fingerprint(pair.certificate)
    assert identity.signature_method == ns.RSA_SHA256


def test_unencrypted_pkcs12_loads_without_a_password(tmp_path: Path, pair: IssuedPair) -> None:
    identity = load_signing_identity(write_pkcs12(tmp_path, pair, None), "", None)
    assert identity.certificate == pair.certificate


@pytest.mark.parametrize("password", [b"wrong", None], ids=["wrong", "missing"])
def test_pkcs12_with_a_wrong_password_names_the_key_setting(
    tmp_path: Path, pair: IssuedPair, password: bytes | None
) -> None:
    p12 = write_pkcs12(tmp_path, pair, PASSWORD)
    with pytest.raises(ConfigurationError) as raised:
        load_signing_identity(p12, "", password)
    assert raised.value.setting == "AZERSU_SIGN_KEY"
    assert str(raised.value).startswith("AZERSU_SIGN_KEY: ")
    assert "wrong password" in raised.value.problem
    assert PASSWORD not in str(raised.value)


def test_pkcs12_without_a_certificate_is_refused(tmp_path: Path, pair: IssuedPair) -> None:
    path = tmp_path / "key-only.p12"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"k", pair.key, None, None, serialization.NoEncryption()
        )
    )
    with pytest.raises(ConfigurationError, match="lacks a key or a certificate") as raised:
        load_signing_identity(str(path), "", None)
    assert raised.value.setting == "AZERSU_SIGN_KEY"


@pytest.mark.parametrize(
    ("password", "loads"),
    [(PASSWORD.encode(), True), (b"wrong", False), (None, False)],
    ids=["right", "wrong", "missing"],
)
def test_encrypted_pem_key(
    tmp_path: Path, pair: IssuedPair, password: bytes | None, loads: bool
) -> None:
    key = tmp_path / "encrypted.key"
    key.write_bytes(
        pair.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    cert = tmp_path / "service.pem"
    cert.write_bytes(pair.cert_pem())
    if loads:
        identity = load_signing_identity(str(key), str(cert), password)
        assert identity.certificate == pair.certificate
    else:
        with pytest.raises(ConfigurationError) as raised:
            load_signing_identity(str(key), str(cert), password)
        assert raised.value.setting == "AZERSU_SIGN_KEY"


# --- what stops the start --------------------------------------------------------------------

#: Writes a broken identity into a folder; returns (key path, cert path).
IdentityCase = Callable[[IssuedPair, IssuedPair, Path], tuple[str, str]]


def _mismatch(ca: IssuedPair, pair: IssuedPair, folder: Path) -> tuple[str, str]:
    other = issue(ca, "other", "e-xidmətlər", client=False)
    key, _ = write_pem_pair(folder, pair, "service")
    _, cert = write_pem_pair(folder, other, "other")
    return key, cert


def _expired(ca: IssuedPair, pair: IssuedPair, folder: Path) -> tuple[str, str]:
    old = issue(
        ca, "old", "e-xidmətlər", client=False, not_before=NOW - dt.timedelta(days=3), days=1
    )
    return write_pem_pair(folder, old)


def _not_yet_valid(ca: IssuedPair, pair: IssuedPair, folder: Path) -> tuple[str, str]:
    future = issue(
        ca, "future", "e-xidmətlər", client=False, not_before=NOW + dt.timedelta(days=2), days=30
    )
    return write_pem_pair(folder, future)


def _missing_key(ca: IssuedPair, pair: IssuedPair, folder: Path) -> tuple[str, str]:
    _, cert = write_pem_pair(folder, pair)
    return str(folder / "missing.key"), cert


def _missing_cert(ca: IssuedPair, pair: IssuedPair, folder: Path) -> tuple[str, str]:
    key, _ = write_pem_pair(folder, pair)
    return key, str(folder / "missing.pem")


def _key_not_set(ca: IssuedPair, pair: IssuedPair, folder: Path) -> tuple[str, str]:
    _, cert = write_pem_pair(folder, pair)
    return "", cert


def _cert_not_set(ca: IssuedPair, pair: IssuedPair, folder: Path) -> tuple[str, str]:
    key, _ = write_pem_pair(folder, pair)
    return key, ""


def _cert_is_a_key(ca: IssuedPair, pair: IssuedPair, folder: Path) -> tuple[str, str]:
    key, _ = write_pem_pair(folder, pair)
    return key, key


def _key_is_a_cert(ca: IssuedPair, pair: IssuedPair, folder: Path) -> tuple[str, str]:
    _, cert = write_pem_pair(folder, pair)
    return cert, cert


def _ed25519_key(ca: IssuedPair, pair: IssuedPair, folder: Path) -> tuple[str, str]:
    _, cert = write_pem_pair(folder, pair)
    key = folder / "ed25519.key"
    key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(key), cert


def _der_key(ca: IssuedPair, pair: IssuedPair, folder: Path) -> tuple[str, str]:
    # Not PEM, so it is read as PKCS#12 -- and refused as such.
    _, cert = write_pem_pair(folder, pair)
    key = folder / "service.der"
    key.write_bytes(
        pair.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(key), cert


IDENTITY_FAILURES = [
    pytest.param(_mismatch, "AZERSU_SIGN_CERT", "does not match", id="key-cert-mismatch"),
    pytest.param(_expired, "AZERSU_SIGN_CERT", "expired", id="expired"),
    pytest.param(_not_yet_valid, "AZERSU_SIGN_CERT", "not valid before", id="not-yet-valid"),
    pytest.param(_missing_key, "AZERSU_SIGN_KEY", "cannot read", id="missing-key-file"),
    pytest.param(_missing_cert, "AZERSU_SIGN_CERT", "cannot read", id="missing-cert-file"),
    pytest.param(_key_not_set, "AZERSU_SIGN_KEY", "not set", id="key-not-set"),
    pytest.param(_cert_not_set, "AZERSU_SIGN_CERT", "not set", id="cert-not-set"),
    pytest.param(_cert_is_a_key, "AZERSU_SIGN_CERT", "not a PEM certificate", id="cert-is-a-key"),
    pytest.param(_key_is_a_cert, "AZERSU_SIGN_KEY", "cannot load the PEM key", id="key-is-a-cert"),
    pytest.param(_ed25519_key, "AZERSU_SIGN_KEY", "only RSA and EC", id="ed25519"),
    pytest.param(_der_key, "AZERSU_SIGN_KEY", "PKCS#12", id="der-key"),
]


@pytest.mark.parametrize(("make", "setting", "problem"), IDENTITY_FAILURES)
def test_identity_failures_name_the_setting(
    ca: IssuedPair,
    pair: IssuedPair,
    tmp_path: Path,
    make: IdentityCase,
    setting: str,
    problem: str,
) -> None:
    key, cert = make(ca, pair, tmp_path)
    with pytest.raises(ConfigurationError) as raised:
        load_signing_identity(key, cert, None)
    assert raised.value.setting == setting
    assert problem in raised.value.problem
    assert str(raised.value).startswith(f"{setting}: ")


def test_expiry_is_judged_at_the_given_time(pki: dict[str, Path]) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3650)
    with pytest.raises(ConfigurationError, match="expired on"):
        load_signing_identity(str(pki["service.key"]), str(pki["service.pem"]), None, later)


def test_a_command_line_tool_gets_its_own_option_names(tmp_path: Path, pair: IssuedPair) -> None:
    key, _ = write_pem_pair(tmp_path, pair)
    with pytest.raises(ConfigurationError) as raised:
        load_signing_identity(
            key, str(tmp_path / "missing.pem"), None, key_setting="--key", cert_setting="--cert"
        )
    assert raised.value.setting == "--cert"


# --- the password ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "file_content", "expected"),
    [
        pytest.param("", None, None, id="none"),
        pytest.param(PASSWORD, None, PASSWORD.encode(), id="setting-utf8"),
        pytest.param("", PASSWORD + "\n", PASSWORD.encode(), id="file-newline"),
        pytest.param("", PASSWORD + "\r\n", PASSWORD.encode(), id="file-crlf"),
        pytest.param("", PASSWORD, PASSWORD.encode(), id="file-no-newline"),
        pytest.param("", "\n", None, id="file-empty"),
    ],
)
def test_read_password(
    tmp_path: Path, password: str, file_content: str | None, expected: bytes | None
) -> None:
    password_file = ""
    if file_content is not None:
        path = tmp_path / "password"
        path.write_bytes(file_content.encode())
        password_file = str(path)
    assert read_password(password, password_file) == expected


def test_password_file_uses_its_first_line_only(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_bytes(f"{PASSWORD}\n# rotated 2026-01\n".encode())
    assert read_password("", str(path)) == PASSWORD.encode()


def test_password_and_password_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text(PASSWORD)
    with pytest.raises(ConfigurationError) as raised:
        read_password(PASSWORD, str(path))
    assert raised.value.setting == "AZERSU_SIGN_KEY_PASSWORD"
    assert "AZERSU_SIGN_KEY_PASSWORD_FILE" in raised.value.problem
    assert PASSWORD not in str(raised.value)


def test_missing_password_file_names_its_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        read_password("", str(tmp_path / "missing"))
    assert raised.value.setting == "AZERSU_SIGN_KEY_PASSWORD_FILE"


# --- EC keys ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ec_pair(ca: IssuedPair) -> IssuedPair:
    return issue(
        ca, "billing-statement.azersu.az (EC)", "e-xidmətlər", client=False, key=new_key("ec")
    )


def test_ec_key_signs_with_ecdsa_sha256(tmp_path: Path, ec_pair: IssuedPair) -> None:
    identity = load_signing_identity(*write_pem_pair(tmp_path, ec_pair), None)
    assert identity.signature_method == ns.ECDSA_SHA256
    assert isinstance(identity.private_key, ec.EllipticCurvePrivateKey)


def test_response_signed_by_an_ec_service_key_verifies_end_to_end(
    tmp_path: Path, ec_pair: IssuedPair, settings, serve_app, portal_identity, trust
) -> None:
    key, cert = write_pem_pair(tmp_path, ec_pair)
    server = serve_app(create_app(dataclasses.replace(settings, sign_key=key, sign_cert=cert)))
    result = StatementClient(server.url, portal_identity, trust).call(bf.FULL, bf.FIN)
    assert result.response.Status == "OK"
    assert result.envelope.signer.fingerprint == fingerprint(ec_pair.certificate)
    assert result.statement is not None
    assert result.statement.signer.fingerprint == fingerprint(ec_pair.certificate)
    methods = etree.fromstring(result.raw_xml).iterfind(f".//{{{ns.DS}}}SignatureMethod")
    assert [m.get("Algorithm") for m in methods] == [ns.ECDSA_SHA256, ns.ECDSA_SHA256]


# --- create_app refuses to start -------------------------------------------------------------

#: (settings overrides given the PKI and a folder, the setting named, words of the problem)
START_FAILURES = [
    pytest.param(lambda pki, tmp: {"sign_key": ""}, "AZERSU_SIGN_KEY", "not set", id="no-key"),
    pytest.param(
        lambda pki, tmp: {"sign_cert": str(pki["portal.pem"])},
        "AZERSU_SIGN_CERT",
        "does not match",
        id="portal-cert-for-service-key",
    ),
    pytest.param(
        lambda pki, tmp: {"trust_ca": str(pki["service.pem"])},
        "AZERSU_TRUST_CA",
        "is not a CA certificate",
        id="trust-not-a-ca",
    ),
    pytest.param(
        lambda pki, tmp: {"trust_ca": str(tmp / "missing.pem")},
        "AZERSU_TRUST_CA",
        "cannot read",
        id="trust-missing",
    ),
    pytest.param(
        lambda pki, tmp: {"trust_ca": str(tmp)},
        "AZERSU_TRUST_CA",
        "cannot read",
        id="trust-is-a-folder",
    ),
    pytest.param(lambda pki, tmp: {"trust_ca": ""}, "AZERSU_TRUST_CA", "not set", id="no-trust"),
    pytest.param(
        lambda pki, tmp: {"trust_ca": str(pki["service.key"])},
        "AZERSU_TRUST_CA",
        "no PEM certificates",
        id="trust-is-a-key",
    ),
    pytest.param(
        lambda pki, tmp: {"sign_key_password": "a", "sign_key_password_file": str(pki["ca.pem"])},
        "AZERSU_SIGN_KEY_PASSWORD",
        "not both",
        id="password-and-file",
    ),
    pytest.param(
        lambda pki, tmp: {"trusted_clients": "00:11:22"},
        "AZERSU_TRUSTED_CLIENTS",
        "not a SHA-256 fingerprint",
        id="bad-fingerprint",
    ),
    pytest.param(
        lambda pki, tmp: {"trusted_clients": ""},
        "AZERSU_TRUSTED_CLIENTS",
        "empty: list the SHA-256 fingerprints",
        id="no-registered-caller",
    ),
    pytest.param(
        lambda pki, tmp: {"trusted_clients": " , "},
        "AZERSU_TRUSTED_CLIENTS",
        "empty: list the SHA-256 fingerprints",
        id="only-separators",
    ),
    pytest.param(
        lambda pki, tmp: {"accept_any_caller_of_ca": True},
        "AZERSU_ACCEPT_ANY_CALLER_OF_CA",
        "set one or the other",
        id="registered-callers-and-any-caller",
    ),
]


@pytest.mark.parametrize(("overrides", "setting", "problem"), START_FAILURES)
def test_create_app_refuses_to_start(
    settings,
    pki: dict[str, Path],
    tmp_path: Path,
    overrides: Callable[[dict[str, Path], Path], dict[str, str]],
    setting: str,
    problem: str,
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_app(dataclasses.replace(settings, **overrides(pki, tmp_path)))
    assert raised.value.setting == setting
    assert problem in raised.value.problem


def test_create_app_loads_a_pkcs12_key_with_a_password_file(
    settings, serve_app, tmp_path: Path, pair: IssuedPair, portal_identity, trust
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    app = create_app(
        dataclasses.replace(
            settings,
            sign_key=write_pkcs12(tmp_path, pair, PASSWORD),
            sign_cert="",
            sign_key_password_file=str(password_file),
        )
    )
    assert app.identity.certificate == pair.certificate
    result = StatementClient(serve_app(app).url, portal_identity, trust).call(bf.FULL, bf.FIN)
    assert result.statement is not None
    assert result.statement.signer.fingerprint == fingerprint(pair.certificate)


# --- the trust store -------------------------------------------------------------------------


def colon_hex(value: str) -> str:
    """Return a fingerprint as AA:BB:... (the form openssl prints)."""
    return ":".join(value[i : i + 2] for i in range(0, len(value), 2)).upper()


@pytest.mark.parametrize("form", [str.lower, colon_hex], ids=["hex", "colons"])
def test_registered_fingerprint_accepts_the_registered_certificate_only(
    pki: dict[str, Path], ca: IssuedPair, form: Callable[[str], str]
) -> None:
    portal = x509.load_pem_x509_certificate(pki["portal.pem"].read_bytes())
    other = issue(ca, "another portal", "e-gov.az", client=True).certificate
    store = TrustStore.from_pem_file(str(pki["ca.pem"]), registered=[form(fingerprint(portal))])
    store.check(portal)
    with pytest.raises(FailedAuthentication) as raised:
        store.check(other)
    assert raised.value.reason == "signer_not_registered"
    # A store that registers no one accepts no one: both chain to the CA, neither is in.
    for cert in (portal, other):
        with pytest.raises(FailedAuthentication) as raised:
            TrustStore.from_pem_file(str(pki["ca.pem"])).check(cert)
        assert raised.value.reason == "signer_not_registered"
    # Built to accept any signer of the CA (a client checking the service by name), both are.
    any_signer = TrustStore.from_pem_file(str(pki["ca.pem"]), accept_any_signer_of_ca=True)
    any_signer.check(portal)
    any_signer.check(other)


@pytest.mark.parametrize(
    "text",
    ["zz", "ab" * 31, "ab" * 33, "a" * 40, "g" * 64, ""],
    ids=["short", "31-bytes", "33-bytes", "sha1", "not-hex", "empty"],
)
def test_bad_pinned_fingerprint_is_a_configuration_error(pki: dict[str, Path], text: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        TrustStore.from_pem_file(str(pki["ca.pem"]), registered=[text])
    assert raised.value.setting == "AZERSU_TRUSTED_CLIENTS"


def test_bundle_with_old_and_new_ca_trusts_both(tmp_path: Path) -> None:
    old_ca, new_ca, stranger = create_ca("Old CA"), create_ca("New CA"), create_ca("Stranger CA")
    store = TrustStore.from_pem_file(
        write_ca_bundle(tmp_path / "bundle.pem", old_ca, new_ca), accept_any_signer_of_ca=True
    )
    assert len(store.anchors) == 2
    store.check(issue(old_ca, "portal (old)", "e-gov.az", client=True).certificate)
    store.check(issue(new_ca, "portal (new)", "e-gov.az", client=True).certificate)
    with pytest.raises(FailedAuthentication) as raised:
        store.check(issue(stranger, "portal (stranger)", "e-gov.az", client=True).certificate)
    assert raised.value.reason == "untrusted_issuer"


def test_bundle_with_a_non_ca_certificate_is_refused(tmp_path: Path, ca: IssuedPair) -> None:
    leaf = issue(ca, "leaf", "e-gov.az", client=True)
    with pytest.raises(ConfigurationError, match="is not a CA certificate") as raised:
        TrustStore.from_pem_file(write_ca_bundle(tmp_path / "bundle.pem", ca, leaf))
    assert raised.value.setting == "AZERSU_TRUST_CA"


@pytest.mark.parametrize(
    ("leaf_start", "leaf_days", "ca_start", "ca_days", "reason"),
    [
        pytest.param(-3, 1, -10, 3650, "certificate_validity", id="leaf-expired"),
        pytest.param(2, 30, -10, 3650, "certificate_validity", id="leaf-not-yet-valid"),
        pytest.param(-3, 30, -10, 5, "untrusted_issuer", id="ca-expired"),
    ],
)
def test_certificates_outside_their_validity_are_refused(
    tmp_path: Path, leaf_start: int, leaf_days: int, ca_start: int, ca_days: int, reason: str
) -> None:
    dated_ca = create_ca("Dated CA", not_before=NOW + dt.timedelta(days=ca_start), days=ca_days)
    leaf = issue(
        dated_ca,
        "portal",
        "e-gov.az",
        client=True,
        not_before=NOW + dt.timedelta(days=leaf_start),
        days=leaf_days,
    )
    store = TrustStore.from_pem_file(
        write_ca_bundle(tmp_path / "ca.pem", dated_ca), accept_any_signer_of_ca=True
    )
    with pytest.raises(FailedAuthentication) as raised:
        store.check(leaf.certificate)
    assert raised.value.reason == reason


@pytest.mark.parametrize("pinned", ["portal", "another"])
def test_trusted_clients_setting_pins_the_callers(
    settings, serve_app, pki: dict[str, Path], ca: IssuedPair, portal_identity, trust, pinned: str
) -> None:
    portal_fp = fingerprint(portal_identity.certificate)
    another_fp = fingerprint(issue(ca, "another portal", "e-gov.az", client=True).certificate)
    listed = {"portal": f"{another_fp}, {colon_hex(portal_fp)}", "another": another_fp}[pinned]
    app = create_app(dataclasses.replace(settings, trusted_clients=listed))
    client = StatementClient(serve_app(app).url, portal_identity, trust)
    if pinned == "portal":
        assert client.call(bf.FULL, bf.FIN).response.Status == "OK"
    else:
        with pytest.raises(Fault) as raised:
            client.call(bf.FULL, bf.FIN)
        assert raised.value.code is not None
        assert raised.value.code.endswith("FailedAuthentication")
