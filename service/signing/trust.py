"""Trust anchors and pinned client certificates.

A signer's certificate is trusted when it is inside its validity period, is
issued directly by a CA certificate of the configured bundle that is itself
valid (``AZERSU_TRUST_CA``, PEM; every certificate of the bundle is an anchor,
an intermediate CA included, and during a changeover it may hold the old and
the new CA), and -- when
``AZERSU_TRUSTED_CLIENTS`` lists SHA-256 fingerprints -- is one of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from service.errors import ConfigurationError, FailedAuthentication
from service.signing.keys import fingerprint


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _within_validity(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


@dataclass(frozen=True)
class TrustStore:
    """CA certificates and optional pinned fingerprints of trusted signers."""

    anchors: tuple[x509.Certificate, ...]
    pinned: frozenset[str] = frozenset()
    # Fingerprint -> the anchor that issued it: checking a CA signature costs
    # more than the rest of a request's trust check, and callers are few.
    _issuers: dict[str, x509.Certificate] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_pem_file(
        cls, path: str, pinned: Iterable[str] = (), setting: str = "AZERSU_TRUST_CA"
    ) -> TrustStore:
        """Load a PEM bundle of CA certificates (every one must be a CA)."""
        if not path:
            raise ConfigurationError(
                setting, "not set (for development run 'azersu-statement pki init --out var/pki')"
            )
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(setting, f"cannot read {path}: {exc.strerror}") from exc
        return cls.from_pem_bytes(data, pinned, setting, source=path)

    @classmethod
    def from_pem_bytes(
        cls,
        data: bytes,
        pinned: Iterable[str] = (),
        setting: str = "AZERSU_TRUST_CA",
        source: str = "the bundle",
    ) -> TrustStore:
        """Load CA certificates from PEM bytes (every one must be a CA)."""
        try:
            certificates = tuple(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise ConfigurationError(setting, f"no PEM certificates in {source}: {exc}") from exc
        for cert in certificates:
            if not _is_ca(cert):
                raise ConfigurationError(
                    setting, f"{cert.subject.rfc4514_string()} is not a CA certificate"
                )
        return cls(certificates, frozenset(normalize_fingerprint(f) for f in pinned))

    def check(
        self,
        cert: x509.Certificate,
        now: dt.datetime | None = None,
        cert_fingerprint: str | None = None,
    ) -> None:
        """Raise FailedAuthentication unless ``cert`` is trusted now.

        ``cert_fingerprint`` is the certificate's SHA-256 fingerprint when the
        caller already has it (the verifier keeps it with the parsed token).
        """
        now = now or dt.datetime.now(dt.UTC)
        key = cert_fingerprint or fingerprint(cert)
        if not _within_validity(cert, now):
            raise FailedAuthentication(
                f"certificate {cert.subject.rfc4514_string()} is outside its validity "
                f"{cert.not_valid_before_utc:%Y-%m-%d}..{cert.not_valid_after_utc:%Y-%m-%d}",
                reason="certificate_validity",
            )
        if self.pinned and key not in self.pinned:
            raise FailedAuthentication(
                f"certificate {cert.subject.rfc4514_string()} is not in AZERSU_TRUSTED_CLIENTS",
                reason="certificate_not_pinned",
            )
        if not self._issued_by_anchor(cert, key, now):
            raise FailedAuthentication(
                f"certificate {cert.subject.rfc4514_string()} does not chain to a trust anchor",
                reason="untrusted_issuer",
            )

    def _issued_by_anchor(self, cert: x509.Certificate, key: str, now: dt.datetime) -> bool:
        issuer = self._issuers.get(key)
        if issuer is None:
            issuer = next((a for a in self.anchors if _issued_by(cert, a)), None)
            if issuer is None:
                return False
            if len(self._issuers) > 1024:
                self._issuers.clear()
            self._issuers[key] = issuer
        return _within_validity(issuer, now)


def normalize_fingerprint(text: str) -> str:
    """Return a SHA-256 fingerprint as 64 lower-case hex digits (colons allowed in input)."""
    value = text.strip().replace(":", "").lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ConfigurationError(
            "AZERSU_TRUSTED_CLIENTS", f"not a SHA-256 fingerprint: {text.strip()!r}"
        )
    return value


#: The name in the service's certificate: statements and responses signed by
#: any other certificate of the same CA are refused.
DEFAULT_SERVICE_SIGNER = "billing-statement.azersu.az"


def certificate_names(cert: x509.Certificate) -> set[str]:
    """Return the certificate's subject common names and DNS subject alternative names."""
    names = {str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return names
    return names | set(san.value.get_values_for_type(x509.DNSName))


def check_signer_name(cert: x509.Certificate, expected: frozenset[str]) -> None:
    """Raise FailedAuthentication unless the certificate names one of the expected signers.

    A trust anchor such as the state's CA issues certificates to many parties;
    chaining to it proves who someone is, not that they are the service.
    """
    if expected and not certificate_names(cert) & expected:
        raise FailedAuthentication(
            f"certificate {cert.subject.rfc4514_string()} is not one of {sorted(expected)}",
            reason="unexpected_signer",
        )
