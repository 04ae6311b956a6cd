"""The public verification page and its JSON twin, in process: answers, headers, abuse, audit.

The service answers real signed statements (the ``portal`` signs the
requests); the page is then asked over HTTP.  What a person sees in a real
browser, from a QR code read off a rendered PDF, against the real ``serve``,
is in ``tests/test_public_verify.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import requests
from lxml import etree
from lxml import html as lxml_html
from sqlalchemy import text

from service.app import ServiceApp, create_app
from service.audit import AuditEntry
from service.client import StatementClient
from service.namespaces import TNS
from service.registry import IssuedStatement
from service.signing.statement_signature import VerifiedStatement
from service.verification import texts
from service.verification.endpoint import CONTENT_SECURITY_POLICY
from service.verification.lookup import masked_code, normalize_digest
from service.verification.rate_limit import (
    NotFoundLimit,
    RedisRateCounter,
    SqlRateCounter,
)
from tests import billing_fixtures as bf
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer

LANGS = ("az", "en", "ru")
VERDICT = {
    "VALID": {"az": "ETİBARLIDIR", "en": "VALID", "ru": "ДЕЙСТВИТЕЛЬНА"},
    "REVOKED": {
        "az": "LƏĞV EDİLİB — ETİBARLI DEYİL",
        "en": "REVOKED — NOT VALID",
        "ru": "ОТОЗВАНА — НЕДЕЙСТВИТЕЛЬНА",
    },
    "NOT_FOUND": {"az": "TAPILMADI", "en": "NOT FOUND", "ru": "НЕ НАЙДЕНА"},
}


class Verifying:
    """A server with an audit store (registry, rate table) of its own, and a portal for it."""

    def __init__(self, server, client: StatementClient) -> None:
        self.server = server
        self.app: ServiceApp = server.app
        self.client = client

    def issue(self, code: str = bf.FULL, lang: str | None = None) -> VerifiedStatement:
        result = self.client.call(code, bf.FIN, lang)
        assert result.statement is not None
        return result.statement

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(f"{self.server.base_url}{path}", params=params, timeout=10)

    def page(self, statement: VerifiedStatement, lang: str = "az") -> requests.Response:
        return self.get(
            "/verify",
            n=statement.statement_number,
            d=statement.signature_value_sha256,
            lang=lang,
        )


@pytest.fixture
def verifying(settings, serve_app, tmp_path, portal_identity, trust) -> Verifying:
    app = create_app(
        dataclasses.replace(settings, audit_url=f"sqlite:///{tmp_path / 'audit.sqlite'}")
    )
    server = serve_app(app)
    return Verifying(server, StatementClient(server.url, portal_identity, trust))


def page_of(response: requests.Response) -> etree._Element:
    return lxml_html.document_fromstring(response.content)


def shown(page: etree._Element, name: str) -> str:
    found = page.find(f".//*[@id='{name}']")
    assert found is not None, f"no #{name}"
    return " ".join(found.text_content().split())


def one_digit_changed(digest: str, position: int = 0) -> str:
    return digest[:position] + ("1" if digest[position] != "1" else "2") + digest[position + 1 :]


# --- the three answers -----------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_valid_shows_what_the_statement_said_and_nothing_personal(
    verifying: Verifying, lang: str
) -> None:
    statement = verifying.issue(bf.FULL)
    response = verifying.page(statement, lang)
    assert response.status_code == 200
    page = page_of(response)
    assert page.get("lang") == lang
    assert page.find(".//*[@id='result']").get("data-result") == "VALID"
    assert shown(page, "verdict") == VERDICT["VALID"][lang]
    assert shown(page, "statement-number") == statement.statement_number
    assert shown(page, "issuer") == "“Azərsu” Açıq Səhmdar Cəmiyyəti"
    issued = statement.statement.findtext(f"{{{TNS}}}IssuedAt")
    when = dt.datetime.fromisoformat(issued)
    assert shown(page, "issued-at") == f"{when:%d.%m.%Y %H:%M:%S} (UTC+04:00)"
    assert shown(page, "subscriber-code") == "*****0001"
    months = texts.MONTHS[lang].split()
    assert shown(page, "months") == f"{months[2]} 2025 – {months[1]} 2026"
    m3 = "м³" if lang == "ru" else "m³"
    assert shown(page, "total-consumption") == f"288 {m3}"
    assert shown(page, "total-invoiced") == "144.00 AZN"
    assert shown(page, "total-paid") == "144.00 AZN"
    body = response.content.decode()
    for personal in (bf.AZ_LAST, bf.AZ_FIRST, bf.AZ_ADDRESS, bf.FIN, bf.FULL):
        assert personal not in body


def test_revoked_says_not_valid_with_the_date_and_reason(verifying: Verifying) -> None:
    statement = verifying.issue(bf.GAPS)
    at = dt.datetime(2026, 3, 5, 8, 30, 15, tzinfo=dt.UTC)
    entry = AuditEntry(
        request_id=str(uuid.uuid4()),
        recorded_at=at,
        outcome="REVOKED",
        statement_number=statement.statement_number,
    )
    assert verifying.app.audit.revoke(statement.statement_number, "Ödəniş səhv daxil edilib", entry)
    for lang in LANGS:
        page = page_of(verifying.page(statement, lang))
        assert page.find(".//*[@id='result']").get("data-result") == "REVOKED"
        assert shown(page, "verdict") == VERDICT["REVOKED"][lang]
        assert shown(page, "revoked-at") == "05.03.2026 12:30:15 (UTC+04:00)"
        assert shown(page, "revocation-reason") == "Ödəniş səhv daxil edilib"
        assert shown(page, "statement-number") == statement.statement_number
    record = verifying.get(
        "/verify.json", n=statement.statement_number, d=statement.signature_value_sha256
    ).json()
    assert record["result"] == "REVOKED"
    assert record["revokedAt"] == "2026-03-05T12:30:15+04:00"
    assert record["revocationReason"] == "Ödəniş səhv daxil edilib"


def wrong_lookups(statement: VerifiedStatement) -> dict[str, tuple[str, str]]:
    number, digest = statement.statement_number, statement.signature_value_sha256
    return {
        "unknown-number": ("AZS-20260101-000000000000", digest),
        "first-digit-changed": (number, one_digit_changed(digest, 0)),
        "last-digit-changed": (number, one_digit_changed(digest, 63)),
        "digest-truncated": (number, digest[:-1]),
        "digest-extended": (number, digest + "0"),
        "digest-empty": (number, ""),
        "digest-not-hex": (number, "g" * 64),
        "another-statements-digest": (number, "0" * 64),
        "number-empty": ("", digest),
        "number-too-long": (number + "X" * 70, digest),
        "sql-in-number": ("' OR '1'='1", digest),
    }


@pytest.mark.parametrize("lang", LANGS)
def test_a_wrong_digest_gets_exactly_the_unknown_numbers_page(
    verifying: Verifying, lang: str
) -> None:
    """The page is no oracle of which numbers exist: every miss is one and the same page."""
    statement = verifying.issue(bf.FULL)
    unknown = verifying.get("/verify", n="AZS-20260101-000000000000", d="0" * 64, lang=lang)
    for case, (number, digest) in wrong_lookups(statement).items():
        response = verifying.get("/verify", n=number, d=digest, lang=lang)
        assert response.status_code == unknown.status_code == 200, case
        assert response.content == unknown.content, case  # byte for byte
        assert response.headers["Content-Type"] == unknown.headers["Content-Type"]
        assert statement.statement_number not in response.text, case
    assert shown(page_of(unknown), "verdict") == VERDICT["NOT_FOUND"][lang]
    assert page_of(unknown).find(".//*[@id='result']").get("data-result") == "NOT_FOUND"
    # The JSON as well: nothing but the result.
    for case, (number, digest) in wrong_lookups(statement).items():
        answer = verifying.get("/verify.json", n=number, d=digest)
        assert answer.content == b'{"result": "NOT_FOUND"}\n', case


def test_printed_forms_of_the_digest_are_the_same_digest(verifying: Verifying) -> None:
    statement = verifying.issue(bf.NEW)
    digest = statement.signature_value_sha256
    for form in (
        digest.upper(),
        " ".join(digest[i : i + 8] for i in range(0, 64, 8)),
        ":".join(digest[i : i + 2] for i in range(0, 64, 2)),
        f"  {digest}\n",
    ):
        assert normalize_digest(form) == digest
        number = f" {statement.statement_number.lower()} "
        record = verifying.get("/verify.json", n=number, d=form).json()
        assert record["result"] == "VALID", form


def test_the_json_fields_are_exactly_the_specified_ones(verifying: Verifying) -> None:
    statement = verifying.issue(bf.EXACT, "en")
    response = verifying.get(
        "/verify.json", n=statement.statement_number, d=statement.signature_value_sha256
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    record = json.loads(response.content, parse_float=Decimal)
    totals = verifying.client.call(bf.EXACT, bf.FIN).response.Statement.Totals
    issued = statement.statement.findtext(f"{{{TNS}}}IssuedAt")
    assert record == {
        "result": "VALID",
        "statementNumber": statement.statement_number,
        "issuedAt": issued,
        "issuer": "“Azərsu” Açıq Səhmdar Cəmiyyəti",
        "subscriberCodeMasked": "*****0006",
        "periodFrom": "2025-03",
        "periodTo": "2026-02",
        "totals": {
            "consumptionM3": str(totals.ConsumptionM3),
            "invoicedAmount": f"{totals.InvoicedAmount:.2f}",
            "paidAmount": f"{totals.PaidAmount:.2f}",
        },
        "revokedAt": None,
        "revocationReason": None,
    }
    for money in ("invoicedAmount", "paidAmount"):
        assert re.fullmatch(r"-?\d+\.\d{2}", record["totals"][money])


@pytest.mark.parametrize(
    ("code", "masked"),
    [("100000001", "*****0001"), ("123456", "**3456"), ("12345", "*2345"), ("1234", "****"),
     ("", "")],
)  # fmt: skip
def test_masked_code_keeps_only_the_last_four(code: str, masked: str) -> None:
    assert masked_code(code) == masked


def test_a_statement_without_months(verifying: Verifying) -> None:
    """A statement whose window has no month says so (the registry keeps no months)."""
    registry = verifying.app.audit.registry
    row = IssuedStatement(
        statement_number="AZS-20260301-0000000000E0",
        issued_at=dt.datetime.now(dt.UTC),
        issuer="“Azərsu” Açıq Səhmdar Cəmiyyəti",
        subscriber_code="100000077",
        period_from=None,
        period_to=None,
        consumption_m3=Decimal("0"),
        invoiced_amount=Decimal("0.00"),
        paid_amount=Decimal("0.00"),
        language="az",
        signature_sha256="e0" * 32,
        request_id=str(uuid.uuid4()),
    )
    verifying.app.audit.record(
        AuditEntry(request_id=row.request_id, recorded_at=row.issued_at, outcome="OK", issued=row)
    )
    assert registry.find(row.statement_number) is not None
    page = page_of(
        verifying.get("/verify", n=row.statement_number, d=row.signature_sha256, lang="en")
    )
    assert shown(page, "months") == "no report months"
    record = verifying.get("/verify.json", n=row.statement_number, d=row.signature_sha256).json()
    assert (record["periodFrom"], record["periodTo"]) == (None, None)
    assert record["totals"] == {
        "consumptionM3": "0",
        "invoicedAmount": "0.00",
        "paidAmount": "0.00",
    }


# --- the page as a page ----------------------------------------------------------------


def test_the_headers_forbid_scripts_framing_and_caching(verifying: Verifying) -> None:
    statement = verifying.issue()
    for response in (
        verifying.page(statement),
        verifying.get("/verify", n="x", d="y"),
        verifying.get("/verify"),
        verifying.get("/verify.json", n="x", d="y"),
    ):
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    policy = dict(
        part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";") if part.strip()
    )
    assert policy["default-src"] == "'none'" and policy["style-src"] == "'self'"
    assert "script-src" not in policy and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert policy["frame-ancestors"] == "'none'"
    css = verifying.get("/verify.css")
    assert css.status_code == 200
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    assert b"@media" in css.content and b"url(" not in css.content


@pytest.mark.parametrize("lang", LANGS)
def test_the_pages_have_no_script_no_inline_style_and_are_accessible(
    verifying: Verifying, lang: str
) -> None:
    statement = verifying.issue()
    pages = {
        "form": verifying.get("/verify", lang=lang),
        "valid": verifying.page(statement, lang),
        "not-found": verifying.get("/verify", n="x", d="y", lang=lang),
    }
    for name, response in pages.items():
        page = page_of(response)
        assert page.get("lang") == lang, name
        assert not page.findall(".//script") and not page.findall(".//style"), name
        assert not [e for e in page.iter() if isinstance(e.tag, str) and e.get("style")], name
        assert not [
            e
            for e in page.iter()
            if isinstance(e.tag, str) and any(a.startswith("on") for a in e.attrib)
        ], name
        head = page.find("head")
        viewport = head.find("meta[@name='viewport']")
        assert viewport is not None and "width=device-width" in viewport.get("content"), name
        [stylesheet] = head.findall("link[@rel='stylesheet']")
        assert stylesheet.get("href") == "verify.css"
        assert head.findtext("title")
        assert len(page.findall(".//h1")) == 1, name
        assert page.find(".//main") is not None
        current = [a for a in page.iterfind(".//nav//a") if a.get("aria-current") == "page"]
        assert [a.get("hreflang") for a in current] == [lang]
    form = page_of(pages["form"])
    for control in form.iterfind(".//input"):
        if control.get("type") == "hidden":
            continue
        label = form.find(f".//label[@for='{control.get('id')}']")
        assert label is not None and label.text_content().strip(), control.get("name")
    [by_number, upload] = form.findall(".//form")
    assert (by_number.get("method"), by_number.get("action")) == ("get", "verify")
    assert upload.get("enctype") == "multipart/form-data"
    assert upload.get("action") == f"verify?lang={lang}"


def test_the_valid_pages_language_links_keep_the_lookup_and_a_misss_do_not(
    verifying: Verifying,
) -> None:
    statement = verifying.issue()
    links = [a.get("href") for a in page_of(verifying.page(statement, "en")).iterfind(".//nav//a")]
    query = f"n={statement.statement_number}&d={statement.signature_value_sha256}"
    assert links == [f"verify?{query}&lang={lang}" for lang in LANGS]
    missed = page_of(verifying.get("/verify", n=statement.statement_number, d="0" * 64))
    assert [a.get("href") for a in missed.iterfind(".//nav//a")] == [
        f"verify?lang={lang}" for lang in LANGS
    ]


def test_every_language_has_every_text() -> None:
    keys = set(texts.TEXTS["az"])
    for lang in LANGS:
        assert set(texts.TEXTS[lang]) == keys, lang
        assert all(value.strip() for value in texts.TEXTS[lang].values())
        assert len(texts.MONTHS[lang].split()) == 12
    assert texts.language("RU") == "ru" and texts.language("tr") == "az"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("POST", "/verify.json", "GET, HEAD"), ("PUT", "/verify", "GET, HEAD, POST"),
     ("DELETE", "/verify.css", "GET, HEAD")],
)  # fmt: skip
def test_other_methods_are_refused(
    verifying: Verifying, method: str, path: str, allowed: str
) -> None:
    response = requests.request(method, f"{verifying.server.base_url}{path}", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed


def test_a_query_with_too_many_fields_is_a_bad_request(verifying: Verifying) -> None:
    query = "&".join(f"x{i}=1" for i in range(20))
    response = requests.get(f"{verifying.server.base_url}/verify?{query}", timeout=10)
    assert response.status_code == 400
    assert response.headers["Cache-Control"] == "no-store"


# --- the file upload -----------------------------------------------------------------


def upload(verifying: Verifying, data: bytes, lang: str = "en") -> requests.Response:
    return requests.post(
        f"{verifying.server.base_url}/verify?lang={lang}",
        files={"statement": ("statement.xml", data, "text/xml")},
        timeout=10,
    )


def saved(statement: VerifiedStatement) -> bytes:
    return etree.tostring(statement.statement, encoding="UTF-8")


def test_an_uploaded_statement_is_verified_then_looked_up(verifying: Verifying) -> None:
    statement = verifying.issue(bf.OVERPAID)
    response = upload(verifying, saved(statement))
    assert response.status_code == 200
    page = page_of(response)
    assert page.find(".//*[@id='result']").get("data-result") == "VALID"
    assert shown(page, "statement-number") == statement.statement_number
    assert response.headers["Cache-Control"] == "no-store"
    [record] = [e for e in verifying.app.audit.search() if e.outcome.startswith("VERIFY_")]
    assert (record.outcome, record.statement_number) == (
        "VERIFY_FILE_VALID",
        statement.statement_number,
    )


def tampered(data: bytes, name: str, value: str) -> bytes:
    root = etree.fromstring(data)
    next(root.iter(f"{{{TNS}}}{name}")).text = value
    return etree.tostring(root, encoding="UTF-8")


@pytest.mark.parametrize(
    "case", ["amount", "name", "unsigned", "not-xml", "doctype", "not-a-statement"]
)
def test_an_uploaded_file_that_does_not_verify_is_not_verified(
    verifying: Verifying, case: str
) -> None:
    statement = verifying.issue(bf.FULL)
    data = saved(statement)
    root = etree.fromstring(data)
    root.remove(root[-1])
    files = {
        "amount": tampered(data, "InvoicedAmount", "1.00"),
        "name": tampered(data, "FirstName", "Gulsen"),
        "unsigned": etree.tostring(root, encoding="UTF-8"),
        "not-xml": b"not xml at all",
        "doctype": b'<!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>',
        "not-a-statement": b"<Statement/>",
    }
    response = upload(verifying, files[case])
    assert response.status_code == 200
    page = page_of(response)
    assert page.find(".//*[@id='result']").get("data-result") == "NOT_VERIFIED"
    assert shown(page, "verdict") == "SIGNATURE NOT VALID"
    assert page.find(".//*[@id='statement-number']") is None
    outcomes = [e.outcome for e in verifying.app.audit.search()]
    assert outcomes[0] == "VERIFY_FILE_NOT_VERIFIED"


def test_a_verified_file_the_registry_does_not_hold_is_not_found(verifying: Verifying) -> None:
    statement = verifying.issue(bf.NEW)
    with verifying.app.audit.engine.begin() as conn:
        conn.execute(text("DELETE FROM statement_registry"))  # purged, say
    page = page_of(upload(verifying, saved(statement)))
    assert page.find(".//*[@id='result']").get("data-result") == "NOT_FOUND"


@pytest.mark.parametrize(
    "request_kwargs",
    [
        pytest.param({"data": b"n=1"}, id="not-multipart"),
        pytest.param({"files": {"other": ("s.xml", b"<x/>", "text/xml")}}, id="no-statement-part"),
        pytest.param(
            {"files": [("statement", ("a.xml", b"<x/>", "text/xml")),
                       ("statement", ("b.xml", b"<y/>", "text/xml"))]},
            id="two-files",
        ),
    ],
)  # fmt: skip
def test_an_upload_without_one_statement_file_is_a_bad_request(
    verifying: Verifying, request_kwargs: dict
) -> None:
    response = requests.post(f"{verifying.server.base_url}/verify", timeout=10, **request_kwargs)
    assert response.status_code == 400


# --- audit, metrics -----------------------------------------------------------------------


def test_every_lookup_is_audited_without_the_digest(verifying: Verifying) -> None:
    statement = verifying.issue(bf.FULL)
    verifying.page(statement)
    verifying.get("/verify.json", n=statement.statement_number, d=statement.signature_value_sha256)
    verifying.get("/verify", n=statement.statement_number, d="0" * 64)
    verifying.get("/verify")  # the form: no lookup, no record
    records = [e for e in verifying.app.audit.search() if e.outcome.startswith("VERIFY_")]
    assert [(e.outcome, e.statement_number, e.subscriber_code) for e in records] == [
        ("VERIFY_PAGE_NOT_FOUND", statement.statement_number, ""),
        ("VERIFY_JSON_VALID", statement.statement_number, bf.FULL),
        ("VERIFY_PAGE_VALID", statement.statement_number, bf.FULL),
    ]
    assert all(e.remote_addr == "127.0.0.1" and not e.citizen_fin for e in records)
    with verifying.app.audit.engine.connect() as conn:
        dump = " ".join(str(row) for row in conn.execute(text("SELECT * FROM audit_record")))
    assert statement.signature_value_sha256 not in dump
    assert statement.signature_value_sha256[:16] not in dump


def metric(app: ServiceApp, via: str, result: str) -> float:
    value = app.metrics.registry.get_sample_value(
        "azersu_verify_lookups_total", {"via": via, "result": result}
    )
    return value or 0.0


def test_each_outcome_is_counted(verifying: Verifying) -> None:
    statement = verifying.issue(bf.FULL)
    app = verifying.app
    verifying.page(statement)
    verifying.page(statement)
    verifying.get("/verify.json", n="x", d="y")
    upload(verifying, b"<x/>")
    assert metric(app, "page", "VALID") == 2
    assert metric(app, "json", "NOT_FOUND") == 1
    assert metric(app, "file", "NOT_VERIFIED") == 1
    exposed = requests.get(f"{verifying.server.base_url}/metrics", timeout=10).text
    assert 'azersu_verify_lookups_total{result="VALID",via="page"} 2.0' in exposed


def test_no_answer_leaves_without_its_audit_record(verifying: Verifying) -> None:
    statement = verifying.issue(bf.FULL)
    with verifying.app.audit.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_record"))
    response = verifying.page(statement)
    assert response.status_code == 503
    assert statement.statement_number not in response.text
    assert verifying.get(
        "/verify.json", n=statement.statement_number, d=statement.signature_value_sha256
    ).json() == {"error": "UNAVAILABLE"}
    assert metric(verifying.app, "page", "UNAVAILABLE") == 1


# --- the limit on misses ------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def counter_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable]:
    """Return a factory of counters that share one store (as two workers or hosts do)."""
    made: list = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.sqlite'}"

        def factory():
            made.append(SqlRateCounter.from_url(url))
            return made[-1]
    elif request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"rate_{uuid.uuid4().hex[:16]}")

        def factory():
            made.append(SqlRateCounter.from_url(url))
            return made[-1]
    else:
        redis_server = RedisServer(tmp_path / "redis")
        redis_server.start()
        request.addfinalizer(redis_server.stop)
        prefix = f"test:{uuid.uuid4().hex}:"

        def factory():
            made.append(RedisRateCounter(redis.Redis.from_url(redis_server.url), prefix))
            return made[-1]

    yield factory
    for counter in made:
        counter.close()


def test_misses_are_limited_per_client_across_stores_sharing_a_database(
    counter_factory: Callable,
) -> None:
    clock = Clock(1_800_000_030.0)  # 30 s into a minute
    first = NotFoundLimit(counter_factory(), 30, clock=clock)
    second = NotFoundLimit(counter_factory(), 30, clock=clock)  # another worker or host
    for i in range(30):
        limit = first if i % 2 else second
        assert limit.before_lookup("192.0.2.7").allowed
        assert limit.found_nothing("192.0.2.7").allowed, i
    assert not first.found_nothing("192.0.2.7").allowed  # the 31st miss
    verdict = second.before_lookup("192.0.2.7")
    assert (verdict.allowed, verdict.retry_after_s) == (False, 30)
    assert second.before_lookup("192.0.2.8").allowed  # another client
    clock.now += 30  # the next minute
    assert first.before_lookup("192.0.2.7").allowed


def test_concurrent_misses_are_all_counted(counter_factory: Callable) -> None:
    """Sixty increments from six threads, and the purge of past windows in passing: none lost."""
    import threading
    import time

    counter = counter_factory()
    window = int(time.time() // 60)  # the current window: the purge keeps it
    errors: list[BaseException] = []

    def miss_ten_times() -> None:
        try:
            for _ in range(10):
                counter.increment("198.51.100.1", window)
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=miss_ten_times) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert counter.count("198.51.100.1", window) == 60


def test_valid_lookups_are_not_limited_but_a_spent_budget_blocks_every_lookup(
    settings, serve_app, tmp_path, portal_identity, trust
) -> None:
    app = create_app(
        dataclasses.replace(
            settings,
            audit_url=f"sqlite:///{tmp_path / 'audit.sqlite'}",
            verify_rate_per_min=3,
        )
    )
    server = serve_app(app)
    verifying = Verifying(server, StatementClient(server.url, portal_identity, trust))
    statement = verifying.issue(bf.FULL)
    for _ in range(10):
        assert verifying.page(statement).status_code == 200  # hits are never counted
    for _ in range(3):
        assert verifying.get("/verify", n="x", d="y").status_code == 200
    limited = verifying.get("/verify", n="x", d="y")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["Cache-Control"] == "no-store"
    assert page_of(limited).find(".//*[@id='result']").get("data-result") == "LIMITED"
    # Beyond the budget a hit is refused too: otherwise 429 would mean "no", and a page "yes".
    assert verifying.page(statement).status_code == 429
    assert verifying.get("/verify.json", n="x", d="y").json()["error"] == "RATE_LIMITED"
    assert [e.outcome for e in app.audit.search()][:3] == [
        "VERIFY_JSON_RATE_LIMITED",
        "VERIFY_PAGE_RATE_LIMITED",
        "VERIFY_PAGE_RATE_LIMITED",
    ]
    assert metric(app, "page", "RATE_LIMITED") == 2


def test_the_rate_store_down_refuses_the_lookup(verifying: Verifying) -> None:
    statement = verifying.issue()
    with verifying.app.rate_counter.engine.begin() as conn:
        conn.execute(text("DROP TABLE verify_rate_window"))
    assert verifying.page(statement).status_code == 503
    assert verifying.app.readiness()["checks"]["verify_rate"] != "ok"


def test_past_windows_are_purged_in_passing(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    counter = SqlRateCounter.from_url(f"sqlite:///{tmp_path / 'audit.sqlite'}", clock=clock)
    try:
        now = int(clock.now // 60)
        counter.increment("203.0.113.9", now - 2)
        counter.increment("203.0.113.9", now - 1)
        for _ in range(48):  # the 50th increment purges
            counter.increment("203.0.113.9", now)
        assert counter.count("203.0.113.9", now - 2) == 0
        assert counter.count("203.0.113.9", now - 1) == 1  # the previous minute is kept
        assert counter.count("203.0.113.9", now) == 48
    finally:
        counter.close()


def test_a_count_survives_a_dropped_postgres_connection(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No ping before each use: an increment that finds the pooled connection dead runs again."""
    name = f"rate_{uuid.uuid4().hex[:16]}"
    counter = SqlRateCounter.from_url(postgres_server.create_database(name))
    try:
        assert counter.increment("203.0.113.9", 7) == 1
        assert postgres_server.terminate_connections(name) == 1  # the pool's one connection
        with caplog.at_level(logging.INFO, logger="service.shared_table"):
            assert counter.increment("203.0.113.9", 7) == 2
        assert "verify_rate_window: connection lost, trying a new one" in caplog.text
    finally:
        counter.close()


def test_digests_are_compared_in_constant_time_also_for_an_unknown_number(
    verifying: Verifying, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every lookup goes through hmac.compare_digest, found or not (a stand-in when not)."""
    import hmac

    from service.verification import lookup

    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    statement = verifying.issue()
    monkeypatch.setattr(lookup.hmac, "compare_digest", recording)
    digest = statement.signature_value_sha256
    registry = verifying.app.audit.registry
    assert lookup.look_up(registry, statement.statement_number, digest).result == "VALID"
    assert lookup.look_up(registry, "AZS-20260101-000000000000", digest).result == "NOT_FOUND"
    assert lookup.look_up(registry, statement.statement_number, "0" * 64).result == "NOT_FOUND"
    assert [len(a) for a, _ in compared] == [64, 64, 64]
    assert compared[1][0] == b"0" * 64  # the stand-in, not a short cut
