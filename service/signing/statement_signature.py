"""The Statement's own enveloped XML signature (W3C XMLDSig).

The Statement is the document that the portal stores and shows, so its
signature must stay valid when the element is cut out of the SOAP envelope
and saved as a file of its own.  That is why it uses a same-document Reference
``URI="#<Id>"`` to the Statement itself, the enveloped-signature transform
followed by *exclusive* C14N (only the namespaces the Statement uses are
canonicalized, not the envelope's), RSA-SHA256 and a KeyInfo with the
service's X.509 certificate.  The ``ds:Signature`` is the Statement's last
child, where ``service/schemas/statement.xsd`` allows it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from lxml import etree

from service.errors import InvalidSecurity
from service.namespaces import TNS
from service.signing.hardened_xml import parse_request
from service.signing.keys import SigningIdentity, fingerprint
from service.signing.policy import STATEMENT_POLICY, STATEMENT_TAG, Reason, VerificationPolicy
from service.signing.trust import DEFAULT_SERVICE_SIGNER, TrustStore, check_signer_name
from service.signing.wsse import SignerInfo, collect_ids, ds, load_base64_certificate
from service.signing.xmldsig import (
    XmlSigner,
    check_signed_info,
    key_info,
    reference_to,
    verify_signature,
)

__all__ = [
    "STATEMENT_TAG",
    "StatementSigner",
    "StatementVerifier",
    "VerifiedStatement",
    "signature_value_sha256",
    "verify_saved_statement",
]


def signature_value_sha256(signature: etree._Element) -> str:
    """Return the SHA-256 (hex) of a ``ds:Signature``'s decoded SignatureValue.

    This digest names a signed Statement: the printed copy shows it, its QR
    code carries it and the registry of issued statements keeps it.
    """
    text = signature.findtext(ds("SignatureValue"))
    if not text or not text.strip():
        raise InvalidSecurity("the signature has no SignatureValue", Reason.STRUCTURE)
    return hashlib.sha256(base64.b64decode("".join(text.split()), validate=True)).hexdigest()


@dataclass(frozen=True)
class VerifiedStatement:
    """A Statement whose signature verified, and who signed it."""

    statement: etree._Element
    signer: SignerInfo
    signature_value_sha256: str

    @property
    def statement_number(self) -> str:
        """Return the signed statement number."""
        return self.statement.findtext(f"{{{TNS}}}StatementNumber") or ""


class StatementSigner:
    """Add the enveloped signature to a Statement element."""

    def __init__(self, identity: SigningIdentity) -> None:
        self.identity = identity
        self._signer = XmlSigner(identity.private_key)
        self._certificate_text = base64.b64encode(identity.certificate_der).decode("ascii")

    def sign(self, statement: etree._Element) -> str:
        """Sign ``statement`` in place (its ``Id`` attribute must be set).

        Return the SHA-256 of the new SignatureValue (:func:`signature_value_sha256`).
        """
        statement_id = statement.get("Id")
        if statement.tag != STATEMENT_TAG or not statement_id:
            raise ValueError("not a Statement with an Id")
        reference = reference_to(statement, statement_id, enveloped=True)
        signature = self._signer.sign(statement, [reference])
        x509_data = etree.SubElement(key_info(signature), ds("X509Data"))
        etree.SubElement(x509_data, ds("X509Certificate")).text = self._certificate_text
        return signature_value_sha256(signature)


class StatementVerifier:
    """Verify a Statement's enveloped signature, its signer's trust and its signer's name."""

    def __init__(
        self,
        trust: TrustStore,
        signers: frozenset[str] = frozenset({DEFAULT_SERVICE_SIGNER}),
        *,
        policy: VerificationPolicy = STATEMENT_POLICY,
    ) -> None:
        """Trust ``trust``'s CAs, and only certificates that name one of ``signers``.

        ``policy`` is what the signature must be; the default requires one
        Reference, to the Statement, whose transforms take the enveloped
        Signature out.
        """
        self.trust = trust
        self.signers = signers
        self.policy = policy

    def verify(self, statement: etree._Element) -> VerifiedStatement:
        """Return the verified statement, or raise a security fault.

        ``statement`` is the Statement element itself: the root of a saved
        file, or the Statement found at its place in a verified response.
        """
        if statement.tag != STATEMENT_TAG:
            raise InvalidSecurity(f"{statement.tag} is not a Statement", Reason.STRUCTURE)
        statement_id = statement.get("Id")
        if not statement_id:
            raise InvalidSecurity("the Statement has no Id", Reason.STRUCTURE)
        signatures = list(statement.iter(ds("Signature")))
        if len(signatures) != 1 or statement[-1] is not signatures[0]:
            raise InvalidSecurity(
                "the Statement must end with exactly one ds:Signature", Reason.STRUCTURE
            )
        signature = signatures[0]
        root = statement.getroottree().getroot()
        ids = collect_ids(root)
        if ids.get(statement_id) is not statement:
            raise InvalidSecurity("the Statement's Id does not resolve to it", Reason.REFERENCE_URI)
        references = check_signed_info(signature, self.policy)
        if [reference.get("URI") for reference in references] != ["#" + statement_id]:
            raise InvalidSecurity(
                "the signature must reference the Statement", Reason.REFERENCE_URI
            )
        certificates = signature.findall(
            f"{ds('KeyInfo')}/{ds('X509Data')}/{ds('X509Certificate')}"
        )
        if len(certificates) != 1:
            raise InvalidSecurity("KeyInfo must hold one X509Certificate", Reason.TOKEN)
        certificate, _ = load_base64_certificate(certificates[0].text)
        self.trust.check(certificate)
        check_signer_name(certificate, self.signers)
        verify_signature(signature, [statement], certificate.public_key(), policy=self.policy)
        signer = SignerInfo(
            certificate, certificate.subject.rfc4514_string(), fingerprint(certificate)
        )
        return VerifiedStatement(statement, signer, signature_value_sha256(signature))


def verify_saved_statement(raw: bytes, verifier: StatementVerifier) -> VerifiedStatement:
    """Check a Statement saved as a file of its own: the one check of ``verify`` and the web.

    The bytes go through the hardened parser (no DTD, entities, comments or
    processing instructions), then :meth:`StatementVerifier.verify` checks the
    signature, the signer's trust and its name.  Raises
    :class:`service.errors.AzersuError` (a security fault, or the parser's
    refusal) with the reason.
    """
    return verifier.verify(parse_request(raw))
