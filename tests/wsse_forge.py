"""Forge WS-Security requests, good and bad, for the attack suite.

:func:`forge` builds a signed GetBillingStatement request with every knob an
attacker (or a sloppy client) can turn; the attack cases then edit the tree
after signing.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import xmlsec
from cryptography.hazmat.primitives import serialization
from lxml import etree

from service import namespaces as ns
from service.namespaces import TNS
from service.pki import IssuedPair

SOAP = ns.SOAP11_ENV
WSU_ID = f"{{{ns.WSU}}}Id"


def q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


@dataclass
class Forged:
    """A forged request: its tree and the interesting nodes."""

    envelope: etree._Element
    header: etree._Element
    security: etree._Element
    timestamp: etree._Element | None
    body: etree._Element
    signature: etree._Element
    token: etree._Element
    ids: dict[str, str] = field(default_factory=dict)

    def bytes(self) -> bytes:
        return etree.tostring(self.envelope, xml_declaration=True, encoding="UTF-8")


def xmlsec_key(pair: IssuedPair) -> xmlsec.Key:
    pem = pair.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM, None)


def forge(
    signer: IssuedPair,
    *,
    token: IssuedPair | None = None,
    code: str = "100000001",
    fin: str = "5ZT3K9M",
    signature_method: object = xmlsec.Transform.RSA_SHA256,
    digest_method: object = xmlsec.Transform.SHA256,
    sign_body: bool = True,
    sign_timestamp: bool = True,
    with_timestamp: bool = True,
    created: dt.datetime | None = None,
    lifetime: dt.timedelta = dt.timedelta(minutes=5),
    key: xmlsec.Key | None = None,
    transforms: Sequence[object] = (xmlsec.Transform.EXCL_C14N,),
) -> Forged:
    """Return a request signed by ``signer``'s key, carrying ``token``'s certificate.

    ``transforms`` are every Reference's, in order: node-soap, for one, writes
    the enveloped-signature transform before exclusive C14N.
    """
    token = token or signer
    envelope = etree.Element(q(SOAP, "Envelope"), nsmap={"soapenv": SOAP, "b": TNS})
    header = etree.SubElement(envelope, q(SOAP, "Header"))
    security = etree.SubElement(
        header,
        q(ns.WSSE, "Security"),
        {q(SOAP, "mustUnderstand"): "1"},
        nsmap={"wsse": ns.WSSE, "wsu": ns.WSU},
    )
    timestamp = None
    if with_timestamp:
        now = created or dt.datetime.now(dt.UTC)
        timestamp = etree.SubElement(security, q(ns.WSU, "Timestamp"), {WSU_ID: "TS-1"})
        # Microseconds make every forged message unique for the replay cache.
        etree.SubElement(timestamp, q(ns.WSU, "Created")).text = now.strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        etree.SubElement(timestamp, q(ns.WSU, "Expires")).text = (now + lifetime).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
    bst = etree.SubElement(
        security,
        q(ns.WSSE, "BinarySecurityToken"),
        {"EncodingType": ns.BASE64_BINARY, "ValueType": ns.X509V3, WSU_ID: "X509-1"},
    )
    bst.text = base64.b64encode(token.certificate.public_bytes(serialization.Encoding.DER)).decode()
    body = etree.SubElement(envelope, q(SOAP, "Body"), {WSU_ID: "Body-1"})
    request = etree.SubElement(body, q(TNS, "GetBillingStatement"))
    etree.SubElement(request, q(TNS, "SubscriberCode")).text = code
    etree.SubElement(request, q(TNS, "CitizenFin")).text = fin
    etree.SubElement(request, q(TNS, "Language")).text = "az"

    signature = xmlsec.template.create(
        envelope, xmlsec.Transform.EXCL_C14N, signature_method, ns="ds"
    )
    security.append(signature)
    ctx = xmlsec.SignatureContext()
    targets = []
    if sign_body:
        targets.append(body)
    if sign_timestamp and timestamp is not None:
        targets.append(timestamp)
    for target in targets:
        reference = xmlsec.template.add_reference(
            signature, digest_method, uri="#" + target.get(WSU_ID)
        )
        for transform in transforms:
            xmlsec.template.add_transform(reference, transform)
        ctx.register_id(target, "Id", ns.WSU)
    key_info = xmlsec.template.ensure_key_info(signature)
    ctx.key = key or xmlsec_key(signer)
    ctx.sign(signature)
    reference = etree.SubElement(
        etree.SubElement(key_info, q(ns.WSSE, "SecurityTokenReference")),
        q(ns.WSSE, "Reference"),
        {"URI": "#X509-1", "ValueType": ns.X509V3},
    )
    del reference
    # xmlsec builds its template nodes with names outside lxml's dictionary, so
    # lxml's find() can miss them: re-parse before anyone edits the tree.
    envelope = etree.fromstring(etree.tostring(envelope))
    header, body = envelope[0], envelope[1]
    security = header[0]
    found_timestamp = security.find(q(ns.WSU, "Timestamp"))
    return Forged(
        envelope,
        header,
        security,
        found_timestamp,
        body,
        security.find(q(ns.DS, "Signature")),
        security.find(q(ns.WSSE, "BinarySecurityToken")),
    )
