"""The hardened XML front door: parse a request's raw bytes, or refuse them.

The parser has no DTD, no entity expansion, no network and no huge_tree.  A
DOCTYPE is refused outright (it is the door to XXE and billion laughs).
Comments and processing instructions are refused too, in the Body and
anywhere else in the envelope: a comment can split a signed value
(``1234<!---->5678`` canonicalizes as ``12345678``, but a careless reader
sees ``1234``).  Nesting deeper than
:data:`MAX_DEPTH` is refused.  The body size and content type are checked by
the gateway before any byte is parsed.
"""

from __future__ import annotations

from lxml import etree

from service.errors import ForbiddenXml, MalformedRequest

#: A SOAP request with a WS-Security header is about ten levels deep.
MAX_DEPTH = 40


def new_parser() -> etree.XMLParser:
    """Return a hardened parser (lxml parsers are not thread-safe: one per use)."""
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=False,  # kept so that they can be found and refused
        remove_pis=False,
        remove_blank_text=False,  # whitespace is part of what was signed
        strip_cdata=False,
        collect_ids=False,  # IDs are resolved by our own unique-ID check
    )


def parse_request(raw: bytes) -> etree._Element:
    """Parse a SOAP request and return its root, or raise a client fault."""
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise ForbiddenXml("DOCTYPE or ENTITY declaration")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"not UTF-8: {exc}") from exc
    try:
        tree = etree.ElementTree(etree.fromstring(raw, new_parser()))
    except etree.XMLSyntaxError as exc:
        raise MalformedRequest(f"not well-formed: {exc}") from exc
    docinfo = tree.docinfo
    # The byte check above catches every DOCTYPE; this one is the belt to its braces.
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ForbiddenXml("DOCTYPE")
    if docinfo.encoding and docinfo.encoding.upper() not in ("UTF-8", "UTF8"):
        raise MalformedRequest(f"declared encoding {docinfo.encoding}")
    root = tree.getroot()
    _check_depth_and_nodes(root)
    return root


def _check_depth_and_nodes(root: etree._Element) -> None:
    """Refuse deep nesting, entity references, comments and processing instructions.

    Comments and PIs are refused anywhere in the envelope, not only in the
    Body: a comment inside ``wsu:Created`` would split its text just the same.
    """
    depth = 0
    for event, node in etree.iterwalk(root, events=("start", "end", "comment", "pi")):
        if event == "start":
            depth += 1
            if depth > MAX_DEPTH:
                raise ForbiddenXml(f"nesting deeper than {MAX_DEPTH}")
        elif event == "end":
            depth -= 1
        else:
            raise ForbiddenXml(f"{event} in the envelope")
        if isinstance(node, etree._Entity):
            raise ForbiddenXml("entity reference")
    for sibling in (*root.itersiblings(preceding=True), *root.itersiblings()):
        if isinstance(sibling, etree._Comment | etree._ProcessingInstruction):
            raise ForbiddenXml("comment or processing instruction outside the envelope")
