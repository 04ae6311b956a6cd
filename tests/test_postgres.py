"""GetBillingStatement end to end against a real PostgreSQL server (psycopg 3).

The same hand-made rows as the SQLite suite (:mod:`tests.billing_fixtures`) are
loaded into a PostgreSQL database; the service is built with
``create_app(replace(settings, billing_url=...))``, served over HTTP on
loopback and called with the portal's zeep client, which verifies every
signature.  Every figure is compared as the exact text of the raw XML as well
as the Decimal that zeep parsed.  ``init-demo`` is run as a subprocess into a
fresh database with a plain ``postgresql://`` URL.

Without PostgreSQL these tests are skipped (they fail on CI; see
``tests/conftest.py``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from lxml import etree
from sqlalchemy.engine import make_url

from service.app import create_app
from service.client import CallResult, StatementClient
from service.settings import Settings
from service.signing.keys import SigningIdentity
from service.signing.trust import TrustStore
from tests import billing_fixtures as bf
from tests.conftest import SCHEMAS, LiveServer
from tests.postgres_server import PostgresServer
from tests.test_billing_statement import NS, _statement_element
from tests.test_cli import run_cli

Portal = Callable[..., StatementClient]

#: (consumption m³, invoiced, paid) exactly as written in the XML.
Figures = tuple[str, str, str]
ZEROS: Figures = ("0", "0.00", "0.00")


def _window(figures: Callable[[int, int], Figures]) -> list[tuple[int, int, Figures]]:
    return [(year, month, figures(year, month)) for year, month in bf.WINDOW]


#: Every OK subscriber of the fixtures: its months (oldest first) and totals.
STATEMENTS: dict[str, tuple[list[tuple[int, int, Figures]], Figures]] = {
    # both services every month; payments on 2025-02-28 and 2026-03-01 fall outside
    bf.FULL: (_window(lambda y, m: ("24", "12.00", "12.00")), ("288", "144.00", "144.00")),
    # opened 2025-12-15: the opening month and after, a smart-card top-up
    bf.NEW: (
        [
            (2025, 12, ("9", "4.50", "20.00")),
            (2026, 1, ("9", "4.50", "0.00")),
            (2026, 2, ("9", "4.50", "0.00")),
        ],
        ("27", "13.50", "20.00"),
    ),
    # no invoice in 2025-06 and 2025-07, never paid, three-decimal consumption
    bf.GAPS: (
        _window(
            lambda y, m: ZEROS if (y, m) in {(2025, 6), (2025, 7)} else ("9.125", "5.48", "0.00")
        ),
        ("91.25", "54.80", "0.00"),
    ),
    bf.OVERPAID: (_window(lambda y, m: ("20", "10.00", "15.00")), ("240", "120.00", "180.00")),
    # closed after 2025-09: zeros later, Status still OK
    bf.CLOSED: (
        _window(lambda y, m: ("5", "3.50", "0.00") if (y, m) <= (2025, 9) else ZEROS),
        ("35", "24.50", "0.00"),
    ),
    # 0.10 + 0.20 is 0.30 exactly (not 0.30000000000000004), twelve times 3.60
    bf.EXACT: (_window(lambda y, m: ("0.81", "0.30", "0.30")), ("9.72", "3.60", "3.60")),
}


@pytest.fixture
def pg_settings(settings: Settings, pg_billing_url: str) -> Settings:
    return dataclasses.replace(settings, billing_url=pg_billing_url)


@pytest.fixture
def portal_for(
    serve_app: type[LiveServer], portal_identity: SigningIdentity, trust: TrustStore
) -> Portal:
    """Return a function that serves the app for some settings and returns a portal client."""

    def _portal(settings: Settings) -> StatementClient:
        server = serve_app(create_app(settings))
        return StatementClient(server.url, portal_identity, trust, timeout_s=15)

    return _portal


@pytest.fixture
def pg_portal(portal_for: Portal, pg_settings: Settings) -> StatementClient:
    """The portal's client, calling the service that reads the PostgreSQL fixtures."""
    return portal_for(pg_settings)


@pytest.fixture(scope="module")
def statement_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMAS / "statement.xsd"), parser))


def _figures(element: etree._Element) -> Figures:
    return (
        element.findtext("t:ConsumptionM3", namespaces=NS) or "",
        element.findtext("t:InvoicedAmount", namespaces=NS) or "",
        element.findtext("t:PaidAmount", namespaces=NS) or "",
    )


def _raw_months(result: CallResult) -> list[tuple[int, int, Figures]]:
    statement = _statement_element(result.raw_xml)
    return [
        (
            int(period.findtext("t:Year", namespaces=NS) or 0),
            int(period.findtext("t:Month", namespaces=NS) or 0),
            _figures(period),
        )
        for period in statement.iterfind("t:Periods/t:Period", NS)
    ]


@pytest.mark.parametrize(
    ("code", "fin", "status"),
    [
        ("", bf.FIN, "SUBSCRIBER_CODE_EMPTY"),
        ("\u00a0 ", bf.FIN, "SUBSCRIBER_CODE_EMPTY"),
        ("12ab", bf.FIN, "SUBSCRIBER_CODE_INVALID"),
        ("12345", bf.FIN, "SUBSCRIBER_CODE_INVALID"),
        (bf.FULL, "BAD", "FIN_INVALID"),
        (bf.FULL, None, "FIN_INVALID"),
        (bf.UNKNOWN, bf.FIN, "SUBSCRIBER_NOT_FOUND"),
        (bf.BUSINESS, bf.FIN, "NOT_RESIDENTIAL"),
        (bf.FULL, bf.FIN, "OK"),
        (f"  {bf.FULL}  ", bf.FIN.lower(), "OK"),
        # the first failing check answers
        (bf.UNKNOWN, "BAD", "FIN_INVALID"),
        (bf.BUSINESS, "BAD", "FIN_INVALID"),
    ],
)
def test_each_status(pg_portal: StatementClient, code: str, fin: str | None, status: str) -> None:
    result = pg_portal.call(code, fin)
    assert result.response.Status == status
    assert result.response.Message
    has_statement = bool(etree.fromstring(result.raw_xml).findall(".//t:Statement", NS))
    assert has_statement == (status == "OK")
    assert (result.statement is not None) == (status == "OK")  # verified signature


@pytest.mark.parametrize("code", list(STATEMENTS))
def test_months_and_totals_are_exact(
    pg_portal: StatementClient, statement_schema: etree.XMLSchema, code: str
) -> None:
    months, totals = STATEMENTS[code]
    result = pg_portal.call(code, bf.FIN)
    assert result.response.Status == "OK"
    # The raw XML: exact text, two decimals for money, consumption without trailing zeros.
    assert _raw_months(result) == months
    element = _statement_element(result.raw_xml)
    assert _figures(element.find("t:Totals", NS)) == totals
    # What zeep parsed: Decimals equal to the same figures, rows adding up to the totals.
    statement = result.response.Statement
    parsed = [
        (p.Year, p.Month, (p.ConsumptionM3, p.InvoicedAmount, p.PaidAmount))
        for p in statement.Periods.Period
    ]
    assert parsed == [(y, m, tuple(Decimal(x) for x in f)) for y, m, f in months]
    for index, total in enumerate(
        (
            statement.Totals.ConsumptionM3,
            statement.Totals.InvoicedAmount,
            statement.Totals.PaidAmount,
        )
    ):
        assert total == Decimal(totals[index])
        assert total == sum((row[2][index] for row in parsed), Decimal(0))
    # The statement validates against the published XSD and keeps its Id.
    assert element.get("Id") == f"Statement-{statement.StatementNumber}"
    assert statement_schema.validate(element), statement_schema.error_log


def test_subscriber_fields_and_azerbaijani_text_round_trip(pg_portal: StatementClient) -> None:
    result = pg_portal.call(bf.FULL, bf.FIN, "az")
    statement = result.response.Statement
    sub = statement.Subscriber
    assert (sub.Code, sub.LastName, sub.FirstName, sub.Patronymic, sub.Address) == (
        bf.FULL,
        bf.AZ_LAST,
        bf.AZ_FIRST,
        bf.AZ_PATRONYMIC,
        bf.AZ_ADDRESS,
    )
    text = sub.LastName + sub.FirstName + sub.Patronymic + sub.Address
    assert all(letter in text for letter in bf.AZ_LETTERS)
    assert bf.AZ_ADDRESS.encode("utf-8") in result.raw_xml  # UTF-8 on the wire, not escaped
    assert (sub.PersonsCount, sub.WaterSupply, sub.Wastewater, sub.MeterType) == (
        4,
        True,
        True,
        "MECHANICAL",
    )
    assert statement.Currency == "AZN"
    assert "Azərsu" in statement.Issuer
    assert statement.IssuedAt.utcoffset().total_seconds() == 4 * 3600
    assert re.fullmatch(r"AZS-\d{8}-[0-9A-F]{12}", statement.StatementNumber)


@pytest.mark.parametrize(
    ("code", "patronymic", "wastewater", "meter"),
    [
        (bf.NEW, "Vüqar oğlu", True, "SMART_CARD"),
        (bf.GAPS, None, False, "NONE"),  # NULL patronymic stays absent
    ],
)
def test_subscriber_columns(
    pg_portal: StatementClient, code: str, patronymic: str | None, wastewater: bool, meter: str
) -> None:
    sub = pg_portal.call(code, bf.FIN).response.Statement.Subscriber
    assert (sub.Patronymic, sub.Wastewater, sub.MeterType) == (patronymic, wastewater, meter)


def test_latest_closed_period_is_discovered_on_postgresql(
    portal_for: Portal, pg_settings: Settings
) -> None:
    # Without the pin the service asks billing: FULL is invoiced up to 2026-03.
    portal = portal_for(dataclasses.replace(pg_settings, report_period=""))
    statement = portal.call(bf.FULL, bf.FIN).response.Statement
    months = [(p.Year, p.Month) for p in statement.Periods.Period]
    assert months == [*bf.WINDOW[1:], (2026, 3)]
    # the 2026-03-01 payment is now inside the window, the 2025-03-01 one outside
    assert [p.PaidAmount for p in statement.Periods.Period] == [Decimal("12.00")] * 12


def test_pg_billing_url_holds_the_fixture_rows(
    postgres_server: PostgresServer, pg_billing_url: str
) -> None:
    database = make_url(pg_billing_url).database or ""
    subscribers, invoices, payments = bf.rows()
    with postgres_server.connect(database) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM subscriber), (SELECT count(*) FROM invoice),"
            " (SELECT count(*) FROM payment)"
        ).fetchone()
        name = conn.execute(
            "SELECT last_name FROM subscriber WHERE subscriber_code = %s", (bf.FULL,)
        ).fetchone()
    assert counts == (len(subscribers), len(invoices), len(payments))
    assert name == (bf.AZ_LAST,)


# --------------------------------------------------------------------------- init-demo

SAMPLE_LINE = re.compile(r"^\s+(?P<kind>\w+)\s+(?P<codes>\d+(?:, \d+)*)\s+- ", re.MULTILINE)
#: Expected Status for a sample code of each kind printed by init-demo.
SAMPLE_STATUS = {
    "residential": "OK",
    "overpayment": "OK",
    "no_payments": "OK",
    "closed": "OK",
    "new_account": "OK",
    "smart_card": "OK",
    "no_meter": "OK",
    "water_only": "OK",
    "non_residential": "NOT_RESIDENTIAL",
}


@pytest.mark.slow
def test_init_demo_into_postgresql_then_the_service_answers(
    postgres_server: PostgresServer, portal_for: Portal, settings: Settings
) -> None:
    postgres_server.create_database("demo_cli")
    # A plain postgresql:// URL, as an operator would type it.
    url = f"postgresql://postgres@{postgres_server.host}:{postgres_server.port}/demo_cli"
    args = ("--subscribers", "300", "--months", "14", "--end-period", "2026-02")
    result = run_cli("init-demo", "--db", url, *args, timeout=180)
    assert result.returncode == 0, result.stderr
    samples = {m["kind"]: m["codes"].split(", ") for m in SAMPLE_LINE.finditer(result.stdout)}
    assert set(samples) == set(SAMPLE_STATUS), result.stdout
    assert "Latest closed billing period: 2026-02." in result.stdout

    # The service discovers the latest period from the demo data (no pin).
    portal = portal_for(dataclasses.replace(settings, billing_url=url, report_period=""))
    for kind, status in SAMPLE_STATUS.items():
        response = portal.call(samples[kind][0], bf.FIN).response
        assert response.Status == status, (kind, samples[kind][0])
        if status == "OK":
            periods = response.Statement.Periods.Period
            assert (periods[-1].Year, periods[-1].Month) == (2026, 2), kind
            # new accounts open during the last six months; every other account has 12
            expected = range(1, 7) if kind == "new_account" else range(12, 13)
            assert len(periods) in expected, kind

    # A second run refuses to overwrite the data.
    again = run_cli("init-demo", "--db", url, *args, timeout=180)
    assert again.returncode == 1
    assert "--replace" in again.stderr
