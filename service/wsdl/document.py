"""What Spyne can't say in the WSDL, added to the document it builds.

Spyne generates the WSDL from the Python types; this module amends that
document once, when Spyne fires ``wsdl_document_built``:

* the ``Statement`` type ends with an optional ``ds:Signature`` -- the
  statement's enveloped XML signature, added after Spyne serializes the
  response (``xs:any`` in the XML-DSig namespace, ``processContents="lax"``,
  so that clients need not fetch the XML-DSig schema);
* the X-Road conventions (message protocol 4.0, section 3.2): the X-Road
  headers are ``soap:header`` parts of every input and output, the binding
  operation carries ``xrd:version`` and the operation's documentation an
  ``xrd:title`` in Azerbaijani, English and Russian.  The X-Road header
  elements are declared inline (identifiers, xroad and representation
  schemas), so a client needs nothing from the network.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from service.namespaces import DS, REPR, SERVICE_VERSION, TNS, WSDL, WSDL_SOAP, XID, XRD, XS

XML_NS = "http://www.w3.org/XML/1998/namespace"

#: The header parts of every input and output, in X-Road's order.
HEADER_PARTS = ("client", "service", "id", "userId", "issue", "protocolVersion")
HEADER_MESSAGE = "requestheader"

TITLES = {
    "az": "Əhali qrupu üzrə istehlakçılara su təchizatı və tullantı sularının axıdılması "
    "xidmətlərinə dair son 12 ay üzrə faktura və ödəniş məlumatlarının verilməsi",
    "en": "Residential water supply and wastewater: invoices and payments of the last 12 months",
    "ru": "Сведения о счетах и платежах за последние 12 месяцев за водоснабжение и канализацию "
    "(население)",
}

_IDENTIFIER_SCHEMA = f"""
<xs:schema xmlns:xs="{XS}" xmlns:id="{XID}" targetNamespace="{XID}" elementFormDefault="qualified">
  <xs:simpleType name="XRoadObjectType">
    <xs:restriction base="xs:string">
      <xs:enumeration value="MEMBER"/><xs:enumeration value="SUBSYSTEM"/>
      <xs:enumeration value="SERVICE"/><xs:enumeration value="CENTRALSERVICE"/>
    </xs:restriction>
  </xs:simpleType>
  <xs:element name="xRoadInstance" type="xs:string"/>
  <xs:element name="memberClass" type="xs:string"/>
  <xs:element name="memberCode" type="xs:string"/>
  <xs:element name="subsystemCode" type="xs:string"/>
  <xs:element name="serviceCode" type="xs:string"/>
  <xs:element name="serviceVersion" type="xs:string"/>
  <xs:attribute name="objectType" type="id:XRoadObjectType"/>
  <xs:complexType name="XRoadClientIdentifierType">
    <xs:sequence>
      <xs:element ref="id:xRoadInstance"/><xs:element ref="id:memberClass"/>
      <xs:element ref="id:memberCode"/><xs:element ref="id:subsystemCode" minOccurs="0"/>
    </xs:sequence>
    <xs:attribute ref="id:objectType" use="required"/>
  </xs:complexType>
  <xs:complexType name="XRoadServiceIdentifierType">
    <xs:sequence>
      <xs:element ref="id:xRoadInstance"/><xs:element ref="id:memberClass"/>
      <xs:element ref="id:memberCode"/><xs:element ref="id:subsystemCode" minOccurs="0"/>
      <xs:element ref="id:serviceCode"/><xs:element ref="id:serviceVersion" minOccurs="0"/>
    </xs:sequence>
    <xs:attribute ref="id:objectType" use="required"/>
  </xs:complexType>
</xs:schema>
"""

_XROAD_SCHEMA = f"""
<xs:schema xmlns:xs="{XS}" xmlns:id="{XID}" xmlns:xrd="{XRD}" targetNamespace="{XRD}"
    elementFormDefault="qualified">
  <xs:import namespace="{XID}"/>
  <xs:element name="client" type="id:XRoadClientIdentifierType"/>
  <xs:element name="service" type="id:XRoadServiceIdentifierType"/>
  <xs:element name="id" type="xs:string"/>
  <xs:element name="userId" type="xs:string"/>
  <xs:element name="issue" type="xs:string"/>
  <xs:element name="protocolVersion" type="xs:string"/>
</xs:schema>
"""

_REPRESENTATION_SCHEMA = f"""
<xs:schema xmlns:xs="{XS}" xmlns:repr="{REPR}" targetNamespace="{REPR}"
    elementFormDefault="qualified">
  <xs:element name="representedParty">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="partyClass" type="xs:string" minOccurs="0"/>
        <xs:element name="partyCode" type="xs:string"/>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""


def _amend_statement(schema: etree._Element) -> None:
    sequence = schema.find(f"{{{XS}}}complexType[@name='Statement']/{{{XS}}}sequence")
    if sequence is None:
        raise RuntimeError("the WSDL has no Statement type")
    etree.SubElement(
        sequence,
        f"{{{XS}}}any",
        {"namespace": DS, "processContents": "lax", "minOccurs": "0", "maxOccurs": "1"},
    )


def _add_xroad(root: etree._Element, types: etree._Element) -> None:
    parser = etree.XMLParser(remove_blank_text=True)
    for text in (_IDENTIFIER_SCHEMA, _XROAD_SCHEMA, _REPRESENTATION_SCHEMA):
        types.append(etree.fromstring(text, parser))

    message = etree.Element(f"{{{WSDL}}}message", {"name": HEADER_MESSAGE}, nsmap={"xrd": XRD})
    for part in HEADER_PARTS:
        etree.SubElement(message, f"{{{WSDL}}}part", {"name": part, "element": f"xrd:{part}"})
    first_message = root.find(f"{{{WSDL}}}message")
    if first_message is None:
        raise RuntimeError("the WSDL has no message")
    first_message.addprevious(message)

    tns_prefix = next(p for p, uri in root.nsmap.items() if uri == TNS)
    for operation in root.iterfind(f"{{{WSDL}}}binding/{{{WSDL}}}operation"):
        version = etree.Element(f"{{{XRD}}}version", nsmap={"xrd": XRD})
        version.text = SERVICE_VERSION
        operation.insert(0, version)
        for direction in ("input", "output"):
            io = operation.find(f"{{{WSDL}}}{direction}")
            if io is None:
                raise RuntimeError(f"the binding operation has no {direction}")
            for part in HEADER_PARTS:
                etree.SubElement(
                    io,
                    f"{{{WSDL_SOAP}}}header",
                    {"message": f"{tns_prefix}:{HEADER_MESSAGE}", "part": part, "use": "literal"},
                )
    for operation in root.iterfind(f"{{{WSDL}}}portType/{{{WSDL}}}operation"):
        documentation = operation.find(f"{{{WSDL}}}documentation")
        if documentation is None:
            documentation = etree.Element(f"{{{WSDL}}}documentation")
            operation.insert(0, documentation)
        for lang, title in TITLES.items():
            element = etree.SubElement(
                documentation, f"{{{XRD}}}title", {f"{{{XML_NS}}}lang": lang}, nsmap={"xrd": XRD}
            )
            element.text = title


def amend_wsdl(wsdl11: Any) -> None:
    """Amend the WSDL that Spyne has just built (``wsdl11.root_elt``)."""
    root: etree._Element = wsdl11.root_elt
    types = root.find(f"{{{WSDL}}}types")
    schema = root.find(f"{{{WSDL}}}types/{{{XS}}}schema[@targetNamespace='{TNS}']")
    if types is None or schema is None:
        raise RuntimeError("the WSDL has no schema for the target namespace")
    _amend_statement(schema)
    _add_xroad(root, types)


def install_wsdl_amendments(wsdl11: Any) -> None:
    """Have Spyne call :func:`amend_wsdl` whenever it builds this WSDL."""
    wsdl11.event_manager.add_listener("wsdl_document_built", amend_wsdl)
