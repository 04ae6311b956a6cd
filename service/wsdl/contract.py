"""The committed WSDL snapshot and how a published WSDL is normalized for it.

``billing_statement.wsdl`` beside this module is the contract as published,
normalized: the endpoint address replaced by a placeholder, declarations put
in a stable order (Spyne's order of schema types varies between processes, as
it follows set iteration), canonicalized with inclusive C14N 1.0 (which keeps
the ``tns`` prefix that QName attribute values use) and indented.  A test
compares it with what the server publishes, so a contract change is always
deliberate: regenerate it with
``python -m service.wsdl.contract > service/wsdl/billing_statement.wsdl``.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from service.namespaces import WSDL_SOAP, XS

SNAPSHOT = Path(__file__).with_name("billing_statement.wsdl")
PLACEHOLDER_ADDRESS = "http://localhost/soap"
_DEFINITIONS_ORDER = [
    "documentation",
    "import",
    "types",
    "message",
    "portType",
    "binding",
    "service",
]


def _sort_children(parent: etree._Element, rank: list[str]) -> None:
    """Order children by kind (rank), then name; unknown kinds keep their place last."""

    def key(child: etree._Element) -> tuple[int, str]:
        local = etree.QName(child).localname
        position = rank.index(local) if local in rank else len(rank)
        return position, child.get("name") or child.get("namespace") or ""

    parent[:] = sorted(parent, key=key)


def normalize_wsdl(wsdl: bytes) -> str:
    """Return the WSDL canonicalized, indented, with the address as a placeholder."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    root = etree.fromstring(wsdl, parser)
    for address in root.iter(f"{{{WSDL_SOAP}}}address"):
        address.set("location", PLACEHOLDER_ADDRESS)
    _sort_children(root, _DEFINITIONS_ORDER)
    for schema in root.iter(f"{{{XS}}}schema"):
        _sort_children(schema, ["import", "simpleType", "complexType", "element"])
    canonical = etree.tostring(root, method="c14n")
    pretty = etree.fromstring(canonical, parser)
    return etree.tostring(pretty, pretty_print=True, encoding="unicode")


def published_wsdl() -> bytes:
    """Return the WSDL the service publishes, for the placeholder address (no database opened)."""
    from service.wsdl.spyne_service import build_contract

    return build_contract(PLACEHOLDER_ADDRESS).wsdl


if __name__ == "__main__":
    print(normalize_wsdl(published_wsdl()), end="")
