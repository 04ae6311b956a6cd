"""The published WSDL is the committed contract, and it says what the contract says."""

from __future__ import annotations

import signal
import time

import pytest
import requests
from lxml import etree

from service.namespaces import TNS
from service.wsdl.contract import SNAPSHOT, normalize_wsdl
from tests.gunicorn_process import ServedProcess, fixture_service_env

WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XS = "http://www.w3.org/2001/XMLSchema"
NS = {"wsdl": WSDL, "soap": SOAP, "xs": XS}


def _published(live_server) -> bytes:
    response = requests.get(f"{live_server.url}?wsdl", timeout=10)
    assert response.status_code == 200
    return response.content


def test_published_wsdl_equals_the_committed_snapshot(live_server) -> None:
    published = normalize_wsdl(_published(live_server))
    committed = SNAPSHOT.read_text(encoding="utf-8")
    assert published == committed, (
        "The published WSDL differs from service/wsdl/billing_statement.wsdl. If the contract "
        "change is deliberate, regenerate it: python -m service.wsdl.contract > "
        "service/wsdl/billing_statement.wsdl"
    )


def test_contract_names(live_server) -> None:
    root = etree.fromstring(_published(live_server))
    assert root.get("targetNamespace") == TNS
    assert root.xpath("wsdl:service/@name", namespaces=NS) == ["BillingStatementService"]
    binding = root.find("wsdl:binding", NS)
    assert binding.find("soap:binding", NS).get("style") == "document"
    assert (
        binding.find("soap:binding", NS).get("transport") == "http://schemas.xmlsoap.org/soap/http"
    )
    operations = binding.findall("wsdl:operation", NS)
    assert [op.get("name") for op in operations] == ["GetBillingStatement"]
    assert operations[0].find("soap:operation", NS).get("soapAction") == "GetBillingStatement"
    for body in operations[0].iterfind(".//soap:body", NS):
        assert body.get("use") == "literal"
    address = root.find("wsdl:service/wsdl:port/soap:address", NS).get("location")
    assert address == live_server.app.settings.resolved_public_url


def test_request_and_response_elements(live_server) -> None:
    root = etree.fromstring(_published(live_server))
    schema = root.find(f"wsdl:types/xs:schema[@targetNamespace='{TNS}']", NS)
    assert schema.get("elementFormDefault") == "qualified"

    def sequence(type_name: str) -> list[tuple[str, str]]:
        complex_type = schema.find(f"xs:complexType[@name='{type_name}']", NS)
        return [
            (el.get("name"), el.get("minOccurs", "1"))
            for el in complex_type.iterfind("xs:sequence/xs:element", NS)
        ]

    assert sequence("GetBillingStatement") == [
        ("SubscriberCode", "1"),
        ("CitizenFin", "0"),
        ("Language", "0"),
    ]
    assert sequence("GetBillingStatementResponse") == [
        ("Status", "1"),
        ("Message", "1"),
        ("Statement", "0"),
    ]
    statuses = schema.xpath(
        "xs:simpleType[@name='StatusCode']//xs:enumeration/@value", namespaces=NS
    )
    assert statuses == [
        "OK",
        "SUBSCRIBER_CODE_EMPTY",
        "SUBSCRIBER_CODE_INVALID",
        "SUBSCRIBER_NOT_FOUND",
        "NOT_RESIDENTIAL",
        "FIN_INVALID",
        "FIN_MISMATCH",
    ]
    assert [name for name, _ in sequence("Statement")] == [
        "StatementNumber",
        "IssuedAt",
        "Issuer",
        "Subscriber",
        "Periods",
        "Totals",
        "Currency",
    ]


def _address(wsdl: bytes) -> str:
    root = etree.fromstring(wsdl)
    return root.find("wsdl:service/wsdl:port/soap:address", NS).get("location")


HOSTILE_HOSTS = [
    "attacker.example:8443",
    "attacker.example",
    "127.0.0.1:8080@attacker.example",
    "[::1]:1",
    "a" * 300,
]


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_the_wsdl_address_never_comes_from_the_host_header(live_server, host: str) -> None:
    wsdl = requests.get(f"{live_server.url}?wsdl", headers={"Host": host}, timeout=10).content
    assert _address(wsdl) == live_server.app.settings.resolved_public_url
    assert b"attacker" not in wsdl


@pytest.mark.slow
def test_fresh_workers_publish_the_configured_address(tmp_path, pki, billing_db) -> None:
    """Hostile Host headers on the first WSDL requests of new workers, at start and after SIGHUP."""
    public = "https://billing-statement.azersu.az/soap"
    env = fixture_service_env(
        pki, billing_db, tmp_path, AZERSU_WORKERS="2", AZERSU_PUBLIC_URL=public
    )
    server = ServedProcess(env, tmp_path / "serve.log")
    try:
        for round_ in range(2):
            pids = set(server.worker_pids())
            # Fresh connections, so that both workers get their share of the poison.
            for i in range(8):
                poisoned = requests.get(
                    f"{server.url}?wsdl",
                    headers={"Host": f"attacker{i}.example:8443", "Connection": "close"},
                    timeout=10,
                )
                assert _address(poisoned.content) == public
            for _ in range(8):
                wsdl = requests.get(
                    f"{server.url}?wsdl", headers={"Connection": "close"}, timeout=10
                )
                assert _address(wsdl.content) == public
            if round_ == 0:
                server.signal(signal.SIGHUP)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and pids & set(server.worker_pids()):
                    time.sleep(0.2)
                assert not pids & set(server.worker_pids())  # all workers are new
    finally:
        server.stop()
