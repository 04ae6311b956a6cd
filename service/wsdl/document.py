"""What Spyne can't say in the WSDL, added to the document it builds.

Spyne generates the WSDL from the Python types; this module amends that
document once, when Spyne fires ``wsdl_document_built``:

* the ``Statement`` type ends with an optional ``ds:Signature`` -- the
  statement's enveloped XML signature, added after Spyne serializes the
  response (``xs:any`` in the XML-DSig namespace, ``processContents="lax"``,
  so that clients need not fetch the XML-DSig schema).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from service.signing.namespaces import DS
from service.wsdl.namespaces import TNS

WSDL = "http://schemas.xmlsoap.org/wsdl/"
XS = "http://www.w3.org/2001/XMLSchema"


def amend_wsdl(wsdl11: Any) -> None:
    """Amend the WSDL that Spyne has just built (``wsdl11.root_elt``)."""
    root: etree._Element = wsdl11.root_elt
    schema = root.find(f"{{{WSDL}}}types/{{{XS}}}schema[@targetNamespace='{TNS}']")
    if schema is None:
        raise RuntimeError("the WSDL has no schema for the target namespace")
    sequence = schema.find(f"{{{XS}}}complexType[@name='Statement']/{{{XS}}}sequence")
    if sequence is None:
        raise RuntimeError("the WSDL has no Statement type")
    etree.SubElement(
        sequence,
        f"{{{XS}}}any",
        {"namespace": DS, "processContents": "lax", "minOccurs": "0", "maxOccurs": "1"},
    )


def install_wsdl_amendments(wsdl11: Any) -> None:
    """Have Spyne call :func:`amend_wsdl` whenever it builds this WSDL."""
    wsdl11.event_manager.add_listener("wsdl_document_built", amend_wsdl)
