"""The attack suite: every forged, wrapped, stale or hostile request gets its exact fault.

Each case asserts the exact fault code (or HTTP status when the body is never
read), that the answer is itself signed by the service, that no statement and
no personal data leaks, and that the server still answers the next good
request.  Each case the WS-Security verifier refuses is also given to a
:class:`WsseVerifier` directly, which must refuse it for the case's own
reason (the caller only ever sees the fault code).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

import service.handlers.billing_statement as handler
from service import namespaces as ns
from service.app import create_app
from service.errors import (
    FailedAuthentication,
    FailedCheck,
    InvalidSecurity,
    MessageExpired,
    SecurityFault,
    ServiceFault,
    UnsupportedAlgorithm,
)
from service.pki import IssuedPair, create_ca, issue, new_key
from service.replay_store import SqlReplayCache
from service.signing.hardened_xml import parse_request
from service.signing.keys import fingerprint
from service.signing.policy import (
    ENVELOPED_CHAIN,
    EXCLUSIVE_C14N_CHAIN,
    WSSE_POLICY,
    Reason,
    VerificationPolicy,
)
from service.signing.trust import TrustStore
from service.signing.wsse import WsseVerifier
from tests import billing_fixtures as bf
from tests.wsse_forge import SOAP, WSU_ID, Forged, forge, q

#: node-soap's default on each Reference: the enveloped-signature transform, then exclusive C14N.
NODE_SOAP_TRANSFORMS = (xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N)
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetBillingStatement"'}
NOW = dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Keys:
    portal: IssuedPair
    ca: IssuedPair
    rogue: IssuedPair  # a good-looking certificate from an untrusted CA
    expired: IssuedPair
    not_yet_valid: IssuedPair
    other: IssuedPair  # trusted, but not the certificate in the token
    ec: IssuedPair


def _load_pair(key_path: Path, cert_path: Path) -> IssuedPair:
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    return IssuedPair(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def keys(pki: dict[str, Path]) -> Keys:
    ca = _load_pair(pki["ca.key"], pki["ca.pem"])
    rogue_ca = create_ca("Rogue CA")
    return Keys(
        portal=_load_pair(pki["portal.key"], pki["portal.pem"]),
        ca=ca,
        rogue=issue(rogue_ca, "portal.e-gov.az", "e-gov.az", client=True),
        expired=issue(
            ca, "expired", "e-gov.az", client=True, not_before=NOW - dt.timedelta(days=30), days=1
        ),
        not_yet_valid=issue(
            ca, "future", "e-gov.az", client=True, not_before=NOW + dt.timedelta(days=30)
        ),
        other=issue(ca, "other", "e-gov.az", client=True),
        ec=issue(ca, "ec-portal", "e-gov.az", client=True, key=new_key("ec")),
    )


def _request(keys: Keys, **kwargs: object) -> Forged:
    return forge(keys.portal, **kwargs)  # type: ignore[arg-type]


def _bytes(tree: etree._Element) -> bytes:
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


# --- the forged cases ---------------------------------------------------------


def unsigned(keys: Keys) -> bytes:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns:b="http://azersu.az/egov/billing-statement/v1">'
        f"<soapenv:Body><b:GetBillingStatement><b:SubscriberCode>{bf.FULL}</b:SubscriberCode>"
        f"<b:CitizenFin>{bf.FIN}</b:CitizenFin></b:GetBillingStatement></soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


def _code_element(f: Forged) -> etree._Element:
    return f.body[0][0]


def body_changed(keys: Keys) -> bytes:
    f = _request(keys)
    _code_element(f).text = bf.GAPS
    return f.bytes()


def _evil_body(f: Forged, with_id: str | None = None) -> etree._Element:
    evil = copy.deepcopy(f.body)
    _code_element_of(evil).text = bf.GAPS
    if with_id is None:
        evil.attrib.pop(WSU_ID)
    else:
        evil.set(WSU_ID, with_id)
    return evil


def _code_element_of(body: etree._Element) -> etree._Element:
    return body[0][0]


def xsw_body_in_header_wrapper(keys: Keys) -> bytes:
    f = _request(keys)
    evil = _evil_body(f)
    wrapper = etree.SubElement(f.header, "{urn:evil}Wrapper")
    f.envelope.replace(f.body, evil)
    wrapper.append(f.body)
    return f.bytes()


def xsw_body_in_ds_object(keys: Keys) -> bytes:
    f = _request(keys)
    evil = _evil_body(f)
    f.envelope.replace(f.body, evil)
    etree.SubElement(f.signature, q(ns.DS, "Object")).append(f.body)
    return f.bytes()


def xsw_evil_body_with_the_same_id(keys: Keys) -> bytes:
    f = _request(keys)
    evil = _evil_body(f, with_id=f.body.get(WSU_ID))
    wrapper = etree.SubElement(f.header, "{urn:evil}Wrapper")
    f.envelope.replace(f.body, evil)
    wrapper.append(f.body)
    return f.bytes()


def duplicate_ids(keys: Keys) -> bytes:
    f = _request(keys)
    etree.SubElement(f.header, "{urn:evil}Decoy", {WSU_ID: f.body.get(WSU_ID)})
    return f.bytes()


def duplicate_ids_across_attribute_names(keys: Keys) -> bytes:
    f = _request(keys)
    etree.SubElement(f.header, "{urn:evil}Decoy", {"Id": f.body.get(WSU_ID)})
    return f.bytes()


def signature_covers_only_timestamp(keys: Keys) -> bytes:
    return _request(keys, sign_body=False).bytes()


def signature_covers_only_body(keys: Keys) -> bytes:
    return _request(keys, sign_timestamp=False).bytes()


def second_body(keys: Keys) -> bytes:
    f = _request(keys)
    f.envelope.append(_evil_body(f))
    return f.bytes()


def second_security_header(keys: Keys) -> bytes:
    f = _request(keys)
    extra = copy.deepcopy(f.security)
    for element in extra.iter():
        for attribute in (WSU_ID,):
            if element.get(attribute):
                element.set(attribute, element.get(attribute) + "-2")
    f.header.append(extra)
    return f.bytes()


def second_envelope_in_header(keys: Keys) -> bytes:
    f = _request(keys)
    inner = etree.SubElement(f.header, q(SOAP, "Envelope"))
    etree.SubElement(inner, "{urn:evil}x")
    return f.bytes()


def untrusted_ca(keys: Keys) -> bytes:
    return forge(keys.rogue).bytes()


def expired_certificate(keys: Keys) -> bytes:
    return forge(keys.expired).bytes()


def not_yet_valid_certificate(keys: Keys) -> bytes:
    return forge(keys.not_yet_valid).bytes()


def key_does_not_match_token(keys: Keys) -> bytes:
    return forge(keys.other, token=keys.portal).bytes()


def stale_timestamp(keys: Keys) -> bytes:
    # Not expired yet (it says it lives two hours), but created too long ago.
    created = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    return _request(keys, created=created, lifetime=dt.timedelta(hours=2)).bytes()


def expires_before_created(keys: Keys) -> bytes:
    return _request(keys, lifetime=dt.timedelta(seconds=-1)).bytes()


def future_timestamp(keys: Keys) -> bytes:
    return _request(keys, created=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).bytes()


def expired_timestamp(keys: Keys) -> bytes:
    created = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=7)
    return _request(keys, created=created, lifetime=dt.timedelta(seconds=30)).bytes()


def missing_timestamp(keys: Keys) -> bytes:
    return _request(keys, with_timestamp=False).bytes()


def sha1_signature(keys: Keys) -> bytes:
    return _request(keys, signature_method=xmlsec.Transform.RSA_SHA1).bytes()


def sha1_digest(keys: Keys) -> bytes:
    return _request(keys, digest_method=xmlsec.Transform.SHA1).bytes()


def md5_digest(keys: Keys) -> bytes:
    return _request(keys, digest_method=xmlsec.Transform.MD5).bytes()


def hmac_signature(keys: Keys) -> bytes:
    hmac_key = xmlsec.Key.from_binary_data(xmlsec.KeyData.HMAC, b"k" * 32)
    return _request(keys, signature_method=xmlsec.Transform.HMAC_SHA256, key=hmac_key).bytes()


def _add_transform(f: Forged, algorithm: str, *, last: bool = False) -> bytes:
    transforms = f.signature.find(
        f"{q(ns.DS, 'SignedInfo')}/{q(ns.DS, 'Reference')}/{q(ns.DS, 'Transforms')}"
    )
    transform = etree.Element(q(ns.DS, "Transform"), {"Algorithm": algorithm})
    transforms.insert(len(transforms) if last else 0, transform)
    return f.bytes()


def xslt_transform(keys: Keys) -> bytes:
    return _add_transform(_request(keys), "http://www.w3.org/TR/1999/REC-xslt-19991116")


def xpath_transform(keys: Keys) -> bytes:
    return _add_transform(_request(keys), "http://www.w3.org/TR/1999/REC-xpath-19991116")


def no_transforms(keys: Keys) -> bytes:
    # Without Transforms the Body would be canonicalized by inclusive C14N 1.0.
    return _request(keys, transforms=()).bytes()


def enveloped_transform_alone(keys: Keys) -> bytes:
    return _request(keys, transforms=(xmlsec.Transform.ENVELOPED,)).bytes()


def enveloped_after_exc_c14n(keys: Keys) -> bytes:
    return _add_transform(_request(keys), ns.ENVELOPED, last=True)


def inclusive_c14n_transform(keys: Keys) -> bytes:
    return _request(keys, transforms=(xmlsec.Transform.C14N,)).bytes()


def _set_reference_uri(keys: Keys, uri: str) -> bytes:
    f = _request(keys)
    f.signature.find(f"{q(ns.DS, 'SignedInfo')}/{q(ns.DS, 'Reference')}").set("URI", uri)
    return f.bytes()


def external_uri_file(keys: Keys) -> bytes:
    return _set_reference_uri(keys, "file:///etc/passwd")


def external_uri_http(keys: Keys) -> bytes:
    return _set_reference_uri(keys, "http://127.0.0.1:9/evil")


def xpointer_uri(keys: Keys) -> bytes:
    return _set_reference_uri(keys, "#xpointer(/)")


def too_many_references(keys: Keys) -> bytes:
    f = _request(keys)
    signed_info = f.signature.find(q(ns.DS, "SignedInfo"))
    reference = signed_info.find(q(ns.DS, "Reference"))
    for _ in range(WSSE_POLICY.max_references - 1):  # with the Timestamp's: one too many
        signed_info.append(copy.deepcopy(reference))
    return f.bytes()


def two_references_to_the_body(keys: Keys) -> bytes:
    f = _request(keys)
    signed_info = f.signature.find(q(ns.DS, "SignedInfo"))
    signed_info.append(copy.deepcopy(signed_info.find(q(ns.DS, "Reference"))))
    return f.bytes()


def doctype_xxe(keys: Keys) -> bytes:
    signed = _request(keys).bytes().split(b"?>", 1)[1]
    return (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        + signed.replace(bf.FULL.encode(), b"&xxe;")
    )


def billion_laughs(keys: Keys) -> bytes:
    entities = '<!ENTITY l0 "ha">' + "".join(
        f'<!ENTITY l{i} "{"&l" + str(i - 1) + ";" * 1}' + f'{("&l" + str(i - 1) + ";") * 9}">'
        for i in range(1, 10)
    )
    signed = _request(keys).bytes().split(b"?>", 1)[1]
    return f"<!DOCTYPE e [{entities}]>".encode() + signed.replace(bf.FULL.encode(), b"&l9;")


def comment_inside_subscriber_code(keys: Keys) -> bytes:
    # Exclusive C14N drops comments, so the signature still verifies: the
    # parser must refuse the comment, not trust a careless .text reader.
    signed = _request(keys, code=bf.FULL).bytes()
    code = bf.FULL.encode()
    return signed.replace(code, code[:4] + b"<!---->" + code[4:])


def processing_instruction_in_body(keys: Keys) -> bytes:
    signed = _request(keys).bytes()
    return signed.replace(b"<b:CitizenFin>", b"<?evil data?><b:CitizenFin>")


def absurd_nesting(keys: Keys) -> bytes:
    signed = _request(keys).bytes()
    deep = b"<x>" * 200 + b"</x>" * 200
    return signed.replace(b"<b:Language>", deep + b"<b:Language>")


def invalid_utf8(keys: Keys) -> bytes:
    return _request(keys).bytes().replace(bf.FULL.encode(), b"\xff\xfe\xfd")


def not_xml(keys: Keys) -> bytes:
    return b"GET /etc/passwd"


def oversized_body(keys: Keys) -> bytes:
    return _request(keys).bytes() + b" " * (300 * 1024)


@dataclass(frozen=True)
class Attack:
    build: Callable[[Keys], bytes]
    expected: str  # "wsse:<code>", "soap:<code>" or "http:<status>"
    #: Why the WS-Security verifier refuses it (None: refused before, by the
    #: parser or at the HTTP level).  A Reason, or a TrustStore.check reason.
    reason: str | None = None
    content_type: str = HEADERS["Content-Type"]


ATTACKS = {
    "unsigned": Attack(unsigned, "wsse:InvalidSecurity", Reason.STRUCTURE),
    "body-changed-after-signing": Attack(body_changed, "wsse:FailedCheck", Reason.REFERENCE_DIGEST),
    "xsw-signed-body-in-header-wrapper": Attack(
        xsw_body_in_header_wrapper, "wsse:InvalidSecurity", Reason.STRUCTURE
    ),
    "xsw-signed-body-in-ds-object": Attack(
        xsw_body_in_ds_object, "wsse:InvalidSecurity", Reason.STRUCTURE
    ),
    "xsw-evil-body-with-same-id": Attack(
        xsw_evil_body_with_the_same_id, "wsse:InvalidSecurity", Reason.STRUCTURE
    ),
    "duplicate-ids": Attack(duplicate_ids, "wsse:InvalidSecurity", Reason.DUPLICATE_ID),
    "duplicate-ids-other-attribute": Attack(
        duplicate_ids_across_attribute_names, "wsse:InvalidSecurity", Reason.DUPLICATE_ID
    ),
    "signature-covers-only-timestamp": Attack(
        signature_covers_only_timestamp, "wsse:InvalidSecurity", Reason.REQUIRED_REFERENCE
    ),
    "signature-covers-only-body": Attack(
        signature_covers_only_body, "wsse:InvalidSecurity", Reason.REQUIRED_REFERENCE
    ),
    "second-body": Attack(second_body, "wsse:InvalidSecurity", Reason.STRUCTURE),
    "second-security-header": Attack(
        second_security_header, "wsse:InvalidSecurity", Reason.STRUCTURE
    ),
    "second-envelope": Attack(second_envelope_in_header, "wsse:InvalidSecurity", Reason.STRUCTURE),
    "untrusted-ca": Attack(untrusted_ca, "wsse:FailedAuthentication", "untrusted_issuer"),
    "expired-certificate": Attack(
        expired_certificate, "wsse:FailedAuthentication", "certificate_validity"
    ),
    "not-yet-valid-certificate": Attack(
        not_yet_valid_certificate, "wsse:FailedAuthentication", "certificate_validity"
    ),
    "key-does-not-match-token": Attack(
        key_does_not_match_token, "wsse:FailedCheck", Reason.SIGNED_INFO_SIGNATURE
    ),
    "stale-timestamp": Attack(stale_timestamp, "wsse:MessageExpired", Reason.STALE),
    "future-timestamp": Attack(future_timestamp, "wsse:MessageExpired", Reason.FUTURE),
    "expired-timestamp": Attack(expired_timestamp, "wsse:MessageExpired", Reason.EXPIRED),
    "expires-before-created": Attack(
        expires_before_created, "wsse:MessageExpired", Reason.TIMESTAMP_ORDER
    ),
    "missing-timestamp": Attack(missing_timestamp, "wsse:InvalidSecurity", Reason.STRUCTURE),
    "sha1-signature": Attack(sha1_signature, "wsse:UnsupportedAlgorithm", Reason.SIGNATURE_METHOD),
    "sha1-digest": Attack(sha1_digest, "wsse:UnsupportedAlgorithm", Reason.DIGEST_METHOD),
    "md5-digest": Attack(md5_digest, "wsse:UnsupportedAlgorithm", Reason.DIGEST_METHOD),
    "hmac-signature": Attack(hmac_signature, "wsse:UnsupportedAlgorithm", Reason.SIGNATURE_METHOD),
    "xslt-transform": Attack(
        xslt_transform, "wsse:UnsupportedAlgorithm", Reason.TRANSFORM_ALGORITHM
    ),
    "xpath-transform": Attack(
        xpath_transform, "wsse:UnsupportedAlgorithm", Reason.TRANSFORM_ALGORITHM
    ),
    "inclusive-c14n-transform": Attack(
        inclusive_c14n_transform, "wsse:UnsupportedAlgorithm", Reason.TRANSFORM_ALGORITHM
    ),
    "no-transforms": Attack(no_transforms, "wsse:InvalidSecurity", Reason.REFERENCE_TRANSFORMS),
    "enveloped-transform-alone": Attack(
        enveloped_transform_alone, "wsse:InvalidSecurity", Reason.REFERENCE_TRANSFORMS
    ),
    "enveloped-after-exc-c14n": Attack(
        enveloped_after_exc_c14n, "wsse:InvalidSecurity", Reason.REFERENCE_TRANSFORMS
    ),
    "external-reference-file": Attack(
        external_uri_file, "wsse:InvalidSecurity", Reason.REFERENCE_URI
    ),
    "external-reference-http": Attack(
        external_uri_http, "wsse:InvalidSecurity", Reason.REFERENCE_URI
    ),
    "xpointer-reference": Attack(xpointer_uri, "wsse:InvalidSecurity", Reason.REFERENCE_URI),
    "two-references-to-the-body": Attack(
        two_references_to_the_body, "wsse:InvalidSecurity", Reason.REFERENCE_URI
    ),
    "too-many-references": Attack(
        too_many_references, "wsse:InvalidSecurity", Reason.REFERENCE_COUNT
    ),
    "doctype-xxe": Attack(doctype_xxe, "soap:Client.ForbiddenXml"),
    "billion-laughs": Attack(billion_laughs, "soap:Client.ForbiddenXml"),
    "comment-inside-subscriber-code": Attack(
        comment_inside_subscriber_code, "soap:Client.ForbiddenXml"
    ),
    "processing-instruction-in-body": Attack(
        processing_instruction_in_body, "soap:Client.ForbiddenXml"
    ),
    "absurd-nesting": Attack(absurd_nesting, "soap:Client.ForbiddenXml"),
    "invalid-utf8": Attack(invalid_utf8, "soap:Client.MalformedRequest"),
    "not-xml": Attack(not_xml, "soap:Client.MalformedRequest"),
    "oversized-body": Attack(oversized_body, "http:413"),
    "wrong-content-type": Attack(body_changed, "http:415", content_type="application/json"),
    "soap12-content-type": Attack(body_changed, "http:415", content_type="application/soap+xml"),
    "latin1-charset": Attack(body_changed, "http:415", content_type="text/xml; charset=iso-8859-1"),
}


def _fault_code(root: etree._Element) -> str:
    fault = root.find(f"{q(SOAP, 'Body')}/{q(SOAP, 'Fault')}")
    assert fault is not None
    text = fault.findtext("faultcode") or ""
    prefix, _, local = text.partition(":")
    namespace = fault.nsmap.get(prefix) or root.nsmap.get(prefix)
    label = {ns.WSSE: "wsse", SOAP: "soap"}[namespace]
    return f"{label}:{local}"


@pytest.fixture(scope="module")
def response_verifier(trust) -> WsseVerifier:
    return WsseVerifier(trust, None)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_refused(name: str, keys: Keys, live_server, portal, response_verifier) -> None:
    attack = ATTACKS[name]
    payload = attack.build(keys)
    headers = {**HEADERS, "Content-Type": attack.content_type}
    response = requests.post(live_server.url, data=payload, headers=headers, timeout=10)

    kind, _, code = attack.expected.partition(":")
    if kind == "http":
        assert response.status_code == int(code)
    else:
        assert response.status_code == 500
        root = etree.fromstring(response.content)
        # Faults are signed by the service too.
        verified = response_verifier.verify(root)
        assert verified.signer.subject.startswith("CN=billing-statement")
        assert _fault_code(root) == attack.expected
        faultstring = root.findtext(f".//{q(SOAP, 'Fault')}/faultstring")
        assert faultstring and "Traceback" not in faultstring and "xmlsec" not in faultstring
    text = response.content.decode("utf-8", "replace")
    assert "Statement" not in text
    for personal in (bf.AZ_LAST, bf.AZ_FIRST, bf.AZ_ADDRESS, "Məmmədov"):
        assert personal not in text
    # The server still answers the next good request.
    assert portal.call(bf.FULL, bf.FIN).response.Status == "OK"


def test_replayed_message_is_refused(keys: Keys, live_server, response_verifier) -> None:
    payload = _request(keys).bytes()
    first = requests.post(live_server.url, data=payload, headers=HEADERS, timeout=10)
    assert first.status_code == 200
    assert bf.AZ_LAST.encode() in first.content
    again = requests.post(live_server.url, data=payload, headers=HEADERS, timeout=10)
    assert again.status_code == 500
    root = etree.fromstring(again.content)
    response_verifier.verify(root)
    assert _fault_code(root) == "wsse:InvalidSecurity"
    assert bf.AZ_LAST.encode() not in again.content


@pytest.mark.parametrize(
    ("signer", "options"),
    [
        ("portal", {"signature_method": xmlsec.Transform.RSA_SHA512}),
        ("portal", {"digest_method": xmlsec.Transform.SHA512}),
        ("ec", {"signature_method": xmlsec.Transform.ECDSA_SHA256}),
        ("portal", {"transforms": NODE_SOAP_TRANSFORMS}),
    ],
    ids=["rsa-sha512", "sha512-digest", "ecdsa-sha256", "node-soap-enveloped-then-exc-c14n"],
)
def test_allowed_algorithms_are_accepted(
    signer: str, options: dict[str, object], keys: Keys, settings, serve_app
) -> None:
    # The portal's RSA key and an EC key of the same CA, both registered callers.
    registered = " ".join(fingerprint(pair.certificate) for pair in (keys.portal, keys.ec))
    server = serve_app(create_app(dataclasses.replace(settings, trusted_clients=registered)))
    payload = forge(getattr(keys, signer), **options).bytes()  # type: ignore[arg-type]
    response = requests.post(server.url, data=payload, headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    assert (
        etree.fromstring(response.content).findtext(
            ".//{http://azersu.az/egov/billing-statement/v1}Status"
        )
        == "OK"
    )


def test_handlers_see_only_the_signed_body(
    keys: Keys, live_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unsigned header block rides along with a good signature: the handler never gets it.

    The server runs in this process: the operation it calls is wrapped to
    record what it is given -- the signed Body's operation element, and no
    header block.
    """
    given: list[tuple[bytes, object]] = []
    operation = handler.StatementOperation.__call__

    def recording(self, element, request):  # type: ignore[no-untyped-def]
        given.append((_c14n(element), request.xroad))
        return operation(self, element, request)

    monkeypatch.setattr(handler.StatementOperation, "__call__", recording)
    f = _request(keys)
    etree.SubElement(f.header, "{urn:evil}Injected").text = "should never be read"
    response = requests.post(live_server.url, data=f.bytes(), headers=HEADERS, timeout=10)
    assert response.status_code == 200
    assert given == [(_c14n(f.body[0]), None)]
    assert b"should never be read" not in given[0][0]


# --- the verifier's reasons and policy, without the server ----------------------------------------


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


@pytest.mark.parametrize(
    "name", [name for name, attack in ATTACKS.items() if not attack.expected.startswith("http")]
)
def test_each_attack_is_refused_for_its_own_reason(
    name: str, keys: Keys, trust: TrustStore
) -> None:
    """The fault code on the wire is shared by many rules; the reason tells which one refused."""
    attack = ATTACKS[name]
    kind, _, code = attack.expected.partition(":")
    with pytest.raises(ServiceFault) as raised:
        WsseVerifier(trust, None).verify(parse_request(attack.build(keys)))
    assert raised.value.faultcode == code
    if kind == "soap":  # refused by the parser, before any signature is looked at
        assert attack.reason is None and not isinstance(raised.value, SecurityFault)
    else:
        assert isinstance(raised.value, SecurityFault)
        assert raised.value.reason == attack.reason


def test_node_soaps_enveloped_then_exc_c14n_references_are_verified(
    keys: Keys, trust: TrustStore
) -> None:
    f = _request(keys, transforms=NODE_SOAP_TRANSFORMS)
    chains = {
        tuple(t.get("Algorithm") for t in reference.iter(q(ns.DS, "Transform")))
        for reference in f.signature.iter(q(ns.DS, "Reference"))
    }
    assert chains == {ENVELOPED_CHAIN}
    verified = WsseVerifier(trust, None).verify(parse_request(f.bytes()))
    assert _c14n(verified.body) == _c14n(f.body)
    # The Body was digested as it is: the enveloped transform changed nothing.
    f.body[0][0].text = bf.GAPS
    with pytest.raises(FailedCheck) as raised:
        WsseVerifier(trust, None).verify(parse_request(f.bytes()))
    assert raised.value.reason == Reason.REFERENCE_DIGEST


@pytest.mark.parametrize(
    ("policy", "options", "fault", "reason"),
    [
        pytest.param(
            dataclasses.replace(WSSE_POLICY, min_rsa_bits=4096),
            {},
            FailedAuthentication,
            Reason.WEAK_KEY,
            id="rsa-2048-under-4096",
        ),
        pytest.param(
            dataclasses.replace(WSSE_POLICY, transform_chains=frozenset({EXCLUSIVE_C14N_CHAIN})),
            {"transforms": NODE_SOAP_TRANSFORMS},
            UnsupportedAlgorithm,
            Reason.TRANSFORM_ALGORITHM,
            id="no-enveloped-chain",
        ),
        pytest.param(
            dataclasses.replace(WSSE_POLICY, signature_methods=frozenset({ns.RSA_SHA512})),
            {},
            UnsupportedAlgorithm,
            Reason.SIGNATURE_METHOD,
            id="rsa-sha512-only",
        ),
        pytest.param(
            dataclasses.replace(WSSE_POLICY, digest_methods=frozenset({ns.SHA512})),
            {},
            UnsupportedAlgorithm,
            Reason.DIGEST_METHOD,
            id="sha512-digests-only",
        ),
        pytest.param(
            dataclasses.replace(WSSE_POLICY, max_references=1),
            {},
            InvalidSecurity,
            Reason.REFERENCE_COUNT,
            id="one-reference",
        ),
    ],
)
def test_the_verifier_enforces_the_policy_it_is_given(
    policy: VerificationPolicy,
    options: dict[str, object],
    fault: type[SecurityFault],
    reason: Reason,
    keys: Keys,
    trust: TrustStore,
) -> None:
    payload = _request(keys, **options).bytes()
    WsseVerifier(trust, None).verify(parse_request(payload))  # the service's own policy accepts it
    with pytest.raises(fault) as raised:
        WsseVerifier(trust, None, policy=policy).verify(parse_request(payload))
    assert raised.value.reason == reason


def test_time_limits_given_to_the_verifier_replace_the_policys(
    keys: Keys, trust: TrustStore
) -> None:
    payload = _request(keys, created=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)).bytes()
    WsseVerifier(trust, None).verify(parse_request(payload))  # 60 s old: within 300 s
    policy = dataclasses.replace(WSSE_POLICY, clock_skew_s=0, min_rsa_bits=1024)
    verifier = WsseVerifier(trust, None, max_age_s=10, policy=policy)
    assert (verifier.policy.max_age_s, verifier.policy.clock_skew_s) == (10, 0)
    assert verifier.policy.min_rsa_bits == 1024  # the rest of the policy is kept
    with pytest.raises(MessageExpired) as raised:
        verifier.verify(parse_request(payload))
    assert raised.value.reason == Reason.STALE


def test_a_replay_is_refused_for_its_reason(keys: Keys, trust: TrustStore, tmp_path: Path) -> None:
    replay = SqlReplayCache.from_url(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    verifier = WsseVerifier(trust, replay)
    payload = _request(keys).bytes()
    verifier.verify(parse_request(payload))
    with pytest.raises(InvalidSecurity) as raised:
        verifier.verify(parse_request(payload))
    assert raised.value.reason == Reason.REPLAY
    replay.close()
