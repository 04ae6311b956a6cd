"""Read a SoapUI project's signed call and sign its request as SoapUI would.

SoapUI cannot run on the test machines (a desktop Java application), so the
tests replay what it sends: the call's request with the project's properties
expanded, then its outgoing WS-Security configuration applied the way SoapUI
applies it -- entry by entry, each as Apache WSS4J 1.6 (SoapUI's engine)
builds it: a ``wsu:Timestamp`` of the configured time to live, then a
signature over the configured parts with the configured algorithms, the
certificate as a BinarySecurityToken, and WSS4J's ``InclusiveNamespaces``
prefix lists.  Every setting is read from the project; one the replay does
not implement is an error, never silently ignored, and an empty one takes
WSS4J's default (RSA-SHA1 and SHA-1: refused by the service), as in SoapUI.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from lxml import etree

from service import namespaces as ns
from tests.xmlsec_binding import xmlsec

CON = "http://eviware.com/soapui/config"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
WSU_ID = f"{{{ns.WSU}}}Id"
#: WSS4J's key identifier types, by SoapUI's number: only the direct reference is replayed.
BST_DIRECT_REFERENCE = 1
#: What WSS4J 1.6 uses when SoapUI leaves a setting at "<default>".
WSS4J_DEFAULTS = {
    "signatureAlgorithm": "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "digestAlgorithm": "http://www.w3.org/2000/09/xmldsig#sha1",
    "signatureCanonicalization": ns.EXC_C14N,
}
_PROPERTY = re.compile(r"\$\{#Project#([^}]*)\}")


class NotReplayed(Exception):
    """The project asks for something this replay does not implement."""


def _c(name: str) -> str:
    return f"{{{CON}}}{name}"


def _transform(href: str) -> object:
    """Return python-xmlsec's Transform for an algorithm URI."""
    for name in dir(xmlsec.Transform):
        candidate = getattr(xmlsec.Transform, name)
        if getattr(candidate, "href", None) == href:
            return candidate
    raise NotReplayed(f"no xmlsec transform for {href}")


@dataclass(frozen=True)
class SignaturePart:
    """One part WSS4J signs: an element by name and namespace."""

    name: str
    namespace: str


@dataclass(frozen=True)
class SignatureEntry:
    """A ``Signature`` entry of an outgoing WS-Security configuration."""

    crypto: str
    alias: str
    key_identifier_type: int
    signature_algorithm: str
    canonicalization: str
    digest_algorithm: str
    parts: tuple[SignaturePart, ...]


@dataclass(frozen=True)
class TimestampEntry:
    """A ``Timestamp`` entry: its time to live and whether it has milliseconds."""

    time_to_live_s: int
    milliseconds: bool


@dataclass(frozen=True)
class Crypto:
    """A keystore of the project: its file (relative to the project) and default alias."""

    source: str
    default_alias: str

    @property
    def label(self) -> str:
        """The name SoapUI's entries refer to it by: the file name."""
        return self.source.replace("\\", "/").rpartition("/")[2]


@dataclass(frozen=True)
class SignedCall:
    """A call of the project with everything needed to send it as SoapUI does."""

    name: str
    endpoint: str
    wsdl: str
    soap_action: str
    encoding: str
    request: str
    entries: tuple[TimestampEntry | SignatureEntry, ...]
    cryptos: dict[str, Crypto] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        """SoapUI's Content-Type for a SOAP 1.1 request."""
        return f"text/xml;charset={self.encoding}"


def _configuration_text(entry: etree._Element, name: str) -> str:
    configuration = entry.find(_c("configuration"))
    if configuration is None:
        return ""
    return (configuration.findtext(name) or "").strip()


def _signature_part(fragment: str) -> SignaturePart:
    """Parse one ``signaturePart`` (a StringToStringMap saved as an XML fragment)."""
    root = etree.fromstring(fragment.encode())
    values = {e.get("key"): e.get("value") or "" for e in root.iter(_c("entry"))}
    if values.get("id"):
        raise NotReplayed(f"a signature part by id ({values['id']!r})")
    if not values.get("name"):
        raise NotReplayed("a signature part without a name")
    return SignaturePart(values["name"], values.get("namespace", ""))


def _entry(entry: etree._Element) -> TimestampEntry | SignatureEntry:
    kind = entry.get("type")
    if kind == "Timestamp":
        return TimestampEntry(
            int(_configuration_text(entry, "timeToLive") or 0),
            _configuration_text(entry, "strictTimestamp") != "false",
        )
    if kind == "Signature":
        configuration = entry.find(_c("configuration"))
        assert configuration is not None
        settings = {
            name: _configuration_text(entry, name) or default
            for name, default in WSS4J_DEFAULTS.items()
        }
        return SignatureEntry(
            crypto=_configuration_text(entry, "crypto"),
            alias=entry.get("username") or "",
            # SoapUI reads 0 or nothing as WSS4J's default, IssuerSerial (2).
            key_identifier_type=int(_configuration_text(entry, "keyIdentifierType") or 0) or 2,
            signature_algorithm=settings["signatureAlgorithm"],
            canonicalization=settings["signatureCanonicalization"],
            digest_algorithm=settings["digestAlgorithm"],
            parts=tuple(
                _signature_part(part.text or "") for part in configuration.iter("signaturePart")
            ),
        )
    raise NotReplayed(f"a WS-Security entry of type {kind!r}")


def read_signed_call(project: Path, call_name: str, properties: dict[str, str]) -> SignedCall:
    """Return the call named ``call_name``, its request expanded with ``properties``.

    ``properties`` override the project's own, as SoapUI's ``-P`` option does.
    """
    root = etree.parse(str(project)).getroot()
    if root.tag != _c("soapui-project"):
        raise ValueError(f"{project} is not a SoapUI project")
    values = {
        p.findtext(_c("name")) or "": p.findtext(_c("value")) or ""
        for p in root.iterfind(f"{_c('properties')}/{_c('property')}")
    }
    values.update(properties)
    calls = [
        (interface, operation, call)
        for interface in root.iterfind(_c("interface"))
        for operation in interface.iterfind(_c("operation"))
        for call in operation.iterfind(_c("call"))
        if call.get("name") == call_name
    ]
    if len(calls) != 1:
        raise ValueError(f"{len(calls)} calls named {call_name!r} in {project}")
    interface, operation, call = calls[0]
    if interface.get(XSI_TYPE) != "con:WsdlInterface" or interface.get("soapVersion") != "1_1":
        raise NotReplayed("only a SOAP 1.1 WSDL interface")

    def expand(text: str) -> str:
        def value(match: re.Match[str]) -> str:
            if match.group(1) not in values:
                raise ValueError(f"no project property {match.group(1)!r}")
            return values[match.group(1)]

        return _PROPERTY.sub(value, text)

    container = root.find(_c("wssContainer"))
    outgoing_name = call.get("outgoingWss")
    entries: tuple[TimestampEntry | SignatureEntry, ...] = ()
    cryptos: dict[str, Crypto] = {}
    if outgoing_name:
        if container is None:
            raise ValueError(f"the call names outgoing WS-Security {outgoing_name!r}: none defined")
        outgoing = [
            o for o in container.iterfind(_c("outgoing")) if o.findtext(_c("name")) == outgoing_name
        ]
        if len(outgoing) != 1:
            raise ValueError(f"{len(outgoing)} outgoing WS-Security named {outgoing_name!r}")
        entries = tuple(_entry(e) for e in outgoing[0].iterfind(_c("entry")))
        for crypto in container.iterfind(_c("crypto")):
            item = Crypto(
                expand(crypto.findtext(_c("source")) or ""),
                crypto.findtext(_c("defaultAlias")) or "",
            )
            cryptos[item.label] = item
    return SignedCall(
        name=call_name,
        endpoint=expand(call.findtext(_c("endpoint")) or ""),
        wsdl=expand(interface.get("definition") or ""),
        soap_action=operation.get("action") or "",
        encoding=call.findtext(_c("encoding")) or "UTF-8",
        request=expand(call.findtext(_c("request")) or ""),
        entries=entries,
        cryptos=cryptos,
    )


# --- WSS4J's output ----------------------------------------------------------------------------


def _declared_prefixes(element: etree._Element) -> list[str]:
    """Return the namespace prefixes declared on ``element`` itself ('#default' for xmlns)."""
    parent = element.getparent()
    inherited = parent.nsmap if parent is not None else {}
    return [
        "#default" if prefix is None else prefix
        for prefix, uri in element.nsmap.items()
        if inherited.get(prefix) != uri
    ]


def inclusive_prefixes(element: etree._Element, exclude_visible: bool = True) -> list[str]:
    """WSS4J's ``getInclusivePrefixes``: the prefixes declared on the ancestors of ``element``.

    With ``exclude_visible``, less those ``element`` itself declares or uses
    (its own prefix and its attributes'), which exclusive C14N renders anyway.
    """
    result: list[str] = []
    for ancestor in element.iterancestors():
        result.extend(_declared_prefixes(ancestor))
    if exclude_visible:
        visible = set(_declared_prefixes(element))
        visible.add(element.prefix or "#default")
        for name in element.attrib:
            namespace = etree.QName(name).namespace
            if namespace:
                visible.add(_prefix_of(element, namespace))
        result = [prefix for prefix in result if prefix not in visible]
    return result


def _prefix_of(element: etree._Element, namespace: str) -> str:
    for prefix, uri in element.nsmap.items():
        if uri == namespace and prefix is not None:
            return prefix
    return "#default"


class Wss4jIds:
    """WSS4J 1.6's IDs: a prefix and a number, unique within the message."""

    def __init__(self) -> None:
        self.serial = uuid.uuid4().hex.upper()[:24]
        self.count = 0

    def __call__(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}-{self.serial}{self.count}"


def _timestamp(security: etree._Element, entry: TimestampEntry, ids: Wss4jIds) -> None:
    if entry.time_to_live_s <= 0:
        return  # SoapUI adds no Timestamp then
    now = dt.datetime.now(dt.UTC)
    pattern = "%Y-%m-%dT%H:%M:%S.%f" if entry.milliseconds else "%Y-%m-%dT%H:%M:%S"

    def text(moment: dt.datetime) -> str:
        value = moment.strftime(pattern)
        return (value[:-3] if entry.milliseconds else value) + "Z"

    timestamp = etree.Element(f"{{{ns.WSU}}}Timestamp", {WSU_ID: ids("TS")})
    etree.SubElement(timestamp, f"{{{ns.WSU}}}Created").text = text(now)
    etree.SubElement(timestamp, f"{{{ns.WSU}}}Expires").text = text(
        now + dt.timedelta(seconds=entry.time_to_live_s)
    )
    security.insert(0, timestamp)  # WSS4J prepends to the Security header


def _signature(
    envelope: etree._Element,
    security: etree._Element,
    entry: SignatureEntry,
    keystore: bytes,
    password: bytes,
    ids: Wss4jIds,
) -> None:
    if entry.key_identifier_type != BST_DIRECT_REFERENCE:
        raise NotReplayed(f"key identifier type {entry.key_identifier_type}")
    if entry.canonicalization != ns.EXC_C14N:
        raise NotReplayed(f"canonicalization {entry.canonicalization}")
    key, certificate, _ = pkcs12.load_key_and_certificates(keystore, password)
    if key is None or certificate is None:
        raise ValueError("the keystore holds no key and certificate")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    parts = entry.parts or (SignaturePart("Body", ns.SOAP11_ENV),)  # WSS4J's default: the Body
    targets = []
    for part in parts:
        found = envelope.find(f".//{{{part.namespace}}}{part.name}")
        if found is None:
            raise ValueError(f"no {part.name} to sign in the request")
        if found.get(WSU_ID) is None:
            found.set(
                WSU_ID, ids("id")
            )  # on the Body, with xmlns:wsu declared there, as WSS4J does
        targets.append(found)

    signature = xmlsec.template.create(
        envelope,
        _transform(entry.canonicalization),
        _transform(entry.signature_algorithm),
        name=ids("SIG"),
        ns="ds",
    )
    token = etree.Element(
        f"{{{ns.WSSE}}}BinarySecurityToken",
        {"EncodingType": ns.BASE64_BINARY, "ValueType": ns.X509V3, WSU_ID: ids("X509")},
    )
    token.text = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
    # WSS4J's order: the token, then the Signature, then what was there (the Timestamp).
    security.insert(0, signature)
    security.insert(0, token)
    c14n = signature.find(f"{{{ns.DS}}}SignedInfo/{{{ns.DS}}}CanonicalizationMethod")
    xmlsec.template.transform_add_c14n_inclusive_namespaces(
        c14n, inclusive_prefixes(security, exclude_visible=False)
    )
    context = xmlsec.SignatureContext()
    for target in targets:
        reference = xmlsec.template.add_reference(
            signature, _transform(entry.digest_algorithm), uri=f"#{target.get(WSU_ID)}"
        )
        transform = xmlsec.template.add_transform(reference, _transform(ns.EXC_C14N))
        xmlsec.template.transform_add_c14n_inclusive_namespaces(
            transform, inclusive_prefixes(target)
        )
        context.register_id(target, "Id", ns.WSU)
    key_info = xmlsec.template.ensure_key_info(signature, id=ids("KI"))
    context.key = xmlsec.Key.from_memory(key_pem, xmlsec.KeyFormat.PEM, None)
    context.sign(signature)
    reference_holder = etree.SubElement(
        key_info, f"{{{ns.WSSE}}}SecurityTokenReference", {WSU_ID: ids("STR")}
    )
    etree.SubElement(
        reference_holder,
        f"{{{ns.WSSE}}}Reference",
        {"URI": f"#{token.get(WSU_ID)}", "ValueType": ns.X509V3},
    )


def sign_as_soapui(call: SignedCall, keystore_folder: Path, password: str) -> bytes:
    """Return the call's request with its outgoing WS-Security applied, as SoapUI sends it.

    The keystore is the project's crypto that the Signature entry names, read
    from ``keystore_folder`` (the project's folder) with ``password``.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    envelope = etree.fromstring(call.request.encode(call.encoding), parser)
    header = envelope.find(f"{{{ns.SOAP11_ENV}}}Header")
    if header is None:
        header = etree.Element(f"{{{ns.SOAP11_ENV}}}Header")
        envelope.insert(0, header)
    if not call.entries:
        return etree.tostring(envelope, xml_declaration=True, encoding=call.encoding)
    security = etree.SubElement(
        header,
        f"{{{ns.WSSE}}}Security",
        {f"{{{ns.SOAP11_ENV}}}mustUnderstand": "1"},
        nsmap={"wsse": ns.WSSE, "wsu": ns.WSU},
    )
    ids = Wss4jIds()
    for entry in call.entries:
        if isinstance(entry, TimestampEntry):
            _timestamp(security, entry, ids)
            continue
        crypto = call.cryptos.get(entry.crypto)
        if crypto is None:
            raise ValueError(f"the Signature names keystore {entry.crypto!r}: not in the project")
        if entry.alias != crypto.default_alias:
            raise ValueError(
                f"alias {entry.alias!r} is not the keystore's {crypto.default_alias!r}"
            )
        keystore = (keystore_folder / crypto.source).read_bytes()
        _signature(envelope, security, entry, keystore, password.encode(), ids)
    return etree.tostring(envelope, xml_declaration=True, encoding=call.encoding)
