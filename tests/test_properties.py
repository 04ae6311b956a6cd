"""Property tests over the request fields, through the real app in-process.

``SubscriberCode``, ``CitizenFin`` and ``Language`` take arbitrary values:
Azerbaijani letters, Arabic-Indic and full-width digits, every kind of space,
control characters, lone surrogates, markup characters and very long strings,
or are left out.  A value that XML can carry is sent in a request signed as
the portal signs it; one that XML can't carry (a control character, a
surrogate) is sent as raw bytes in an envelope that can't be signed.  The
request goes through the service's WSGI app (gateway, Spyne, billing,
signing, audit) and the answer must be:

* a signed SOAP answer with a ``Status`` of the contract, its ``Message``,
  and a ``Statement`` exactly when the Status is OK -- the Status that the
  contract's rules (docs/integration.md, the Status table) give for the input;
* or a SOAP Fault with one of the service's defined codes, its fixed
  faultstring and HTTP status (a value that XML can't carry is
  ``Client.MalformedRequest``; a missing code or an unknown language is
  ``Client.SchemaValidation``);
* or HTTP 413 for a body over the limit;

never a 5xx without a Fault, never a traceback or an exception's text, and
always exactly one audit record.
"""

from __future__ import annotations

import dataclasses
import io
import re
import string
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

import service.xroad  # noqa: F401  (registers the X-Road faults)
from service.app import ServiceApp, create_app
from service.errors import Status, fault_classes
from service.namespaces import SOAP11_ENV, TNS
from service.settings import Settings
from service.signing.statement_signature import StatementVerifier
from service.signing.trust import TrustStore
from service.signing.wsse import WsseVerifier
from tests import billing_fixtures as bf

NAMES = ("SubscriberCode", "CitizenFin", "Language")
STATUSES = {status.value for status in Status}
LANGUAGES = {"az", "en", "ru"}
#: Residential codes of the hand-made billing data, and the one non-residential code.
RESIDENTIAL = {bf.FULL, bf.NEW, bf.GAPS, bf.OVERPAID, bf.CLOSED, bf.EXACT}
FIN_PATTERN = re.compile(r"[A-HJ-NP-Z0-9]{7}")
CODE_PATTERN = re.compile(r"[0-9]{6,12}")
#: Characters XML 1.0 can't carry at all, not even as a character reference.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


FAULTS = fault_classes()

# --------------------------------------------------------------------------- the values

AZERBAIJANI = "əƏıIİiğĞöÖüÜçÇşŞ"
OTHER_DIGITS = "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹０１２３４５６７８９𝟎𝟏"
SPACES = " \t\n\r\xa0\u2007\u202f\u3000\u200b\ufeff\x85\u2028\u1680"
CONTROLS = "".join(map(chr, range(32))) + "\x7f\ufffe\uffff"
ALPHABET = string.digits + string.ascii_letters + AZERBAIJANI + OTHER_DIGITS + SPACES + "<>&'\";]"
VALID = [bf.FULL, bf.NEW, bf.BUSINESS, bf.UNKNOWN, bf.FIN, bf.FIN.lower(), "az", "en", "ru"]

values = st.one_of(
    st.none(),
    st.sampled_from([*VALID, ""]),
    st.builds(
        lambda left, value, right: left + value + right,
        st.text(st.sampled_from(SPACES), max_size=3),
        st.sampled_from(VALID),
        st.text(st.sampled_from(SPACES), max_size=3),
    ),
    st.text(st.sampled_from(ALPHABET), max_size=20),
    st.text(max_size=30),  # any Unicode but surrogates
    st.text(st.sampled_from(CONTROLS + "0123456789"), min_size=1, max_size=8),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),  # lone surrogates
    st.builds(
        lambda unit, n: unit * n, st.sampled_from(["1", "ə", "A", " "]), st.integers(50, 150_000)
    ),
)


# --------------------------------------------------------------------------- the oracle


def expected(code: str | None, fin: str | None, language: str | None) -> str:
    """Return the Status (or fault code) that the contract gives for a request XML can carry."""
    if code is None or (language is not None and language not in LANGUAGES):
        return "Client.SchemaValidation"
    trimmed = code.strip()
    if not trimmed:
        return Status.SUBSCRIBER_CODE_EMPTY.value
    if not trimmed.isascii() or not CODE_PATTERN.fullmatch(trimmed):
        return Status.SUBSCRIBER_CODE_INVALID.value
    citizen = unicodedata.normalize("NFC", (fin or "").strip())
    if not citizen.isascii() or not FIN_PATTERN.fullmatch(citizen.upper()):
        return Status.FIN_INVALID.value
    if trimmed in RESIDENTIAL:
        return Status.OK.value
    if trimmed == bf.BUSINESS:
        return Status.NOT_RESIDENTIAL.value
    return Status.SUBSCRIBER_NOT_FOUND.value


# --------------------------------------------------------------------------- the request


def signable(fields: tuple[str | None, ...]) -> bool:
    """Return whether every value can be carried by XML (and so be signed)."""
    return all(value is None or not NOT_XML.search(value) for value in fields)


def request_envelope(fields: tuple[str | None, ...]) -> bytes:
    """Return the envelope with the fields as text (lxml escapes; values must be XML-legal)."""
    envelope = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soapenv": SOAP11_ENV, "b": TNS})
    body = etree.SubElement(envelope, f"{{{SOAP11_ENV}}}Body")
    operation = etree.SubElement(body, f"{{{TNS}}}GetBillingStatement")
    for name, value in zip(NAMES, fields, strict=True):
        if value is not None:
            etree.SubElement(operation, f"{{{TNS}}}{name}").text = value
    return etree.tostring(envelope)


def raw_envelope(fields: tuple[str | None, ...]) -> bytes:
    """Return an envelope with the values pasted in unescaped (for values XML can't carry)."""
    parts = "".join(
        f"<b:{name}>{value}</b:{name}>"
        for name, value in zip(NAMES, fields, strict=True)
        if value is not None
    )
    text = (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:b="{TNS}"><soapenv:Body>'
        f"<b:GetBillingStatement>{parts}</b:GetBillingStatement></soapenv:Body></soapenv:Envelope>"
    )
    return text.encode("utf-8", "surrogatepass")


def call(
    app: ServiceApp | Callable[..., Any], raw: bytes, extra: dict[str, Any] | None = None
) -> tuple[str, dict[str, str], bytes]:
    """POST ``raw`` to /soap through a WSGI app; return (status, headers, body).

    ``extra`` adds WSGI environ entries (what the gateway hands Spyne).
    """
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/soap",
        "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(raw)),
        "HTTP_SOAPACTION": '"GetBillingStatement"',
        "wsgi.input": io.BytesIO(raw),
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        **(extra or {}),
    }
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


# --------------------------------------------------------------------------- the property


@pytest.fixture(scope="module")
def app(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceApp]:
    audit = tmp_path_factory.mktemp("properties") / "audit.sqlite"
    service = create_app(dataclasses.replace(base_settings, audit_url=f"sqlite:///{audit}"))
    yield service
    service.close()


PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
    print_blob=True,
)


@PROPERTY_SETTINGS
@given(code=values, fin=values, language=values)
@example(code=bf.FULL, fin=bf.FIN, language="az")
@example(code=" \xa0" + bf.FULL + "\u3000", fin=bf.FIN.lower(), language=None)
@example(code="١٠٠٠٠٠٠٠١", fin=bf.FIN, language="en")
@example(code=bf.FULL, fin="5ZT3K9İ", language="ru")
@example(code=bf.FULL, fin="5ZT3K9ı", language="ru")
@example(code=bf.BUSINESS, fin=bf.FIN, language=" az")
@example(code=None, fin=bf.FIN, language="az")
@example(code="1\x00", fin=bf.FIN, language="az")
@example(code="\ud800", fin=bf.FIN, language="az")
@example(code="ə" * 150_000, fin=bf.FIN, language="az")
@example(code="<![CDATA[", fin="]]>", language="&amp;")
def test_every_answer_is_a_status_or_a_defined_fault(
    app: ServiceApp,
    sign: Any,
    trust: TrustStore,
    code: str | None,
    fin: str | None,
    language: str | None,
) -> None:
    fields = (code, fin, language)
    is_signable = signable(fields)
    raw = sign(request_envelope(fields)) if is_signable else raw_envelope(fields)
    records_before = app.audit.count()

    status, headers, body = call(app, raw)

    assert app.audit.count() == records_before + 1  # every request leaves exactly one record
    assert b"Traceback" not in body and b'File "' not in body
    if len(raw) > app.settings.max_body_bytes:
        assert status.startswith("413")
        return
    assert headers["Content-Type"].startswith("text/xml")
    root = etree.fromstring(body)  # a SOAP envelope, whatever happened
    WsseVerifier(trust, None, allow_body_signatures=True).verify(root)  # and signed
    fault = root.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
    if fault is not None:
        faultcode = (fault.findtext("faultcode") or "").rpartition(":")[2]
        assert faultcode in FAULTS, faultcode
        assert fault.findtext("faultstring") == FAULTS[faultcode].faultstring
        assert status == FAULTS[faultcode].http_status
        outcome = faultcode
    else:
        assert status.startswith("200")
        outcome = root.findtext(f".//{{{TNS}}}Status") or ""
        assert outcome in STATUSES
        assert (root.findtext(f".//{{{TNS}}}Message") or "").strip()
        statement = root.find(f".//{{{TNS}}}Statement")
        assert (statement is not None) == (outcome == Status.OK.value)
        if statement is not None:
            StatementVerifier(trust).verify(statement)
    if is_signable:
        assert outcome == expected(code, fin, language)
    else:
        assert outcome == "Client.MalformedRequest"


def test_the_oracle_knows_the_contracts_order() -> None:
    assert expected("  ", "bad", "az") == "SUBSCRIBER_CODE_EMPTY"
    assert expected("12ab", "bad", None) == "SUBSCRIBER_CODE_INVALID"
    assert expected(bf.FULL, "5ZT3K9I", "en") == "FIN_INVALID"  # no I or O in a FIN
    assert expected(bf.UNKNOWN, bf.FIN, "ru") == "SUBSCRIBER_NOT_FOUND"
    assert expected(bf.BUSINESS, bf.FIN.lower(), "az") == "NOT_RESIDENTIAL"
    assert expected(bf.FULL, bf.FIN, "fr") == "Client.SchemaValidation"


def test_the_settings_are_the_tests_own(app: ServiceApp) -> None:
    assert Path(app.settings.resolved_audit_url.removeprefix("sqlite:///")).name == "audit.sqlite"
