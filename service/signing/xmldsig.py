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

**Verifying.**  :func:`verify_signature` enforces the whole
:class:`~service.signing.policy.VerificationPolicy` itself -- algorithms,
transform chains, key sizes, required references -- and checks SignedInfo's
SignatureValue before it canonicalizes anything a Reference names.  It
verifies over the target elements the caller's structural checks found:
nothing is resolved by ID and nothing is fetched, so the XML Signature
Wrapping defence stays in the caller and a Reference can reach no other node.
Each refusal is a :class:`~service.errors.SecurityFault` with its
:class:`~service.signing.policy.Reason`.

**Why not python-xmlsec.**  ``SignatureContext`` copies the key into every
context (an ``EVP_PKEY`` duplicate; for a private key more CPU than the RSA
operation), and registering the IDs it resolves references with leaves a
little memory behind on every request.  Here the keys are the long-lived
``cryptography`` objects.  python-xmlsec remains the independent
implementation the tests hold this one to (``tests/test_xmldsig.py``: it
verifies what we sign, and it must reach verify_signature's verdict on every
fuzzed message); ``xmlsec1`` and signxml verify saved Statements.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from lxml import etree

from service import namespaces as ns
from service.errors import FailedAuthentication, FailedCheck, InvalidSecurity, UnsupportedAlgorithm
from service.signing.policy import Reason, VerificationPolicy

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

#: What the default policy accepts: the profile with no element required.
DEFAULT_POLICY = VerificationPolicy()

_INCLUSIVE_NAMESPACES = f"{{{ns.EXC_C14N}}}InclusiveNamespaces"
#: An NCName (a namespace prefix), or ``#default`` for the default namespace.
_PREFIX = re.compile(r"#default|[^\W\d][\w.\-]*")
#: The digest algorithms this module implements (the policy chooses among them).
_DIGESTS: dict[str, Callable[[bytes], Any]] = {ns.SHA256: hashlib.sha256, ns.SHA512: hashlib.sha512}
#: Signature method -> (the key type it needs, its hash); the policy chooses among them.
_SIGNATURE_METHODS: dict[str, tuple[type, type[hashes.HashAlgorithm]]] = {
    ns.RSA_SHA256: (rsa.RSAPublicKey, hashes.SHA256),
    ns.RSA_SHA512: (rsa.RSAPublicKey, hashes.SHA512),
    ns.ECDSA_SHA256: (ec.EllipticCurvePublicKey, hashes.SHA256),
}


def element_children(element: etree._Element) -> list[etree._Element]:
    """Return the child elements (not comments, PIs or entities) of ``element``."""
    return [child for child in element if isinstance(child.tag, str)]


@dataclass(frozen=True)
class CheckedReference:
    """A Reference that fits the policy: its transforms, PrefixList and digest, not yet verified."""

    element: etree._Element
    transforms: tuple[str, ...]
    inclusive_prefixes: list[str] | None
    digest_method: str
    digest_value: str


@dataclass(frozen=True)
class CheckedSignedInfo:
    """A Signature whose SignedInfo fits the policy, not yet verified."""

    signed_info: etree._Element
    inclusive_prefixes: list[str] | None
    signature_method: str
    signature_value: str
    references: tuple[CheckedReference, ...]


def _algorithm(element: etree._Element, allowed: frozenset[str], reason: Reason, what: str) -> str:
    """Return the element's Algorithm, or raise UnsupportedAlgorithm if ``allowed`` lacks it."""
    algorithm = element.get("Algorithm")
    if algorithm not in allowed:
        raise UnsupportedAlgorithm(f"{what} {algorithm!r} is not allowed", reason)
    return str(algorithm)


def _no_parameters(element: etree._Element, reason: Reason, what: str) -> None:
    if element_children(element):
        raise UnsupportedAlgorithm(f"parameters on {what}", reason)


def _inclusive_prefixes(method: etree._Element) -> list[str] | None:
    """Return the PrefixList of an exclusive C14N method or transform (None: no parameter).

    Its one allowed parameter is one ``InclusiveNamespaces`` element with a
    ``PrefixList`` of prefixes (NCNames, or ``#default``) and nothing else.
    """
    children = element_children(method)
    if not children:
        return None
    parameter = children[0]
    if (
        len(children) != 1
        or parameter.tag != _INCLUSIVE_NAMESPACES
        or set(parameter.attrib) != {"PrefixList"}
        or len(parameter)
        or (parameter.text or "").strip()
    ):
        raise InvalidSecurity(
            "the only parameter of exclusive C14N is one InclusiveNamespaces PrefixList",
            Reason.INCLUSIVE_PREFIX_LIST,
        )
    prefixes = str(parameter.get("PrefixList")).split()
    for prefix in prefixes:
        if not _PREFIX.fullmatch(prefix):
            raise InvalidSecurity(f"PrefixList entry {prefix!r}", Reason.INCLUSIVE_PREFIX_LIST)
    return prefixes


def _check_reference(reference: etree._Element, policy: VerificationPolicy) -> CheckedReference:
    """Check one Reference: exactly an allowed transform chain and an allowed digest."""
    if reference.tag != _DS + "Reference":
        raise InvalidSecurity(
            f"unexpected {reference.tag} in SignedInfo", Reason.SIGNED_INFO_STRUCTURE
        )
    if reference.get("Type") not in (None, ""):
        raise InvalidSecurity("a typed Reference", Reason.REFERENCE_STRUCTURE)
    parts = element_children(reference)
    tags = [part.tag for part in parts]
    if tags == [_DS + "DigestMethod", _DS + "DigestValue"]:
        raise InvalidSecurity(
            "a Reference without Transforms (inclusive C14N 1.0)", Reason.REFERENCE_TRANSFORMS
        )
    if tags != [_DS + "Transforms", _DS + "DigestMethod", _DS + "DigestValue"]:
        raise InvalidSecurity(f"malformed Reference {tags}", Reason.REFERENCE_STRUCTURE)
    transforms_element, digest_method, digest_value = parts
    transforms = element_children(transforms_element)
    if any(transform.tag != _DS + "Transform" for transform in transforms):
        raise InvalidSecurity("malformed Transforms", Reason.REFERENCE_STRUCTURE)
    known = policy.known_transforms
    for transform in transforms:  # XSLT, XPath, inclusive C14N, ...WithComments
        _algorithm(transform, known, Reason.TRANSFORM_ALGORITHM, "transform")
    chain = tuple(str(transform.get("Algorithm")) for transform in transforms)
    if chain not in policy.transform_chains:
        raise InvalidSecurity(
            f"transforms {chain} are not the profile's", Reason.REFERENCE_TRANSFORMS
        )
    for transform in transforms[:-1]:  # the enveloped-signature transform takes no parameter
        if element_children(transform):
            raise InvalidSecurity("parameters on a transform", Reason.INCLUSIVE_PREFIX_LIST)
    prefixes = _inclusive_prefixes(transforms[-1])
    method = _algorithm(digest_method, policy.digest_methods, Reason.DIGEST_METHOD, "digest method")
    if method not in _DIGESTS:  # allowed by a policy, but not implemented here
        raise UnsupportedAlgorithm(f"digest method {method!r}", Reason.DIGEST_METHOD)
    _no_parameters(digest_method, Reason.DIGEST_METHOD, "DigestMethod")
    if element_children(digest_value):
        raise InvalidSecurity("elements in DigestValue", Reason.REFERENCE_STRUCTURE)
    return CheckedReference(reference, chain, prefixes, method, digest_value.text or "")


def check_signature(
    signature: etree._Element, policy: VerificationPolicy = DEFAULT_POLICY
) -> CheckedSignedInfo:
    """Check a Signature's shape, algorithms and transforms against ``policy``.

    Nothing is canonicalized or hashed here: this is the cheap check that
    comes first.  Raise a :class:`~service.errors.SecurityFault` with its
    :class:`Reason` for the first rule broken.
    """
    children = element_children(signature)
    names = [child.tag for child in children]
    if names not in (
        [_DS + "SignedInfo", _DS + "SignatureValue"],
        [_DS + "SignedInfo", _DS + "SignatureValue", _DS + "KeyInfo"],
    ) or element_children(children[1]):
        raise InvalidSecurity(f"unexpected Signature children {names}", Reason.SIGNATURE_STRUCTURE)
    signed_info, signature_value = children[:2]
    parts = element_children(signed_info)
    if [part.tag for part in parts[:2]] != [
        _DS + "CanonicalizationMethod",
        _DS + "SignatureMethod",
    ]:
        raise InvalidSecurity("malformed SignedInfo", Reason.SIGNED_INFO_STRUCTURE)
    c14n_method, signature_method, *references = parts
    _algorithm(c14n_method, policy.c14n_methods, Reason.C14N_METHOD, "canonicalization")
    prefixes = _inclusive_prefixes(c14n_method)
    method = _algorithm(
        signature_method, policy.signature_methods, Reason.SIGNATURE_METHOD, "signature method"
    )
    _no_parameters(signature_method, Reason.SIGNATURE_METHOD, "SignatureMethod")  # HMACOutputLength
    if not 1 <= len(references) <= policy.max_references:
        raise InvalidSecurity(f"{len(references)} references", Reason.REFERENCE_COUNT)
    return CheckedSignedInfo(
        signed_info,
        prefixes,
        method,
        signature_value.text or "",
        tuple(_check_reference(reference, policy) for reference in references),
    )


def check_signed_info(
    signature: etree._Element, policy: VerificationPolicy = DEFAULT_POLICY
) -> list[etree._Element]:
    """Check the Signature against ``policy`` (:func:`check_signature`); return its References."""
    return [reference.element for reference in check_signature(signature, policy).references]


def _contains(ancestor: etree._Element, element: etree._Element) -> bool:
    """Return whether ``element`` lies inside ``ancestor``."""
    return any(node is ancestor for node in element.iterancestors())


def _check_targets(
    signature: etree._Element,
    references: Sequence[CheckedReference],
    targets: Sequence[etree._Element],
    policy: VerificationPolicy,
) -> None:
    """Check the targets the caller found: one per Reference, the required ones, enveloped right."""
    if len(references) != len(targets):
        raise InvalidSecurity("references and targets differ", Reason.REFERENCE_TARGETS)
    for target in targets:
        if target is signature or _contains(signature, target):
            raise InvalidSecurity("a reference into its own Signature", Reason.REFERENCE_TARGETS)
    missing = policy.required_references - {target.tag for target in targets}
    if missing:
        raise InvalidSecurity(f"{sorted(missing)} not signed", Reason.REQUIRED_REFERENCE)
    for reference, target in zip(references, targets, strict=True):
        if _contains(target, signature) and reference.transforms[0] != ns.ENVELOPED:
            raise InvalidSecurity(
                f"the Signature is inside {target.tag} but is not taken out by the enveloped "
                "transform",
                Reason.ENVELOPED_SIGNATURE,
            )


def _check_key(
    public_key: object, method: str, policy: VerificationPolicy
) -> type[hashes.HashAlgorithm]:
    """Check that the key fits the signature method and the policy's sizes; return the hash."""
    key_type, hash_type = _SIGNATURE_METHODS.get(method, (None, None))
    if key_type is None or hash_type is None:
        raise UnsupportedAlgorithm(f"signature method {method!r}", Reason.SIGNATURE_METHOD)
    if not isinstance(public_key, key_type):
        raise FailedCheck(f"the key doesn't fit {method}", Reason.KEY_TYPE)
    if isinstance(public_key, rsa.RSAPublicKey):
        size, minimum = public_key.key_size, policy.min_rsa_bits
    else:
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        size, minimum = public_key.curve.key_size, policy.min_ec_bits
    if size < minimum:
        raise FailedAuthentication(
            f"a {size}-bit key: at least {minimum} bits are required", Reason.WEAK_KEY
        )
    return hash_type


def _decode(text: str, what: str, reason: Reason) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except ValueError:
        raise FailedCheck(f"{what} is not base64", reason) from None


@contextmanager
def _canonicalizing() -> Iterator[None]:
    """Fail the check when C14N can't render the document.

    libxml2 refuses, for instance, a relative namespace URI (C14N 1.0, 2.3);
    python-xmlsec failed such a signature the same way (FailedCheck).
    """
    try:
        yield
    except etree.C14NError as exc:
        raise FailedCheck(f"cannot canonicalize: {exc}", Reason.C14N) from None


def _verify_signed_info(
    checked: CheckedSignedInfo, public_key: object, hash_type: type[hashes.HashAlgorithm]
) -> None:
    """Check the SignatureValue over SignedInfo's exclusive C14N."""
    with _canonicalizing():
        canonical = etree.tostring(
            checked.signed_info,
            method="c14n",
            exclusive=True,
            with_comments=False,
            inclusive_ns_prefixes=checked.inclusive_prefixes,
        )
    value = _decode(checked.signature_value, "SignatureValue", Reason.SIGNED_INFO_SIGNATURE)
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(value, canonical, padding.PKCS1v15(), hash_type())
        else:
            assert isinstance(public_key, ec.EllipticCurvePublicKey)
            # XMLDSig carries r || s (RFC 4050); cryptography wants DER.
            size = (public_key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                raise FailedCheck(
                    "an ECDSA signature of the wrong length", Reason.SIGNED_INFO_SIGNATURE
                )
            der = encode_dss_signature(
                int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
            )
            public_key.verify(der, canonical, ec.ECDSA(hash_type()))
    except InvalidSignature:
        raise FailedCheck(
            "the SignatureValue does not verify over SignedInfo", Reason.SIGNED_INFO_SIGNATURE
        ) from None


def _path(root: etree._Element, node: etree._Element) -> list[int]:
    """Return the child positions that lead from ``root`` down to ``node``."""
    path: list[int] = []
    while node is not root:
        parent = node.getparent()
        assert parent is not None  # node lies in root's tree
        path.append(parent.index(node))
        node = parent
    return path[::-1]


def _follow(root: etree._Element, path: Sequence[int]) -> etree._Element:
    node = root
    for position in path:
        node = node[position]
    return node


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


def _enveloped(target: etree._Element, signature: etree._Element) -> etree._Element:
    """Return ``target`` without ``signature`` (the enveloped-signature transform), on a copy.

    The whole document is copied, not only the target, so that every
    namespace in scope at the target stays in scope (an InclusiveNamespaces
    PrefixList may name one declared on an ancestor); the caller's tree is
    never changed.
    """
    root = target.getroottree().getroot()
    document = deepcopy(root)
    copied_target = _follow(document, _path(root, target))
    _remove_keeping_tail(_follow(document, _path(root, signature)))
    return copied_target


def _reference_octets(
    target: etree._Element, signature: etree._Element, reference: CheckedReference
) -> bytes:
    """Apply a Reference's transforms (the policy's chain) to its target element.

    The enveloped-signature transform removes the Signature being verified
    from the target's node-set; where the Signature is not inside the target
    it changes nothing.  Exclusive C14N then makes the octets.
    """
    subject = target
    if reference.transforms[0] == ns.ENVELOPED and _contains(target, signature):
        subject = _enveloped(target, signature)
    return etree.tostring(
        subject,
        method="c14n",
        exclusive=True,
        with_comments=False,
        inclusive_ns_prefixes=reference.inclusive_prefixes,
    )


def verify_signature(
    signature: etree._Element,
    targets: Sequence[etree._Element],
    public_key: object,
    *,
    policy: VerificationPolicy = DEFAULT_POLICY,
) -> None:
    """Verify ``signature`` over ``targets`` with ``public_key``, under ``policy``.

    ``targets`` are the elements the References resolve to, in order, found
    by the caller at their place in the document (never by ID here: the XML
    Signature Wrapping defence stays with the caller).  In order:

    1. the Signature fits the policy: shape, algorithms, transform chains
       (:func:`check_signature`), nothing canonicalized yet;
    2. the targets: one per Reference, none inside the Signature, every
       required element among them, the enveloped transform wherever the
       Signature is inside its target;
    3. the key: of the method's type, and large enough;
    4. the SignatureValue over SignedInfo;
    5. only then, each Reference's digest over its target, so that nothing a
       Reference names is canonicalized before SignedInfo is authentic.

    Raise a :class:`~service.errors.SecurityFault` whose ``reason`` is the
    :class:`Reason` of the first rule broken.
    """
    checked = check_signature(signature, policy)
    _check_targets(signature, checked.references, targets, policy)
    hash_type = _check_key(public_key, checked.signature_method, policy)
    _verify_signed_info(checked, public_key, hash_type)
    for reference, target in zip(checked.references, targets, strict=True):
        with _canonicalizing():
            octets = _reference_octets(target, signature, reference)
        expected = _decode(reference.digest_value, "DigestValue", Reason.REFERENCE_DIGEST)
        if not hmac.compare_digest(_DIGESTS[reference.digest_method](octets).digest(), expected):
            raise FailedCheck(
                f"digest mismatch for {reference.element.get('URI')}", Reason.REFERENCE_DIGEST
            )
