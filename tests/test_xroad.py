"""X-Road message protocol 4.0: headers, echo, rules, modes, citizen identity, TLS mode."""

from __future__ import annotations

import dataclasses
import uuid
from copy import deepcopy
from pathlib import Path

import pytest
import requests
from lxml import etree

from service import namespaces as ns
from service.app import create_app
from service.client import StatementClient
from service.errors import ConfigurationError
from service.namespaces import TNS
from service.settings import Settings
from service.signing.wsse import WsseVerifier
from service.xroad import XID, XRD, build_request_headers, canonical_blocks, header_blocks
from tests import billing_fixtures as bf
from tests.gunicorn_process import ServedProcess, fixture_service_env
from tests.test_app import HEADERS, envelope, request_body

SOAP = ns.SOAP11_ENV
CLIENT = "AZ/GOV/1400057421/portal"
SERVICE = "AZ/COM/9900015741/billing"


def xroad_headers(user_id: str | None = "AZ" + bf.FIN, client: str = CLIENT) -> list:
    return build_request_headers(client, SERVICE, str(uuid.uuid4()), user_id, issue="e-gov-42")


def with_headers(body: str, blocks: list) -> bytes:
    root = etree.fromstring(envelope(body))
    header = etree.Element(f"{{{SOAP}}}Header")
    for block in blocks:
        header.append(deepcopy(block))
    root.insert(0, header)
    return etree.tostring(root)


def post(server, payload: bytes) -> tuple[int, etree._Element]:
    response = requests.post(server.url, data=payload, headers=HEADERS, timeout=10)
    return response.status_code, etree.fromstring(response.content)


def echoed(root: etree._Element) -> list:
    return header_blocks(root.find(f"{{{SOAP}}}Header"))


@pytest.fixture
def make_server(settings, serve_app, tmp_path):
    def make(**overrides):
        app = create_app(
            dataclasses.replace(
                settings, audit_url=f"sqlite:///{tmp_path / 'audit.sqlite'}", **overrides
            )
        )
        return serve_app(app)

    return make


def test_full_headers_are_used_and_echoed_exactly(portal) -> None:
    sent = xroad_headers()
    result = portal.call(bf.FULL, None, "az", sent)  # the FIN comes from userId
    assert result.response.Status == "OK"
    assert canonical_blocks(result.xroad_echo) == canonical_blocks(sent)
    assert [etree.QName(b).localname for b in result.xroad_echo] == [
        "client",
        "service",
        "id",
        "userId",
        "issue",
        "protocolVersion",
    ]
    assert not any(etree.QName(b).localname == "requestHash" for b in result.xroad_echo)


def test_zeep_header_objects(live_server, portal_identity, trust) -> None:
    client = StatementClient(live_server.url, portal_identity, trust)
    zeep = client.zeep
    xrd_client = zeep.get_element(f"{{{XRD}}}client")
    xrd_service = zeep.get_element(f"{{{XRD}}}service")
    headers = {
        "client": xrd_client(
            xRoadInstance="AZ",
            memberClass="GOV",
            memberCode="1400057421",
            subsystemCode="portal",
            objectType="SUBSYSTEM",
        ),
        "service": xrd_service(
            xRoadInstance="AZ",
            memberClass="COM",
            memberCode="9900015741",
            subsystemCode="billing",
            serviceCode="GetBillingStatement",
            serviceVersion="v1",
            objectType="SERVICE",
        ),
        "id": str(uuid.uuid4()),
        "userId": "AZ" + bf.FIN,
        "protocolVersion": "4.0",
    }
    with zeep.settings(raw_response=True):
        http = client.service.GetBillingStatement(
            SubscriberCode=bf.FULL, CitizenFin=bf.FIN, _soapheaders=headers
        )
    verified, statement = client.verify_response(http.content)
    assert statement is not None
    names = [etree.QName(b).localname for b in verified.signed_headers]
    assert names == ["client", "service", "id", "userId", "protocolVersion"]
    assert verified.signed_headers[0].findtext(f"{{{XID}}}memberCode") == "1400057421"


def test_raw_xml_request_and_exact_echo(live_server, sign, trust) -> None:
    sent = xroad_headers()
    status, root = post(live_server, sign(with_headers(request_body(), sent)))
    assert status == 200
    WsseVerifier(trust, None, allow_body_signatures=True).verify(root)
    assert canonical_blocks(echoed(root)) == canonical_blocks(sent)
    assert root.findtext(f".//{{{TNS}}}Status") == "OK"


def _broken(change) -> list:
    blocks = xroad_headers()
    change(blocks)
    return blocks


def _set(name: str, value: str):
    def change(blocks: list) -> None:
        for element in (e for b in blocks for e in b.iter()):
            if etree.QName(element).localname == name:
                element.text = value

    return change


def _drop(name: str):
    def change(blocks: list) -> None:
        blocks[:] = [b for b in blocks if etree.QName(b).localname != name]

    return change


def _duplicate(name: str):
    def change(blocks: list) -> None:
        blocks.extend(deepcopy(b) for b in list(blocks) if etree.QName(b).localname == name)

    return change


def _unknown(blocks: list) -> None:
    extra = etree.Element(f"{{{XRD}}}somethingElse")
    extra.text = "x"
    blocks.append(extra)


def _object_type(value: str):
    def change(blocks: list) -> None:
        blocks[0].set(f"{{{XID}}}objectType", value)

    return change


@pytest.mark.parametrize(
    "change",
    [
        _set("protocolVersion", "3.1"),
        _set("memberCode", "14000/57421"),
        _set("memberCode", "1400:057421"),
        _set("subsystemCode", "portal%20"),
        _set("xRoadInstance", "AZƏ"),
        _set("memberClass", ""),
        _set("serviceCode", "GetSomethingElse"),
        _set("id", "a\tb"),
        _drop("client"),
        _drop("service"),
        _drop("id"),
        _drop("protocolVersion"),
        _duplicate("id"),
        _unknown,
        _object_type("MEMBER"),  # MEMBER with a subsystemCode
        _object_type("SERVICE"),
    ],
    ids=[
        "protocol-3.1",
        "slash",
        "colon",
        "percent",
        "non-latin",
        "empty-class",
        "service-code-is-not-the-operation",
        "control-character-in-id",
        "no-client",
        "no-service",
        "no-id",
        "no-protocol-version",
        "duplicate-id",
        "unknown-header",
        "member-with-subsystem",
        "client-typed-service",
    ],
)
def test_broken_headers_get_a_fault_that_carries_them(live_server, sign, trust, change) -> None:
    sent = _broken(change)
    status, root = post(live_server, sign(with_headers(request_body(), sent)))
    assert status == 500
    WsseVerifier(trust, None).verify(root)  # the Fault is signed, headers included
    assert root.findtext(f".//{{{SOAP}}}Fault/faultcode") == "soap11env:Client.InvalidXRoadHeader"
    assert canonical_blocks(echoed(root)) == canonical_blocks(sent)
    assert bf.AZ_LAST.encode() not in etree.tostring(root, encoding="UTF-8")


def test_unsigned_xroad_headers_are_refused(live_server, sign) -> None:
    signed = etree.fromstring(sign(envelope(request_body())))
    header = signed.find(f"{{{SOAP}}}Header")
    for position, block in enumerate(xroad_headers()):
        header.insert(position, block)  # added after signing
    status, root = post(live_server, etree.tostring(signed))
    assert status == 500
    assert root.findtext(f".//{{{SOAP}}}Fault/faultcode") == "wsse:InvalidSecurity"


@pytest.mark.parametrize(
    ("citizen_fin", "user_id", "status"),
    [
        (None, "AZ" + bf.FIN, "OK"),
        (None, "az" + bf.FIN.lower(), "OK"),
        (bf.FIN, "AZ" + bf.FIN, "OK"),
        (bf.FIN.lower(), "AZ" + bf.FIN, "OK"),
        (bf.FIN, "AZ7AB2C4D", "FIN_MISMATCH"),
        (bf.FIN, "EE38001085718", "FIN_MISMATCH"),
        (bf.FIN, None, "OK"),
        (None, "AZ5ZT3K9", "FIN_INVALID"),
        (None, "EE38001085718", "FIN_INVALID"),
        (None, None, "FIN_INVALID"),
        ("BAD", "AZ" + bf.FIN, "FIN_INVALID"),
    ],
)
def test_citizen_identity_from_user_id(
    portal, citizen_fin: str | None, user_id: str | None, status: str
) -> None:
    result = portal.call(bf.FULL, citizen_fin, "en", xroad_headers(user_id))
    assert result.response.Status == status
    if status == "FIN_MISMATCH":
        assert "does not match" in result.response.Message
        assert result.statement is None


def test_fin_mismatch_message_in_azerbaijani(portal) -> None:
    result = portal.call(bf.FULL, bf.FIN, None, xroad_headers("AZ7AB2C4D"))
    assert result.response.Status == "FIN_MISMATCH"
    assert "üst-üstə düşmür" in result.response.Message


def test_audit_keeps_the_xroad_client_service_and_id(make_server, portal_identity, trust) -> None:
    server = make_server()
    sent = xroad_headers()
    StatementClient(server.url, portal_identity, trust).call(bf.FULL, None, None, sent)
    [entry] = server.app.audit.search()
    assert entry.xroad_client == CLIENT
    assert entry.xroad_service == SERVICE + "/GetBillingStatement/v1"
    assert entry.xroad_message_id == sent[2].text
    assert entry.citizen_fin == bf.FIN


def test_mode_off_ignores_the_headers(make_server, sign) -> None:
    server = make_server(xroad_mode="off")
    sent = _broken(_set("protocolVersion", "3.1"))  # not even checked
    status, root = post(server, sign(with_headers(request_body(), sent)))
    assert status == 200
    assert echoed(root) == []


def test_mode_require_refuses_a_request_without_headers(make_server, sign) -> None:
    server = make_server(xroad_mode="require")
    status, root = post(server, sign(envelope(request_body())))
    assert status == 500
    assert root.findtext(f".//{{{SOAP}}}Fault/faultcode") == "soap11env:Client.XRoadHeadersRequired"
    status, root = post(server, sign(with_headers(request_body(), xroad_headers())))
    assert status == 200


def test_client_allowlist(make_server, sign) -> None:
    server = make_server(xroad_clients=f"AZ/GOV/1111111111/other {CLIENT}")
    assert post(server, sign(with_headers(request_body(), xroad_headers())))[0] == 200
    stranger = xroad_headers(client="AZ/GOV/2222222222/stranger")
    status, root = post(server, sign(with_headers(request_body(), stranger)))
    assert status == 500
    assert (
        root.findtext(f".//{{{SOAP}}}Fault/faultcode") == "soap11env:Client.XRoadClientNotAllowed"
    )
    assert canonical_blocks(echoed(root)) == canonical_blocks(stranger)


def test_settings_rules_for_modes(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="TLS client-certificate"):
        Settings(wsse_mode="off").validate()
    with pytest.raises(ConfigurationError) as raised:
        Settings(xroad_mode="sometimes").validate()
    assert raised.value.setting == "AZERSU_XROAD_MODE"
    with pytest.raises(ConfigurationError):
        create_app(Settings(xroad_clients="AZ/GOV"))


def test_wsdl_declares_the_headers_on_every_operation(live_server) -> None:
    wsdl = etree.fromstring(requests.get(f"{live_server.url}?wsdl", timeout=10).content)
    w = "http://schemas.xmlsoap.org/wsdl/"
    soap = "http://schemas.xmlsoap.org/wsdl/soap/"
    operations = wsdl.findall(f"{{{w}}}binding/{{{w}}}operation")
    assert operations
    for operation in operations:
        assert operation.findtext(f"{{{XRD}}}version") == "v1"
        for direction in ("input", "output"):
            parts = [
                h.get("part") for h in operation.iterfind(f"{{{w}}}{direction}/{{{soap}}}header")
            ]
            assert parts == ["client", "service", "id", "userId", "issue", "protocolVersion"]
    titles = wsdl.findall(f"{{{w}}}portType/{{{w}}}operation/{{{w}}}documentation/{{{XRD}}}title")
    assert {t.get("{http://www.w3.org/XML/1998/namespace}lang") for t in titles} == {
        "az",
        "en",
        "ru",
    }
    # The request wrapper is named as the serviceCode.
    assert (
        wsdl.find(".//{http://www.w3.org/2001/XMLSchema}element[@name='GetBillingStatement']")
        is not None
    )


def test_tls_client_certificate_mode(tmp_path: Path, pki, billing_db) -> None:
    env = fixture_service_env(
        pki,
        billing_db,
        tmp_path / "var",
        AZERSU_WSSE_MODE="off",
        AZERSU_XROAD_MODE="require",
        AZERSU_TLS_CERT=str(pki["service.pem"]),
        AZERSU_TLS_KEY=str(pki["service.key"]),
        AZERSU_TLS_CLIENT_CA=str(pki["ca.pem"]),
    )
    portal_cert = (str(pki["portal.pem"]), str(pki["portal.key"]))
    server = ServedProcess(env, tmp_path / "tls.log", scheme="https", client_cert=portal_cert)
    try:
        url = f"https://localhost:{server.port}/soap"
        unsigned = with_headers(request_body(code=bf.NEW), xroad_headers())
        response = requests.post(
            url,
            data=unsigned,
            headers=HEADERS,
            cert=(str(pki["portal.pem"]), str(pki["portal.key"])),
            verify=str(pki["ca.pem"]),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        root = etree.fromstring(response.content)
        assert root.findtext(f".//{{{TNS}}}Status") == "OK"
        # The answer and its Statement are signed in every mode.
        assert root.find(f".//{{{TNS}}}Statement/{{{ns.DS}}}Signature") is not None
        assert root.find(f"{{{SOAP}}}Header/{{{ns.WSSE}}}Security") is not None
        # Without a client certificate the TLS handshake fails: nothing is answered.
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.post(
                url, data=unsigned, headers=HEADERS, verify=str(pki["ca.pem"]), timeout=10
            )
    finally:
        server.stop()
