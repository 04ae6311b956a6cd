"""service.signing.xmldsig: the verification policy, rule by rule, against python-xmlsec.

The service signs and verifies XML signatures with lxml's C14N and
``cryptography``; python-xmlsec (libxmlsec1) is the independent
implementation here: it verifies what XmlSigner signs, it makes the
signatures (good ones, and ones with SHA-1, no transforms, a PrefixList...)
that verify_signature must accept or refuse with the rule's own
:class:`Reason`, and on every message of the fuzzer (mutated signed requests
and responses) it reaches the same verdict as verify_signature wherever the
policy lets a signature through to the cryptographic checks.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import xmlsec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from hypothesis import given
from lxml import etree
from signxml import XMLSigner, methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

import service.signing.statement_signature as statement_signature
import service.signing.wsse as wsse
import service.signing.xmldsig as xmldsig
from service import namespaces as ns
from service.errors import (
    FailedAuthentication,
    FailedCheck,
    InvalidSecurity,
    SecurityFault,
    UnsupportedAlgorithm,
)
from service.namespaces import TNS
from service.pki import new_key
from service.signing.keys import load_signing_identity
from service.signing.policy import (
    ENVELOPED_CHAIN,
    EXCLUSIVE_C14N_CHAIN,
    STATEMENT_POLICY,
    WSSE_POLICY,
    Reason,
    VerificationPolicy,
)
from service.signing.statement_signature import StatementVerifier
from service.signing.xmldsig import (
    DEFAULT_POLICY,
    XmlSigner,
    key_info,
    reference_to,
    verify_signature,
)
from tests.test_fuzz import CI_SETTINGS, FuzzCase, FuzzKit, cases, run_case

DS = f"{{{ns.DS}}}"
EXC_NS = f"{{{ns.EXC_C14N}}}"
#: ``xml:lang`` on the root: inclusive C14N 1.0 carries it into a subset's apex,
#: exclusive C14N never does (and lxml's inclusive C14N of a subtree drops it).
DOCUMENT = (
    '<r:Root xmlns:r="urn:root" xmlns:unused="urn:unused" xml:lang="az">'
    '<r:Item Id="item-1">Bakı şəhəri, ev 7 — 12.00 AZN</r:Item><r:Other>x</r:Other></r:Root>'
)
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XPATH_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
INCLUSIVE_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
EXC_C14N_WITH_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
BASE64_TRANSFORM = "http://www.w3.org/2000/09/xmldsig#base64"


def xmlsec_accepts(
    signature: etree._Element, targets: Sequence[etree._Element], public_key: object
) -> bool:
    """Return python-xmlsec's verdict on ``signature`` over ``targets`` (the oracle)."""
    pem = public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM, None)
    for target in targets:
        if target.get(f"{{{ns.WSU}}}Id") is not None:
            ctx.register_id(target, "Id", ns.WSU)
        else:
            ctx.register_id(target, "Id")
    for transform in (
        xmlsec.Transform.ENVELOPED,
        xmlsec.Transform.EXCL_C14N,
        xmlsec.Transform.SHA256,
        xmlsec.Transform.SHA512,
    ):
        ctx.enable_reference_transform(transform)
    for transform in (
        xmlsec.Transform.EXCL_C14N,
        xmlsec.Transform.RSA_SHA256,
        xmlsec.Transform.RSA_SHA512,
        xmlsec.Transform.ECDSA_SHA256,
    ):
        ctx.enable_signature_transform(transform)
    try:
        ctx.verify(signature)
    except xmlsec.Error:
        return False
    return True


def _c14n(element: etree._Element, prefixes: list[str] | None = None) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, inclusive_ns_prefixes=prefixes)


def _sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# --- signatures made by XmlSigner ----------------------------------------------------------------


def _signed(kind: str, *, enveloped: bool) -> tuple[etree._Element, object]:
    """Return a re-parsed document signed by XmlSigner, and the public key."""
    private_key = new_key(kind)
    root = etree.fromstring(DOCUMENT.encode())
    item = root[0]
    reference = reference_to(item, "item-1", enveloped=enveloped)
    XmlSigner(private_key).sign(item if enveloped else root, [reference])  # type: ignore[arg-type]
    # The verifier meets the octets, not the tree that was built.
    return etree.fromstring(etree.tostring(root)), private_key.public_key()


@pytest.mark.parametrize("kind", ["rsa", "ec"])
@pytest.mark.parametrize("enveloped", [False, True])
@pytest.mark.parametrize("tamper", [False, True])
def test_xmlsec_and_verify_signature_agree(kind: str, enveloped: bool, tamper: bool) -> None:
    root, public_key = _signed(kind, enveloped=enveloped)
    item, signature = root[0], root.find(f".//{DS}Signature")
    if tamper:
        item.text = item.text.replace("12.00", "12.01")
    assert xmlsec_accepts(signature, [item], public_key) is not tamper
    before = _c14n(root)
    if tamper:
        with pytest.raises(FailedCheck) as raised:
            verify_signature(signature, [item], public_key)
        assert raised.value.reason == Reason.REFERENCE_DIGEST
    else:
        verify_signature(signature, [item], public_key)
    # Verifying changes nothing (the enveloped transform works on a copy).
    assert _c14n(root) == before
    assert root.findall(f".//{DS}Signature") == [signature]
    assert signature.getparent() is (item if enveloped else root)


def test_profile_is_the_fixed_one() -> None:
    root, _ = _signed("ec", enveloped=True)
    signature = root.find(f".//{DS}Signature")
    algorithms = [e.get("Algorithm") for e in signature.iter() if e.get("Algorithm")]
    assert algorithms == [ns.EXC_C14N, ns.ECDSA_SHA256, ns.ENVELOPED, ns.EXC_C14N, ns.SHA256]
    # XMLDSig's ECDSA value is r || s (32 + 32 bytes on P-256), not DER.
    value = signature.findtext(f"{DS}SignatureValue")
    assert len(base64.b64decode(value)) == 64
    assert key_info(signature).tag == f"{DS}KeyInfo" and len(key_info(signature)) == 0


def test_other_key_types_are_refused() -> None:
    with pytest.raises(TypeError):
        XmlSigner(ed25519.Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    root, _ = _signed("rsa", enveloped=False)
    signature = root.find(f".//{DS}Signature")
    with pytest.raises(FailedCheck) as raised:  # an RSA signature checked with an EC key
        verify_signature(signature, [root[0]], new_key("ec").public_key())
    assert raised.value.reason == Reason.KEY_TYPE


# --- signatures made by python-xmlsec ------------------------------------------------------------


@dataclass
class Signed:
    """A re-parsed signed document: the Signature, the referenced Item, and the key pair."""

    root: etree._Element
    signature: etree._Element
    item: etree._Element
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    public_key: object

    def find(self, path: str) -> etree._Element:
        found = self.signature.find(path)
        assert found is not None, path
        return found

    @property
    def reference(self) -> etree._Element:
        return self.find(f"{DS}SignedInfo/{DS}Reference")

    @property
    def transforms(self) -> etree._Element:
        return self.find(f"{DS}SignedInfo/{DS}Reference/{DS}Transforms")

    def verify(self, policy: VerificationPolicy = DEFAULT_POLICY) -> None:
        verify_signature(self.signature, [self.item], self.public_key, policy=policy)


def _pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def xmlsec_signed(
    *,
    transforms: Sequence[object] = (xmlsec.Transform.EXCL_C14N,),
    inside: bool = False,
    prefix_list: str | None = None,
    signature_method: object = xmlsec.Transform.RSA_SHA256,
    digest_method: object = xmlsec.Transform.SHA256,
    kind: str = "rsa",
    signing_key: object | None = None,
) -> Signed:
    """Return DOCUMENT's Item signed by python-xmlsec with the given profile.

    The Signature goes inside the Item (``inside``) or next to it in the
    root; ``prefix_list`` adds an InclusiveNamespaces PrefixList to the
    reference's exclusive C14N transform.
    """
    private_key = new_key(kind)
    root = etree.fromstring(DOCUMENT.encode())
    item = root[0]
    signature = xmlsec.template.create(root, xmlsec.Transform.EXCL_C14N, signature_method, ns="ds")
    (item if inside else root).append(signature)
    reference = xmlsec.template.add_reference(signature, digest_method, uri="#item-1")
    for algorithm in transforms:
        transform = xmlsec.template.add_transform(reference, algorithm)
        if algorithm == xmlsec.Transform.EXCL_C14N and prefix_list is not None:
            etree.SubElement(transform, f"{EXC_NS}InclusiveNamespaces", PrefixList=prefix_list)
    ctx = xmlsec.SignatureContext()
    ctx.register_id(item, "Id")
    ctx.key = signing_key or xmlsec.Key.from_memory(_pem(private_key), xmlsec.KeyFormat.PEM, None)
    ctx.sign(signature)
    # xmlsec's template nodes are not in lxml's dictionary: re-parse before editing.
    root = etree.fromstring(etree.tostring(root))
    item = root[0]
    found = root.find(f".//{DS}Signature")
    assert found is not None
    return Signed(root, found, item, private_key, private_key.public_key())


def resign(signed: Signed) -> None:
    """Sign the (edited) SignedInfo again with RSA-SHA256, as an attacker with the key could.

    Then SignedInfo is authentic, and only the rule under test can refuse
    the signature (not a broken SignatureValue).
    """
    key = signed.private_key
    assert isinstance(key, rsa.RSAPrivateKey)
    signed_info = signed.find(f"{DS}SignedInfo")
    value = key.sign(_c14n(signed_info), padding.PKCS1v15(), hashes.SHA256())
    signed.find(f"{DS}SignatureValue").text = base64.b64encode(value).decode()


def set_chain(signed: Signed, *algorithms: str) -> None:
    """Replace the reference's transforms by ``algorithms``, in order."""
    transforms = signed.transforms
    for transform in list(transforms):
        transforms.remove(transform)
    for algorithm in algorithms:
        etree.SubElement(transforms, f"{DS}Transform", Algorithm=algorithm)


def test_resign_makes_an_authentic_signed_info() -> None:
    """The control for the edited cases: an honest edit, re-signed, verifies (with xmlsec too)."""
    signed = xmlsec_signed()
    signed.item.text = "changed"
    signed.find(f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue").text = _sha256_b64(
        _c14n(signed.item)
    )
    resign(signed)
    signed.verify()
    assert xmlsec_accepts(signed.signature, [signed.item], signed.public_key)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
@pytest.mark.parametrize(
    ("transforms", "inside"),
    [
        pytest.param((xmlsec.Transform.EXCL_C14N,), False, id="exc-c14n"),
        pytest.param(
            (xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N),
            False,
            id="enveloped+exc-c14n-signature-outside",
        ),
        pytest.param(
            (xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N),
            True,
            id="enveloped+exc-c14n-signature-inside",
        ),
    ],
)
def test_the_profiles_chains_made_by_xmlsec_are_accepted(
    kind: str, transforms: Sequence[object], inside: bool
) -> None:
    method = xmlsec.Transform.RSA_SHA256 if kind == "rsa" else xmlsec.Transform.ECDSA_SHA256
    signed = xmlsec_signed(transforms=transforms, inside=inside, kind=kind, signature_method=method)
    before = _c14n(signed.root)
    signed.verify()
    assert _c14n(signed.root) == before
    assert (signed.signature.getparent() is signed.item) is inside


def test_an_enveloped_transform_outside_its_target_changes_nothing() -> None:
    """node-soap's chain on a Reference whose target doesn't hold the Signature."""
    signed = xmlsec_signed(transforms=(xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N))
    digest = signed.find(f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue").text
    assert digest == _sha256_b64(_c14n(signed.item))
    signed.verify()


def test_an_enveloped_signature_is_taken_out_of_its_target() -> None:
    signed = xmlsec_signed(
        transforms=(xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N), inside=True
    )
    digest = signed.find(f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue").text
    assert digest != _sha256_b64(_c14n(signed.item))  # the Signature is not digested
    signed.verify()


def test_an_enveloped_signature_signed_by_signxml_is_accepted() -> None:
    private_key = new_key("rsa")
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    item = etree.fromstring(DOCUMENT.encode())[0]
    signed = signer.sign(item, key=_pem(private_key), reference_uri="#item-1")
    root = etree.fromstring(etree.tostring(signed))
    signature = root.find(f"{DS}Signature")
    chain = [t.get("Algorithm") for t in signature.iter(f"{DS}Transform")]
    assert tuple(chain) == ENVELOPED_CHAIN
    verify_signature(signature, [root], private_key.public_key())
    root.set("Id", "item-2")
    with pytest.raises(FailedCheck) as raised:
        verify_signature(signature, [root], private_key.public_key())
    assert raised.value.reason == Reason.REFERENCE_DIGEST


def test_the_inclusive_prefix_list_is_honoured() -> None:
    """A PrefixList changes the canonical form; the digest matches only when it is honoured."""
    signed = xmlsec_signed(prefix_list="unused")
    digest = signed.find(f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue").text
    # xmlsec digested the Item with xmlns:unused (declared on the root, not used).
    assert digest == _sha256_b64(_c14n(signed.item, ["unused"]))
    assert digest != _sha256_b64(_c14n(signed.item))
    signed.verify()  # a verifier that ignored the PrefixList would fail here

    # The same signature without its PrefixList (SignedInfo authentic again):
    # the digest no longer matches.
    inclusive = signed.find(f".//{DS}Transform/{EXC_NS}InclusiveNamespaces")
    inclusive.getparent().remove(inclusive)
    resign(signed)
    with pytest.raises(FailedCheck) as raised:
        signed.verify()
    assert raised.value.reason == Reason.REFERENCE_DIGEST


def test_an_enveloped_prefix_list_keeps_the_namespaces_of_the_targets_ancestors() -> None:
    """The enveloped transform works on a copy that keeps every namespace in scope."""
    signed = xmlsec_signed(
        transforms=(xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N),
        inside=True,
        prefix_list="unused",
    )
    # A copy of the Item alone would lose xmlns:unused, declared on the root.
    assert b"urn:unused" in _c14n(signed.item, ["unused"])
    assert b"urn:unused" not in _c14n(copy.deepcopy(signed.item), ["unused"])
    assert xmlsec_accepts(signed.signature, [signed.item], signed.public_key)
    signed.verify()


# --- every rule of the policy, and its reason ----------------------------------------------------


def _edited(edit: Callable[[Signed], None], **signing: object) -> Signed:
    """Return an xmlsec signature edited by ``edit``, its SignedInfo signed again."""
    signed = xmlsec_signed(**signing)  # type: ignore[arg-type]
    edit(signed)
    resign(signed)
    return signed


def _chain(*algorithms: str, **signing: object) -> Callable[[], Signed]:
    return lambda: _edited(lambda s: set_chain(s, *algorithms), **signing)


def _add_inclusive(where: str, **attributes: str) -> Callable[[Signed], None]:
    def edit(signed: Signed) -> None:
        etree.SubElement(signed.find(where), f"{EXC_NS}InclusiveNamespaces", **attributes)

    return edit


def _set(path: str, attribute: str, value: str) -> Callable[[Signed], None]:
    return lambda s: s.find(path).set(attribute, value)


def _append(path: str, tag: str) -> Callable[[Signed], None]:
    return lambda s: etree.SubElement(s.find(path), tag)


def _set_text(path: str, text: str) -> Callable[[Signed], None]:
    def edit(signed: Signed) -> None:
        signed.find(path).text = text

    return edit


def _copies_of_the_reference(count: int) -> Callable[[Signed], None]:
    def edit(signed: Signed) -> None:
        signed_info = signed.find(f"{DS}SignedInfo")
        reference = signed.reference
        signed_info.remove(reference)
        for _ in range(count):
            signed_info.append(etree.fromstring(etree.tostring(reference)))

    return edit


def _signed_by(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Signed:
    root = etree.fromstring(DOCUMENT.encode())
    XmlSigner(private_key).sign(root, [reference_to(root[0], "item-1")])
    root = etree.fromstring(etree.tostring(root))
    return Signed(root, root[-1], root[0], private_key, private_key.public_key())


def _tampered_signed_info() -> Signed:
    """The attacker edits the Item and writes its new digest: SignedInfo no longer verifies."""
    signed = xmlsec_signed()
    signed.item.text = "0.00 AZN"
    signed.find(f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue").text = _sha256_b64(
        _c14n(signed.item)
    )
    return signed


def _tampered_item() -> Signed:
    signed = xmlsec_signed()
    signed.item.text = "0.00 AZN"
    return signed


def _relative_namespace() -> Signed:
    signed = xmlsec_signed()
    signed.item.set("{relative/uri}added", "1")  # libxml2's C14N refuses a relative URI
    return signed


def _bad_ecdsa_length() -> Signed:
    signed = xmlsec_signed(kind="ec", signature_method=xmlsec.Transform.ECDSA_SHA256)
    signed.find(f"{DS}SignatureValue").text = base64.b64encode(b"\x01" * 63).decode()
    return signed


def _hmac() -> Signed:
    hmac_key = xmlsec.Key.from_binary_data(xmlsec.KeyData.HMAC, b"k" * 32)
    return xmlsec_signed(signature_method=xmlsec.Transform.HMAC_SHA256, signing_key=hmac_key)


_REF = f"{DS}SignedInfo/{DS}Reference"
_EXC_TRANSFORM = f"{_REF}/{DS}Transforms/{DS}Transform"


@dataclass(frozen=True)
class Refusal:
    """A signature, what verify_signature must raise, and whether a reference gets digested."""

    build: Callable[[], Signed]
    fault: type[SecurityFault]
    reason: Reason
    digested: bool = False  # a reference is canonicalized before the refusal
    policy: VerificationPolicy = DEFAULT_POLICY
    targets: Callable[[Signed], list[etree._Element]] = lambda s: [s.item]


REFUSALS = {
    # The transforms: exactly one of the profile's chains.
    "no-transforms": Refusal(
        lambda: xmlsec_signed(transforms=()), InvalidSecurity, Reason.REFERENCE_TRANSFORMS
    ),
    "empty-transforms": Refusal(_chain(), InvalidSecurity, Reason.REFERENCE_TRANSFORMS),
    "enveloped-alone": Refusal(_chain(ns.ENVELOPED), InvalidSecurity, Reason.REFERENCE_TRANSFORMS),
    "enveloped-after-exc-c14n": Refusal(
        _chain(ns.EXC_C14N, ns.ENVELOPED), InvalidSecurity, Reason.REFERENCE_TRANSFORMS
    ),
    "exc-c14n-twice": Refusal(
        _chain(ns.EXC_C14N, ns.EXC_C14N), InvalidSecurity, Reason.REFERENCE_TRANSFORMS
    ),
    "enveloped-twice": Refusal(
        _chain(ns.ENVELOPED, ns.ENVELOPED, ns.EXC_C14N),
        InvalidSecurity,
        Reason.REFERENCE_TRANSFORMS,
    ),
    "xslt-then-exc-c14n": Refusal(
        _chain(XSLT, ns.EXC_C14N), UnsupportedAlgorithm, Reason.TRANSFORM_ALGORITHM
    ),
    "xpath-filter2-then-exc-c14n": Refusal(
        _chain(XPATH_FILTER2, ns.EXC_C14N), UnsupportedAlgorithm, Reason.TRANSFORM_ALGORITHM
    ),
    "base64-then-exc-c14n": Refusal(
        _chain(BASE64_TRANSFORM, ns.EXC_C14N), UnsupportedAlgorithm, Reason.TRANSFORM_ALGORITHM
    ),
    "inclusive-c14n": Refusal(
        _chain(INCLUSIVE_C14N), UnsupportedAlgorithm, Reason.TRANSFORM_ALGORITHM
    ),
    "exc-c14n-with-comments": Refusal(
        _chain(EXC_C14N_WITH_COMMENTS), UnsupportedAlgorithm, Reason.TRANSFORM_ALGORITHM
    ),
    "transform-without-algorithm": Refusal(
        _chain(""), UnsupportedAlgorithm, Reason.TRANSFORM_ALGORITHM
    ),
    "signature-inside-its-target-without-enveloped": Refusal(
        _chain(
            ns.EXC_C14N,
            transforms=(xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N),
            inside=True,
        ),
        InvalidSecurity,
        Reason.ENVELOPED_SIGNATURE,
    ),
    # Parameters: one InclusiveNamespaces PrefixList on exclusive C14N, nothing else.
    "prefix-list-on-the-enveloped-transform": Refusal(
        lambda: _edited(
            _add_inclusive(f"{_REF}/{DS}Transforms/{DS}Transform[1]", PrefixList="unused"),
            transforms=(xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N),
        ),
        InvalidSecurity,
        Reason.INCLUSIVE_PREFIX_LIST,
    ),
    "prefix-list-not-ncnames": Refusal(
        lambda: _edited(lambda s: None, prefix_list="unused r:x"),
        InvalidSecurity,
        Reason.INCLUSIVE_PREFIX_LIST,
    ),
    "inclusive-namespaces-without-prefix-list": Refusal(
        lambda: _edited(_add_inclusive(_EXC_TRANSFORM)),
        InvalidSecurity,
        Reason.INCLUSIVE_PREFIX_LIST,
    ),
    "inclusive-namespaces-extra-attribute": Refusal(
        lambda: _edited(_add_inclusive(_EXC_TRANSFORM, PrefixList="r", Extra="1")),
        InvalidSecurity,
        Reason.INCLUSIVE_PREFIX_LIST,
    ),
    "two-inclusive-namespaces": Refusal(
        lambda: _edited(_add_inclusive(_EXC_TRANSFORM, PrefixList="r"), prefix_list="unused"),
        InvalidSecurity,
        Reason.INCLUSIVE_PREFIX_LIST,
    ),
    "xpath-parameter-on-exc-c14n": Refusal(
        lambda: _edited(_append(_EXC_TRANSFORM, f"{DS}XPath")),
        InvalidSecurity,
        Reason.INCLUSIVE_PREFIX_LIST,
    ),
    "bad-prefix-list-on-signed-info": Refusal(
        lambda: _edited(
            _add_inclusive(f"{DS}SignedInfo/{DS}CanonicalizationMethod", PrefixList="1x")
        ),
        InvalidSecurity,
        Reason.INCLUSIVE_PREFIX_LIST,
    ),
    # Algorithms: no SHA-1, MD5 or HMAC; exclusive C14N for SignedInfo.
    "sha1-digest": Refusal(
        lambda: xmlsec_signed(digest_method=xmlsec.Transform.SHA1),
        UnsupportedAlgorithm,
        Reason.DIGEST_METHOD,
    ),
    "md5-digest": Refusal(
        lambda: xmlsec_signed(digest_method=xmlsec.Transform.MD5),
        UnsupportedAlgorithm,
        Reason.DIGEST_METHOD,
    ),
    "digest-method-parameter": Refusal(
        lambda: _edited(_append(f"{_REF}/{DS}DigestMethod", "{urn:x}Parameter")),
        UnsupportedAlgorithm,
        Reason.DIGEST_METHOD,
    ),
    "rsa-sha1": Refusal(
        lambda: xmlsec_signed(signature_method=xmlsec.Transform.RSA_SHA1),
        UnsupportedAlgorithm,
        Reason.SIGNATURE_METHOD,
    ),
    "hmac-sha256": Refusal(_hmac, UnsupportedAlgorithm, Reason.SIGNATURE_METHOD),
    "hmac-output-length": Refusal(
        lambda: _edited(_append(f"{DS}SignedInfo/{DS}SignatureMethod", f"{DS}HMACOutputLength")),
        UnsupportedAlgorithm,
        Reason.SIGNATURE_METHOD,
    ),
    "inclusive-c14n-of-signed-info": Refusal(
        lambda: _edited(
            _set(f"{DS}SignedInfo/{DS}CanonicalizationMethod", "Algorithm", INCLUSIVE_C14N)
        ),
        UnsupportedAlgorithm,
        Reason.C14N_METHOD,
    ),
    "signed-info-c14n-with-comments": Refusal(
        lambda: _edited(
            _set(f"{DS}SignedInfo/{DS}CanonicalizationMethod", "Algorithm", EXC_C14N_WITH_COMMENTS)
        ),
        UnsupportedAlgorithm,
        Reason.C14N_METHOD,
    ),
    # Shape.
    "no-c14n-method-in-signed-info": Refusal(
        lambda: _edited(lambda s: s.find(f"{DS}SignedInfo").remove(s.find(f"{DS}SignedInfo")[0])),
        InvalidSecurity,
        Reason.SIGNED_INFO_STRUCTURE,
    ),
    "foreign-element-in-signed-info": Refusal(
        lambda: _edited(_append(f"{DS}SignedInfo", "{urn:x}Extra")),
        InvalidSecurity,
        Reason.SIGNED_INFO_STRUCTURE,
    ),
    "object-in-signature": Refusal(
        lambda: _edited(lambda s: etree.SubElement(s.signature, f"{DS}Object")),
        InvalidSecurity,
        Reason.SIGNATURE_STRUCTURE,
    ),
    "two-key-infos": Refusal(
        lambda: _edited(lambda s: [etree.SubElement(s.signature, f"{DS}KeyInfo") for _ in "12"]),
        InvalidSecurity,
        Reason.SIGNATURE_STRUCTURE,
    ),
    "typed-reference": Refusal(
        lambda: _edited(_set(_REF, "Type", "http://www.w3.org/2000/09/xmldsig#Object")),
        InvalidSecurity,
        Reason.REFERENCE_STRUCTURE,
    ),
    "no-reference": Refusal(
        lambda: _edited(_copies_of_the_reference(0)),
        InvalidSecurity,
        Reason.REFERENCE_COUNT,
    ),
    "thirteen-references": Refusal(
        lambda: _edited(_copies_of_the_reference(13)),
        InvalidSecurity,
        Reason.REFERENCE_COUNT,
        targets=lambda s: [s.item] * 13,
    ),
    "two-references-under-the-statement-policy": Refusal(
        lambda: _edited(_copies_of_the_reference(2)),
        InvalidSecurity,
        Reason.REFERENCE_COUNT,
        policy=STATEMENT_POLICY,
        targets=lambda s: [s.item] * 2,
    ),
    # Targets.
    "fewer-targets-than-references": Refusal(
        xmlsec_signed, InvalidSecurity, Reason.REFERENCE_TARGETS, targets=lambda s: []
    ),
    "a-target-inside-the-signature": Refusal(
        xmlsec_signed,
        InvalidSecurity,
        Reason.REFERENCE_TARGETS,
        targets=lambda s: [s.find(f"{DS}SignedInfo")],
    ),
    "a-required-element-not-signed": Refusal(
        xmlsec_signed,
        InvalidSecurity,
        Reason.REQUIRED_REFERENCE,
        policy=VerificationPolicy(required_references=frozenset({"{urn:root}Other"})),
    ),
    # The key.
    "an-ec-key-for-rsa-sha256": Refusal(
        lambda: dataclasses.replace(xmlsec_signed(), public_key=new_key("ec").public_key()),
        FailedCheck,
        Reason.KEY_TYPE,
    ),
    "rsa-1024": Refusal(
        lambda: _signed_by(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505
        FailedAuthentication,
        Reason.WEAK_KEY,
    ),
    "ecdsa-p224": Refusal(
        lambda: _signed_by(ec.generate_private_key(ec.SECP224R1())),
        FailedAuthentication,
        Reason.WEAK_KEY,
    ),
    "rsa-2048-under-a-4096-bit-policy": Refusal(
        xmlsec_signed,
        FailedAuthentication,
        Reason.WEAK_KEY,
        policy=VerificationPolicy(min_rsa_bits=4096),
    ),
    # The SignatureValue, before any digest.
    "signed-info-tampered": Refusal(
        _tampered_signed_info, FailedCheck, Reason.SIGNED_INFO_SIGNATURE
    ),
    "signature-value-not-base64": Refusal(
        lambda: xmlsec_signed_with_value("not base64!"), FailedCheck, Reason.SIGNED_INFO_SIGNATURE
    ),
    "ecdsa-value-of-the-wrong-length": Refusal(
        _bad_ecdsa_length, FailedCheck, Reason.SIGNED_INFO_SIGNATURE
    ),
    # The digests, last.
    "item-tampered": Refusal(_tampered_item, FailedCheck, Reason.REFERENCE_DIGEST, digested=True),
    "digest-value-not-base64": Refusal(
        lambda: _edited(_set_text(f"{_REF}/{DS}DigestValue", "***")),
        FailedCheck,
        Reason.REFERENCE_DIGEST,
        digested=True,
    ),
    "target-cannot-be-canonicalized": Refusal(
        _relative_namespace, FailedCheck, Reason.C14N, digested=True
    ),
}


def xmlsec_signed_with_value(text: str) -> Signed:
    signed = xmlsec_signed()
    signed.find(f"{DS}SignatureValue").text = text
    return signed


@pytest.mark.parametrize("name", list(REFUSALS))
def test_each_rule_refuses_with_its_reason(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    refusal = REFUSALS[name]
    signed = refusal.build()
    canonicalized: list[etree._Element] = []
    real_octets = xmldsig._reference_octets

    def spy(target: etree._Element, *args: object) -> bytes:
        canonicalized.append(target)
        return real_octets(target, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(xmldsig, "_reference_octets", spy)
    with pytest.raises(refusal.fault) as raised:
        verify_signature(
            signed.signature, refusal.targets(signed), signed.public_key, policy=refusal.policy
        )
    assert type(raised.value) is refusal.fault
    assert raised.value.reason == refusal.reason
    assert isinstance(raised.value.reason, Reason)
    # Nothing a Reference names is canonicalized before SignedInfo is authentic.
    assert bool(canonicalized) is refusal.digested


def test_every_reason_of_verify_signature_is_tested() -> None:
    tested = {refusal.reason for refusal in REFUSALS.values()}
    structural = {  # WsseVerifier's and StatementVerifier's: tests/test_wsse_attacks.py
        Reason.STRUCTURE,
        Reason.DUPLICATE_ID,
        Reason.REFERENCE_URI,
        Reason.REFERENCE_TARGET,
        Reason.TOKEN,
        Reason.TIMESTAMP,
        Reason.TIMESTAMP_ORDER,
        Reason.FUTURE,
        Reason.EXPIRED,
        Reason.STALE,
        Reason.REPLAY,
    }
    assert set(Reason) - structural == tested


def test_no_transforms_is_refused_where_inclusive_c14n_would_disagree_with_libxmlsec1() -> None:
    """Without Transforms a node-set becomes octets by inclusive C14N 1.0.

    libxmlsec1 then carries the root's ``xml:lang`` into the Item; lxml's
    inclusive C14N of the Item does not.  The profile refuses the Reference
    instead of guessing, although python-xmlsec accepts its own signature.
    """
    signed = xmlsec_signed(transforms=())
    assert xmlsec_accepts(signed.signature, [signed.item], signed.public_key)
    digest = signed.find(f"{_REF}/{DS}DigestValue").text
    libxmlsec1_inclusive = (
        '<r:Item xmlns:r="urn:root" xmlns:unused="urn:unused" Id="item-1" xml:lang="az">'
        "Bakı şəhəri, ev 7 — 12.00 AZN</r:Item>"
    ).encode()
    assert digest == _sha256_b64(libxmlsec1_inclusive)
    lxml_inclusive = etree.tostring(signed.item, method="c14n", exclusive=False)
    assert b"xml:lang" not in lxml_inclusive and digest != _sha256_b64(lxml_inclusive)
    with pytest.raises(InvalidSecurity) as raised:
        signed.verify()
    assert raised.value.reason == Reason.REFERENCE_TRANSFORMS


def test_signed_info_is_verified_before_any_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tampered SignedInfo over a tampered Item: the SignedInfo reason, no digest computed."""
    digests: list[bytes] = []
    real = xmldsig._DIGESTS[ns.SHA256]
    monkeypatch.setitem(
        xmldsig._DIGESTS, ns.SHA256, lambda data: digests.append(data) or real(data)
    )
    signed = _tampered_signed_info()
    with pytest.raises(FailedCheck) as raised:
        signed.verify()
    assert raised.value.reason == Reason.SIGNED_INFO_SIGNATURE
    assert digests == []
    # The control: the same spy sees the digest once SignedInfo is authentic.
    with pytest.raises(FailedCheck) as raised:
        _tampered_item().verify()
    assert raised.value.reason == Reason.REFERENCE_DIGEST
    assert len(digests) == 1


def test_a_statement_signature_must_take_itself_out(pki: dict[str, Path], trust) -> None:
    """The Statement's Signature sits inside it: its Reference needs the enveloped transform."""
    identity = load_signing_identity(str(pki["service.key"]), str(pki["service.pem"]), None)
    text = f'<tns:Statement xmlns:tns="{TNS}" Id="S-1"><tns:StatementNumber>N</tns:StatementNumber>'
    text += "</tns:Statement>"

    def signed(enveloped: bool) -> etree._Element:
        statement = etree.fromstring(text.encode())
        reference = reference_to(statement, "S-1", enveloped=enveloped)
        signature = XmlSigner(identity.private_key).sign(statement, [reference])
        x509_data = etree.SubElement(key_info(signature), f"{DS}X509Data")
        certificate = base64.b64encode(identity.certificate_der).decode()
        etree.SubElement(x509_data, f"{DS}X509Certificate").text = certificate
        return etree.fromstring(etree.tostring(statement))

    StatementVerifier(trust).verify(signed(enveloped=True))
    with pytest.raises(InvalidSecurity) as raised:
        StatementVerifier(trust).verify(signed(enveloped=False))
    assert raised.value.reason == Reason.ENVELOPED_SIGNATURE


# --- the policy itself ---------------------------------------------------------------------------


def test_the_policies_share_one_profile() -> None:
    for policy in (WSSE_POLICY, STATEMENT_POLICY):
        assert (
            dataclasses.replace(
                policy,
                required_references=frozenset(),
                max_references=DEFAULT_POLICY.max_references,
            )
            == DEFAULT_POLICY
        )
    assert DEFAULT_POLICY.transform_chains == {EXCLUSIVE_C14N_CHAIN, ENVELOPED_CHAIN}
    assert not any("sha1" in m or "md5" in m for m in DEFAULT_POLICY.signature_methods)
    assert not any("sha1" in m or "md5" in m for m in DEFAULT_POLICY.digest_methods)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"transform_chains": frozenset({(XSLT, ns.EXC_C14N)})}, id="unknown-chain"),
        pytest.param({"transform_chains": frozenset({()})}, id="empty-chain"),
        pytest.param({"c14n_methods": frozenset({INCLUSIVE_C14N})}, id="inclusive-signed-info"),
        pytest.param({"max_references": 0}, id="no-references"),
        pytest.param({"clock_skew_s": -1}, id="negative-skew"),
    ],
)
def test_a_policy_the_verifier_cannot_enforce_is_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        VerificationPolicy(**options)  # type: ignore[arg-type]


def test_a_narrower_policy_is_enforced() -> None:
    """A policy without the enveloped chain refuses node-soap's chain (UnsupportedAlgorithm)."""
    signed = xmlsec_signed(transforms=(xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N))
    signed.verify()
    with pytest.raises(UnsupportedAlgorithm) as raised:
        signed.verify(VerificationPolicy(transform_chains=frozenset({EXCLUSIVE_C14N_CHAIN})))
    assert raised.value.reason == Reason.TRANSFORM_ALGORITHM


# --- the fuzzer's messages -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def kit(pki: dict[str, Path]) -> FuzzKit:
    return FuzzKit(pki)


@CI_SETTINGS
@given(case=cases())
def test_fuzzed_messages_get_xmlsecs_verdict(kit: FuzzKit, case: FuzzCase) -> None:
    """Every signature the policy lets through is judged as python-xmlsec judges it.

    The policy's own refusals (UnsupportedAlgorithm, InvalidSecurity...) are
    not compared: python-xmlsec accepts, say, a Reference without Transforms.
    """

    def compared(
        signature: etree._Element,
        targets: Sequence[etree._Element],
        public_key: object,
        **options: object,
    ) -> None:
        expected = xmlsec_accepts(signature, targets, public_key)
        try:
            verify_signature(signature, targets, public_key, **options)  # type: ignore[arg-type]
        except FailedCheck:
            assert not expected, "verify_signature refused what xmlsec accepts"
            raise
        assert expected, "verify_signature accepted what xmlsec refuses"

    with (
        mock.patch.object(wsse, "verify_signature", compared),
        mock.patch.object(statement_signature, "verify_signature", compared),
    ):
        run_case(kit, case)
