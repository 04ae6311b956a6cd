"""The trust material as bytes: read once, checked, and handed to every worker.

``azersu-statement serve`` reads the signing key, its certificate and the trust
bundle in the gunicorn master and checks them before any worker starts.  The
workers, forked from the master, build their keys from these bytes.  On SIGHUP
the master reads the files again (key rotation, or a bundle holding the old
and the new CA during a changeover): if the new files check out, gunicorn
starts new workers with them and retires the old ones gracefully, with no
downtime; if they don't, the error is logged and the workers keep the
material they have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from service.errors import ConfigurationError
from service.settings import Settings
from service.signing.keys import SigningIdentity, read_password, signing_identity_from_bytes
from service.signing.trust import TrustStore


@dataclass(frozen=True)
class TrustMaterial:
    """The bytes of the signing key, its certificate and the trust bundle."""

    key: bytes = field(repr=False)
    cert: bytes
    password: bytes | None = field(repr=False)
    trust_bundle: bytes
    pinned: tuple[str, ...] = ()

    def build(self) -> tuple[SigningIdentity, TrustStore]:
        """Return the signing identity and trust store, or raise ConfigurationError."""
        identity = signing_identity_from_bytes(self.key, self.cert, self.password)
        trust = TrustStore.from_pem_bytes(self.trust_bundle, self.pinned)
        return identity, trust


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
        pinned=settings.trusted_client_fingerprints,
    )
    material.build()  # check now: a bad file stops the start, or is refused on reload
    return material
