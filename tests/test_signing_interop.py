"""Interoperability of the signatures with other implementations.

* The Statement's enveloped signature, cut out of a real response and saved as
  a file of its own, verifies with the ``xmlsec1`` command-line tool and with
  signxml -- for an RSA and an EC service key -- and a tampered copy does not.
* The response's WS-Security signature verifies with ``xmlsec1``.
* Statements signed by ``xmlsec1`` and by signxml (the enveloped-signature
  transform, then exclusive C14N, with or without a PrefixList) verify with
  our StatementVerifier, and a tampered copy fails on its digest.
* A request signed by zeep's own ``BinarySignature`` (RSA-SHA256, SHA-256,
  a Timestamp added first) is accepted by the service, and the answer
  verifies with our strict client; zeep's default algorithms and a request
  without a Timestamp are refused, each for its reason in the log.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree
from signxml import SignatureConfiguration, XMLSigner, XMLVerifier, methods
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidSignature
from zeep import Client
from zeep.wsse.signature import BinarySignature, Signature
from zeep.wsse.utils import WSU, get_security_header

from service import namespaces as ns
from service.app import create_app
from service.client import StatementClient
from service.errors import FailedCheck
from service.namespaces import OPERATION, SOAP11_ENV, TNS
from service.pki import IssuedPair, init_pki, issue, new_key
from service.signing.hardened_xml import parse_request
from service.signing.policy import ENVELOPED_CHAIN, Reason
from service.signing.statement_signature import StatementVerifier
from service.signing.trust import TrustStore
from tests import billing_fixtures as bf

STATEMENT_ID_NODE = f"{TNS}:Statement"  # xmlsec1 --id-attr takes <namespace-uri>:<node-name>


def t(name: str) -> str:
    """Return the Clark name of an element of the service's namespace."""
    return f"{{{TNS}}}{name}"


# --- helpers -------------------------------------------------------------------------------


def load_ca(pki: dict[str, Path]) -> IssuedPair:
    """Return the session's development CA (to issue more certificates)."""
    key = serialization.load_pem_private_key(pki["ca.key"].read_bytes(), None)
    cert = x509.load_pem_x509_certificate(pki["ca.pem"].read_bytes())
    return IssuedPair(key, cert)  # type: ignore[arg-type]


def tampered(data: bytes, xpath: str, new_text: str) -> bytes:
    """Return ``data`` with the text of the first element at ``xpath`` replaced."""
    root = etree.fromstring(data)
    found = root.xpath(xpath, namespaces={"tns": TNS, "wsu": ns.WSU, "soap": SOAP11_ENV})
    assert found, f"nothing at {xpath}"
    assert found[0].text != new_text
    found[0].text = new_text
    changed = etree.tostring(root, encoding="UTF-8", xml_declaration=data.startswith(b"<?xml"))
    assert changed != data
    return changed


def run_xmlsec1(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``xmlsec1 --verify`` with only same-document references enabled."""
    return subprocess.run(
        [tool, "--verify", "--enabled-reference-uris", "same-doc", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(params=["rsa", "ec"])
def saved_statement(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pki: dict[str, Path],
    portal: StatementClient,
    portal_identity,
    trust,
    settings,
    serve_app,
) -> tuple[str, bytes]:
    """Return (key kind, a Statement cut out of a real response as the portal saves it)."""
    if request.param == "rsa":
        client = portal
    else:
        pair = issue(
            load_ca(pki),
            "billing-statement.azersu.az (EC)",
            "e-xidmətlər",
            client=False,
            key=new_key("ec"),
        )
        (tmp_path / "ec.key").write_bytes(pair.key_pem())
        (tmp_path / "ec.pem").write_bytes(pair.cert_pem())
        app = create_app(
            dataclasses.replace(
                settings, sign_key=str(tmp_path / "ec.key"), sign_cert=str(tmp_path / "ec.pem")
            )
        )
        client = StatementClient(serve_app(app).url, portal_identity, trust)
    result = client.call(bf.FULL, bf.FIN)
    assert result.statement is not None
    data = etree.tostring(result.statement.statement, encoding="UTF-8")
    method = ns.RSA_SHA256 if request.param == "rsa" else ns.ECDSA_SHA256
    assert f'<ds:SignatureMethod Algorithm="{method}"/>'.encode() in data
    return request.param, data


#: The XPath of an element whose text is changed, and its new text.
STATEMENT_TAMPERING = [
    pytest.param("(//tns:Period/tns:InvoicedAmount)[1]", "1.00", id="amount"),
    pytest.param("//tns:Subscriber/tns:FirstName", "Gulsen", id="name"),
    pytest.param("//tns:Subscriber/tns:Address", "Sumqayıt şəhəri", id="address"),
    pytest.param("(//tns:Period/tns:Month)[1]", "4", id="month"),
    pytest.param("//tns:Totals/tns:PaidAmount", "0.00", id="totals"),
]


# --- the saved Statement and xmlsec1 ---------------------------------------------------------


def test_saved_statement_verifies_with_xmlsec1(
    xmlsec1: str, saved_statement: tuple[str, bytes], pki: dict[str, Path], tmp_path: Path
) -> None:
    _, data = saved_statement
    path = tmp_path / "statement.xml"
    path.write_bytes(data)
    result = run_xmlsec1(
        xmlsec1, "--trusted-pem", str(pki["ca.pem"]), "--id-attr:Id", STATEMENT_ID_NODE, str(path)
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SignedInfo References (ok/all): 1/1" in output


@pytest.mark.parametrize(("xpath", "new_text"), STATEMENT_TAMPERING)
def test_tampered_statement_fails_with_xmlsec1(
    xmlsec1: str,
    saved_statement: tuple[str, bytes],
    pki: dict[str, Path],
    tmp_path: Path,
    xpath: str,
    new_text: str,
) -> None:
    _, data = saved_statement
    path = tmp_path / "tampered.xml"
    path.write_bytes(tampered(data, xpath, new_text))
    result = run_xmlsec1(
        xmlsec1, "--trusted-pem", str(pki["ca.pem"]), "--id-attr:Id", STATEMENT_ID_NODE, str(path)
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "data and digest do not match" in output


def test_statement_fails_with_xmlsec1_under_another_ca(
    xmlsec1: str, saved_statement: tuple[str, bytes], tmp_path: Path
) -> None:
    _, data = saved_statement
    other = init_pki(tmp_path / "other-pki")
    path = tmp_path / "statement.xml"
    path.write_bytes(data)
    result = run_xmlsec1(
        xmlsec1, "--trusted-pem", str(other["ca.pem"]), "--id-attr:Id", STATEMENT_ID_NODE, str(path)
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    # Refused for the certificate, not for some other reason (a wrong option, a digest).
    assert "certificate verification failed" in output, output


# --- the saved Statement and signxml ----------------------------------------------------------

#: What the Statement's signature is expected to be: one reference, SHA-256, RSA or ECDSA.
SIGNXML_CONFIG = SignatureConfiguration(
    location="./",  # the ds:Signature is a child of the root (the Statement)
    expect_references=1,
    signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
)


def test_saved_statement_verifies_with_signxml(
    saved_statement: tuple[str, bytes], pki: dict[str, Path]
) -> None:
    kind, data = saved_statement
    result = XMLVerifier().verify(
        data, ca_pem_file=str(pki["ca.pem"]), expect_config=SIGNXML_CONFIG
    )
    assert not isinstance(result, list)
    signed = result.signed_xml
    assert signed is not None
    assert signed.tag == t("Statement")
    assert signed.findtext(f"{t('Subscriber')}/{t('LastName')}") == bf.AZ_LAST
    assert signed.findtext(f"{t('Subscriber')}/{t('FirstName')}") == bf.AZ_FIRST
    assert signed.findtext(f"{t('Subscriber')}/{t('Address')}") == bf.AZ_ADDRESS
    assert len(signed.findall(f"{t('Periods')}/{t('Period')}")) == len(bf.WINDOW)
    # The enveloped transform took the signature out of what was signed.
    assert signed.find(f"{{{ns.DS}}}Signature") is None
    # The key signxml verified with is the certificate's from the signature.
    certificate_text = etree.fromstring(data).findtext(f".//{{{ns.DS}}}X509Certificate")
    certificate = x509.load_der_x509_certificate(base64.b64decode(certificate_text or ""))
    expected_key = certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert result.signature_key == expected_key
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey) == (kind == "ec")


@pytest.mark.parametrize(("xpath", "new_text"), STATEMENT_TAMPERING)
def test_tampered_statement_fails_with_signxml(
    saved_statement: tuple[str, bytes], pki: dict[str, Path], xpath: str, new_text: str
) -> None:
    _, data = saved_statement
    with pytest.raises(InvalidDigest):
        XMLVerifier().verify(
            tampered(data, xpath, new_text),
            ca_pem_file=str(pki["ca.pem"]),
            expect_config=SIGNXML_CONFIG,
        )


def test_tampered_signature_value_fails_with_signxml(
    saved_statement: tuple[str, bytes], pki: dict[str, Path]
) -> None:
    _, data = saved_statement
    root = etree.fromstring(data)
    value = root.find(f".//{{{ns.DS}}}SignatureValue")
    assert value is not None
    raw = bytearray(base64.b64decode("".join((value.text or "").split())))
    raw[len(raw) // 2] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(InvalidSignature):
        XMLVerifier().verify(
            etree.tostring(root, encoding="UTF-8"),
            ca_pem_file=str(pki["ca.pem"]),
            expect_config=SIGNXML_CONFIG,
        )


def test_statement_fails_with_signxml_under_another_ca(
    saved_statement: tuple[str, bytes], tmp_path: Path
) -> None:
    _, data = saved_statement
    other = init_pki(tmp_path / "other-pki")
    with pytest.raises(InvalidCertificate):
        XMLVerifier().verify(data, ca_pem_file=str(other["ca.pem"]), expect_config=SIGNXML_CONFIG)


# --- Statements signed by xmlsec1 and signxml, verified by StatementVerifier -----------------

STATEMENT_XML = (
    f'<tns:Statement xmlns:tns="{TNS}" xmlns:unused="urn:unused" Id="Statement-AZS-1">'
    "<tns:StatementNumber>AZS-20260314-ABCDEF012345</tns:StatementNumber>"
    "<tns:Issuer>“Azərsu” Açıq Səhmdar Cəmiyyəti</tns:Issuer></tns:Statement>"
)
#: The same Statement inside an envelope that declares the namespace a PrefixList names.
WRAPPED_STATEMENT_XML = (
    '<w:Wrapper xmlns:w="urn:wrapper" xmlns:unused="urn:unused">'
    + STATEMENT_XML.replace(' xmlns:unused="urn:unused"', "")
    + "</w:Wrapper>"
)


def statement_template(document: str, transforms: tuple[str, ...], prefix_list: str | None) -> str:
    """Return ``document`` with an empty enveloped Signature template in its Statement."""
    steps = ""
    for algorithm in transforms:
        inclusive = (
            f'<ec:InclusiveNamespaces xmlns:ec="{ns.EXC_C14N}" PrefixList="{prefix_list}"/>'
            if algorithm == ns.EXC_C14N and prefix_list is not None
            else ""
        )
        steps += f'<ds:Transform Algorithm="{algorithm}">{inclusive}</ds:Transform>'
    signature = (
        f'<ds:Signature xmlns:ds="{ns.DS}"><ds:SignedInfo>'
        f'<ds:CanonicalizationMethod Algorithm="{ns.EXC_C14N}"/>'
        f'<ds:SignatureMethod Algorithm="{ns.RSA_SHA256}"/>'
        '<ds:Reference URI="#Statement-AZS-1">'
        + (f"<ds:Transforms>{steps}</ds:Transforms>" if transforms else "")
        + f'<ds:DigestMethod Algorithm="{ns.SHA256}"/><ds:DigestValue/></ds:Reference>'
        "</ds:SignedInfo><ds:SignatureValue/>"
        "<ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature>"
    )
    return document.replace("</tns:Statement>", signature + "</tns:Statement>")


def sign_with_xmlsec1(tool: str, template: str, pki: dict[str, Path], folder: Path) -> bytes:
    """Return ``template`` signed by ``xmlsec1 --sign`` with the service's key and certificate."""
    source, signed = folder / "template.xml", folder / "signed.xml"
    source.write_text(template, encoding="utf-8")
    result = subprocess.run(
        [
            tool, "--sign",
            "--privkey-pem", f"{pki['service.key']},{pki['service.pem']}",
            "--id-attr:Id", STATEMENT_ID_NODE,
            "--output", str(signed), str(source),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    check = run_xmlsec1(
        tool, "--trusted-pem", str(pki["ca.pem"]), "--id-attr:Id", STATEMENT_ID_NODE, str(signed)
    )
    assert check.returncode == 0, check.stdout + check.stderr  # xmlsec1 accepts its own
    return signed.read_bytes()


def _statement_in(data: bytes) -> etree._Element:
    root = parse_request(data)
    return root if root.tag == t("Statement") else root.find(t("Statement"))


def _tampered_statement(data: bytes) -> etree._Element:
    statement = _statement_in(data)
    statement.find(t("Issuer")).text = "Başqa şirkət"
    return statement


@pytest.mark.parametrize(
    ("document", "prefix_list"),
    [
        pytest.param(STATEMENT_XML, None, id="saved-statement"),
        pytest.param(STATEMENT_XML, "unused", id="saved-statement-prefix-list"),
        pytest.param(WRAPPED_STATEMENT_XML, "unused", id="in-an-envelope-prefix-list"),
    ],
)
def test_a_statement_signed_by_xmlsec1_verifies(
    xmlsec1: str,
    pki: dict[str, Path],
    trust: TrustStore,
    tmp_path: Path,
    document: str,
    prefix_list: str | None,
) -> None:
    data = sign_with_xmlsec1(
        xmlsec1, statement_template(document, ENVELOPED_CHAIN, prefix_list), pki, tmp_path
    )
    verified = StatementVerifier(trust).verify(_statement_in(data))
    assert verified.statement_number == "AZS-20260314-ABCDEF012345"
    assert verified.signer.subject.startswith("CN=billing-statement.azersu.az")
    with pytest.raises(FailedCheck) as raised:
        StatementVerifier(trust).verify(_tampered_statement(data))
    assert raised.value.reason == Reason.REFERENCE_DIGEST


def test_a_statement_signed_by_signxml_verifies(pki: dict[str, Path], trust: TrustStore) -> None:
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(
        etree.fromstring(STATEMENT_XML.encode()),
        key=pki["service.key"].read_bytes(),
        cert=pki["service.pem"].read_text(),
        reference_uri="#Statement-AZS-1",
    )
    data = etree.tostring(signed, encoding="UTF-8")
    chain = [e.get("Algorithm") for e in signed.iter(f"{{{ns.DS}}}Transform")]
    assert tuple(chain) == ENVELOPED_CHAIN
    verified = StatementVerifier(trust).verify(_statement_in(data))
    assert verified.statement_number == "AZS-20260314-ABCDEF012345"
    with pytest.raises(FailedCheck) as raised:
        StatementVerifier(trust).verify(_tampered_statement(data))
    assert raised.value.reason == Reason.REFERENCE_DIGEST


# --- the whole response and xmlsec1 ----------------------------------------------------------

ENVELOPE_TAMPERING = [
    pytest.param("(//tns:Period/tns:InvoicedAmount)[1]", "1.00", id="amount-in-body"),
    pytest.param("//wsu:Timestamp/wsu:Expires", "2099-01-01T00:00:00.000Z", id="expires"),
    pytest.param("//tns:Status", "NOT_RESIDENTIAL", id="status"),
]


def verify_envelope_with_xmlsec1(
    tool: str, raw: bytes, pki: dict[str, Path], folder: Path
) -> subprocess.CompletedProcess[str]:
    """Verify the response's WS-Security signature with xmlsec1.

    xmlsec1 does not understand a KeyInfo that points through a
    wsse:SecurityTokenReference at a BinarySecurityToken, so the token's
    certificate is given as the key (``--pubkey-cert-pem``); that the token
    chains to the CA is checked here with cryptography.  The referenced IDs
    are ``wsu:Id`` attributes: xmlsec1's ``--id-attr:Id`` matches an attribute by
    its local name, so it registers the namespaced ``wsu:Id`` of Body and
    Timestamp.  The first ds:Signature of the document (the header's) is the
    one verified; the Statement's own signature comes later, in the Body.
    """
    root = etree.fromstring(raw)
    token = root.find(f".//{{{ns.WSSE}}}BinarySecurityToken")
    assert token is not None
    certificate = x509.load_der_x509_certificate(base64.b64decode("".join(token.text.split())))
    ca = x509.load_pem_x509_certificate(pki["ca.pem"].read_bytes())
    certificate.verify_directly_issued_by(ca)
    token_pem = folder / "token.pem"
    token_pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    response = folder / "response.xml"
    response.write_bytes(raw)
    return run_xmlsec1(
        tool,
        "--pubkey-cert-pem", str(token_pem),
        "--id-attr:Id", f"{SOAP11_ENV}:Body",
        "--id-attr:Id", f"{ns.WSU}:Timestamp",
        str(response),
    )  # fmt: skip


def test_response_wsse_signature_verifies_with_xmlsec1(
    xmlsec1: str, portal: StatementClient, pki: dict[str, Path], tmp_path: Path
) -> None:
    raw = portal.call(bf.FULL, bf.FIN).raw_xml
    result = verify_envelope_with_xmlsec1(xmlsec1, raw, pki, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SignedInfo References (ok/all): 2/2" in output  # Body and Timestamp


@pytest.mark.parametrize(("xpath", "new_text"), ENVELOPE_TAMPERING)
def test_tampered_response_fails_with_xmlsec1(
    xmlsec1: str,
    portal: StatementClient,
    pki: dict[str, Path],
    tmp_path: Path,
    xpath: str,
    new_text: str,
) -> None:
    raw = tampered(portal.call(bf.FULL, bf.FIN).raw_xml, xpath, new_text)
    result = verify_envelope_with_xmlsec1(xmlsec1, raw, pki, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "data and digest do not match" in output


# --- a request signed by zeep's own BinarySignature ------------------------------------------


class TimestampAdder:
    """A zeep wsse step that adds wsse:Security/wsu:Timestamp (Created, Expires).

    zeep's BinarySignature signs the wsu:Timestamp when one is present but
    never adds it; the service requires a signed Timestamp.
    """

    def __init__(self, lifetime: dt.timedelta = dt.timedelta(minutes=5)) -> None:
        self.lifetime = lifetime

    def apply(self, envelope: etree._Element, headers: dict) -> tuple[etree._Element, dict]:
        security = get_security_header(envelope)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        security.append(
            WSU.Timestamp(
                WSU.Created(now.strftime("%Y-%m-%dT%H:%M:%SZ")),
                WSU.Expires((now + self.lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")),
            )
        )
        return envelope, headers

    def verify(self, envelope: etree._Element) -> etree._Element:
        return envelope


def zeep_client(
    url: str,
    pki: dict[str, Path],
    *,
    timestamp: bool,
    kind: type[Signature] = BinarySignature,
    **signature: object,
) -> tuple[Client, Any]:
    """Return a plain zeep client that signs with zeep's own BinarySignature (or ``kind``).

    The responses are never handed to zeep's ``wsse.verify``: every call uses
    ``raw_response=True`` and the raw bytes are verified by
    ``StatementClient.verify_response``.  zeep's BinarySignature.verify would
    check the answer with the key it signs with -- the PORTAL's certificate,
    not the service's -- and does not insist that the Body is signed; and
    zeep 4.3.3 calls ``client.wsse.verify(doc)`` on the wsse list itself,
    which has no ``verify``.
    """
    steps: list[object] = [TimestampAdder()] if timestamp else []
    steps.append(kind(str(pki["portal.key"]), str(pki["portal.pem"]), **signature))
    client = Client(url + "?wsdl", wsse=steps)
    # Post to the server under test, not to the address its WSDL publishes.
    (binding,) = client.wsdl.bindings
    return client, client.create_service(binding, url)


def call_raw(zeep: tuple[Client, Any]) -> requests.Response:
    client, service = zeep
    with client.settings(raw_response=True):
        return getattr(service, OPERATION)(SubscriberCode=bf.FULL, CitizenFin=bf.FIN)


RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256 = {
    "signature_method": xmlsec.Transform.RSA_SHA256,
    "digest_method": xmlsec.Transform.SHA256,
}


def test_zeep_binary_signature_request_is_accepted(
    live_server, portal: StatementClient, pki: dict[str, Path]
) -> None:
    http = call_raw(zeep_client(live_server.url, pki, timestamp=True, **SHA256))
    assert http.status_code == 200, http.text
    root = etree.fromstring(http.content)
    assert root.findtext(f".//{t('Status')}") == "OK"
    assert bf.AZ_LAST.encode() in http.content

    # The answer to zeep's request verifies with our strict client.
    envelope, statement = portal.verify_response(http.content)
    assert "billing-statement.azersu.az" in envelope.signer.subject
    assert statement is not None
    assert statement.statement.findtext(f"{t('Subscriber')}/{t('LastName')}") == bf.AZ_LAST
    assert statement.statement_number.startswith("AZS-")


def fault_code(http: requests.Response) -> str:
    root = etree.fromstring(http.content)
    code = root.findtext(f".//{{{SOAP11_ENV}}}Fault/faultcode") or ""
    return code.rpartition(":")[2]


#: zeep settings the policy refuses: (a Timestamp added, BinarySignature's options, the fault
#: code, the logged reason and detail).
ZEEP_REFUSALS = [
    # zeep's defaults are RSA-SHA1 and SHA-1: the SignatureMethod is checked first.
    pytest.param(
        True, {}, "UnsupportedAlgorithm",
        f"(signature_method): signature method '{RSA_SHA1}' is not allowed",
        id="zeep-defaults",
    ),
    pytest.param(
        True, {"signature_method": xmlsec.Transform.RSA_SHA256}, "UnsupportedAlgorithm",
        f"(digest_method): digest method '{SHA1}' is not allowed",
        id="zeep-default-digest",
    ),
    # BinarySignature adds no Timestamp: without one nothing bounds the message's age.
    pytest.param(
        False, SHA256, "InvalidSecurity",
        "(structure): expected exactly one wsu:Timestamp, found 0",
        id="no-timestamp",
    ),
    # zeep's Signature, not BinarySignature: IssuerSerial and the certificate in one X509Data.
    pytest.param(
        True, {**SHA256, "kind": Signature}, "InvalidSecurity",
        "(token): X509Data must hold one X509IssuerSerial",
        id="zeep-signature-not-binary",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("timestamp", "signature", "faultcode", "reason"), ZEEP_REFUSALS)
def test_zeep_requests_the_service_refuses(
    live_server,
    portal: StatementClient,
    pki: dict[str, Path],
    caplog: pytest.LogCaptureFixture,
    timestamp: bool,
    signature: dict[str, object],
    faultcode: str,
    reason: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="service.gateway"):
        http = call_raw(zeep_client(live_server.url, pki, timestamp=timestamp, **signature))
    assert http.status_code == 500
    assert fault_code(http) == faultcode
    logged = [m for m in caplog.messages if m.startswith("security fault ")]
    assert logged == [f"security fault {faultcode} {reason}"]
    assert bf.AZ_LAST.encode() not in http.content
    # Even the refusal is signed by the service.
    envelope, statement = portal.verify_response(http.content)
    assert statement is None
    assert "billing-statement.azersu.az" in envelope.signer.subject


def test_replayed_zeep_request_is_refused(live_server, pki: dict[str, Path]) -> None:
    client, service = zeep_client(live_server.url, pki, timestamp=True, **SHA256)
    # create_message runs the wsse steps: the envelope is timestamped and signed once.
    envelope = client.create_message(service, OPERATION, SubscriberCode=bf.FULL, CitizenFin=bf.FIN)
    data = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    assert data.count(b"<wsu:Timestamp") == 1

    def post() -> requests.Response:
        return requests.post(
            live_server.url,
            data=data,
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{OPERATION}"'},
            timeout=10,
        )

    first, second = post(), post()
    assert first.status_code == 200, first.text
    assert second.status_code == 500
    assert fault_code(second) == "InvalidSecurity"


# --- a request signed by the xmlsec1 command line --------------------------------------------

XMLSEC1_TEMPLATE = Path(__file__).parent / "interop" / "xmlsec1" / "request-template.xml"


def xs_time(moment: dt.datetime) -> str:
    """Return an xs:dateTime in UTC with milliseconds, as WS-Security callers write it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sign_request_with_xmlsec1(
    tool: str, pki: dict[str, Path], folder: Path, *, lifetime: dt.timedelta, code: str = bf.FULL
) -> bytes:
    """Fill in the committed template (Timestamp, token, request) and sign it with xmlsec1."""
    tree = etree.parse(str(XMLSEC1_TEMPLATE))
    now = dt.datetime.now(dt.UTC)
    tree.find(f".//{{{ns.WSU}}}Created").text = xs_time(now)
    tree.find(f".//{{{ns.WSU}}}Expires").text = xs_time(now + lifetime)
    certificate = x509.load_pem_x509_certificate(pki["portal.pem"].read_bytes())
    tree.find(f".//{{{ns.WSSE}}}BinarySecurityToken").text = base64.b64encode(
        certificate.public_bytes(serialization.Encoding.DER)
    ).decode()
    tree.find(f".//{t('SubscriberCode')}").text = code
    tree.find(f".//{t('CitizenFin')}").text = bf.FIN
    filled, signed = folder / "filled-in.xml", folder / "request.xml"
    tree.write(str(filled), xml_declaration=True, encoding="UTF-8")
    result = subprocess.run(
        [
            tool, "--sign",
            "--privkey-pem", str(pki["portal.key"]),
            "--id-attr:Id", f"{SOAP11_ENV}:Body",
            "--id-attr:Id", f"{ns.WSU}:Timestamp",
            "--output", str(signed), str(filled),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return signed.read_bytes()


def post_request(url: str, data: bytes) -> requests.Response:
    return requests.post(
        url,
        data=data,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{OPERATION}"'},
        timeout=10,
    )


def test_a_request_signed_by_xmlsec1_is_accepted(
    xmlsec1: str, live_server, portal: StatementClient, pki: dict[str, Path], tmp_path: Path
) -> None:
    data = sign_request_with_xmlsec1(xmlsec1, pki, tmp_path, lifetime=dt.timedelta(minutes=5))
    signed = etree.fromstring(data)
    # What xmlsec1 filled in: both digests and the signature value; the rest is the template's.
    assert all(v.text for v in signed.iter(f"{{{ns.DS}}}DigestValue"))
    assert [r.get("URI") for r in signed.iter(f"{{{ns.DS}}}Reference")] == ["#TS-1", "#Body-1"]
    before = len(live_server.app.audit.search(code=bf.FULL, limit=1000))

    http = post_request(live_server.url, data)
    assert http.status_code == 200, http.text
    envelope, statement = portal.verify_response(http.content)
    assert envelope.body.findtext(f".//{t('Status')}") == "OK"
    assert statement is not None
    assert statement.statement.findtext(f"{t('Subscriber')}/{t('LastName')}") == bf.AZ_LAST
    records = live_server.app.audit.search(code=bf.FULL, limit=1000)
    assert len(records) == before + 1
    assert records[0].outcome == "OK"


def test_a_request_signed_by_xmlsec1_is_refused_when_tampered(
    xmlsec1: str, live_server, pki: dict[str, Path], tmp_path: Path, caplog
) -> None:
    data = sign_request_with_xmlsec1(xmlsec1, pki, tmp_path, lifetime=dt.timedelta(minutes=5))
    http = post_request(live_server.url, tampered(data, "//tns:SubscriberCode", bf.NEW))
    assert http.status_code == 500
    assert fault_code(http) == "FailedCheck"
    assert "security fault FailedCheck (reference_digest)" in caplog.text
