"""``GET /verify``, ``GET /verify.json``, ``POST /verify``: the public verification endpoints.

Whoever holds a printed arayış scans its QR code and lands on
``/verify?n=<number>&d=<digest>``: the page answers VALID, REVOKED or
NOT_FOUND (:mod:`service.verification.lookup`) in Azerbaijani, English or
Russian (``lang``).  ``/verify.json`` answers the same for banks' systems.
Without parameters the page is a form for the number and the digest, and a
file upload that checks a saved signed Statement the way ``azersu-statement
verify`` does (:func:`service.signing.statement_signature.verify_saved_statement`:
its signature, signer and name), then looks its number and digest up.

Every lookup, whatever its answer, is audited (:mod:`service.audit`: the
number asked for, the client address, the outcome ``VERIFY_<PAGE|JSON|FILE>_
<result>``; never the digest) before the answer is sent, and counted in
``azersu_verify_lookups_total``.  If the record can't be committed the
answer is withheld (503), as on ``/soap``.  Answers that find nothing are
limited per client address (:mod:`service.verification.rate_limit`).

Every answer is ``Cache-Control: no-store``, framed by nobody
(``X-Frame-Options: DENY``, CSP ``frame-ancestors 'none'``) and may load
nothing but its own stylesheet (``default-src 'none'; style-src 'self'``).
This module reaches down to the registry and the audit, never up to the
SOAP gateway.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import multipart
from sqlalchemy.exc import SQLAlchemyError

from service.audit import AuditEntry, AuditStore
from service.client_address import client_key
from service.errors import AuditUnavailable, AzersuError
from service.metrics import Metrics
from service.registry import StatementRegistry
from service.signing.statement_signature import StatementVerifier, verify_saved_statement
from service.verification.lookup import (
    NUMBER_MAX_CHARS,
    Answer,
    Result,
    look_up,
    normalize_number,
    public_record,
)
from service.verification.pages import (
    State,
    form_page,
    not_verified_page,
    refusal_page,
    result_page,
    stylesheet,
)
from service.verification.rate_limit import NotFoundLimit, RateStoreUnavailable, Verdict
from service.verification.texts import language

log = logging.getLogger("service.verification")

PAGE_PATH = "/verify"
JSON_PATH = "/verify.json"
CSS_PATH = "/verify.css"
PATHS = (PAGE_PATH, JSON_PATH, CSS_PATH)

#: The policy of every page: nothing but its own stylesheet, posted only to itself, framed by none.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_COMMON_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]
_NO_STORE = [("Cache-Control", "no-store")]
_HTML = "text/html; charset=utf-8"
_JSON = "application/json; charset=utf-8"
#: Most query fields read (n, d, lang, and some slack for what a scanner adds).
_MAX_FIELDS = 8

#: An outcome that is not a lookup's result: the answer was refused.
RATE_LIMITED = "RATE_LIMITED"
UNAVAILABLE = "UNAVAILABLE"
NOT_VERIFIED = "NOT_VERIFIED"

StartResponse = Callable[..., Any]


@dataclass
class _Lookup:
    """One lookup on its way: who asked, by which channel, what for, and what it found."""

    via: str  # page, json or file
    client: str
    remote_addr: str
    number: str = ""
    started: float = 0.0
    answer: Answer | None = None
    outcome: str = ""  # a Result, NOT_VERIFIED, RATE_LIMITED or UNAVAILABLE
    retry_after_s: int = 0


class PublicVerification:
    """The verification page, its JSON twin and the file upload, as one WSGI callable."""

    def __init__(
        self,
        registry: StatementRegistry,
        audit: AuditStore,
        limit: NotFoundLimit,
        metrics: Metrics,
        verifier: StatementVerifier,
        *,
        max_body_bytes: int,
    ) -> None:
        self.registry = registry
        self.audit = audit
        self.limit = limit
        self.metrics = metrics
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request to ``/verify``, ``/verify.json`` or ``/verify.css``."""
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        allowed = ("GET", "HEAD", "POST") if path == PAGE_PATH else ("GET", "HEAD")
        if method not in allowed:
            return _send(
                start_response,
                "405 Method Not Allowed",
                "text/plain; charset=utf-8",
                b"method not allowed\n",
                [("Allow", ", ".join(allowed))],
            )
        if path == CSS_PATH:
            return _send(
                start_response,
                "200 OK",
                "text/css; charset=utf-8",
                stylesheet(),
                [("Cache-Control", "public, max-age=3600")],
            )
        try:
            query = parse_qs(
                str(environ.get("QUERY_STRING", "")),
                keep_blank_values=True,
                max_num_fields=_MAX_FIELDS,
            )
        except ValueError:
            query = None
        lang = language((query or {}).get("lang", [""])[0])
        if query is None:
            return self._bad_request(start_response, path, lang)
        if path == PAGE_PATH and method == "POST":
            return self._upload(environ, start_response, lang)
        if path == PAGE_PATH and "n" not in query and "d" not in query:
            return _send(start_response, "200 OK", _HTML, form_page(lang), _NO_STORE)
        number = query.get("n", [""])[0]
        digest = query.get("d", [""])[0]
        lookup = self._start("json" if path == JSON_PATH else "page", environ, number)
        self._look_up(lookup, number, digest)
        if path == JSON_PATH:
            return self._json_answer(start_response, lookup)
        return self._page_answer(start_response, lookup, lang, number, digest)

    # --- the lookup ----------------------------------------------------------------------

    def _start(self, via: str, environ: dict[str, Any], number: str) -> _Lookup:
        remote = str(environ.get("REMOTE_ADDR", ""))
        return _Lookup(
            via=via,
            client=client_key(remote),
            remote_addr=remote,
            number=normalize_number(number)[:NUMBER_MAX_CHARS],
            started=time.monotonic(),
        )

    def _admitted(self, lookup: _Lookup) -> bool:
        """Check the client's budget before looking anything up."""
        try:
            verdict = self.limit.before_lookup(lookup.client)
        except RateStoreUnavailable as exc:
            log.error("verification rate store unavailable: %s", exc)
            self.metrics.database_errors.labels(store="verify_rate").inc()
            lookup.outcome = UNAVAILABLE
            return False
        return self._within(lookup, verdict)

    def _within(self, lookup: _Lookup, verdict: Verdict) -> bool:
        if verdict.allowed:
            return True
        lookup.outcome, lookup.retry_after_s = RATE_LIMITED, verdict.retry_after_s
        return False

    def _counted_miss(self, lookup: _Lookup) -> None:
        """Count an answer that found nothing; it becomes RATE_LIMITED beyond the budget."""
        try:
            self._within(lookup, self.limit.found_nothing(lookup.client))
        except RateStoreUnavailable as exc:
            log.error("verification rate store unavailable: %s", exc)
            self.metrics.database_errors.labels(store="verify_rate").inc()
            lookup.outcome = UNAVAILABLE

    def _look_up(
        self, lookup: _Lookup, number: str, digest: str, *, admitted: bool = False
    ) -> None:
        """Look ``number`` and ``digest`` up (after the client's budget, unless ``admitted``)."""
        if not admitted and not self._admitted(lookup):
            self._finish(lookup)
            return
        try:
            answer = look_up(self.registry, number, digest)
        except SQLAlchemyError as exc:
            log.error("the registry can't be read: %s", exc)
            self.metrics.database_errors.labels(store="audit").inc()
            lookup.outcome = UNAVAILABLE
            self._finish(lookup)
            return
        lookup.answer, lookup.outcome = answer, answer.result.value
        if not answer.found:
            self._counted_miss(lookup)
        self._finish(lookup)

    def _finish(self, lookup: _Lookup) -> None:
        """Audit the lookup (without the digest), count it and log it.

        The answer leaves only after its record is committed; if it can't
        be, the lookup becomes UNAVAILABLE.
        """
        entry = AuditEntry(
            request_id=str(uuid.uuid4()),
            recorded_at=dt.datetime.now(dt.UTC),
            outcome=f"VERIFY_{lookup.via.upper()}_{lookup.outcome}",
            subscriber_code=lookup.answer.statement.subscriber_code
            if lookup.answer is not None and lookup.answer.statement is not None
            else "",
            statement_number=lookup.number,
            remote_addr=lookup.remote_addr,
            duration_ms=round((time.monotonic() - lookup.started) * 1000, 3),
        )
        try:
            self.audit.record(entry)
        except AuditUnavailable as failure:
            log.error("audit record of a lookup not committed: answer withheld: %s", failure.detail)
            self.metrics.database_errors.labels(store="audit").inc()
            lookup.outcome, lookup.answer = UNAVAILABLE, None
        self.metrics.verify_lookups.labels(via=lookup.via, result=lookup.outcome).inc()
        log.info(
            "verification lookup",
            extra={
                "request_id": entry.request_id,
                "outcome": entry.outcome,
                "duration_ms": entry.duration_ms,
                "statement_number": lookup.number,
            },
        )

    # --- the file upload -----------------------------------------------------------------

    def _upload(
        self, environ: dict[str, Any], start_response: StartResponse, lang: str
    ) -> Iterable[bytes]:
        raw = self._uploaded_file(environ)
        if raw is None:
            return self._bad_request(start_response, PAGE_PATH, lang)
        lookup = self._start("file", environ, "")
        if not self._admitted(lookup):
            self._finish(lookup)
            return self._page_answer(start_response, lookup, lang)
        try:
            verified = verify_saved_statement(raw, self.verifier)
        except AzersuError as failure:
            log.info("uploaded statement not verified: %s", failure)
            lookup.outcome = NOT_VERIFIED
            self._counted_miss(lookup)
            self._finish(lookup)
            return self._page_answer(start_response, lookup, lang)
        lookup.number = verified.statement_number[:NUMBER_MAX_CHARS]
        number, digest = verified.statement_number, verified.signature_value_sha256
        self._look_up(lookup, number, digest, admitted=True)
        return self._page_answer(start_response, lookup, lang)

    def _uploaded_file(self, environ: dict[str, Any]) -> bytes | None:
        """Return the bytes of the form's one ``statement`` file, or None."""
        media_type = str(environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
        if media_type != "multipart/form-data":
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "0")
        except ValueError:
            return None
        if not 0 < length <= self.max_body_bytes:
            return None
        try:
            _, files = multipart.parse_form_data(
                environ,
                strict=True,
                part_limit=4,
                partsize_limit=self.max_body_bytes,
                spool_limit=self.max_body_bytes + 1,
                memory_limit=self.max_body_bytes + 1,
                disk_limit=0,
            )
        except multipart.MultipartError:
            return None
        parts = files.getall("statement")
        if len(parts) != 1:
            return None
        data = parts[0].raw
        return bytes(data) if data else None

    # --- the answers ---------------------------------------------------------------------

    def _page_answer(
        self,
        start_response: StartResponse,
        lookup: _Lookup,
        lang: str,
        number: str = "",
        digest: str = "",
    ) -> Iterable[bytes]:
        if lookup.outcome == RATE_LIMITED:
            body = refusal_page(lang, State.LIMITED, lookup.retry_after_s)
            extra = [("Retry-After", str(lookup.retry_after_s)), *_NO_STORE]
            return _send(start_response, "429 Too Many Requests", _HTML, body, extra)
        if lookup.outcome == NOT_VERIFIED:
            return _send(start_response, "200 OK", _HTML, not_verified_page(lang), _NO_STORE)
        if lookup.answer is None:  # UNAVAILABLE
            body = refusal_page(lang, State.UNAVAILABLE)
            extra = [("Retry-After", "60"), *_NO_STORE]
            return _send(start_response, "503 Service Unavailable", _HTML, body, extra)
        body = result_page(lang, lookup.answer, number, digest)
        return _send(start_response, "200 OK", _HTML, body, _NO_STORE)

    def _json_answer(self, start_response: StartResponse, lookup: _Lookup) -> Iterable[bytes]:
        if lookup.outcome == RATE_LIMITED:
            record: dict[str, Any] = {"error": RATE_LIMITED, "retryAfter": lookup.retry_after_s}
            extra = [("Retry-After", str(lookup.retry_after_s)), *_NO_STORE]
            return _send(start_response, "429 Too Many Requests", _JSON, _json(record), extra)
        if lookup.answer is None:
            extra = [("Retry-After", "60"), *_NO_STORE]
            body = _json({"error": UNAVAILABLE})
            return _send(start_response, "503 Service Unavailable", _JSON, body, extra)
        return _send(
            start_response, "200 OK", _JSON, _json(public_record(lookup.answer)), _NO_STORE
        )

    def _bad_request(self, start_response: StartResponse, path: str, lang: str) -> Iterable[bytes]:
        if path == JSON_PATH:
            return _send(
                start_response, "400 Bad Request", _JSON, _json({"error": "BAD_REQUEST"}), _NO_STORE
            )
        body = refusal_page(lang, State.BAD_REQUEST)
        return _send(start_response, "400 Bad Request", _HTML, body, _NO_STORE)


def _json(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def _send(
    start_response: StartResponse,
    status: str,
    content_type: str,
    body: bytes,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            *_COMMON_HEADERS,
            *(extra or []),
        ],
    )
    return [body]


__all__ = ["PATHS", "PublicVerification", "Result"]
