"""XmlSigner's signatures verify with python-xmlsec, and tampering breaks them."""

from __future__ import annotations

import base64

import pytest
import xmlsec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from lxml import etree

from service.errors import FailedCheck
from service.pki import new_key
from service.signing import namespaces as ns
from service.signing.wsse import xmlsec_verify
from service.signing.xmldsig import XmlSigner, key_info, reference_to

DOCUMENT = (
    '<r:Root xmlns:r="urn:root" xmlns:unused="urn:unused">'
    '<r:Item Id="item-1">Bakı şəhəri, ev 7 — 12.00 AZN</r:Item><r:Other>x</r:Other></r:Root>'
)


def _public_key(private_key: object) -> xmlsec.Key:
    pem = private_key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM, None)


def _signed(kind: str, *, enveloped: bool) -> tuple[etree._Element, etree._Element, object]:
    private_key = new_key(kind)
    root = etree.fromstring(DOCUMENT.encode())
    item = root[0]
    reference = reference_to(item, "item-1", enveloped=enveloped)
    parent = item if enveloped else root
    signature = XmlSigner(private_key).sign(parent, [reference])  # type: ignore[arg-type]
    return item, signature, private_key


@pytest.mark.parametrize("kind", ["rsa", "ec"])
@pytest.mark.parametrize("enveloped", [False, True])
def test_signature_verifies_with_xmlsec(kind: str, enveloped: bool) -> None:
    item, signature, private_key = _signed(kind, enveloped=enveloped)
    transforms = (
        (xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N)
        if enveloped
        else (xmlsec.Transform.EXCL_C14N,)
    )
    # Re-parse: the verifier meets the octets, not the tree that was built.
    root = etree.fromstring(etree.tostring(item.getroottree()))
    item, signature = root[0], root.find(f".//{{{ns.DS}}}Signature")
    xmlsec_verify(signature, _public_key(private_key), [item], transforms)

    item.text = item.text.replace("12.00", "12.01")
    with pytest.raises(FailedCheck):
        xmlsec_verify(signature, _public_key(private_key), [item], transforms)


def test_profile_is_the_fixed_one() -> None:
    _, signature, _ = _signed("ec", enveloped=True)
    algorithms = [e.get("Algorithm") for e in signature.iter() if e.get("Algorithm")]
    assert algorithms == [ns.EXC_C14N, ns.ECDSA_SHA256, ns.ENVELOPED, ns.EXC_C14N, ns.SHA256]
    # XMLDSig's ECDSA value is r || s (32 + 32 bytes on P-256), not DER.
    value = signature.findtext(f"{{{ns.DS}}}SignatureValue")
    assert len(base64.b64decode(value)) == 64
    assert key_info(signature).tag == f"{{{ns.DS}}}KeyInfo" and len(key_info(signature)) == 0


def test_other_key_types_are_refused() -> None:
    with pytest.raises(TypeError):
        XmlSigner(ed25519.Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    assert isinstance(new_key("ec"), ec.EllipticCurvePrivateKey)
