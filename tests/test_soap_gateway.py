"""The gateway's own rules: signed answers or a Server fault, HTTP refusals, the WSDL."""

from __future__ import annotations

import dataclasses
import http.client

import pytest
import requests
from lxml import etree

from service import namespaces as ns
from service.app import create_app
from service.namespaces import TNS
from service.signing.wsse import WsseVerifier
from tests import billing_fixtures as bf
from tests.test_app import HEADERS, envelope, request_body

SOAP = ns.SOAP11_ENV


def _fault(content: bytes) -> tuple[str, str]:
    root = etree.fromstring(content)
    fault = root.find(f".//{{{SOAP}}}Fault")
    assert fault is not None
    return fault.findtext("faultcode") or "", fault.findtext("faultstring") or ""


@pytest.fixture
def fresh_server(settings, serve_app):
    return serve_app(create_app(dataclasses.replace(settings)))


def test_statement_signing_failure_is_a_signed_server_fault(fresh_server, sign, trust) -> None:
    def broken(statement: etree._Element) -> None:
        raise RuntimeError("HSM unavailable")

    fresh_server.app.soap.statement_signer.sign = broken
    response = requests.post(
        fresh_server.url, data=sign(envelope(request_body())), headers=HEADERS, timeout=10
    )
    assert response.status_code == 500
    assert _fault(response.content) == (
        "soap11env:Server.SigningFailed",
        "The response could not be signed",
    )
    WsseVerifier(trust, None).verify(etree.fromstring(response.content))  # the fault is signed
    assert bf.AZ_LAST.encode() not in response.content
    assert b"Statement" not in response.content


def test_when_nothing_can_be_signed_the_fault_carries_no_data(fresh_server, sign) -> None:
    def broken(envelope: etree._Element) -> None:
        raise RuntimeError("key unusable")

    fresh_server.app.soap.wsse_signer.sign = broken
    response = requests.post(
        fresh_server.url, data=sign(envelope(request_body())), headers=HEADERS, timeout=10
    )
    assert response.status_code == 500
    assert _fault(response.content)[0] == "soap11env:Server.SigningFailed"
    assert bf.AZ_LAST.encode() not in response.content
    assert b"Security" not in response.content  # unsigned, and says so by having no header


def test_business_statuses_are_signed_too(live_server, sign, trust) -> None:
    response = requests.post(
        live_server.url, data=sign(envelope(request_body(code=""))), headers=HEADERS, timeout=10
    )
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    WsseVerifier(trust, None).verify(root)
    assert root.findtext(f".//{{{TNS}}}Status") == "SUBSCRIBER_CODE_EMPTY"


@pytest.mark.parametrize(("method", "status"), [("PUT", 405), ("DELETE", 405), ("PATCH", 405)])
def test_other_methods_are_refused(live_server, method: str, status: int) -> None:
    response = requests.request(method, live_server.url, data=b"<x/>", timeout=10)
    assert response.status_code == status


def test_content_length_over_the_limit_is_refused_unread(live_server) -> None:
    # Only a few bytes are sent: a server that tried to read the announced
    # body would wait until the timeout instead of answering 413.
    connection = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    try:
        connection.putrequest("POST", "/soap")
        connection.putheader("Content-Type", "text/xml; charset=utf-8")
        connection.putheader("Content-Length", str(10 * 1024 * 1024))
        connection.endheaders()
        connection.send(b"<x/>")
        response = connection.getresponse()
        assert response.status == 413
        assert b"too large" in response.read()
    finally:
        connection.close()


def test_wsdl_is_served_unsigned(live_server) -> None:
    response = requests.get(f"{live_server.url}?wsdl", timeout=10)
    assert response.status_code == 200
    assert b"Security" not in response.content


def _with_header(body: str, header: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP}" xmlns:t="{TNS}"><s:Header>{header}</s:Header>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


@pytest.mark.parametrize(
    ("name", "header", "answered"),
    [
        (
            "unknown block, mustUnderstand=1",
            '<x:Routing xmlns:x="urn:example:routing" s:mustUnderstand="1">a</x:Routing>',
            "soap11env:MustUnderstand",
        ),
        (
            "unknown block, mustUnderstand=true",
            '<x:Routing xmlns:x="urn:example:routing" s:mustUnderstand="true">a</x:Routing>',
            "soap11env:MustUnderstand",
        ),
        (
            "unknown block, mustUnderstand=0",
            '<x:Routing xmlns:x="urn:example:routing" s:mustUnderstand="0">a</x:Routing>',
            "OK",
        ),
        (
            "unknown block for another actor",
            '<x:Routing xmlns:x="urn:example:routing" s:mustUnderstand="1" '
            's:actor="urn:example:another-node">a</x:Routing>',
            "OK",
        ),
        ("unknown block, optional", '<x:Routing xmlns:x="urn:example:routing">a</x:Routing>', "OK"),
    ],
)
def test_must_understand_blocks_we_do_not_process_get_the_soap_fault(
    live_server, sign, trust, name: str, header: str, answered: str
) -> None:
    signed = sign(_with_header(request_body(), header))
    response = requests.post(live_server.url, data=signed, headers=HEADERS, timeout=10)
    root = etree.fromstring(response.content)
    WsseVerifier(trust, None, allow_body_signatures=True).verify(root)  # signed, either way
    if answered == "OK":
        assert response.status_code == 200
        assert root.findtext(f".//{{{TNS}}}Status") == "OK"
    else:
        assert response.status_code == 500
        assert _fault(response.content) == (answered, "A mandatory header block was not understood")
        assert bf.AZ_LAST.encode() not in response.content


def test_security_header_with_must_understand_is_processed(live_server, sign) -> None:
    signed = etree.fromstring(sign(envelope(request_body())))
    security = signed.find(f"{{{SOAP}}}Header/{{{ns.WSSE}}}Security")
    security.set(f"{{{SOAP}}}mustUnderstand", "1")  # outside what is signed, as WSS4J sets it
    response = requests.post(
        live_server.url, data=etree.tostring(signed), headers=HEADERS, timeout=10
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("count", [0, 2, 3])
def test_the_body_holds_exactly_one_operation(live_server, sign, trust, count: int) -> None:
    body = "".join(request_body(code) for code in [bf.FULL, bf.GAPS, bf.FULL][:count])
    response = requests.post(
        live_server.url, data=sign(envelope(body)), headers=HEADERS, timeout=10
    )
    assert response.status_code == 500
    assert _fault(response.content) == (
        "soap11env:Client.OneOperation",
        "The Body must hold exactly one operation element",
    )
    WsseVerifier(trust, None).verify(etree.fromstring(response.content))
    assert b"Statement" not in response.content
