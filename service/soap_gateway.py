"""The SOAP front door: verify every request, sign and audit every answer.

Every ``POST /soap`` goes the same way, valid or not:

1. HTTP checks before the body is read: content type (415) and size (413);
2. the raw bytes are parsed by the hardened parser
   (:mod:`service.signing.hardened_xml`) and the WS-Security signature is
   verified (:class:`service.signing.wsse.WsseVerifier`), or, with
   WS-Security off, the TLS client certificate is checked;
3. header blocks marked ``mustUnderstand`` must be ones we process, the Body
   must hold exactly one operation element, the X-Road headers are checked;
4. the operation (:class:`service.handlers.billing_statement.StatementOperation`)
   gets that element and an :class:`OperationRequest`, and returns the
   response envelope or raises a :class:`service.errors.ServiceFault`;
5. the answer -- response or Fault -- gets the Statement's enveloped
   signature and a WS-Security signature over Body, Timestamp and the echoed
   X-Road headers;
6. the access audit record is committed (:mod:`service.audit`), then the
   answer is sent; if the record can't be committed, the answer is the Fault
   ``Server.AuditUnavailable`` instead.  Metrics and one JSON log line follow.

A failure in 2 is a signed SOAP Fault with a WS-Security fault code; the log
says why, the caller gets only the code.  If signing fails, the answer is the
Fault ``Server.SigningFailed`` (signed if at all possible), never an unsigned
response.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from lxml import etree

from service import namespaces as ns
from service.audit import AuditEntry, AuditStore
from service.errors import (
    AuditUnavailable,
    BillingUnavailable,
    BodyTooLarge,
    FailedAuthentication,
    HttpRejection,
    InternalError,
    InvalidSecurity,
    MustUnderstand,
    OneOperation,
    ReplayStoreUnavailable,
    SecurityFault,
    ServiceFault,
    SigningFailed,
    UnsupportedMediaType,
    logged_fault,
)
from service.handlers.billing_statement import OperationRequest, StatementOperation
from service.metrics import Metrics
from service.signing.hardened_xml import parse_request
from service.signing.keys import fingerprint
from service.signing.statement_signature import STATEMENT_TAG, StatementSigner
from service.signing.trust import TrustStore
from service.signing.wsse import (
    SignerInfo,
    VerifiedEnvelope,
    WsseSigner,
    WsseVerifier,
    split_envelope,
)
from service.xroad import (
    REPR,
    XRD,
    XRoadHeaderFault,
    XRoadHeaders,
    XRoadMode,
    XRoadPolicy,
    header_blocks,
)

log = logging.getLogger("service.gateway")

_ACCEPTED_MEDIA_TYPES = ("text/xml",)
_MUST_UNDERSTAND = f"{{{ns.SOAP11_ENV}}}mustUnderstand"
_ACTOR = f"{{{ns.SOAP11_ENV}}}actor"
_ACTOR_NEXT = "http://schemas.xmlsoap.org/soap/actor/next"


def fault_envelope(fault: ServiceFault) -> etree._Element:
    """Return a SOAP 1.1 Fault envelope for ``fault`` (code and plain string only)."""
    nsmap = {"soap11env": ns.SOAP11_ENV}
    if fault.fault_namespace:
        nsmap["wsse"] = fault.fault_namespace
        code = f"wsse:{fault.faultcode}"
    else:
        code = f"soap11env:{fault.faultcode}"
    envelope = etree.Element(f"{{{ns.SOAP11_ENV}}}Envelope", nsmap=nsmap)
    body = etree.SubElement(envelope, f"{{{ns.SOAP11_ENV}}}Body")
    element = etree.SubElement(body, f"{{{ns.SOAP11_ENV}}}Fault")
    etree.SubElement(element, "faultcode").text = code
    etree.SubElement(element, "faultstring").text = fault.faultstring
    return envelope


def fault_label(fault: ServiceFault) -> str:
    """Return the outcome label of a fault: ``wsse:FailedCheck`` or ``Client.ForbiddenXml``."""
    return f"wsse:{fault.faultcode}" if fault.fault_namespace else fault.faultcode


def add_header_blocks(envelope: etree._Element, blocks: Iterable[etree._Element]) -> None:
    """Put copies of ``blocks`` first in the envelope's Header (created if missing)."""
    blocks = list(blocks)
    if not blocks:
        return
    header = envelope.find(f"{{{ns.SOAP11_ENV}}}Header")
    if header is None:
        header = etree.Element(f"{{{ns.SOAP11_ENV}}}Header")
        envelope.insert(0, header)
    for position, block in enumerate(blocks):
        header.insert(position, deepcopy(block))


_SOAP_XML = "text/xml; charset=utf-8"
_PLAIN_TEXT = "text/plain; charset=utf-8"


def verify_signed_request(verifier: WsseVerifier, root: etree._Element) -> VerifiedEnvelope:
    """Verify a request's WS-Security signature, and that it covers every X-Road header block.

    The verifier knows nothing of X-Road (``service.signing`` reaches up to
    nothing), so the rule that each X-Road header block be signed is made here,
    once: the gateway admits every signed request through this function, and
    ``azersu-statement check-request`` judges a captured request with it.
    """
    verified = verifier.verify(root)
    header = root[0]  # the verifier checked: exactly a Header, then the Body
    signed = verified.signed_headers
    if any(not any(block is s for s in signed) for block in header_blocks(header)):
        raise InvalidSecurity("an X-Road header is not signed", "xroad_unsigned")
    return verified


@dataclass(frozen=True)
class Admitted:
    """A request that passed the front door: its one operation element, signer, X-Road headers."""

    operation: etree._Element
    signer: SignerInfo
    xroad: XRoadHeaders | None


class SoapGateway:
    """Verify every SOAP request, answer it with the operation, sign and audit the answer."""

    def __init__(
        self,
        operation: StatementOperation,
        verifier: WsseVerifier | None,
        wsse_signer: WsseSigner,
        statement_signer: StatementSigner,
        audit: AuditStore,
        metrics: Metrics,
        *,
        xroad: XRoadPolicy | None = None,
        transport_trust: TrustStore | None = None,
        max_body_bytes: int = 256 * 1024,
        wsdl: bytes = b"",
    ) -> None:
        """Wire the gateway.

        ``verifier`` None means WS-Security off: the caller is then the TLS
        client certificate, checked against ``transport_trust``.  ``wsdl``
        is the document ``GET /soap?wsdl`` returns.
        """
        self.operation = operation
        if verifier is None and transport_trust is None:
            raise ValueError("without WS-Security the TLS client certificate must be checked")
        self.xroad = xroad or XRoadPolicy()
        self.transport_trust = transport_trust
        self.verifier = verifier
        self.wsse_signer = wsse_signer
        self.statement_signer = statement_signer
        self.audit = audit
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.wsdl = wsdl

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Handle one request to the SOAP endpoint; answer only after its audit commit."""
        method = environ.get("REQUEST_METHOD", "GET")
        if method in ("GET", "HEAD") and _asks_for_wsdl(environ):
            return _plain(start_response, "200 OK", self.wsdl, content_type=_SOAP_XML)
        if method != "POST":
            detail = f"{method} {environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')}"
            self.refused(405, detail, str(environ.get("REMOTE_ADDR", "")))
            return _plain(
                start_response,
                "405 Method Not Allowed",
                b"POST a SOAP request, or GET ?wsdl\n",
                [("Allow", "GET, HEAD, POST")],
            )
        started = time.monotonic()
        entry = self._new_entry(environ)
        try:
            raw = self._read_body(environ)
        except HttpRejection as rejection:
            entry.outcome = "HTTP_" + rejection.status.split()[0]
            log.info("request refused: %s: %s", rejection.status, rejection.detail)
            answer = (rejection.status, _PLAIN_TEXT, (rejection.message + "\n").encode())
        else:
            status, payload = self._handle(raw, environ, entry)
            answer = (status, _SOAP_XML, payload)
        entry.duration_ms = round((time.monotonic() - started) * 1000, 3)
        status, headers, payload = self._committed(entry, *answer)
        start_response(status, headers)
        return [payload]

    def refused(self, status: int, detail: str, remote_addr: str) -> None:
        """Audit, count and log a request refused before it could be read as SOAP.

        For refusals the HTTP server makes itself (a malformed head, fields
        too large, a body that doesn't arrive in time) and for a method other
        than POST.  A failed commit is logged: there is no answer to withhold.
        """
        entry = self._new_entry({"REMOTE_ADDR": remote_addr})
        entry.outcome = f"HTTP_{status}"
        log.info("request refused: %s: %s", status, detail)
        try:
            self.audit.record(entry)
        except AuditUnavailable as exc:
            log.error("audit record of a refusal not committed: %s", exc.detail)
            self.metrics.database_errors.labels(store="audit").inc()
        self.metrics.requests.labels(outcome=entry.outcome).inc()

    @staticmethod
    def _new_entry(environ: dict[str, Any]) -> AuditEntry:
        return AuditEntry(
            request_id=str(uuid.uuid4()),
            recorded_at=dt.datetime.now(dt.UTC),
            remote_addr=str(environ.get("REMOTE_ADDR", "")),
        )

    def _committed(
        self, entry: AuditEntry, status: str, content_type: str, payload: bytes
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """Commit the audit record; return the answer -- or the Fault if the commit failed.

        Counts and logs the request.  If the record can't be committed, the
        answer is withheld and the caller gets ``Server.AuditUnavailable``.
        """
        try:
            self.audit.record(entry)
        except AuditUnavailable as failure:
            log.error(
                "audit record not committed: answer withheld",
                extra={"request_id": entry.request_id, "detail": failure.detail},
            )
            self.metrics.database_errors.labels(store="audit").inc()
            entry.outcome, entry.statement_number = AuditUnavailable.faultcode, ""
            entry.issued = None
            status, payload = self._fault_answer(AuditUnavailable())
            content_type = _SOAP_XML
        self.metrics.requests.labels(outcome=entry.outcome).inc()
        self.metrics.latency.observe(entry.duration_ms / 1000)
        log.info(
            "request",
            extra={
                "request_id": entry.request_id,
                "outcome": entry.outcome,
                "duration_ms": entry.duration_ms,
                "client": entry.client_subject,
                "client_fingerprint": entry.client_fingerprint,
                "statement_number": entry.statement_number,
            },
        )
        return (
            status,
            [("Content-Type", content_type), ("Content-Length", str(len(payload)))],
            payload,
        )

    def _handle(self, raw: bytes, environ: dict[str, Any], entry: AuditEntry) -> tuple[str, bytes]:
        """Verify the request and answer it: the HTTP status and the signed answer."""
        try:
            admitted = self._admit(parse_request(raw), environ)
        except XRoadHeaderFault as fault:
            self._count_fault(fault)
            entry.outcome = fault_label(fault)
            return self._fault_answer(fault, echo=fault.echo)
        except ServiceFault as fault:
            self._count_fault(fault)
            entry.outcome = fault_label(fault)
            return self._fault_answer(fault)
        except Exception as exc:  # a bug: still a signed, audited Fault, never a bare 500
            log.exception("the front door failed")
            internal = InternalError(f"{type(exc).__name__}: {exc}")
            entry.outcome = fault_label(internal)
            return self._fault_answer(internal)
        entry.client_subject = admitted.signer.subject
        entry.client_fingerprint = admitted.signer.fingerprint
        if admitted.xroad is not None:
            entry.xroad_client = admitted.xroad.client.path
            entry.xroad_service = admitted.xroad.service.path
            entry.xroad_message_id = admitted.xroad.message_id
        return self._answer(environ, admitted, entry)

    def _admit(self, root: etree._Element, environ: dict[str, Any]) -> Admitted:
        """Verify who sent the request, check its header blocks and its one operation."""
        header: etree._Element | None
        if self.verifier is not None:
            verified = verify_signed_request(self.verifier, root)
            header = root[0]  # the verifier checked: exactly a Header, then the Body
            body, signer = verified.body, verified.signer
        else:
            header, body = split_envelope(root)
            signer = self._tls_client(environ)
        self._check_must_understand(header)
        operations = [child for child in body if isinstance(child.tag, str)]
        if len(operations) != 1:
            raise OneOperation(f"{len(operations)} elements in the Body")
        return Admitted(operations[0], signer, self.xroad.check(header))

    def _check_must_understand(self, header: etree._Element | None) -> None:
        """Raise MustUnderstand for a block meant for us, marked mustUnderstand, not processed.

        SOAP 1.1 section 4.2.3: blocks addressed to another actor are not ours
        to judge.  Processed here: ``wsse:Security`` (when WS-Security is on)
        and the X-Road blocks (unless X-Road headers are off).
        """
        if header is None:
            return
        understood = set()
        if self.verifier is not None:
            understood.add(ns.WSSE)
        if self.xroad.mode is not XRoadMode.OFF:
            understood.update((XRD, REPR))
        for block in header:
            if not isinstance(block.tag, str):
                continue
            if block.get(_MUST_UNDERSTAND) not in ("1", "true"):
                continue
            if block.get(_ACTOR, _ACTOR_NEXT) != _ACTOR_NEXT:
                continue
            if etree.QName(block).namespace not in understood:
                raise MustUnderstand(f"header block {block.tag} is not processed")

    def _tls_client(self, environ: dict[str, Any]) -> SignerInfo:
        """Return the TLS client certificate (WS-Security off), checked against the pins."""
        from cryptography import x509

        sock: Any = environ.get("gunicorn.socket")
        der = sock.getpeercert(binary_form=True) if hasattr(sock, "getpeercert") else None
        if not der:
            raise FailedAuthentication("no TLS client certificate", "no_client_certificate")
        certificate = x509.load_der_x509_certificate(der)
        assert self.transport_trust is not None  # checked in __init__
        self.transport_trust.check(certificate)
        return SignerInfo(
            certificate, certificate.subject.rfc4514_string(), fingerprint(certificate)
        )

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        media_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if media_type not in _ACCEPTED_MEDIA_TYPES:
            raise UnsupportedMediaType(f"content type {media_type!r}")
        charset = _charset(environ.get("CONTENT_TYPE", ""))
        if charset not in (None, "utf-8", "utf8"):
            raise UnsupportedMediaType(f"charset {charset!r}")
        length_text = environ.get("CONTENT_LENGTH") or ""
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                raise HttpRejection(f"Content-Length {length_text!r}") from None
            if length > self.max_body_bytes:
                raise BodyTooLarge(f"Content-Length {length}")
            return environ["wsgi.input"].read(length)
        # No Content-Length (chunked): read at most one byte past the limit.
        data = environ["wsgi.input"].read(self.max_body_bytes + 1)
        if len(data) > self.max_body_bytes:
            raise BodyTooLarge("chunked body over the limit")
        return data

    def _answer(
        self, environ: dict[str, Any], admitted: Admitted, entry: AuditEntry
    ) -> tuple[str, bytes]:
        """Run the operation on the verified Body; return the HTTP status and the signed answer."""
        echo = admitted.xroad.echo if admitted.xroad else ()
        try:
            envelope = self.operation(admitted.operation, OperationRequest(entry, admitted.xroad))
        except Exception as exc:  # the operation's Faults; anything else is InternalError
            fault = logged_fault(exc, log)
            if isinstance(fault, BillingUnavailable):
                self.metrics.database_errors.labels(store="billing").inc()
            return self._fault_answer(fault, entry, echo)
        return self._signed("200 OK", envelope, entry, echo)

    def _signed(
        self,
        status: str,
        envelope: etree._Element,
        entry: AuditEntry,
        echo: Iterable[etree._Element],
    ) -> tuple[str, bytes]:
        """Add the X-Road headers to the answer and sign it (or answer SigningFailed)."""
        add_header_blocks(envelope, echo)
        try:
            payload, digests = self._sign(envelope)
            if entry.issued is not None:
                # The registry row keeps the digest of the very signature sent.
                [digest] = [d for number, d in digests if number == entry.statement_number]
                entry.issued = entry.issued.signed(digest, entry.request_id)
            return status, payload
        except Exception:
            log.exception("signing the response failed")
            return self._fault_answer(SigningFailed(), entry, echo)

    def sign_response(self, envelope: etree._Element) -> bytes:
        """Sign the Statement (if any) and the envelope; return the bytes to send."""
        return self._sign(envelope)[0]

    def _sign(self, envelope: etree._Element) -> tuple[bytes, list[tuple[str, str]]]:
        """Sign as :meth:`sign_response`; also return each Statement's number and digest."""
        digests = []
        body = envelope.find(f"{{{ns.SOAP11_ENV}}}Body")
        if body is not None:
            for statement in body.iter(STATEMENT_TAG):
                digest = self.statement_signer.sign(statement)
                digests.append((statement.findtext(f"{{{ns.TNS}}}StatementNumber") or "", digest))
        self.wsse_signer.sign(envelope)
        return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"), digests

    def _fault_answer(
        self,
        fault: ServiceFault,
        entry: AuditEntry | None = None,
        echo: Iterable[etree._Element] = (),
    ) -> tuple[str, bytes]:
        """Return the HTTP status and a signed Fault (the bare SigningFailed if nothing signs).

        ``echo`` is the request's X-Road headers, which the Fault carries.
        """
        if entry is not None:
            entry.outcome, entry.statement_number = fault_label(fault), ""
            entry.issued = None  # no statement leaves: none is registered
        echo = tuple(echo)
        for candidate in (fault, SigningFailed()):
            envelope = fault_envelope(candidate)
            add_header_blocks(envelope, echo)
            try:
                return candidate.http_status, self.sign_response(envelope)
            except Exception:
                log.exception("signing the fault %s failed", candidate.faultcode)
        # Nothing can be signed: the answer carries no data, only the code.
        bare = etree.tostring(
            fault_envelope(SigningFailed()), xml_declaration=True, encoding="UTF-8"
        )
        return SigningFailed.http_status, bare

    def _count_fault(self, fault: ServiceFault) -> None:
        if isinstance(fault, SecurityFault):
            log.warning("security fault %s (%s): %s", fault.faultcode, fault.reason, fault.detail)
            self.metrics.signature_failures.labels(reason=fault.reason).inc()
        elif isinstance(fault, ReplayStoreUnavailable):
            log.error("replay store unavailable: %s", fault.detail)
            self.metrics.database_errors.labels(store="replay").inc()
        else:
            log.info("request rejected %s: %s", fault.faultcode, fault.detail)


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def _asks_for_wsdl(environ: dict[str, Any]) -> bool:
    return str(environ.get("QUERY_STRING", "")).split("=")[0].lower() == "wsdl"


def _plain(
    start_response: Callable[..., Any],
    status: str,
    body: bytes,
    extra: list[tuple[str, str]] | None = None,
    content_type: str = _PLAIN_TEXT,
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            *(extra or []),
        ],
    )
    return [body]
