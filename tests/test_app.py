"""The HTTP front of the app: SOAP Faults, routes, the factory's checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import requests
from lxml import etree

from service.app import create_app
from service.errors import ConfigurationError
from service.namespaces import SOAP11_ENV, TNS
from tests import billing_fixtures as bf

HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetBillingStatement"'}


def envelope(body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP11_ENV}" xmlns:t="{TNS}"><s:Body>{body}</s:Body></s:Envelope>'
    ).encode()


def request_body(code: str = bf.FULL, fin: str = bf.FIN, extra: str = "") -> str:
    return (
        f"<t:GetBillingStatement><t:SubscriberCode>{code}</t:SubscriberCode>"
        f"<t:CitizenFin>{fin}</t:CitizenFin>{extra}</t:GetBillingStatement>"
    )


def fault_of(response: requests.Response) -> tuple[str, str]:
    root = etree.fromstring(response.content)
    fault = root.find(f".//{{{SOAP11_ENV}}}Fault")
    assert fault is not None, response.text
    code = fault.findtext("faultcode") or ""
    prefix, _, local = code.rpartition(":")
    assert fault.nsmap.get(prefix) == SOAP11_ENV  # a QName in the SOAP envelope namespace
    return local, fault.findtext("faultstring") or ""


def test_raw_request_gets_a_statement(live_server, sign) -> None:
    response = requests.post(
        live_server.url, data=sign(envelope(request_body())), headers=HEADERS, timeout=10
    )
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    assert root.findtext(f".//{{{TNS}}}Status") == "OK"
    assert "İsmayılzadə".encode() in response.content


def test_empty_subscriber_code_element_is_a_business_status(live_server, sign) -> None:
    body = (
        "<t:GetBillingStatement><t:SubscriberCode/>"
        f"<t:CitizenFin>{bf.FIN}</t:CitizenFin></t:GetBillingStatement>"
    )
    response = requests.post(
        live_server.url, data=sign(envelope(body)), headers=HEADERS, timeout=10
    )
    assert etree.fromstring(response.content).findtext(f".//{{{TNS}}}Status") == (
        "SUBSCRIBER_CODE_EMPTY"
    )


@pytest.mark.parametrize(
    ("payload", "faultcode"),
    [
        (b"this is not xml", "Client.MalformedRequest"),
        (envelope(request_body())[:-20], "Client.MalformedRequest"),
        (
            envelope(
                "<t:GetBillingStatement><t:CitizenFin>X</t:CitizenFin></t:GetBillingStatement>"
            ),
            "Client.SchemaValidation",
        ),
        (envelope(request_body(extra="<t:Language>fr</t:Language>")), "Client.SchemaValidation"),
        (envelope(request_body(extra="<t:Unexpected>1</t:Unexpected>")), "Client.SchemaValidation"),
        # In document/literal an unknown operation is an element the schema lacks.
        (envelope("<t:NoSuchOperation/>"), "Client.SchemaValidation"),
    ],
    ids=["not-xml", "truncated", "missing-code", "bad-language", "extra-element", "unknown-op"],
)
def test_bad_requests_get_stable_faults(live_server, sign, payload: bytes, faultcode: str) -> None:
    if faultcode == "Client.SchemaValidation":
        payload = sign(payload)  # well-formed and signed: it reaches Spyne's schema check
    response = requests.post(live_server.url, data=payload, headers=HEADERS, timeout=10)
    assert response.status_code == 500
    code, string = fault_of(response)
    assert code == faultcode
    assert "Traceback" not in response.text
    assert "lxml" not in string and "line" not in string  # plain, no parser details
    # The server still answers the next good request.
    good = requests.post(
        live_server.url, data=sign(envelope(request_body())), headers=HEADERS, timeout=10
    )
    assert etree.fromstring(good.content).findtext(f".//{{{TNS}}}Status") == "OK"


def test_billing_unavailable_is_a_server_fault(settings, serve_app, sign, tmp_path: Path) -> None:
    db = tmp_path / "billing.sqlite"
    bf.create_billing_db(f"sqlite:///{db}")
    server = serve_app(create_app(dataclasses.replace(settings, billing_url=f"sqlite:///{db}")))
    db.unlink()  # the database goes away under the running service
    db.write_bytes(b"garbage, not a database" * 100)
    response = requests.post(
        server.url, data=sign(envelope(request_body())), headers=HEADERS, timeout=10
    )
    code, string = fault_of(response)
    assert code == "Server.BillingUnavailable"
    assert "garbage" not in response.text and "sqlite" not in response.text.lower()
    assert string == "The billing database is unavailable; try again later"


def test_wsdl_and_routes(live_server) -> None:
    wsdl = requests.get(f"{live_server.url}?wsdl", timeout=10)
    assert wsdl.status_code == 200
    assert b"GetBillingStatement" in wsdl.content
    assert requests.get(f"{live_server.base_url}/healthz", timeout=10).text == "ok\n"
    assert requests.get(f"{live_server.base_url}/nothing-here", timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "AZERSU_BILLING_URL"),
        ("sqlite:///{tmp}/missing.sqlite", "init-demo"),
        ("sqlite://", "needs a file"),
        ("nosuchdialect://x/y", "AZERSU_BILLING_URL"),
    ],
)
def test_configuration_errors_name_the_setting(
    settings, tmp_path: Path, url: str, message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_app(dataclasses.replace(settings, billing_url=url.format(tmp=tmp_path)))
    assert message in str(raised.value)
    assert str(raised.value).startswith("AZERSU_BILLING_URL")


def test_the_service_never_writes_to_billing(settings) -> None:
    app = create_app(settings)
    try:
        with app.billing_engine.connect() as conn, pytest.raises(Exception) as raised:
            conn.exec_driver_sql("DELETE FROM subscriber")
        assert "readonly" in str(raised.value).lower()
    finally:
        app.close()
