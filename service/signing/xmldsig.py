"""Produce W3C XML-Signature (XMLDSig 1.1) signatures with ``cryptography`` and lxml.

The service signs twice per request: the Statement (an enveloped signature)
and the response envelope (WS-Security, OASIS WSS 1.1).  It only ever signs
what it built itself, with one fixed profile:

* every Reference is a same-document ``#id`` with the exclusive C14N
  transform (after the enveloped-signature transform for the Statement) and
  a SHA-256 digest;
* SignedInfo is canonicalized with exclusive C14N and signed with RSA-SHA256
  (PKCS#1 v1.5) or ECDSA-SHA256, by the key's type.

Why not python-xmlsec, which verifies requests: xmlsec's ``SignatureContext``
copies the private key into every context it signs with (an ``EVP_PKEY``
duplicate with its RSA blinding set-up), and finds the references again by
registering IDs -- about 0.3 ms of the 0.8 ms of one signature, twice per
request.  Here the key is the long-lived ``cryptography`` object loaded at
start, the digests are taken over ``lxml``'s exclusive C14N of the very
elements being signed, and nothing is looked up by ID.  Signatures made
here are verified in the tests by xmlsec (the service's own verifier), by the
``xmlsec1`` command and by signxml.

Equivalence that the enveloped transform relies on: the digest of the
Statement is taken *before* the Signature is appended to it, which is the
same octets as the Statement with its Signature removed -- the Signature is
appended without surrounding whitespace.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

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
