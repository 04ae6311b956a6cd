"""W3C XML Signature (XMLDSig 1.1) with lxml's exclusive C14N and ``cryptography``.

**Signing.**  The service signs twice per request: the Statement (an
enveloped signature) and the response envelope (WS-Security, OASIS WSS 1.1).
It only ever signs what it built itself, with one fixed profile:

* every Reference is a same-document ``#id`` with the exclusive C14N
  transform (after the enveloped-signature transform for the Statement) and
  a SHA-256 digest;
* SignedInfo is canonicalized with exclusive C14N and signed with RSA-SHA256
  (PKCS#1 v1.5) or ECDSA-SHA256, by the key's type.

The digest of the Statement is taken *before* the Signature is appended to
it: the same octets as the Statement with its Signature removed (the
enveloped transform), since the Signature is appended without whitespace.

**Verifying.**  :func:`verify_signature` checks a Signature whose shape and
algorithms :func:`service.signing.wsse.check_signed_info` already checked,
over the target elements the caller's structural checks found.  Nothing is
resolved by ID and nothing is fetched: the XML Signature Wrapping defence
stays in the caller, and a Reference can reach no other node.

**Why not python-xmlsec** (the service used it until issue 7):
``SignatureContext`` copied the key into every context (an ``EVP_PKEY``
duplicate; for a private key more CPU than the RSA operation), and
registering the IDs it resolves references with left about 150 bytes per
request behind for good (most likely interned in lxml's per-thread
dictionary): the soak test's RSS growth.  Here the keys are the long-lived
``cryptography`` objects.  python-xmlsec remains the independent
implementation the tests hold this one to (``tests/test_xmldsig.py``: it
verifies what we sign, and it must reach verify_signature's verdict on every
fuzzed message); ``xmlsec1`` and signxml verify saved Statements.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from lxml import etree

from service.errors import FailedCheck, InvalidSecurity, UnsupportedAlgorithm
from service.signing import namespaces as ns

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_DS = f"{{{ns.DS}}}"


def exclusive_c14n(element: etree._Element) -> bytes:
    """Return the exclusive C14N (without comments) of ``element`` in its document."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def sha256_b64(data: bytes) -> str:
    """Return the base64 SHA-256 digest of ``data``, as a DigestValue holds it."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


@dataclass(frozen=True)
class SignedReference:
    """One Reference: its ``#id``, the transforms' URIs and the canonical octets digested."""

    uri: str
    transforms: tuple[str, ...]
    canonical: bytes


def reference_to(
    element: etree._Element, element_id: str, *, enveloped: bool = False
) -> SignedReference:
    """Return the Reference to ``element`` (exclusive C14N, enveloped first if asked).

    For an enveloped reference, call this before the Signature is added to the
    element: the octets are then those the enveloped transform leaves.
    """
    transforms = (ns.ENVELOPED, ns.EXC_C14N) if enveloped else (ns.EXC_C14N,)
    return SignedReference("#" + element_id, transforms, exclusive_c14n(element))


class XmlSigner:
    """Sign SignedInfo with a long-lived private key (RSA-SHA256 or ECDSA-SHA256)."""

    def __init__(self, private_key: PrivateKey) -> None:
        self.private_key = private_key
        if isinstance(private_key, rsa.RSAPrivateKey):
            self.signature_method = ns.RSA_SHA256
        elif isinstance(private_key, ec.EllipticCurvePrivateKey):
            self.signature_method = ns.ECDSA_SHA256
            self._ec_size = (private_key.curve.key_size + 7) // 8
        else:  # keys.py admits RSA and EC only; anything else fails closed
            raise TypeError(f"unsupported key type {type(private_key).__name__}")

    def sign(
        self,
        parent: etree._Element,
        references: Sequence[SignedReference],
        *,
        index: int | None = None,
    ) -> etree._Element:
        """Add a ``ds:Signature`` over ``references`` to ``parent``; return it.

        The Signature goes in at ``index`` (default: last) *before* SignedInfo
        is canonicalized, so its C14N is taken in the place a verifier finds
        it.  The caller adds KeyInfo content afterwards (KeyInfo isn't signed).
        """
        signature = etree.Element(_DS + "Signature", nsmap={"ds": ns.DS})
        signed_info = etree.SubElement(signature, _DS + "SignedInfo")
        etree.SubElement(signed_info, _DS + "CanonicalizationMethod", Algorithm=ns.EXC_C14N)
        etree.SubElement(signed_info, _DS + "SignatureMethod", Algorithm=self.signature_method)
        for reference in references:
            element = etree.SubElement(signed_info, _DS + "Reference", URI=reference.uri)
            transforms = etree.SubElement(element, _DS + "Transforms")
            for algorithm in reference.transforms:
                etree.SubElement(transforms, _DS + "Transform", Algorithm=algorithm)
            etree.SubElement(element, _DS + "DigestMethod", Algorithm=ns.SHA256)
            etree.SubElement(element, _DS + "DigestValue").text = sha256_b64(reference.canonical)
        value = etree.SubElement(signature, _DS + "SignatureValue")
        etree.SubElement(signature, _DS + "KeyInfo")
        if index is None:
            parent.append(signature)
        else:
            parent.insert(index, signature)
        value.text = base64.b64encode(self._sign(exclusive_c14n(signed_info))).decode("ascii")
        return signature

    def _sign(self, data: bytes) -> bytes:
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        # XMLDSig wants r || s, each padded to the curve's size (RFC 4050), not DER.
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(self._ec_size, "big") + s.to_bytes(self._ec_size, "big")


def key_info(signature: etree._Element) -> etree._Element:
    """Return the (empty, unsigned) KeyInfo that :meth:`XmlSigner.sign` added."""
    element = signature[-1]
    assert element.tag == _DS + "KeyInfo"
    return element


# --- verification -------------------------------------------------------------------------------

_EXC_C14N_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"
_DIGESTS = {ns.SHA256: hashlib.sha256, ns.SHA512: hashlib.sha512}
#: Signature method -> (the key type it needs, its hash).
_SIGNATURE_METHODS: dict[str, tuple[type, type[hashes.HashAlgorithm]]] = {
    ns.RSA_SHA256: (rsa.RSAPublicKey, hashes.SHA256),
    ns.RSA_SHA512: (rsa.RSAPublicKey, hashes.SHA512),
    ns.ECDSA_SHA256: (ec.EllipticCurvePublicKey, hashes.SHA256),
}


def element_children(element: etree._Element) -> list[etree._Element]:
    """Return the child elements (not comments, PIs or entities) of ``element``."""
    return [child for child in element if isinstance(child.tag, str)]


def _inclusive_prefixes(method: etree._Element) -> list[str] | None:
    """Return the PrefixList of an exclusive C14N method's InclusiveNamespaces, if any."""
    children = element_children(method)
    if not children:
        return None
    if len(children) != 1 or children[0].tag != f"{{{_EXC_C14N_NS}}}InclusiveNamespaces":
        raise InvalidSecurity("unexpected parameters of a C14N method", "structure")
    return (children[0].get("PrefixList") or "").split()


def _decode(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except ValueError:
        raise FailedCheck(f"{what} is not base64", "bad_signature") from None


def _reference_octets(
    target: etree._Element, signature: etree._Element, transforms: list[etree._Element]
) -> bytes:
    """Apply a Reference's transforms (enveloped, exclusive C14N) to its target element.

    The enveloped transform removes the Signature being verified from the
    target: it is done on a copy, so the caller's tree is never changed.
    Without an exclusive C14N transform the node-set becomes octets by
    inclusive C14N 1.0, as XMLDSig requires.
    """
    algorithms = [t.get("Algorithm") for t in transforms]
    subject = target
    if ns.ENVELOPED in algorithms:
        if not any(ancestor is target for ancestor in signature.iterancestors()):
            raise InvalidSecurity("an enveloped signature outside its target", "structure")
        path: list[int] = []
        node = signature
        while node is not target:
            parent = node.getparent()
            assert parent is not None  # target is an ancestor
            path.append(parent.index(node))
            node = parent
        subject = deepcopy(target)
        node = subject
        for position in reversed(path):
            node = node[position]
        _remove_keeping_tail(node)
    if ns.EXC_C14N in algorithms:
        prefixes = _inclusive_prefixes(transforms[algorithms.index(ns.EXC_C14N)])
        return etree.tostring(
            subject,
            method="c14n",
            exclusive=True,
            with_comments=False,
            inclusive_ns_prefixes=prefixes,
        )
    return etree.tostring(subject, method="c14n", exclusive=False, with_comments=False)


def _remove_keeping_tail(element: etree._Element) -> None:
    """Remove ``element`` but keep the text that follows it (lxml moves a tail along)."""
    parent = element.getparent()
    assert parent is not None
    tail = element.tail
    if tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


@contextmanager
def _canonicalizing() -> Iterator[None]:
    """Fail the check when C14N can't render the document.

    libxml2 refuses, for instance, a relative namespace URI (C14N 1.0, 2.3);
    python-xmlsec failed such a signature the same way (FailedCheck).
    """
    try:
        yield
    except etree.C14NError as exc:
        raise FailedCheck(f"cannot canonicalize: {exc}", "c14n") from None


def verify_signature(
    signature: etree._Element, targets: Sequence[etree._Element], public_key: object
) -> None:
    """Check every Reference's digest over its target and the SignatureValue over SignedInfo.

    ``signature`` must have passed the shape and algorithm checks of
    :func:`service.signing.wsse.check_signed_info`, and ``targets`` are the
    elements its References resolve to, in order (found by the caller, never
    by ID here).  Raise :class:`FailedCheck` if anything doesn't verify;
    anything unexpected fails closed.
    """
    signed_info = element_children(signature)[0]
    parts = element_children(signed_info)
    method = parts[1].get("Algorithm") or ""
    references = parts[2:]
    if len(references) != len(targets):
        raise InvalidSecurity("references and targets differ", "structure")
    for reference, target in zip(references, targets, strict=True):
        reference_parts = element_children(reference)
        transforms: list[etree._Element] = []
        if reference_parts[0].tag == _DS + "Transforms":
            transforms = element_children(reference_parts[0])
            reference_parts = reference_parts[1:]
        digest_method, digest_value = reference_parts
        digest = _DIGESTS.get(digest_method.get("Algorithm") or "")
        if digest is None:
            raise UnsupportedAlgorithm("digest method", "algorithm")
        with _canonicalizing():
            octets = _reference_octets(target, signature, transforms)
        expected = _decode(digest_value.text, "DigestValue")
        if not hmac.compare_digest(digest(octets).digest(), expected):
            raise FailedCheck(f"digest mismatch for {reference.get('URI')}", "bad_digest")

    with _canonicalizing():
        canonical = etree.tostring(
            signed_info,
            method="c14n",
            exclusive=True,
            with_comments=False,
            inclusive_ns_prefixes=_inclusive_prefixes(parts[0]),
        )
    value = _decode(element_children(signature)[1].text, "SignatureValue")
    key_type, hash_type = _SIGNATURE_METHODS.get(method, (None, None))
    if key_type is None or hash_type is None:
        raise UnsupportedAlgorithm(f"signature method {method!r}", "algorithm")
    if not isinstance(public_key, key_type):
        raise FailedCheck(f"the key doesn't fit {method}", "bad_signature")
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(value, canonical, padding.PKCS1v15(), hash_type())
        else:
            assert isinstance(public_key, ec.EllipticCurvePublicKey)
            # XMLDSig carries r || s (RFC 4050); cryptography wants DER.
            size = (public_key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                raise FailedCheck("an ECDSA signature of the wrong length", "bad_signature")
            der = encode_dss_signature(
                int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
            )
            public_key.verify(der, canonical, ec.ECDSA(hash_type()))
    except InvalidSignature:
        raise FailedCheck("signature does not verify", "bad_signature") from None
