"""What a bank clerk sees: the printed statement's QR code, scanned, opened in a real browser.

The real ``azersu-statement serve`` (gunicorn, two workers) issues a
statement to the portal; the ``render`` command prints it to PDF; pdftoppm
and zbarimg read the QR code off the printed page, as a phone would; headless
Chromium opens that link against the server and the test reads the page it
built: VALID with the statement's totals in Azerbaijani, English and Russian;
one hex digit of the digest changed gives NOT_FOUND, the very page an unknown
number gives; after ``azersu-statement revoke``, REVOKED.  The JSON endpoint
answers the same three cases.  The limit on misses is shown at work across
two servers sharing the audit database, and across two hosts sharing Redis.
Without chromium, pdftoppm, zbarimg or redis-server the tests are skipped,
except on CI (``CI=true``) where they fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree
from lxml import html as lxml_html
from PIL import Image
from requests_toolbelt.adapters.source import SourceAddressAdapter

from service.client import StatementClient
from service.signing.statement_signature import VerifiedStatement
from tests import billing_fixtures as bf
from tests.browser import chromium, read_qr
from tests.conftest import require_tool
from tests.gunicorn_process import ServedProcess, fixture_service_env
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "verify"
VERDICT = {
    "VALID": {"az": "ETİBARLIDIR", "en": "VALID", "ru": "ДЕЙСТВИТЕЛЬНА"},
    "REVOKED": {
        "az": "LƏĞV EDİLİB — ETİBARLI DEYİL",
        "en": "REVOKED — NOT VALID",
        "ru": "ОТОЗВАНА — НЕДЕЙСТВИТЕЛЬНА",
    },
    "NOT_FOUND": {"az": "TAPILMADI", "en": "NOT FOUND", "ru": "НЕ НАЙДЕНА"},
}
#: The FULL subscriber's totals over 2025-03 .. 2026-02 (tests/billing_fixtures.py).
FULL_TOTALS = ("288", "144.00", "144.00")
M3 = {"az": "m³", "en": "m³", "ru": "м³"}
#: A phone's viewport (CSS pixels).
PHONE = (390, 844)


# --- the served site -----------------------------------------------------------------------


class Site:
    """``serve`` on the hand-made billing data, a portal calling it, and its var folder."""

    def __init__(self, server: ServedProcess, var: Path, client: StatementClient) -> None:
        self.server = server
        self.var = var
        self.client = client
        self.verify_url = f"{server.base_url}/verify"

    def issue(self, code: str) -> VerifiedStatement:
        result = self.client.call(code, bf.FIN)
        assert result.statement is not None
        return result.statement


@pytest.fixture(scope="module")
def site(
    billing_db: str,
    pki: dict[str, Path],
    portal_identity,
    trust,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("verify-site")
    env = fixture_service_env(pki, billing_db, folder / "var", AZERSU_WORKERS="2")
    server = ServedProcess(env, folder / "serve.log")
    try:
        yield Site(server, folder / "var", StatementClient(server.url, portal_identity, trust))
    finally:
        assert server.stop() == 0, server.log_text()


def cli(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
    env.update(PYTHONIOENCODING="utf-8", **settings)
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        capture_output=True, text=True, encoding="utf-8", env=env, timeout=120, check=False,
    )  # fmt: skip


def scanned_link(site: Site, statement: VerifiedStatement, pki, tmp_path: Path) -> str:
    """Print the statement to PDF with ``render``, and read the QR code off the printed page."""
    source = tmp_path / "statement.xml"
    source.write_bytes(etree.tostring(statement.statement, encoding="UTF-8"))
    pdf = tmp_path / "statement.pdf"
    rendered = cli(
        "render", str(source), "-o", str(pdf), "--trust", str(pki["ca.pem"]),
        AZERSU_VERIFY_URL=site.verify_url,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    subprocess.run(
        [require_tool("pdftoppm", "poppler-utils"), "-r", "150", "-png", "-singlefile", str(pdf),
         str(tmp_path / "printed")],
        timeout=60, check=True,
    )  # fmt: skip
    return read_qr(tmp_path / "printed.png")


def dom(url: str, tmp_path: Path) -> etree._Element:
    """Return the page that Chromium built from ``url``, parsed."""
    dumped = chromium(url, tmp_path, "--dump-dom").stdout
    assert "<html" in dumped, dumped[:500]
    return lxml_html.document_fromstring(dumped)


def screenshot(url: str, tmp_path: Path, name: str, size: tuple[int, int] = PHONE) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / f"{name}.png"
    png.unlink(missing_ok=True)
    chromium(url, tmp_path, f"--screenshot={png}", "--window-size={},{}".format(*size))
    assert png.is_file()
    return png


def shown(page: etree._Element, name: str) -> str:
    found = page.find(f".//*[@id='{name}']")
    assert found is not None, f"no #{name} on the page"
    return " ".join(found.text_content().split())


def result_of(page: etree._Element) -> str:
    section = page.find(".//*[@id='result']")
    assert section is not None
    return str(section.get("data-result"))


def with_lang(url: str, lang: str) -> str:
    return f"{url}&lang={lang}"


def pixels(png: Path, rgb: tuple[int, int, int]) -> int:
    """Count the pixels of exactly this colour (the result's background)."""
    image = Image.open(png).convert("RGB")
    counts = image.getcolors(image.width * image.height) or []
    return next((count for count, colour in counts if colour == rgb), 0)


# --- the three answers, as a person sees them --------------------------------------------


def test_the_scanned_qr_code_opens_valid_with_the_totals_in_three_languages(
    site: Site, pki, tmp_path: Path
) -> None:
    statement = site.issue(bf.FULL)
    link = scanned_link(site, statement, pki, tmp_path)
    assert link == (
        f"{site.verify_url}?n={statement.statement_number}&d={statement.signature_value_sha256}"
    )
    consumption, invoiced, paid = FULL_TOTALS
    for lang in ("az", "en", "ru"):
        page = dom(with_lang(link, lang) if lang != "az" else link, tmp_path)
        assert page.get("lang") == lang
        assert result_of(page) == "VALID"
        assert shown(page, "verdict") == VERDICT["VALID"][lang]
        assert shown(page, "statement-number") == statement.statement_number
        assert shown(page, "subscriber-code") == "*****0001"
        assert shown(page, "total-consumption") == f"{consumption} {M3[lang]}"
        assert shown(page, "total-invoiced") == f"{invoiced} AZN"
        assert shown(page, "total-paid") == f"{paid} AZN"
        text = " ".join(page.text_content().split())
        for personal in (bf.AZ_LAST, bf.AZ_FIRST, bf.AZ_ADDRESS, bf.FIN):
            assert personal not in text
    # The stylesheet loads under the page's CSP: the result box has its green background.
    png = screenshot(link, tmp_path, "verify-valid-az-phone")
    assert pixels(png, (0xEA, 0xF6, 0xEE)) > 20_000, "the VALID box is not drawn in green"


def test_one_changed_hex_digit_is_the_unknown_numbers_page(site: Site, pki, tmp_path: Path) -> None:
    statement = site.issue(bf.NEW)
    link = scanned_link(site, statement, pki, tmp_path)
    digest = statement.signature_value_sha256
    changed = link.replace(
        f"d={digest}", f"d={digest[:10]}{'1' if digest[10] != '1' else '2'}{digest[11:]}"
    )
    assert changed != link
    unknown = f"{site.verify_url}?n=AZS-20260101-000000000000&d={digest}"
    for lang in ("az", "en", "ru"):
        changed_page = dom(with_lang(changed, lang), tmp_path)
        unknown_page = dom(with_lang(unknown, lang), tmp_path)
        assert result_of(changed_page) == "NOT_FOUND"
        assert shown(changed_page, "verdict") == VERDICT["NOT_FOUND"][lang]
        assert etree.tostring(changed_page) == etree.tostring(unknown_page)
        assert statement.statement_number not in etree.tostring(changed_page, encoding="unicode")
        # ... and byte for byte as the server sends them.
        sent = [requests.get(with_lang(url, lang), timeout=10) for url in (changed, unknown)]
        assert sent[0].content == sent[1].content
        assert sent[0].status_code == sent[1].status_code == 200


def test_after_revoke_the_page_says_revoked(site: Site, pki, tmp_path: Path) -> None:
    statement = site.issue(bf.GAPS)
    link = scanned_link(site, statement, pki, tmp_path)
    assert result_of(dom(link, tmp_path)) == "VALID"
    revoked = cli(
        "revoke", statement.statement_number, "--reason", "Düzəliş: yeni arayış verilib",
        AZERSU_VAR_DIR=str(site.var),
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    for lang in ("az", "en", "ru"):
        page = dom(with_lang(link, lang), tmp_path)
        assert result_of(page) == "REVOKED"
        assert shown(page, "verdict") == VERDICT["REVOKED"][lang]
        assert shown(page, "revocation-reason") == "Düzəliş: yeni arayış verilib"
        assert re.fullmatch(
            r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d \(UTC\+04:00\)", shown(page, "revoked-at")
        )
    png = screenshot(link, tmp_path, "verify-revoked-az-phone")
    assert pixels(png, (0xFD, 0xEC, 0xEE)) > 20_000, "the REVOKED box is not drawn in red"


def test_the_json_endpoint_answers_the_same_three_cases(site: Site, pki, tmp_path: Path) -> None:
    statement = site.issue(bf.OVERPAID)
    number, digest = statement.statement_number, statement.signature_value_sha256
    url = f"{site.server.base_url}/verify.json"
    valid = requests.get(url, params={"n": number, "d": digest}, timeout=10)
    assert valid.status_code == 200
    record = valid.json()
    assert record["result"] == "VALID"
    assert set(record) == {
        "result", "statementNumber", "issuedAt", "issuer", "subscriberCodeMasked", "periodFrom",
        "periodTo", "totals", "revokedAt", "revocationReason",
    }  # fmt: skip
    totals = site.client.call(bf.OVERPAID, bf.FIN).response.Statement.Totals
    assert record["totals"] == {
        "consumptionM3": str(totals.ConsumptionM3),
        "invoicedAmount": f"{totals.InvoicedAmount:.2f}",
        "paidAmount": f"{totals.PaidAmount:.2f}",
    }
    changed = digest[:-1] + ("1" if digest[-1] != "1" else "2")
    missed = requests.get(url, params={"n": number, "d": changed}, timeout=10)
    assert (missed.status_code, missed.json()) == (200, {"result": "NOT_FOUND"})
    assert cli("revoke", number, "--reason", "test", AZERSU_VAR_DIR=str(site.var)).returncode == 0
    revoked = requests.get(url, params={"n": number, "d": digest}, timeout=10).json()
    assert revoked["result"] == "REVOKED" and revoked["revocationReason"] == "test"
    assert revoked["revokedAt"].endswith("+04:00")


def test_the_saved_file_uploaded_to_serve_is_checked(site: Site) -> None:
    statement = site.issue(bf.EXACT)
    response = requests.post(
        f"{site.verify_url}?lang=ru",
        files={"statement": ("arayis.xml", etree.tostring(statement.statement), "text/xml")},
        timeout=10,
    )
    assert response.status_code == 200
    page = lxml_html.document_fromstring(response.content)
    assert result_of(page) == "VALID"
    assert shown(page, "verdict") == "ДЕЙСТВИТЕЛЬНА"


# --- the limit on misses, across processes ----------------------------------------------------


def from_address(address: str) -> requests.Session:
    """Return a session whose connections come from ``address`` (a loopback address)."""
    session = requests.Session()
    adapter = SourceAddressAdapter(address)
    session.mount("http://", adapter)
    return session


def fresh_window(at_least_s: float = 30.0) -> None:
    """Wait, if need be, so that the current minute has ``at_least_s`` seconds left."""
    left = 60 - time.time() % 60
    if left < at_least_s:
        time.sleep(left + 0.2)


def test_31_misses_from_one_address_across_two_servers_get_429(
    site: Site, pki, billing_db: str, tmp_path: Path
) -> None:
    """A second server (another host) on the same audit database shares the counts."""
    env = fixture_service_env(pki, billing_db, site.var)
    other = ServedProcess(env, tmp_path / "other.log")
    try:
        statement = site.issue(bf.CLOSED)
        valid = {"n": statement.statement_number, "d": statement.signature_value_sha256}
        miss = {"n": "AZS-20260101-000000000000", "d": "0" * 64}
        attacker, clerk, bank = (
            from_address("127.0.0.2"),
            from_address("127.0.0.3"),
            from_address("127.0.0.4"),
        )
        servers = (site.server.base_url, other.base_url)
        fresh_window()
        for i in range(40):  # a bank checking real statements is never limited
            answer = bank.get(f"{servers[i % 2]}/verify.json", params=valid, timeout=10)
            assert (answer.status_code, answer.json()["result"]) == (200, "VALID"), i
        for i in range(30):
            answer = attacker.get(f"{servers[i % 2]}/verify", params=miss, timeout=10)
            assert answer.status_code == 200, i
        refused = attacker.get(f"{servers[0]}/verify", params=miss, timeout=10)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert lxml_html.document_fromstring(refused.content).get("lang") == "az"
        on_the_other = attacker.get(f"{servers[1]}/verify.json", params=miss, timeout=10)
        assert on_the_other.status_code == 429
        assert on_the_other.json()["error"] == "RATE_LIMITED"
        # Beyond its budget the address gets 429 for a real statement too (docs/security.md).
        assert attacker.get(f"{servers[1]}/verify", params=valid, timeout=10).status_code == 429
        # Another address is not affected.
        assert clerk.get(f"{servers[0]}/verify", params=miss, timeout=10).status_code == 200
        assert bank.get(f"{servers[1]}/verify", params=valid, timeout=10).status_code == 200
        metrics = requests.get(f"{servers[0]}/metrics", timeout=10).text
        assert 'azersu_verify_lookups_total{result="RATE_LIMITED",via="page"}' in metrics
    finally:
        assert other.stop() == 0, other.log_text()


def test_misses_are_counted_across_hosts_sharing_redis(
    pki, billing_db: str, tmp_path: Path
) -> None:
    """Hosts with audit databases of their own share the counts through AZERSU_REPLAY_URL."""
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    hosts: list[ServedProcess] = []
    try:
        for name in ("a", "b"):
            env = fixture_service_env(
                pki, billing_db, tmp_path / name, AZERSU_REPLAY_URL=redis_server.url,
                AZERSU_VERIFY_RATE_PER_MIN="5",
            )  # fmt: skip
            hosts.append(ServedProcess(env, tmp_path / f"{name}.log"))
        attacker = from_address("127.0.0.5")
        miss = {"n": "AZS-20260101-000000000000", "d": "0" * 64}
        fresh_window(20)
        statuses = [
            attacker.get(
                f"{hosts[i % 2].base_url}/verify.json", params=miss, timeout=10
            ).status_code
            for i in range(6)
        ]
        assert statuses == [200] * 5 + [429]
        other = from_address("127.0.0.6").get(
            f"{hosts[0].base_url}/verify.json", params=miss, timeout=10
        )
        assert other.status_code == 200
    finally:
        for host in hosts:
            host.stop()
        redis_server.stop()


# --- the README's picture --------------------------------------------------------------


def test_the_readme_shows_a_valid_page_made_from_the_demo_database() -> None:
    """docs/verify-valid-az.png: made by tests/docs_screenshots.py with statement-az.png."""
    png = ROOT / "docs" / "verify-valid-az.png"
    image = Image.open(png)
    assert image.format == "PNG"
    assert image.width == PHONE[0]
    assert png.stat().st_size < 150 * 1024
    text = getattr(image, "text", {})
    assert text["Source"].startswith("init-demo defaults")
    statement = Image.open(ROOT / "docs" / "statement-az.png")
    assert getattr(statement, "text", {})["Statement"] == text["Statement"]
    # The printed statement's QR code leads to that very statement's page.
    link = read_qr(ROOT / "docs" / "statement-az.png")
    assert link.startswith(f"http://127.0.0.1:8080/verify?n={text['Statement']}&d=")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [line for line in readme.splitlines() if "(docs/verify-valid-az.png)" in line]
    assert len(lines) == 1 and lines[0].startswith("![")
