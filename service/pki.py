"""A development PKI: a CA, the service's key and certificate, the portal's (client) pair.

``azersu-statement pki init --out var/pki`` writes ``ca.pem`` (and the CA's
key ``ca.key``, to issue more), ``service.key``/``service.pem`` and
``portal.key``/``portal.pem``.  Keys are written with mode 0600 and never
committed (``var/`` and ``*.key`` are git-ignored).  Production keys come from
the state's CA, not from here.  Both pairs are fit to sign (RSA-2048, not CAs,
KeyUsage digitalSignature and nonRepudiation); the portal calls once it is
registered (``AZERSU_TRUSTED_CLIENTS=$(azersu-statement pki fingerprint
var/pki/portal.pem)``, which ``make run`` does).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class IssuedPair:
    """A private key and its certificate."""

    key: PrivateKey
    certificate: x509.Certificate

    def key_pem(self) -> bytes:
        """Return the private key as unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def cert_pem(self) -> bytes:
        """Return the certificate as PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, unit: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "AZ"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Azərsu ASC (development)"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def new_key(kind: str = "rsa") -> PrivateKey:
    """Return a new RSA-2048 or EC P-256 key."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def create_ca(
    common_name: str = "Azərsu Development CA",
    not_before: dt.datetime | None = None,
    days: int = 3650,
) -> IssuedPair:
    """Return a self-signed CA."""
    key = new_key()
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    name = _name(common_name, "PKI")
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return IssuedPair(key, certificate)


def issue(
    ca: IssuedPair,
    common_name: str,
    unit: str,
    *,
    client: bool,
    key: PrivateKey | None = None,
    not_before: dt.datetime | None = None,
    days: int = 825,
) -> IssuedPair:
    """Return a signing key and a certificate issued by ``ca``."""
    key = key or new_key()
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, unit))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_dns_names(common_name)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return IssuedPair(key, certificate)


def _dns_names(common_name: str) -> list[x509.GeneralName]:
    """Return the SAN DNS names: the common name when it is a host name, and localhost."""
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    host = common_name.split(" ")[0]
    if "." in host and all(part.isalnum() or "-" in part for part in host.split(".")):
        names.insert(0, x509.DNSName(host))
    return names


def _write(path: Path, data: bytes, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if private:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        # The mode of os.open applies only to a new file: an existing one (--force)
        # is made private before the key is written into it.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def init_pki(out: Path, force: bool = False) -> dict[str, Path]:
    """Create the development CA, service and portal pairs under ``out``."""
    files = {
        name: out / name
        for name in ("ca.pem", "ca.key", "service.key", "service.pem", "portal.key", "portal.pem")
    }
    existing = [str(p) for p in files.values() if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} already exist (use --force to replace)")
    ca = create_ca()
    service = issue(ca, "billing-statement.azersu.az", "e-xidmətlər", client=False)
    portal = issue(ca, "portal.e-gov.az (development)", "e-gov.az", client=True)
    _write(files["ca.pem"], ca.cert_pem(), private=False)
    _write(files["ca.key"], ca.key_pem(), private=True)
    _write(files["service.key"], service.key_pem(), private=True)
    _write(files["service.pem"], service.cert_pem(), private=False)
    _write(files["portal.key"], portal.key_pem(), private=True)
    _write(files["portal.pem"], portal.cert_pem(), private=False)
    return files
