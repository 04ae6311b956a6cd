"""WS-Security for the SOAP envelope: verify a signed request, sign a response.

Follows OASIS Web Services Security 1.1 (SOAP Message Security, X.509 Token
Profile) and W3C XML Signature.  The signature sits in the one
``wsse:Security`` header, references ``soap:Body`` and ``wsu:Timestamp`` by
``wsu:Id``, uses exclusive C14N (after the enveloped-signature transform, as
node-soap writes it, or alone), and its KeyInfo points through a
``wsse:SecurityTokenReference`` at an X.509 ``wsse:BinarySecurityToken`` --
the layout zeep's ``BinarySignature`` produces and expects -- or, as Apache
WSS4J callers write it, names the certificate by a ``wsse:KeyIdentifier`` (the
certificate itself, its SubjectKeyIdentifier or its SHA-1 thumbprint) or by
``ds:X509Data/ds:X509IssuerSerial``.  Every form is resolved to one
certificate (those that don't carry it, among the registered caller
certificates of the trust store; none or two is a refusal), then checked and
used exactly as a BinarySecurityToken's.  What the
signature itself must be is :data:`~service.signing.policy.WSSE_POLICY`,
enforced by :func:`~service.signing.xmldsig.verify_signature`.

:class:`WsseVerifier` checks a parsed envelope strictly and returns a
:class:`VerifiedEnvelope` that holds only what the signature covers (the idea
of signxml's ``VerifyResult``): callers never read the raw envelope.  The XML
Signature Wrapping defence is structural: exactly one Envelope, Header,
Security, Signature and Body; every ID unique; and the Body and Timestamp that
are returned are the very nodes the references resolve to, found by their
place in the envelope, not by ID.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from service import namespaces as ns
from service.errors import (
    FailedAuthentication,
    InvalidSecurity,
    MalformedRequest,
    MessageExpired,
)
from service.signing.keys import SigningIdentity, fingerprint
from service.signing.policy import WSSE_POLICY, Reason, VerificationPolicy
from service.signing.replay import ReplayCache
from service.signing.trust import (
    TrustStore,
    check_signer_name,
    sha1_thumbprint,
    subject_key_identifier,
)
from service.signing.xmldsig import (
    XmlSigner,
    check_signed_info,
    element_children,
    key_info,
    reference_to,
    verify_signature,
)

#: Attributes that can carry an ID, and must therefore be unique together.
ID_ATTRIBUTES = (f"{{{ns.WSU}}}Id", "Id", "ID", "id", "{http://www.w3.org/XML/1998/namespace}id")
_NCNAME = re.compile(r"[A-Za-z_][\w.\-]*")
_SPACE_AFTER_COMMA = re.compile(r"(?<!\\),\s+")

_ENVELOPE = f"{{{ns.SOAP11_ENV}}}Envelope"
_HEADER = f"{{{ns.SOAP11_ENV}}}Header"
_BODY = f"{{{ns.SOAP11_ENV}}}Body"
_SECURITY = f"{{{ns.WSSE}}}Security"
_BST = f"{{{ns.WSSE}}}BinarySecurityToken"
_STR = f"{{{ns.WSSE}}}SecurityTokenReference"
_STR_REFERENCE = f"{{{ns.WSSE}}}Reference"
_KEY_IDENTIFIER = f"{{{ns.WSSE}}}KeyIdentifier"
_TIMESTAMP = f"{{{ns.WSU}}}Timestamp"
_CREATED = f"{{{ns.WSU}}}Created"
_EXPIRES = f"{{{ns.WSU}}}Expires"
_WSU_ID = f"{{{ns.WSU}}}Id"
_SIGNATURE = f"{{{ns.DS}}}Signature"


def ds(name: str) -> str:
    """Return the Clark name of an XML-DSig element."""
    return f"{{{ns.DS}}}{name}"


#: KeyIdentifier ValueTypes (OASIS WSS X.509 Token Profile 1.1, section 3.2).
SKI_VALUE_TYPE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0"
    "#X509SubjectKeyIdentifier"
)
THUMBPRINT_SHA1_VALUE_TYPE = (
    "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1"
)

#: A key reference names no registered caller certificate (FailedAuthentication).
KEY_REFERENCE_UNRESOLVED = "key_reference_unresolved"
#: A key reference names two or more registered caller certificates (InvalidSecurity).
KEY_REFERENCE_AMBIGUOUS = "key_reference_ambiguous"


@dataclass(frozen=True)
class SignerInfo:
    """Who signed: the certificate of the token, already checked against the trust store."""

    certificate: x509.Certificate
    subject: str
    fingerprint: str


@dataclass(frozen=True)
class VerifiedEnvelope:
    """What the envelope's signature covers -- and nothing else of the message."""

    body: etree._Element
    signed_headers: tuple[etree._Element, ...]
    created: dt.datetime
    expires: dt.datetime
    signer: SignerInfo
    message_digest: str


def _only(elements: list[etree._Element], what: str) -> etree._Element:
    if len(elements) != 1:
        raise InvalidSecurity(
            f"expected exactly one {what}, found {len(elements)}", Reason.STRUCTURE
        )
    return elements[0]


def collect_ids(root: etree._Element) -> dict[str, etree._Element]:
    """Return every ID value in the document; a duplicate is refused, not resolved."""
    ids: dict[str, etree._Element] = {}
    for element in root.iter():
        for attribute in ID_ATTRIBUTES:
            value = element.get(attribute)
            if value is None:
                continue
            if value in ids:
                raise InvalidSecurity(f"duplicate ID {value!r}", Reason.DUPLICATE_ID)
            ids[value] = element
    return ids


def parse_xs_datetime(text: str | None, what: str) -> dt.datetime:
    """Parse an xs:dateTime that carries a time zone."""
    value = (text or "").strip()
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidSecurity(f"{what} is not a dateTime: {value!r}", Reason.TIMESTAMP) from exc
    if parsed.tzinfo is None:
        raise InvalidSecurity(f"{what} has no time zone", Reason.TIMESTAMP)
    return parsed


def split_envelope(root: etree._Element) -> tuple[etree._Element | None, etree._Element]:
    """Return (Header or None, Body) of a SOAP 1.1 envelope with exactly one of each."""
    if root.tag != _ENVELOPE:
        raise MalformedRequest(f"root element {root.tag} is not a SOAP 1.1 Envelope")
    _only(list(root.iter(_ENVELOPE)), "soap:Envelope")
    headers = list(root.iter(_HEADER))
    if len(headers) > 1:
        raise InvalidSecurity(f"expected one soap:Header, found {len(headers)}", Reason.STRUCTURE)
    body = _only(list(root.iter(_BODY)), "soap:Body")
    header = headers[0] if headers else None
    if element_children(root) != [h for h in (header, body) if h is not None]:
        raise InvalidSecurity("the Envelope must hold a Header and a Body", Reason.STRUCTURE)
    return header, body


def _reference_target(reference: etree._Element, ids: dict[str, etree._Element]) -> etree._Element:
    uri = reference.get("URI")
    if uri is None or not uri.startswith("#") or not _NCNAME.fullmatch(uri[1:]):
        raise InvalidSecurity(
            f"reference URI {uri!r} is not a same-document #id", Reason.REFERENCE_URI
        )
    target = ids.get(uri[1:])
    if target is None:
        raise InvalidSecurity(f"reference {uri} resolves to nothing", Reason.REFERENCE_URI)
    return target


def load_base64_certificate(text: str | None) -> tuple[x509.Certificate, bytes]:
    """Decode a base64 DER certificate (a BinarySecurityToken or X509Certificate).

    cryptography parses some fields lazily, so every field the service reads is
    touched here: a malformed certificate fails now, as a security fault, not
    later in the middle of a trust check.
    """
    try:
        der = base64.b64decode("".join((text or "").split()), validate=True)
        certificate = x509.load_der_x509_certificate(der)
        certificate.subject.rfc4514_string()
        certificate.issuer.rfc4514_string()
        _ = (certificate.not_valid_before_utc, certificate.not_valid_after_utc)
        certificate.public_key()
        list(certificate.extensions)
    except Exception as exc:  # ValueError, InvalidVersion, UnsupportedAlgorithm, ...
        raise InvalidSecurity(
            f"the token is not a usable X.509 certificate: {type(exc).__name__}: {exc}",
            Reason.TOKEN,
        ) from exc
    return certificate, der


def _base64_value(text: str | None, what: str) -> bytes:
    try:
        value = base64.b64decode("".join((text or "").split()), validate=True)
    except ValueError as exc:
        raise InvalidSecurity(f"{what} is not base64", Reason.TOKEN) from exc
    if not value:
        raise InvalidSecurity(f"{what} is empty", Reason.TOKEN)
    return value


def _issuer_serial_matcher(
    x509_data: etree._Element,
) -> Callable[[x509.Certificate], bool]:
    parts = element_children(x509_data)
    if [p.tag for p in parts] != [ds("X509IssuerSerial")]:
        raise InvalidSecurity("X509Data must hold one X509IssuerSerial", Reason.TOKEN)
    fields = element_children(parts[0])
    if [f.tag for f in fields] != [ds("X509IssuerName"), ds("X509SerialNumber")]:
        raise InvalidSecurity(
            "X509IssuerSerial must hold X509IssuerName and X509SerialNumber", Reason.TOKEN
        )
    # Some stacks write a space after each comma (RFC 2253 readers accept it).
    issuer_text = _SPACE_AFTER_COMMA.sub(",", (fields[0].text or "").strip())
    try:
        issuer = x509.Name.from_rfc4514_string(issuer_text)
        serial = int((fields[1].text or "").strip())
    except ValueError as exc:
        raise InvalidSecurity(f"X509IssuerSerial is malformed: {exc}", Reason.TOKEN) from exc
    return lambda cert: cert.serial_number == serial and cert.issuer == issuer


def key_reference_matcher(
    reference: etree._Element,
) -> tuple[str, Callable[[x509.Certificate], bool]]:
    """Return the form of a reference to a registered certificate, and its test for one.

    The forms: ``ds:X509Data/ds:X509IssuerSerial`` (the issuer's name as an
    RFC 4514 string, compared as a parsed name, and the serial number), and
    a ``wsse:KeyIdentifier`` holding the base64 SubjectKeyIdentifier or the
    SHA-1 of the certificate's DER.  Anything else is refused.
    """
    if reference.tag == ds("X509Data"):
        return "IssuerSerial", _issuer_serial_matcher(reference)
    value_type = reference.get("ValueType")
    if value_type == SKI_VALUE_TYPE:
        ski = _base64_value(reference.text, "the SubjectKeyIdentifier")
        return "SubjectKeyIdentifier", lambda cert: subject_key_identifier(cert) == ski
    if value_type == THUMBPRINT_SHA1_VALUE_TYPE:
        thumbprint = _base64_value(reference.text, "the ThumbprintSHA1")
        return "ThumbprintSHA1", lambda cert: sha1_thumbprint(cert) == thumbprint
    raise InvalidSecurity(f"KeyIdentifier ValueType {value_type!r}", Reason.TOKEN)


class WsseVerifier:
    """Verify the WS-Security signature of a parsed SOAP 1.1 envelope."""

    def __init__(
        self,
        trust: TrustStore,
        replay: ReplayCache | None,
        *,
        clock_skew_s: float | None = None,
        max_age_s: float | None = None,
        allow_body_signatures: bool = False,
        signers: frozenset[str] = frozenset(),
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        policy: VerificationPolicy = WSSE_POLICY,
    ) -> None:
        """Set the trust store, the replay cache (None: don't check) and the policy.

        ``policy`` is what the signature must be (algorithms, transforms, key
        sizes, the required Body and Timestamp, the time limits);
        ``clock_skew_s`` and ``max_age_s``, when given, replace its time
        limits.  ``allow_body_signatures`` lets a response carry the
        Statement's own signature inside the Body (checked by the
        StatementVerifier); a request may hold no signature but the one in its
        Security header.  ``signers``, when set, are the only certificate names
        accepted (a client checking that the answer comes from the service,
        not from any holder of a certificate of the same CA).
        """
        self.policy = dataclasses.replace(
            policy,
            clock_skew_s=policy.clock_skew_s if clock_skew_s is None else clock_skew_s,
            max_age_s=policy.max_age_s if max_age_s is None else max_age_s,
        )
        self.signers = signers
        # token text or certificate DER -> signer, key
        self._tokens: dict[str | bytes, tuple[SignerInfo, object]] = {}
        self.allow_body_signatures = allow_body_signatures
        self.trust = trust
        self.replay = replay
        self.clock_skew = dt.timedelta(seconds=self.policy.clock_skew_s)
        self.max_age = dt.timedelta(seconds=self.policy.max_age_s)
        self.now = now

    def verify(self, root: etree._Element) -> VerifiedEnvelope:
        """Check everything, in order; return only what the signature covers."""
        header, body = self._envelope_parts(root)
        security = _only(list(root.iter(_SECURITY)), "wsse:Security")
        if security.getparent() is not header:
            raise InvalidSecurity("wsse:Security is not a SOAP header", Reason.STRUCTURE)
        signatures = list(root.iter(_SIGNATURE))
        if self.allow_body_signatures:
            signatures = [s for s in signatures if body not in s.iterancestors()]
        signature = _only(signatures, "ds:Signature")
        if signature.getparent() is not security:
            raise InvalidSecurity("ds:Signature is not in wsse:Security", Reason.STRUCTURE)
        timestamp = _only(list(root.iter(_TIMESTAMP)), "wsu:Timestamp")
        if timestamp.getparent() is not security:
            raise InvalidSecurity("wsu:Timestamp is not in wsse:Security", Reason.STRUCTURE)

        ids = collect_ids(root)
        references = check_signed_info(signature, self.policy)
        targets = [_reference_target(r, ids) for r in references]
        if len({id(t) for t in targets}) != len(targets):
            raise InvalidSecurity("two references to one element", Reason.REFERENCE_URI)
        # The elements the policy requires signed are the ones at their place, not by ID.
        places = {_BODY: body, _TIMESTAMP: timestamp}
        for name in sorted(self.policy.required_references):
            place = places.get(name)
            if place is None or not any(t is place for t in targets):
                raise InvalidSecurity(f"{name} is not signed", Reason.REQUIRED_REFERENCE)
        header_blocks = [h for h in element_children(header) if h is not security]
        signed_headers: list[etree._Element] = []
        for target in targets:
            if target is body or target is timestamp:
                continue
            if any(target is h for h in header_blocks):
                signed_headers.append(target)
            elif target.tag == _BST and target.getparent() is security:
                continue
            else:
                raise InvalidSecurity(f"reference to {target.tag}", Reason.REFERENCE_TARGET)

        signer, public_key = self._token_signer(signature, security, ids)
        certificate = signer.certificate
        created, expires = self._check_timestamp(timestamp)
        self.trust.check(certificate, self.now(), signer.fingerprint)
        check_signer_name(certificate, self.signers)
        verify_signature(signature, targets, public_key, policy=self.policy)

        signed_info = element_children(signature)[0]  # checked by verify_signature
        digest = hashlib.sha256(
            signer.fingerprint.encode() + etree.tostring(signed_info, method="c14n", exclusive=True)
        ).hexdigest()
        if self.replay is not None:
            ttl = (self.max_age + 2 * self.clock_skew).total_seconds()
            if not self.replay.first_seen(digest, ttl):
                raise InvalidSecurity("the message was already accepted", Reason.REPLAY)
        return VerifiedEnvelope(body, tuple(signed_headers), created, expires, signer, digest)

    def _token_signer(
        self, signature: etree._Element, security: etree._Element, ids: dict[str, etree._Element]
    ) -> tuple[SignerInfo, object]:
        """Return the signer the key reference names, and its public key.

        Parsing a certificate and touching its fields costs more than the
        signature check itself, and callers present the same reference on
        every request: the signer is kept per certificate.  The trust check is
        not cached: it depends on the time.
        """
        reference = self._key_reference(signature)
        if reference.tag == _STR_REFERENCE:
            text = self._token_element(reference, security, ids).text or ""
        elif reference.tag == _KEY_IDENTIFIER and reference.get("ValueType") == ns.X509V3:
            text = reference.text or ""
        else:
            certificate = self._registered_certificate(reference)
            return self._signer_of(certificate.public_bytes(Encoding.DER), certificate)
        return self._signer_of(text)

    def _signer_of(
        self, token: str | bytes, certificate: x509.Certificate | None = None
    ) -> tuple[SignerInfo, object]:
        cached = self._tokens.get(token)
        if cached is None:
            if certificate is None:
                certificate, _ = load_base64_certificate(str(token))
            signer = SignerInfo(
                certificate, certificate.subject.rfc4514_string(), fingerprint(certificate)
            )
            if len(self._tokens) > 256:
                self._tokens.clear()
            cached = self._tokens[token] = (signer, certificate.public_key())
        return cached

    @staticmethod
    def _envelope_parts(root: etree._Element) -> tuple[etree._Element, etree._Element]:
        header, body = split_envelope(root)
        if header is None:
            raise InvalidSecurity("expected exactly one soap:Header, found 0", Reason.STRUCTURE)
        return header, body

    @staticmethod
    def _key_reference(signature: etree._Element) -> etree._Element:
        """Return the one child of KeyInfo's SecurityTokenReference: the key reference."""
        key_info = signature.find(ds("KeyInfo"))
        children = element_children(key_info) if key_info is not None else []
        if [c.tag for c in children] != [_STR]:
            raise InvalidSecurity("KeyInfo must hold one SecurityTokenReference", Reason.TOKEN)
        str_children = element_children(children[0])
        if len(str_children) != 1 or str_children[0].tag not in (
            _STR_REFERENCE,
            _KEY_IDENTIFIER,
            ds("X509Data"),
        ):
            raise InvalidSecurity(
                "SecurityTokenReference must hold one Reference, KeyIdentifier or X509Data",
                Reason.TOKEN,
            )
        reference = str_children[0]
        if reference.tag == _KEY_IDENTIFIER and reference.get("EncodingType") not in (
            None,
            ns.BASE64_BINARY,
        ):
            raise InvalidSecurity(
                f"KeyIdentifier EncodingType {reference.get('EncodingType')!r}", Reason.TOKEN
            )
        return reference

    @staticmethod
    def _token_element(
        reference: etree._Element, security: etree._Element, ids: dict[str, etree._Element]
    ) -> etree._Element:
        """Return the BinarySecurityToken a direct Reference points at, checked."""
        token = _reference_target(reference, ids)
        if token.tag != _BST or token.getparent() is not security:
            raise InvalidSecurity("the key reference is not a BinarySecurityToken", Reason.TOKEN)
        if token.get("ValueType") != ns.X509V3:
            raise InvalidSecurity(f"token ValueType {token.get('ValueType')!r}", Reason.TOKEN)
        if token.get("EncodingType") not in (None, ns.BASE64_BINARY):
            raise InvalidSecurity(f"token EncodingType {token.get('EncodingType')!r}", Reason.TOKEN)
        return token

    def _registered_certificate(self, reference: etree._Element) -> x509.Certificate:
        """Resolve an IssuerSerial, SKI or thumbprint reference to one registered certificate."""
        form, matches = key_reference_matcher(reference)
        found = self.trust.callers_matching(matches)
        if not found:
            raise FailedAuthentication(
                f"the {form} key reference names no certificate of AZERSU_CLIENT_CERTS",
                KEY_REFERENCE_UNRESOLVED,
            )
        if len(found) > 1:
            names = ", ".join(c.subject.rfc4514_string() for c in found)
            raise InvalidSecurity(
                f"the {form} key reference names {len(found)} registered certificates: {names}",
                KEY_REFERENCE_AMBIGUOUS,
            )
        return found[0]

    def _check_timestamp(self, timestamp: etree._Element) -> tuple[dt.datetime, dt.datetime]:
        parts = element_children(timestamp)
        if [p.tag for p in parts] != [_CREATED, _EXPIRES]:
            raise InvalidSecurity("Timestamp must hold Created and Expires", Reason.TIMESTAMP)
        created = parse_xs_datetime(parts[0].text, "Created")
        expires = parse_xs_datetime(parts[1].text, "Expires")
        now = self.now()
        if expires <= created:
            raise MessageExpired("Expires is not after Created", Reason.TIMESTAMP_ORDER)
        if created > now + self.clock_skew:
            raise MessageExpired(f"Created {created.isoformat()} is in the future", Reason.FUTURE)
        if expires < now - self.clock_skew:
            raise MessageExpired(f"expired at {expires.isoformat()}", Reason.EXPIRED)
        if now - created > self.max_age + self.clock_skew:
            raise MessageExpired(f"created {created.isoformat()}: too old", Reason.STALE)
        return created, expires


def _new_id(prefix: str) -> str:
    """Return a fresh, unguessable ``wsu:Id`` (128 random bits, as a uuid4's hex had)."""
    return f"{prefix}-{os.urandom(16).hex()}"


def xs_datetime(moment: dt.datetime) -> str:
    """Return a UTC xs:dateTime with milliseconds and a Z."""
    return (
        moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z"
    )


class WsseSigner:
    """Sign a SOAP 1.1 envelope: Body and a fresh Timestamp, with a BinarySecurityToken."""

    def __init__(
        self,
        identity: SigningIdentity,
        *,
        lifetime_s: float = 300,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.identity = identity
        self.lifetime = dt.timedelta(seconds=lifetime_s)
        self.now = now
        self._token_text = base64.b64encode(identity.certificate_der).decode("ascii")
        self._signer = XmlSigner(identity.private_key)

    def sign(self, envelope: etree._Element) -> None:
        """Add the Security header to ``envelope`` and sign its Body and Timestamp."""
        body = envelope.find(_BODY)
        if envelope.tag != _ENVELOPE or body is None:
            raise ValueError("not a SOAP 1.1 envelope")
        header = envelope.find(_HEADER)
        if header is None:
            header = etree.Element(_HEADER)
            envelope.insert(0, header)
        security = etree.SubElement(
            header,
            _SECURITY,
            {f"{{{ns.SOAP11_ENV}}}mustUnderstand": "1"},
            nsmap={"wsse": ns.WSSE, "wsu": ns.WSU},
        )
        now = self.now()
        timestamp = etree.SubElement(security, _TIMESTAMP, {_WSU_ID: _new_id("TS")})
        etree.SubElement(timestamp, _CREATED).text = xs_datetime(now)
        etree.SubElement(timestamp, _EXPIRES).text = xs_datetime(now + self.lifetime)
        token_id = _new_id("X509")
        token = etree.SubElement(
            security,
            _BST,
            {"EncodingType": ns.BASE64_BINARY, "ValueType": ns.X509V3, _WSU_ID: token_id},
        )
        token.text = self._token_text
        body.set(_WSU_ID, _new_id("Body"))
        # Header blocks (the X-Road headers) are signed too, so that the
        # receiver can trust them as it trusts the Body.
        blocks = [h for h in header if isinstance(h.tag, str) and h is not security]
        for block in blocks:
            block.set(_WSU_ID, _new_id("H"))
        # Declare wsu once on the Envelope instead of an "ns0" on each element.
        etree.cleanup_namespaces(envelope, top_nsmap={"wsu": ns.WSU})

        # Body, Timestamp and headers are canonicalized in their final place
        # (ids set, wsu declared), then the Signature goes last in Security.
        references = [
            reference_to(target, str(target.get(_WSU_ID))) for target in (body, timestamp, *blocks)
        ]
        signature = self._signer.sign(security, references)
        # KeyInfo is not covered by the signature: it points at the token.
        token_reference = etree.SubElement(
            etree.SubElement(key_info(signature), _STR), _STR_REFERENCE
        )
        token_reference.set("URI", "#" + token_id)
        token_reference.set("ValueType", ns.X509V3)
