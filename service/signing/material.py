"""The trust material as bytes: read once, checked, and handed to every worker.

``azersu-statement serve`` reads the signing key, its certificate and the trust
bundle in the gunicorn master and checks them before any worker starts.  The
workers, forked from the master, build their keys from these bytes.  On SIGHUP
the master reads the files again (key rotation, or a bundle holding the old
and the new CA during a changeover): if the new files check out, gunicorn
starts new workers with them and retires the old ones gracefully, with no
downtime; if they don't, the error is logged and the workers keep the
material they have.

Callers are registered, not merely trusted: the start is refused while
``AZERSU_TRUSTED_CLIENTS`` and ``AZERSU_CLIENT_CERTS`` are both empty, unless
``AZERSU_ACCEPT_ANY_CALLER_OF_CA`` says, explicitly, that any certificate the
CA issued may call -- which is then logged as a warning at every start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from service.errors import ConfigurationError, FailedAuthentication
from service.settings import Settings
from service.signing.keys import (
    SigningIdentity,
    fingerprint,
    read_password,
    signing_identity_from_bytes,
)
from service.signing.trust import TrustStore

log = logging.getLogger("service.trust")


@dataclass(frozen=True)
class TrustMaterial:
    """The bytes of the signing key, its certificate and the trust bundle, and the callers."""

    key: bytes = field(repr=False)
    cert: bytes
    password: bytes | None = field(repr=False)
    trust_bundle: bytes
    #: SHA-256 fingerprints of the registered callers' certificates.
    registered_callers: tuple[str, ...] = ()
    accept_any_caller_of_ca: bool = False
    #: The registered callers' certificates (PEM, ``AZERSU_CLIENT_CERTS``).
    client_certs: bytes = b""

    def build(self) -> tuple[SigningIdentity, TrustStore]:
        """Return the signing identity and trust store, or raise ConfigurationError."""
        callers = load_client_certificates(self.client_certs)
        check_caller_policy(
            self.registered_callers + tuple(fingerprint(c) for c in callers),
            self.accept_any_caller_of_ca,
        )
        identity = signing_identity_from_bytes(self.key, self.cert, self.password)
        trust = TrustStore.from_pem_bytes(
            self.trust_bundle,
            self.registered_callers,
            accept_any_signer_of_ca=self.accept_any_caller_of_ca,
            caller_certificates=callers,
        )
        check_client_certificates(trust)
        return identity, trust


def load_client_certificates(data: bytes) -> tuple[x509.Certificate, ...]:
    """Parse the PEM of ``AZERSU_CLIENT_CERTS`` (none when empty).

    A certificate found twice (in two files of the folder) is kept once: it
    is one caller, not an ambiguous reference.
    """
    if not data.strip():
        return ()
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigurationError("AZERSU_CLIENT_CERTS", f"no PEM certificates: {exc}") from exc
    return tuple({fingerprint(cert): cert for cert in certificates}.values())


def check_client_certificates(trust: TrustStore) -> None:
    """Refuse, naming it, a registered caller certificate that is unfit or does not chain."""
    for cert in trust.caller_certificates:
        try:
            trust.check_caller_certificate(cert)
        except FailedAuthentication as exc:
            raise ConfigurationError(
                "AZERSU_CLIENT_CERTS", f"refused ({exc.reason}): {exc.detail}"
            ) from exc


def read_client_certs(path: str) -> bytes:
    """Read ``AZERSU_CLIENT_CERTS``: a PEM bundle, or every ``*.pem`` of a folder, in name order."""
    if not path:
        return b""
    folder = Path(path)
    if not folder.is_dir():
        return _read(path, "AZERSU_CLIENT_CERTS")
    files = sorted(folder.glob("*.pem"))
    if not files:
        raise ConfigurationError("AZERSU_CLIENT_CERTS", f"no *.pem file in {path}")
    return b"\n".join(_read(str(f), "AZERSU_CLIENT_CERTS") for f in files)


def check_caller_policy(registered: tuple[str, ...], accept_any_caller_of_ca: bool) -> None:
    """Refuse a start that names no caller, or that both names callers and accepts any."""
    if accept_any_caller_of_ca and registered:
        raise ConfigurationError(
            "AZERSU_ACCEPT_ANY_CALLER_OF_CA",
            "true while AZERSU_TRUSTED_CLIENTS or AZERSU_CLIENT_CERTS registers callers: "
            "set one or the other",
        )
    if not registered and not accept_any_caller_of_ca:
        raise ConfigurationError(
            "AZERSU_TRUSTED_CLIENTS",
            "empty: list the SHA-256 fingerprints of the callers' certificates "
            "('azersu-statement pki fingerprint CERT' prints one), or register their "
            "certificates in AZERSU_CLIENT_CERTS, or set "
            "AZERSU_ACCEPT_ANY_CALLER_OF_CA=true to let any certificate the CA issued call",
        )


def _read(path: str, setting: str, hint: str = "") -> bytes:
    if not path:
        raise ConfigurationError(setting, "not set" + hint)
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(setting, f"cannot read {path}: {exc.strerror}") from exc


def read_trust_material(settings: Settings) -> TrustMaterial:
    """Read the key, certificate and trust bundle named by the settings, and check them."""
    hint = " (for development keys run 'azersu-statement pki init --out var/pki')"
    material = TrustMaterial(
        key=_read(settings.sign_key, "AZERSU_SIGN_KEY", hint),
        cert=_read(settings.sign_cert, "AZERSU_SIGN_CERT") if settings.sign_cert else b"",
        password=read_password(settings.sign_key_password, settings.sign_key_password_file),
        trust_bundle=_read(settings.trust_ca, "AZERSU_TRUST_CA", hint),
        registered_callers=settings.trusted_client_fingerprints,
        accept_any_caller_of_ca=settings.accept_any_caller_of_ca,
        client_certs=read_client_certs(settings.client_certs),
    )
    material.build()  # check now: a bad file stops the start, or is refused on reload
    if material.accept_any_caller_of_ca:
        log.warning(
            "AZERSU_ACCEPT_ANY_CALLER_OF_CA=true: any certificate issued by a CA of "
            "AZERSU_TRUST_CA may call and read statements; register the callers in "
            "AZERSU_TRUSTED_CLIENTS instead"
        )
    return material
