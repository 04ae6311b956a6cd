"""The statement (arayış) as people see it: an HTML page and a one-page PDF.

``service/schemas/statement.xsl`` (XSLT 1.0) turns a Statement into the page; the
portal may run the same stylesheet in its own engine.  An XSLT can't check a
signature, so the caller verifies first and passes what it found as
parameters (:class:`Verification`): the signer's subject, the SHA-256 of the
signature value, and the link to Azərsu's public verification page
(``AZERSU_VERIFY_URL?n=<number>&d=<digest>``) as a QR code and as text under
it, so that whoever holds the paper can ask Azərsu whether it issued it.
Anything not verified is still rendered, under the large "NOT VERIFIED /
TƏSDİQLƏNMƏYİB" banner, and without the digest, the link and the QR code.

Nothing is fetched from anywhere: the stylesheet is parsed with the hardened
parser settings and run with every XSLT file and network access denied, and
WeasyPrint may load ``data:`` URIs only (the QR code).  The CSS names the
font :data:`FONT_FAMILY` (Debian's fonts-dejavu-core), which covers every
Azerbaijani letter (ə ğ ı İ ö ş ç ü) and Cyrillic.
"""

from __future__ import annotations

import copy
import functools
import hmac
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from lxml import etree

from service.namespaces import TNS

if TYPE_CHECKING:  # imported lazily: the command line builds its parser from this module
    from service.signing.statement_signature import VerifiedStatement

#: The stylesheet, kept with the statement's schema.
STYLESHEET = resources.files("service") / "schemas" / "statement.xsl"
LANGUAGES = ("az", "en", "ru")
#: The font the page asks for first; the set-up installs it (fonts-dejavu-core).
FONT_FAMILY = "DejaVu Sans"
BANNER = "NOT VERIFIED / TƏSDİQLƏNMƏYİB"
STATEMENT_TAG = f"{{{TNS}}}Statement"

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Verification:
    """What the signature check found, as the stylesheet shows it."""

    verified: bool
    signer_subject: str = ""
    signature_value_sha256: str = ""
    statement_number: str = ""
    note: str = ""
    #: The public verification page (``AZERSU_VERIFY_URL``), without a query.
    verify_url: str = ""

    @classmethod
    def of(cls, verified: VerifiedStatement, verify_url: str) -> Verification:
        """Return the result for a statement whose signature and signer verified.

        ``verify_url`` is the verification page the printed copy leads to.
        """
        return cls(
            verified=True,
            signer_subject=verified.signer.subject,
            signature_value_sha256=verified.signature_value_sha256,
            statement_number=verified.statement_number,
            verify_url=verify_url,
        )

    @classmethod
    def failed(cls, reason: str) -> Verification:
        """Return the result for a statement that did not verify, and why."""
        return cls(verified=False, note=reason)

    @property
    def qr_payload(self) -> str:
        """Return what the QR code says: the verification link (empty if not verified)."""
        if not self.verified:
            return ""
        return verification_link(
            self.verify_url, self.statement_number, self.signature_value_sha256
        )


def verification_link(verify_url: str, statement_number: str, signature_value_sha256: str) -> str:
    """Return ``<verify_url>?n=<number>&d=<digest>``: the QR code's text and the printed link."""
    if not verify_url:
        raise ValueError("no verification page to link to")
    return f"{verify_url}?{urlencode({'n': statement_number, 'd': signature_value_sha256})}"


def qr_payload(statement_number: str, signature_value_sha256: str) -> str:
    """Return the text of the QR codes printed before the verification page existed.

    ``<number>;sha256=<hex>``: copies printed then are still read by
    :func:`normalize_printed_digest`.
    """
    return f"{statement_number};sha256={signature_value_sha256}"


def qr_data_uri(payload: str) -> str:
    """Return the QR code of ``payload`` as an SVG ``data:`` URI (error correction M)."""
    import segno

    code = segno.make_qr(payload, error="m", boost_error=False)
    return str(code.svg_data_uri(scale=4, border=4, dark="#000", light="#fff"))


@functools.cache
def _transform() -> etree.XSLT:
    parser = etree.XMLParser(
        resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False
    )
    document = etree.fromstring(STYLESHEET.read_bytes(), parser).getroottree()
    # No file or network access from the stylesheet (lxml-stubs 0.5 lack DENY_ALL).
    no_access = etree.XSLTAccessControl.DENY_ALL  # type: ignore[attr-defined]
    return etree.XSLT(document, access_control=no_access)


def render_html(
    statement: etree._Element,
    verification: Verification,
    lang: str = "az",
    *,
    compact: bool = False,
) -> str:
    """Return the printable HTML page of ``statement`` (a Statement element).

    ``verification`` must come from this process's own check of the very
    same element: the page says "signed and checked" when it says so.
    ``compact`` asks for the tighter layout (see :func:`render_pdf`).
    """
    if statement.tag != STATEMENT_TAG:
        raise ValueError(f"{statement.tag} is not a Statement")
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}")
    # A document of its own, so that "/" is the Statement's document whatever it was cut from.
    document = etree.ElementTree(copy.deepcopy(statement))
    params: dict[str, Any] = {
        "lang": etree.XSLT.strparam(lang),
        "verified": etree.XSLT.strparam("true" if verification.verified else "false"),
        "note": etree.XSLT.strparam(verification.note),
        "compact": etree.XSLT.strparam("true" if compact else "false"),
    }
    if verification.verified:
        link = verification.qr_payload
        params["signer"] = etree.XSLT.strparam(verification.signer_subject)
        params["digest"] = etree.XSLT.strparam(verification.signature_value_sha256)
        params["verify-url"] = etree.XSLT.strparam(link)
        params["qr"] = etree.XSLT.strparam(qr_data_uri(link))
    result = _transform()(document, **params)
    return bytes(result).decode("utf-8")


def html_to_pdf(html: str) -> tuple[bytes, int]:
    """Return ``html`` as a PDF made by WeasyPrint, and its number of pages."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    # Only data: URIs (the QR code) load: no file, no network.
    fetcher = URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)
    document = HTML(string=html, url_fetcher=fetcher, media_type="print").render()
    return bytes(document.write_pdf()), len(document.pages)


def render_pdf(statement: etree._Element, verification: Verification, lang: str = "az") -> bytes:
    """Return the statement as a PDF of one A4 page.

    Should very long names or an address push it onto a second page, it is
    laid out again with the stylesheet's compact layout.
    """
    pdf, pages = html_to_pdf(render_html(statement, verification, lang))
    if pages > 1:
        pdf, _ = html_to_pdf(render_html(statement, verification, lang, compact=True))
    return pdf


def normalize_printed_digest(printed: str) -> tuple[str | None, str] | None:
    """Return (statement number or None, hex digest) read from a printed copy, or None.

    Accepts the digest as printed (groups of eight, any case, spaces or
    colons between), the QR code's whole text -- the verification link
    ``https://…/verify?n=<number>&d=<hex>`` -- and the ``<number>;sha256=<hex>``
    of copies printed before the link.
    """
    text = printed.strip()
    number = None
    if re.match(r"https?://", text, re.IGNORECASE):
        query = parse_qs(urlsplit(text).query, keep_blank_values=True)
        numbers, digests = query.get("n", []), query.get("d", [])
        if len(numbers) != 1 or len(digests) != 1 or not numbers[0].strip():
            return None
        number, text = numbers[0].strip(), digests[0]
    elif "=" in text:
        head, _, text = text.rpartition("=")
        head = head.strip()
        if head.lower().endswith("sha256"):
            head = head[: -len("sha256")].rstrip()
        else:
            return None
        if head:
            if not head.endswith(";"):
                return None
            number = head[:-1].strip()
    digest = re.sub(r"[\s:]", "", text).lower()
    if not _HEX64.fullmatch(digest):
        return None
    return number, digest


def check_printed_digest(verified: VerifiedStatement, printed: str) -> bool:
    """Tell whether a digest read off a printed copy is that of the verified statement."""
    parsed = normalize_printed_digest(printed)
    if parsed is None:
        return False
    number, digest = parsed
    if number is not None and number != verified.statement_number:
        return False
    return hmac.compare_digest(digest, verified.signature_value_sha256)
