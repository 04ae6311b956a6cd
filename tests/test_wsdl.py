"""The published WSDL is the committed contract, and it says what the contract says."""

from __future__ import annotations

import requests
from lxml import etree

from service.wsdl.contract import SNAPSHOT, normalize_wsdl
from service.wsdl.namespaces import TNS

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
    assert address == live_server.url


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
