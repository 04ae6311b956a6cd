"""X-Road message protocol 4.0: the headers of the e-gov.az service bus.

The e-gov.az government gateway is built on the X-Road principle; this
module makes the service a correct X-Road service provider (PR-MESS 4.0, a
SOAP 1.1 profile) while staying usable by callers that send no X-Road headers.

* Request headers (namespace ``xrd``): ``client``, ``service``, ``id``,
  ``userId``, ``issue``, ``protocolVersion`` (must be "4.0"), optionally
  ``centralService`` and ``repr:representedParty``.  Identifiers use the
  ``id`` namespace (``objectType``, ``xRoadInstance``, ``memberClass``,
  ``memberCode``, ``subsystemCode``, ``serviceCode``, ``serviceVersion``).
* Identifier values allow only the characters X-Road allows: letters A-Z and
  a-z, digits and ``'()+,-.=?``.
* The response copies every X-Road header field of the request, in the same
  order and with the same values; ``requestHash`` is neither echoed nor added
  (the provider's security server fills it in).
* A header that breaks the rules is the Fault ``Client.InvalidXRoadHeader``,
  which carries the request's X-Road headers.

Modes (``AZERSU_XROAD_MODE``): ``off`` ignores the headers, ``accept`` (the
default) uses and echoes them when present, ``require`` refuses a request
without valid headers.  ``AZERSU_XROAD_CLIENTS`` may allow-list clients.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from enum import StrEnum

from lxml import etree

from service.errors import ConfigurationError, ServiceFault
from service.namespaces import OPERATION, REPR, SERVICE_VERSION, XID, XRD

PROTOCOL_VERSION = "4.0"

_IDENTIFIER_VALUE = re.compile(r"[A-Za-z0-9'()+,\-.=?]{1,255}")
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]{1,255}")
_ECHOED = ("client", "service", "centralService", "id", "userId", "issue", "protocolVersion")


class XRoadMode(StrEnum):
    """How the service treats X-Road headers."""

    OFF = "off"
    ACCEPT = "accept"
    REQUIRE = "require"


class XRoadHeaderFault(ServiceFault):
    """An X-Road header breaks the protocol's rules; the Fault echoes the headers."""

    faultcode = "Client.InvalidXRoadHeader"
    faultstring = "The X-Road headers of the request are not valid"

    def __init__(self, detail: str, echo: Sequence[etree._Element] = ()) -> None:
        super().__init__(detail)
        self.echo = tuple(echo)


class XRoadHeadersRequired(XRoadHeaderFault):
    faultcode = "Client.XRoadHeadersRequired"
    faultstring = "This service requires X-Road headers"


class XRoadClientNotAllowed(XRoadHeaderFault):
    faultcode = "Client.XRoadClientNotAllowed"
    faultstring = "The X-Road client is not allowed to use this service"


@dataclass(frozen=True)
class XRoadIdentifier:
    """An X-Road member, subsystem or service identifier."""

    object_type: str
    instance: str
    member_class: str
    member_code: str
    subsystem_code: str | None = None
    service_code: str | None = None
    service_version: str | None = None

    @property
    def path(self) -> str:
        """Return ``INSTANCE/CLASS/CODE[/SUBSYSTEM][/SERVICE[/VERSION]]``."""
        parts = [self.instance, self.member_class, self.member_code]
        parts += [p for p in (self.subsystem_code, self.service_code, self.service_version) if p]
        return "/".join(parts)


@dataclass(frozen=True)
class XRoadHeaders:
    """The X-Road headers of a request, checked, and the blocks to echo."""

    client: XRoadIdentifier
    service: XRoadIdentifier
    message_id: str
    protocol_version: str
    user_id: str | None = None
    issue: str | None = None
    represented_party: str | None = None
    echo: tuple[etree._Element, ...] = field(default=(), repr=False)

    def citizen_fin(self) -> str | None:
        """Return the FIN of ``userId`` "AZ<FIN>", or None if userId isn't Azerbaijani."""
        if self.user_id and self.user_id.upper().startswith("AZ"):
            return self.user_id[2:]
        return None


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _text(element: etree._Element, what: str) -> str:
    if len(element):
        raise ValueError(f"{what} must hold text only")
    return element.text or ""


def parse_identifier(element: etree._Element, allowed_types: tuple[str, ...]) -> XRoadIdentifier:
    """Parse a client or service identifier; raise ValueError on any rule broken."""
    what = etree.QName(element).localname
    object_type = element.get(_q(XID, "objectType"))
    if object_type not in allowed_types:
        raise ValueError(f"{what}: objectType {object_type!r}")
    values: dict[str, str] = {}
    order = []
    for child in element:
        if not isinstance(child.tag, str):
            raise ValueError(f"{what}: comment or PI")
        qname = etree.QName(child)
        if qname.namespace != XID or qname.localname in values:
            raise ValueError(f"{what}: unexpected {child.tag}")
        value = _text(child, qname.localname)
        if not _IDENTIFIER_VALUE.fullmatch(value):
            raise ValueError(f"{what}/{qname.localname}: characters X-Road does not allow")
        values[qname.localname] = value
        order.append(qname.localname)
    if object_type == "SERVICE":
        expected = ["xRoadInstance", "memberClass", "memberCode", "subsystemCode", "serviceCode"]
        if "subsystemCode" not in values:
            expected.remove("subsystemCode")
        if "serviceVersion" in values:
            expected.append("serviceVersion")
    else:
        expected = ["xRoadInstance", "memberClass", "memberCode"]
        if object_type == "SUBSYSTEM":
            expected.append("subsystemCode")
    if order != expected:
        raise ValueError(f"{what}: elements {order}, expected {expected}")
    return XRoadIdentifier(
        object_type=str(object_type),
        instance=values["xRoadInstance"],
        member_class=values["memberClass"],
        member_code=values["memberCode"],
        subsystem_code=values.get("subsystemCode"),
        service_code=values.get("serviceCode"),
        service_version=values.get("serviceVersion"),
    )


def header_blocks(header: etree._Element | None) -> list[etree._Element]:
    """Return the X-Road header blocks (xrd and repr namespaces) of a SOAP Header."""
    if header is None:
        return []
    return [
        child
        for child in header
        if isinstance(child.tag, str) and etree.QName(child).namespace in (XRD, REPR)
    ]


def parse_headers(blocks: Sequence[etree._Element]) -> XRoadHeaders | None:
    """Check the X-Road header blocks; return None if there are none."""
    if not blocks:
        return None
    echo = [deepcopy(b) for b in blocks if etree.QName(b).localname != "requestHash"]
    try:
        return _parse(blocks, echo)
    except ValueError as exc:
        raise XRoadHeaderFault(str(exc), echo) from exc


def _parse(blocks: Sequence[etree._Element], echo: list[etree._Element]) -> XRoadHeaders:
    found: dict[str, etree._Element] = {}
    for block in blocks:
        qname = etree.QName(block)
        name = qname.localname
        known = (qname.namespace == XRD and name in (*_ECHOED, "requestHash")) or (
            qname.namespace == REPR and name == "representedParty"
        )
        if not known:
            raise ValueError(f"unknown X-Road header {block.tag}")
        if name in found:
            raise ValueError(f"header {name} given twice")
        found[name] = block
    for required in ("client", "service", "id", "protocolVersion"):
        if required not in found:
            raise ValueError(f"header {required} is missing")
    client = parse_identifier(found["client"], ("MEMBER", "SUBSYSTEM"))
    service = parse_identifier(found["service"], ("SERVICE",))
    if service.service_code != OPERATION:
        raise ValueError(f"serviceCode {service.service_code!r} is not {OPERATION}")
    version = _text(found["protocolVersion"], "protocolVersion").strip()
    if version != PROTOCOL_VERSION:
        raise ValueError(f"protocolVersion {version!r} is not {PROTOCOL_VERSION}")
    strings: dict[str, str | None] = {}
    for name in ("id", "userId", "issue"):
        if name in found:
            value = _text(found[name], name)
            if not _PRINTABLE.fullmatch(value):
                raise ValueError(f"{name} must be 1-255 printable characters")
            strings[name] = value
    party = None
    if "representedParty" in found:
        codes = [c for c in found["representedParty"] if isinstance(c.tag, str)]
        names = [etree.QName(c).localname for c in codes]
        if names not in (["partyCode"], ["partyClass", "partyCode"]):
            raise ValueError(f"representedParty: elements {names}")
        party = "/".join(_text(c, "representedParty") for c in codes)
        if not all(_IDENTIFIER_VALUE.fullmatch(part) for part in party.split("/")):
            raise ValueError("representedParty: characters X-Road does not allow")
    return XRoadHeaders(
        client=client,
        service=service,
        message_id=str(strings["id"]),
        protocol_version=version,
        user_id=strings.get("userId"),
        issue=strings.get("issue"),
        represented_party=party,
        echo=tuple(echo),
    )


def parse_client_allowlist(text: str) -> frozenset[str]:
    """Parse ``AZERSU_XROAD_CLIENTS``: INSTANCE/CLASS/CODE[/SUBSYSTEM], comma-separated."""
    paths = set()
    for raw in re.split(r"[,\s]+", text.strip()):
        if not raw:
            continue
        parts = raw.split("/")
        if len(parts) not in (3, 4) or not all(_IDENTIFIER_VALUE.fullmatch(p) for p in parts):
            raise ConfigurationError(
                "AZERSU_XROAD_CLIENTS", f"{raw!r} is not INSTANCE/CLASS/CODE[/SUBSYSTEM]"
            )
        paths.add(raw)
    return frozenset(paths)


@dataclass(frozen=True)
class XRoadPolicy:
    """The mode and the client allowlist, applied to each request."""

    mode: XRoadMode = XRoadMode.ACCEPT
    allowed_clients: frozenset[str] = frozenset()

    def check(self, header: etree._Element | None) -> XRoadHeaders | None:
        """Return the request's checked X-Road headers, None, or raise the Fault."""
        if self.mode is XRoadMode.OFF:
            return None
        headers = parse_headers(header_blocks(header))
        if headers is None:
            if self.mode is XRoadMode.REQUIRE:
                raise XRoadHeadersRequired("no X-Road headers")
            return None
        if self.allowed_clients and headers.client.path not in self.allowed_clients:
            raise XRoadClientNotAllowed(f"client {headers.client.path}", headers.echo)
        return headers


def build_identifier(
    tag: str, object_type: str, path: str, service_code: str | None = None
) -> etree._Element:
    """Build an identifier header from ``INSTANCE/CLASS/CODE[/SUBSYSTEM]`` (for callers)."""
    parts = path.split("/")
    if len(parts) not in (3, 4) or not all(_IDENTIFIER_VALUE.fullmatch(p) for p in parts):
        raise ValueError(f"{path!r} is not INSTANCE/CLASS/CODE[/SUBSYSTEM]")
    element = etree.Element(
        _q(XRD, tag), {_q(XID, "objectType"): object_type}, nsmap={"xrd": XRD, "id": XID}
    )
    names = ["xRoadInstance", "memberClass", "memberCode", "subsystemCode"]
    for name, value in zip(names, parts, strict=False):
        etree.SubElement(element, _q(XID, name)).text = value
    if service_code:
        etree.SubElement(element, _q(XID, "serviceCode")).text = service_code
        etree.SubElement(element, _q(XID, "serviceVersion")).text = SERVICE_VERSION
    return element


def build_request_headers(
    client_path: str,
    service_path: str,
    message_id: str,
    user_id: str | None = None,
    issue: str | None = None,
) -> list[etree._Element]:
    """Build the X-Road request header blocks, in the protocol's order."""
    client_type = "SUBSYSTEM" if client_path.count("/") == 3 else "MEMBER"
    blocks = [
        build_identifier("client", client_type, client_path),
        build_identifier("service", "SERVICE", service_path, OPERATION),
    ]
    for name, value in (
        ("id", message_id),
        ("userId", user_id),
        ("issue", issue),
        ("protocolVersion", PROTOCOL_VERSION),
    ):
        if value is not None:
            element = etree.Element(_q(XRD, name), nsmap={"xrd": XRD})
            element.text = value
            blocks.append(element)
    return blocks


_WSU_ID = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}Id"


def canonical_blocks(blocks: Sequence[etree._Element]) -> list[bytes]:
    """Return each header block canonicalized (exclusive C14N), without signature IDs.

    The wsu:Id that WS-Security puts on a signed block is plumbing, not an
    X-Road header value, so it is left out of the comparison.
    """
    result = []
    for block in blocks:
        copy = deepcopy(block)
        if _WSU_ID in copy.attrib:
            del copy.attrib[_WSU_ID]
        result.append(etree.tostring(copy, method="c14n", exclusive=True))
    return result


def echo_matches(sent: Sequence[etree._Element], received: Sequence[etree._Element]) -> bool:
    """Return whether a response echoes the request's X-Road headers exactly and in order."""
    expected = [b for b in sent if etree.QName(b).localname != "requestHash"]
    return canonical_blocks(expected) == canonical_blocks(received)
