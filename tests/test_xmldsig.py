"""service.signing.xmldsig against python-xmlsec, the independent implementation.

The service signs and verifies XML signatures with lxml's C14N and
``cryptography``; python-xmlsec (libxmlsec1) is the oracle here: it verifies
what XmlSigner signs, and on every message of the fuzzer (mutated signed
requests and responses) it reaches the same verdict as verify_signature.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

import pytest
import xmlsec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given
from lxml import etree

import service.signing.statement_signature as statement_signature
import service.signing.wsse as wsse
from service.errors import FailedCheck
from service.pki import new_key
from service.signing import namespaces as ns
from service.signing.xmldsig import XmlSigner, key_info, reference_to, verify_signature
from tests.test_fuzz import CI_SETTINGS, FuzzCase, FuzzKit, cases, run_case

DOCUMENT = (
    '<r:Root xmlns:r="urn:root" xmlns:unused="urn:unused">'
    '<r:Item Id="item-1">Bakı şəhəri, ev 7 — 12.00 AZN</r:Item><r:Other>x</r:Other></r:Root>'
)


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


def _signed(kind: str, *, enveloped: bool) -> tuple[etree._Element, object]:
    """Return a re-parsed signed document and the public key."""
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
    item, signature = root[0], root.find(f".//{{{ns.DS}}}Signature")
    if tamper:
        item.text = item.text.replace("12.00", "12.01")
    assert xmlsec_accepts(signature, [item], public_key) is not tamper
    if tamper:
        with pytest.raises(FailedCheck):
            verify_signature(signature, [item], public_key)
    else:
        verify_signature(signature, [item], public_key)
    # Verifying changes nothing (the enveloped transform works on a copy).
    assert root.findall(f".//{{{ns.DS}}}Signature") == [signature]
    assert signature.getparent() is (item if enveloped else root)


def test_inclusive_namespaces_prefix_list_is_honoured() -> None:
    root, public_key = _signed("rsa", enveloped=False)
    signature = root.find(f".//{{{ns.DS}}}Signature")
    # A PrefixList changes the canonical form: what was signed without one no longer verifies.
    method = signature.find(f".//{{{ns.DS}}}Transform")
    etree.SubElement(
        method,
        "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces",
        PrefixList="unused",
    )
    assert xmlsec_accepts(signature, [root[0]], public_key) is False
    with pytest.raises(FailedCheck):
        verify_signature(signature, [root[0]], public_key)


def test_profile_is_the_fixed_one() -> None:
    root, _ = _signed("ec", enveloped=True)
    signature = root.find(f".//{{{ns.DS}}}Signature")
    algorithms = [e.get("Algorithm") for e in signature.iter() if e.get("Algorithm")]
    assert algorithms == [ns.EXC_C14N, ns.ECDSA_SHA256, ns.ENVELOPED, ns.EXC_C14N, ns.SHA256]
    # XMLDSig's ECDSA value is r || s (32 + 32 bytes on P-256), not DER.
    value = signature.findtext(f"{{{ns.DS}}}SignatureValue")
    assert len(base64.b64decode(value)) == 64
    assert key_info(signature).tag == f"{{{ns.DS}}}KeyInfo" and len(key_info(signature)) == 0


def test_other_key_types_are_refused() -> None:
    with pytest.raises(TypeError):
        XmlSigner(ed25519.Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    root, _ = _signed("rsa", enveloped=False)
    signature = root.find(f".//{{{ns.DS}}}Signature")
    with pytest.raises(FailedCheck):  # an RSA signature checked with an EC key
        verify_signature(signature, [root[0]], new_key("ec").public_key())
    assert isinstance(new_key("ec"), ec.EllipticCurvePrivateKey)


@pytest.fixture(scope="module")
def kit(pki: dict[str, Path]) -> FuzzKit:
    return FuzzKit(pki)


@CI_SETTINGS
@given(case=cases())
def test_fuzzed_messages_get_xmlsecs_verdict(kit: FuzzKit, case: FuzzCase) -> None:
    """Every signature the fuzzer's messages reach is judged as python-xmlsec judges it."""

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
