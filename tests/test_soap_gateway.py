"""The gateway's own rules: signed answers or a Server fault, HTTP refusals, the WSDL."""

from __future__ import annotations

import dataclasses
import http.client

import pytest
import requests
from lxml import etree

from service.app import create_app
from service.signing import namespaces as ns
from service.signing.wsse import WsseVerifier
from service.wsdl.namespaces import TNS
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
