"""A zeep client for the service, as the e-gov.az portal would call it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from lxml import etree
from zeep import Client, Settings
from zeep.transports import Transport

from service.wsdl.namespaces import OPERATION


@dataclass(frozen=True)
class CallResult:
    """What the service answered: the parsed response and the raw XML."""

    response: Any
    raw_xml: bytes


def make_client(url: str, timeout_s: float = 10.0) -> Client:
    """Return a zeep client for the service at ``url`` (its ``/soap`` endpoint)."""
    session = requests.Session()
    transport = Transport(session=session, timeout=timeout_s, operation_timeout=timeout_s)
    # Strict parsing and no external resolution: the WSDL comes from the service.
    settings = Settings(strict=True, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True)
    return Client(f"{url}?wsdl", transport=transport, settings=settings)


def call_statement(
    url: str, code: str, fin: str | None, language: str | None = None, timeout_s: float = 10.0
) -> CallResult:
    """Call GetBillingStatement and return the parsed response and the raw XML."""
    client = make_client(url, timeout_s)
    kwargs: dict[str, Any] = {"SubscriberCode": code}
    if fin is not None:
        kwargs["CitizenFin"] = fin
    if language:
        kwargs["Language"] = language
    with client.settings(raw_response=True):
        http_response = getattr(client.service, OPERATION)(**kwargs)
    raw = http_response.content
    operation = client.service._binding._operations[OPERATION]
    response = client.service._binding.process_reply(client, operation, http_response)
    return CallResult(response=response, raw_xml=raw)


def pretty_xml(raw: bytes) -> str:
    """Return XML indented for reading."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    root = etree.fromstring(raw, parser)
    return etree.tostring(root, pretty_print=True, encoding="unicode")
