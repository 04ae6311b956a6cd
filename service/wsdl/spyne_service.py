"""The contract as Spyne declares it: the service, its WSDL, and the schema requests must match.

Spyne is the contract's source: :class:`BillingStatementService` and the
types of :mod:`service.wsdl.types` declare the operation, and Spyne writes
the WSDL from them (amended by :mod:`service.wsdl.document`).  Spyne does not
serve requests: :func:`build_contract` generates the WSDL once, for the
configured public address, and takes from it the XML Schema of the target
namespace, against which every request's operation element is validated.
So the WSDL a caller reads and the rule a request is checked by are one
document.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass

from lxml import etree
from spyne import Application, ServiceBase, rpc
from spyne.interface.wsdl import Wsdl11
from spyne.protocol.soap import Soap11

from service.namespaces import OPERATION, SERVICE_NAME, TNS, WSDL, XS
from service.wsdl import types as wire
from service.wsdl.document import install_wsdl_amendments

SOAP_HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"


class BillingStatementService(ServiceBase):
    """The SOAP service ``BillingStatementService``, as the WSDL declares it."""

    # The Python parameter names are the request's element names, in order.
    @rpc(
        *(t for _, t in wire.REQUEST_PARTS),
        _returns=tuple(t for _, t in wire.RESPONSE_PARTS),
        _out_variable_names=tuple(n for n, _ in wire.RESPONSE_PARTS),
        _operation_name=OPERATION,
        _in_message_name=OPERATION,
    )
    def GetBillingStatement(ctx, SubscriberCode, CitizenFin, Language):  # noqa: N805
        """Return the last 12 months of invoices and payments of a residential subscriber."""
        # (The docstring above is the WSDL's documentation of the operation.)  A
        # declaration only: StatementOperation answers requests, never Spyne.
        raise NotImplementedError("Spyne describes the operation; it does not serve it")


def build_spyne_application() -> Application:
    """Return the Spyne application that declares the contract (document/literal wrapped)."""
    application = Application(
        [BillingStatementService],
        tns=TNS,
        name=SERVICE_NAME,
        in_protocol=Soap11(),
        out_protocol=Soap11(),
    )
    application.transport = SOAP_HTTP_TRANSPORT
    return application


@dataclass(frozen=True)
class Contract:
    """The published WSDL and the schema of the target namespace taken from it."""

    #: The WSDL document, naming ``public_url`` as the service's address.
    wsdl: bytes
    #: The ``xs:schema`` of the target namespace in that WSDL, compiled: requests
    #: are validated against it, and every response is valid under it.
    schema: etree.XMLSchema


def build_contract(public_url: str) -> Contract:
    """Generate the WSDL for ``public_url`` and compile its target-namespace schema."""
    wsdl11 = Wsdl11(build_spyne_application().interface)
    install_wsdl_amendments(wsdl11)
    wsdl11.build_interface_document(public_url)
    wsdl = bytes(wsdl11.get_interface_document())
    root = etree.fromstring(wsdl, etree.XMLParser(resolve_entities=False, no_network=True))
    schema = root.find(f"{{{WSDL}}}types/{{{XS}}}schema[@targetNamespace='{TNS}']")
    if schema is None:
        raise RuntimeError("the WSDL has no schema for the target namespace")
    # A schema on its own: the prefixes its QName values use (tns:...) are
    # declared on the WSDL's root, so they come along.
    namespaces: dict[str | None, str] = {**root.nsmap, **schema.nsmap}
    standalone = etree.Element(schema.tag, dict(schema.attrib), namespaces)  # type: ignore[arg-type]
    standalone.extend(deepcopy(child) for child in schema)
    return Contract(wsdl, etree.XMLSchema(standalone))
