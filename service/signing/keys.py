"""The service's signing identity: key and certificate, loaded and checked once at start.

Keys come as PEM (``AZERSU_SIGN_KEY`` + ``AZERSU_SIGN_CERT``) or as PKCS#12
(``AZERSU_SIGN_KEY`` alone), optionally protected by a password given in
``AZERSU_SIGN_KEY_PASSWORD`` or read from ``AZERSU_SIGN_KEY_PASSWORD_FILE``.
Start-up stops with one clear line when the key and certificate don't match
or when the certificate has expired.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from service import namespaces as ns
from service.errors import ConfigurationError


def fingerprint(cert: x509.Certificate) -> str:
    """Return the certificate's SHA-256 fingerprint as lower-case hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class SigningIdentity:
    """The service's private key and certificate, loaded once at start."""

    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    certificate_der: bytes
    signature_method: str  # the XML-DSig algorithm URI that fits the key

    @property
    def subject(self) -> str:
        """Return the certificate's subject (RFC 4514)."""
        return self.certificate.subject.rfc4514_string()

    def days_left(self, now: dt.datetime | None = None) -> float:
        """Return the days until the certificate expires."""
        now = now or dt.datetime.now(dt.UTC)
        return (self.certificate.not_valid_after_utc - now).total_seconds() / 86400


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(setting, f"cannot read {path}: {exc.strerror}") from exc


def read_password(password: str, password_file: str) -> bytes | None:
    """Return the key password from the setting or its file (one line, trimmed)."""
    if password and password_file:
        raise ConfigurationError(
            "AZERSU_SIGN_KEY_PASSWORD", "set it or AZERSU_SIGN_KEY_PASSWORD_FILE, not both"
        )
    if password_file:
        lines = _read(password_file, "AZERSU_SIGN_KEY_PASSWORD_FILE").splitlines()
        return (lines[0].strip() if lines else b"") or None
    return password.encode() if password else None


def load_signing_identity(
    key_path: str,
    cert_path: str,
    password: bytes | None,
    now: dt.datetime | None = None,
    *,
    key_setting: str = "AZERSU_SIGN_KEY",
    cert_setting: str = "AZERSU_SIGN_CERT",
) -> SigningIdentity:
    """Load and check the signing key and certificate (PEM pair or PKCS#12) from files.

    Errors name ``key_setting`` or ``cert_setting`` (a command-line tool passes
    its own option names).
    """
    if not key_path:
        raise ConfigurationError(
            key_setting,
            "not set (for development keys run 'azersu-statement pki init --out var/pki')",
        )
    key_data = _read(key_path, key_setting)
    cert_data = _read(cert_path, cert_setting) if cert_path else b""
    return signing_identity_from_bytes(
        key_data, cert_data, password, now, key_setting=key_setting, cert_setting=cert_setting
    )


def signing_identity_from_bytes(
    key_data: bytes,
    cert_data: bytes,
    password: bytes | None,
    now: dt.datetime | None = None,
    *,
    key_setting: str = "AZERSU_SIGN_KEY",
    cert_setting: str = "AZERSU_SIGN_CERT",
) -> SigningIdentity:
    """Check and load a key and certificate given as bytes (PEM pair or PKCS#12)."""
    if b"-----BEGIN" in key_data:
        if not cert_data:
            raise ConfigurationError(cert_setting, "not set (needed with a PEM key)")
        try:
            private_key = serialization.load_pem_private_key(key_data, password)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                key_setting, f"cannot load the PEM key (wrong password?): {exc}"
            ) from exc
        try:
            certificate = x509.load_pem_x509_certificate(cert_data)
        except ValueError as exc:
            raise ConfigurationError(cert_setting, f"not a PEM certificate: {exc}") from exc
    else:
        try:
            loaded_key, loaded_cert, _ = pkcs12.load_key_and_certificates(key_data, password)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                key_setting, f"cannot load the PKCS#12 file (wrong password?): {exc}"
            ) from exc
        if loaded_key is None or loaded_cert is None:
            raise ConfigurationError(key_setting, "the PKCS#12 file lacks a key or a certificate")
        private_key, certificate = loaded_key, loaded_cert

    if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigurationError(key_setting, "only RSA and EC keys are supported")
    public_key = certificate.public_key()
    if public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise ConfigurationError(cert_setting, "the certificate does not match the key")
    now = now or dt.datetime.now(dt.UTC)
    if certificate.not_valid_after_utc <= now:
        raise ConfigurationError(
            cert_setting,
            f"the certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}",
        )
    if certificate.not_valid_before_utc > now:
        raise ConfigurationError(
            cert_setting,
            f"the certificate is not valid before {certificate.not_valid_before_utc:%Y-%m-%d}",
        )

    # The key stays a cryptography object in memory: the signers of
    # service.signing.xmldsig use it directly; it is never written anywhere.
    cert_der = certificate.public_bytes(serialization.Encoding.DER)
    method = ns.RSA_SHA256 if isinstance(private_key, rsa.RSAPrivateKey) else ns.ECDSA_SHA256
    return SigningIdentity(private_key, certificate, cert_der, method)
