"""The hardened parser, table-driven."""

from __future__ import annotations

import pytest

from service.errors import ForbiddenXml, MalformedRequest
from service.signing.hardened_xml import MAX_DEPTH, parse_request

S = "http://schemas.xmlsoap.org/soap/envelope/"


def doc(body: str, prolog: str = "") -> bytes:
    envelope = f'<s:Envelope xmlns:s="{S}"><s:Header/><s:Body>{body}</s:Body></s:Envelope>'
    return (prolog + envelope).encode()


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (doc("<a/>", "<!DOCTYPE s:Envelope>"), ForbiddenXml),
        (doc("<a>&x;</a>", '<!DOCTYPE e [<!ENTITY x "y">]>'), ForbiddenXml),
        (doc("<a>&x;</a>", '<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'), ForbiddenXml),
        (doc("<a/>", '<!DOCTYPE e SYSTEM "http://127.0.0.1:9/evil.dtd">'), ForbiddenXml),
        (doc("<a>12<!-- -->34</a>"), ForbiddenXml),
        (doc("<a><?php echo 1?></a>"), ForbiddenXml),
        (b"<!-- before -->" + doc("<a/>"), ForbiddenXml),
        (doc("<a/>") + b"<?after?>", ForbiddenXml),
        (doc("<a>" * (MAX_DEPTH + 1) + "</a>" * (MAX_DEPTH + 1)), ForbiddenXml),
        (doc("<a>\xff</a>").replace("\xff".encode(), b"\xff"), MalformedRequest),
        (doc("<a>"), MalformedRequest),
        (b"", MalformedRequest),
        (b"\x00\x00", MalformedRequest),
        (doc("<a/>", '<?xml version="1.0" encoding="ISO-8859-1"?>'), MalformedRequest),
        ("<a>ə</a>".encode("utf-16"), MalformedRequest),
    ],
    ids=[
        "doctype",
        "internal-entity",
        "external-entity",
        "external-dtd",
        "comment-in-body",
        "pi-in-body",
        "comment-before-root",
        "pi-after-root",
        "too-deep",
        "invalid-utf8",
        "not-well-formed",
        "empty",
        "nul-bytes",
        "latin1-declared",
        "utf16",
    ],
)
def test_refused(payload: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_request(payload)


def test_accepted_keeps_text_and_whitespace() -> None:
    root = parse_request(
        doc("<a> Əli  Şəkili ğüöçı İ </a>", '<?xml version="1.0" encoding="UTF-8"?>')
    )
    assert root[1][0].text == " Əli  Şəkili ğüöçı İ "


def test_depth_at_the_limit_is_accepted() -> None:
    depth = MAX_DEPTH - 2  # Envelope and Body count too
    parse_request(doc("<a>" * depth + "</a>" * depth))
