"""Who may sign: trust anchors, fitness to sign, and registered callers.

Chaining to a CA proves who a certificate belongs to, not that its holder may
call: a state CA issues certificates to every citizen and to other CAs.  So a
signer's certificate is accepted only when it is fit to sign (an end entity,
not a trust anchor or other CA, whose key usage allows signatures and whose key
is strong enough), is inside its validity period, is registered (its SHA-256
fingerprint is in ``AZERSU_TRUSTED_CLIENTS``) -- unless the store was built,
explicitly, to accept any signer of its CAs -- and is issued directly by a CA
certificate of the configured bundle that is itself valid (``AZERSU_TRUST_CA``,
PEM; every certificate of the bundle is an anchor, an intermediate CA included,
and during a changeover it may hold the old and the new CA).

A caller whose SOAP stack names its certificate by reference (IssuerSerial,
SubjectKeyIdentifier, SHA-1 thumbprint) instead of sending it needs the
service to hold that certificate: the store keeps the registered caller
certificates (``AZERSU_CLIENT_CERTS``) and resolves such a reference to exactly
one of them, or refuses it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID, PublicKeyAlgorithmOID

from service.errors import ConfigurationError, FailedAuthentication
from service.signing.keys import fingerprint

#: The smallest keys accepted from a signer, in bits (RSA modulus, EC curve order).
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


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


def _is_dsa(cert: x509.Certificate) -> bool:
    # Told from the algorithm alone: loading a DSA key is deprecated in cryptography.
    return cert.public_key_algorithm_oid == PublicKeyAlgorithmOID.DSA


def _public_key_der(cert: x509.Certificate) -> bytes | None:
    """Return the certificate's SubjectPublicKeyInfo (DER), or None for a key type we can't read."""
    if _is_dsa(cert):
        return None  # never an anchor's: an anchor has signed with its key
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _refuse(cert: x509.Certificate, problem: str, reason: str) -> FailedAuthentication:
    return FailedAuthentication(f"certificate {cert.subject.rfc4514_string()} {problem}", reason)


def _check_key_strength(cert: x509.Certificate) -> None:
    if _is_dsa(cert):
        raise _refuse(cert, "has a DSA key", "key_type_not_allowed")
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _refuse(cert, f"has a key of no usable type: {exc}", "key_type_not_allowed") from exc
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise _refuse(cert, f"has an RSA-{key.key_size} key", "weak_key")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < MIN_EC_BITS:
            raise _refuse(cert, f"has an EC key on {key.curve.name}", "weak_key")
    elif not isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        # X25519 and X448: key agreement only.
        raise _refuse(cert, f"has a {type(key).__name__} key", "key_type_not_allowed")


def check_fit_to_sign(cert: x509.Certificate) -> None:
    """Raise FailedAuthentication unless ``cert`` is an end entity's certificate fit to sign.

    Refused, each with its reason: a CA certificate (BasicConstraints CA:TRUE,
    ``signer_is_ca``); a KeyUsage that allows neither digitalSignature nor
    nonRepudiation (``key_usage_not_signing``; a certificate without KeyUsage
    is not restricted by it); an RSA key under 2048 bits or an EC key under 256
    bits (``weak_key``); a key of any other type but Ed25519 and Ed448, DSA
    included (``key_type_not_allowed``).  A certificate whose extensions can't
    be parsed is refused too (``certificate_extensions_malformed``).
    """
    try:
        is_ca = _is_ca(cert)
        key_usage = _key_usage(cert)
    except ValueError as exc:
        raise _refuse(
            cert, f"has extensions that can't be parsed: {exc}", "certificate_extensions_malformed"
        ) from exc
    if is_ca:
        raise _refuse(cert, "is a CA certificate (BasicConstraints CA:TRUE)", "signer_is_ca")
    if key_usage is not None and not (key_usage.digital_signature or key_usage.content_commitment):
        raise _refuse(
            cert,
            "has a KeyUsage without digitalSignature or nonRepudiation",
            "key_usage_not_signing",
        )
    _check_key_strength(cert)


@dataclass(frozen=True)
class TrustStore:
    """CA certificates, and the signers accepted among the certificates they issued.

    ``registered`` holds the SHA-256 fingerprints of the accepted signers.  A
    store with ``accept_any_signer_of_ca`` accepts every fit certificate its
    CAs issued instead: for a client checking the service's answers (it checks
    the signer's name too), or for a service started, explicitly, with
    ``AZERSU_ACCEPT_ANY_CALLER_OF_CA``.  A store with neither accepts no one.
    """

    anchors: tuple[x509.Certificate, ...]
    registered: frozenset[str] = frozenset()
    accept_any_signer_of_ca: bool = False
    # The anchors' public keys: a certificate of an anchor's key is the anchor,
    # however it was (re-)issued, and never signs a request.
    _anchor_keys: frozenset[bytes] = field(
        default=frozenset(), init=False, repr=False, compare=False
    )
    # Fingerprint -> the anchor that issued it: checking a CA signature costs
    # more than the rest of a request's trust check, and callers are few.
    _issuers: dict[str, x509.Certificate] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    #: The registered callers' certificates, for references that name a
    #: certificate without carrying it; their fingerprints are in ``registered``.
    caller_certificates: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if self.registered and self.accept_any_signer_of_ca:
            raise ValueError("a trust store checks registered signers or accepts any, not both")
        missing = {fingerprint(c) for c in self.caller_certificates} - self.registered
        if missing:
            raise ValueError(f"caller certificates not registered: {sorted(missing)}")
        keys = frozenset(filter(None, (_public_key_der(anchor) for anchor in self.anchors)))
        object.__setattr__(self, "_anchor_keys", keys)

    def statement_signers(self) -> TrustStore:
        """Return a store of the same CAs that accepts any fit certificate they issued.

        For checking Statements (``verify``, the verification page's upload),
        whose signer is then checked by name, as ``verify --trust`` does.
        """
        return TrustStore(self.anchors, accept_any_signer_of_ca=True)

    @classmethod
    def from_pem_file(
        cls,
        path: str,
        registered: Iterable[str] = (),
        setting: str = "AZERSU_TRUST_CA",
        *,
        accept_any_signer_of_ca: bool = False,
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
        return cls.from_pem_bytes(
            data, registered, setting, source=path, accept_any_signer_of_ca=accept_any_signer_of_ca
        )

    @classmethod
    def from_pem_bytes(
        cls,
        data: bytes,
        registered: Iterable[str] = (),
        setting: str = "AZERSU_TRUST_CA",
        source: str = "the bundle",
        *,
        accept_any_signer_of_ca: bool = False,
        caller_certificates: tuple[x509.Certificate, ...] = (),
    ) -> TrustStore:
        """Load CA certificates from PEM bytes (every one must be a CA).

        ``caller_certificates`` are registered too (their fingerprints join
        ``registered``); :meth:`check_caller_certificate` checks each.
        """
        try:
            certificates = tuple(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise ConfigurationError(setting, f"no PEM certificates in {source}: {exc}") from exc
        for cert in certificates:
            if not _is_ca(cert):
                raise ConfigurationError(
                    setting, f"{cert.subject.rfc4514_string()} is not a CA certificate"
                )
        return cls(
            certificates,
            frozenset(normalize_fingerprint(f) for f in registered)
            | {fingerprint(c) for c in caller_certificates},
            accept_any_signer_of_ca,
            caller_certificates=caller_certificates,
        )

    def check(
        self,
        cert: x509.Certificate,
        now: dt.datetime | None = None,
        cert_fingerprint: str | None = None,
    ) -> None:
        """Raise FailedAuthentication unless ``cert`` may sign now.

        ``cert_fingerprint`` is the certificate's SHA-256 fingerprint when the
        caller already has it (the verifier keeps it with the parsed token).
        """
        now = now or dt.datetime.now(dt.UTC)
        key = cert_fingerprint or fingerprint(cert)
        self._refuse_trust_anchor(cert)
        check_fit_to_sign(cert)
        if not _within_validity(cert, now):
            raise _refuse(
                cert,
                f"is outside its validity {cert.not_valid_before_utc:%Y-%m-%d}.."
                f"{cert.not_valid_after_utc:%Y-%m-%d}",
                "certificate_validity",
            )
        if not self.accept_any_signer_of_ca and key not in self.registered:
            raise _refuse(
                cert,
                f"(SHA-256 {key}) is not registered in AZERSU_TRUSTED_CLIENTS",
                "signer_not_registered",
            )
        if not self._issued_by_anchor(cert, key, now):
            raise _refuse(cert, "does not chain to a trust anchor", "untrusted_issuer")

    def check_caller_certificate(self, cert: x509.Certificate) -> None:
        """Raise FailedAuthentication unless a caller certificate to register is fit and chains.

        Its validity period is checked per request, as for any signer.
        """
        self._refuse_trust_anchor(cert)
        check_fit_to_sign(cert)
        now = dt.datetime.now(dt.UTC)
        issuer = next((a for a in self.anchors if _issued_by(cert, a)), None)
        if issuer is None:
            raise _refuse(cert, "does not chain to a trust anchor", "untrusted_issuer")
        if not _within_validity(issuer, now):
            raise _refuse(cert, "is issued by a CA outside its validity", "untrusted_issuer")

    def callers_matching(
        self, matches: Callable[[x509.Certificate], bool]
    ) -> list[x509.Certificate]:
        """Return the registered caller certificates a key reference names."""
        return [cert for cert in self.caller_certificates if matches(cert)]

    def _refuse_trust_anchor(self, cert: x509.Certificate) -> None:
        """Refuse an anchor itself (by its key), whether or not it is also registered."""
        if any(cert == anchor for anchor in self.anchors) or (
            _public_key_der(cert) in self._anchor_keys
        ):
            raise _refuse(cert, "is a trust anchor", "signer_is_trust_anchor")

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


def subject_key_identifier(cert: x509.Certificate) -> bytes | None:
    """Return the SubjectKeyIdentifier a WS-Security KeyIdentifier names the certificate by.

    The value of the certificate's extension; without the extension, the SHA-1
    of its subjectPublicKey bits (RFC 5280 section 4.2.1.2, method 1), which is
    what Apache WSS4J computes and sends for such a certificate.  None when
    neither can be read.
    """
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        pass
    except ValueError:
        return None
    try:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    except (ValueError, TypeError):
        return None


def sha1_thumbprint(cert: x509.Certificate) -> bytes:
    """Return the SHA-1 of the certificate's DER (a WS-Security ThumbprintSHA1, not a trust key)."""
    return cert.fingerprint(hashes.SHA1())  # noqa: S303 (names a certificate, proves nothing)


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
