"""Tests of the demo billing database (service.demo_data) and the DDL files."""

from __future__ import annotations

import io
import re
import sqlite3
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.engine import make_url

from service import demo_data as demo
from service.billing.engine import normalize_url
from service.billing.tables import build_billing_tables
from service.demo_data import (
    SAMPLE_KINDS,
    DemoDatabaseNotEmpty,
    DemoSummary,
    format_summary,
    generate_demo,
    invoice_amount,
    latest_closed_period,
)
from tests.postgres_server import PostgresServer

SCHEMAS = Path(__file__).resolve().parent.parent / "service" / "schemas"

N = 300
MONTHS = 24
END = (2021, 12)
SEED = 7
#: The window of the module's demo: 2020-01 .. 2021-12.
WINDOW = [(2020 + i // 12, i % 12 + 1) for i in range(MONTHS)]
WINDOW_START = date(2020, 1, 1)
WINDOW_END = date(2021, 12, 31)
CENT = Decimal("0.01")
ABSHERON_PREFIXES = ("Bakı şəhəri, ", "Sumqayıt şəhəri, ", "Xırdalan şəhəri, ", "Abşeron rayonu, ")


@dataclass
class DemoData:
    """A generated demo database read back through SQLAlchemy."""

    url: str
    summary: DemoSummary
    subscribers: dict[str, dict[str, Any]]
    invoices: list[dict[str, Any]]
    payments: list[dict[str, Any]]

    def invoices_of(self, code: str) -> list[dict[str, Any]]:
        return [row for row in self.invoices if row["subscriber_code"] == code]

    def payments_of(self, code: str) -> list[dict[str, Any]]:
        return [row for row in self.payments if row["subscriber_code"] == code]

    def periods_of(self, code: str) -> list[tuple[int, int]]:
        return sorted({(row["period_year"], row["period_month"]) for row in self.invoices_of(code)})


def read_demo(
    url: str,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    tables = build_billing_tables()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            subscribers = {
                row["subscriber_code"]: dict(row)
                for row in conn.execute(select(tables.subscriber)).mappings()
            }
            invoices = [dict(row) for row in conn.execute(select(tables.invoice)).mappings()]
            payments = [dict(row) for row in conn.execute(select(tables.payment)).mappings()]
    finally:
        engine.dispose()
    return subscribers, invoices, payments


def dump(url: str) -> list[list[tuple[Any, ...]]]:
    """Return every row of the three tables, sorted, as the driver stores it."""
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return [
            sorted(conn.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608
            for table in ("subscriber", "invoice", "payment")
        ]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    # A parent folder that does not exist yet: generate_demo creates it.
    path = tmp_path_factory.mktemp("demo") / "var" / "billing.sqlite"
    url = f"sqlite:///{path}"
    summary = generate_demo(url, N, MONTHS, end_period=END, seed=SEED)
    return DemoData(url, summary, *read_demo(url))


def expected_tariff(subscriber: dict[str, Any], service: str) -> Decimal:
    """The 2021 tariff, written out independently of the generator."""
    if subscriber["category"] == "NON_RESIDENTIAL":
        return Decimal("1.00") if service == "WATER" else Decimal("0.50")
    if service == "WASTEWATER":
        return Decimal("0.30")
    if subscriber["address"].startswith(ABSHERON_PREFIXES):
        return Decimal("0.70")
    return Decimal("0.60")


# --------------------------------------------------------------------------- counts


def test_counts_match_the_summary(data: DemoData) -> None:
    assert data.summary.subscribers == N == len(data.subscribers)
    assert data.summary.invoices == len(data.invoices)
    assert data.summary.payments == len(data.payments)
    assert data.summary.end_period == END
    # Roughly 1.9 services for 24 months per subscriber.
    assert 1.6 * MONTHS * N < len(data.invoices) < 2 * MONTHS * N
    assert len(data.payments) > 10 * N


def test_subscriber_codes_are_unique_nine_digit_strings(data: DemoData) -> None:
    codes = list(data.subscribers)
    assert len(set(codes)) == N
    assert all(re.fullmatch(r"\d{9}", code) for code in codes)
    assert all(re.fullmatch(r"^\d{6,12}$", code) for code in codes)
    assert {row["subscriber_code"] for row in data.invoices} <= set(codes)
    assert {row["subscriber_code"] for row in data.payments} <= set(codes)


def test_same_seed_gives_the_same_data_and_another_seed_does_not(tmp_path: Path) -> None:
    urls = [f"sqlite:///{tmp_path / name}" for name in ("a.sqlite", "b.sqlite", "c.sqlite")]
    first = generate_demo(urls[0], 120, 13, end_period=(2022, 3), seed=11)
    second = generate_demo(urls[1], 120, 13, end_period=(2022, 3), seed=11)
    other = generate_demo(urls[2], 120, 13, end_period=(2022, 3), seed=12)
    assert first == second
    assert dump(urls[0]) == dump(urls[1])
    assert dump(urls[0]) != dump(urls[2])
    assert other.subscribers == first.subscribers


def test_portable_core_path_writes_the_same_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQLAlchemy Core path (Oracle and others) stores what the SQLite fast path does."""
    fast_url = f"sqlite:///{tmp_path / 'fast.sqlite'}"
    core_url = f"sqlite:///{tmp_path / 'core.sqlite'}"
    fast = generate_demo(fast_url, 80, 6, end_period=END, seed=5)
    monkeypatch.setattr(demo, "_SqliteWriter", demo._CoreWriter)
    core = generate_demo(core_url, 80, 6, end_period=END, seed=5)
    assert fast == core
    assert read_demo(fast_url) == read_demo(core_url)


# --------------------------------------------------------------------------- samples


def test_every_sample_kind_is_present_and_true(data: DemoData) -> None:
    samples = data.summary.samples
    assert list(samples) == list(SAMPLE_KINDS)
    for kind, codes in samples.items():
        assert len(codes) == 3, kind
        assert len(set(codes)) == 3, kind
        for code in codes:
            subscriber = data.subscribers[code]
            invoiced = sum((r["amount"] for r in data.invoices_of(code)), Decimal(0))
            paid = sum((r["amount"] for r in data.payments_of(code)), Decimal(0))
            residential = subscriber["category"] == "RESIDENTIAL"
            if kind == "residential":
                assert residential and subscriber["status"] == "ACTIVE"
                assert subscriber["meter_type"] == "MECHANICAL"
                assert len(data.periods_of(code)) == MONTHS
                assert paid > 0
            elif kind == "overpayment":
                assert residential and paid > invoiced
            elif kind == "no_payments":
                assert residential and invoiced > 0
                assert data.payments_of(code) == []
            elif kind == "closed":
                assert subscriber["status"] == "CLOSED"
            elif kind == "new_account":
                assert subscriber["opened_on"] >= WINDOW_START
            elif kind == "non_residential":
                assert subscriber["category"] == "NON_RESIDENTIAL"
            elif kind == "smart_card":
                assert residential and subscriber["meter_type"] == "SMART_CARD"
            elif kind == "no_meter":
                assert residential and subscriber["meter_type"] == "NONE"
            elif kind == "water_only":
                assert subscriber["water_supply"] == 1
                assert subscriber["wastewater"] == 0
                assert {r["service"] for r in data.invoices_of(code)} == {"WATER"}
            else:  # pragma: no cover
                pytest.fail(f"unexpected sample kind {kind}")


def test_the_mix_of_subscribers(data: DemoData) -> None:
    subscribers = data.subscribers.values()
    meters = {s["meter_type"] for s in subscribers}
    assert meters == {"MECHANICAL", "SMART_CARD", "NONE"}
    assert {s["category"] for s in subscribers} == {"RESIDENTIAL", "NON_RESIDENTIAL"}
    assert {s["status"] for s in subscribers} == {"ACTIVE", "CLOSED"}
    services = {(s["water_supply"], s["wastewater"]) for s in subscribers}
    assert services == {(1, 1), (1, 0), (0, 1)}
    mechanical = sum(s["meter_type"] == "MECHANICAL" for s in subscribers)
    assert mechanical > N / 2
    assert all(1 <= s["persons_count"] <= 8 for s in subscribers)


# --------------------------------------------------------------------------- money


def test_invoice_amount_rounds_half_up() -> None:
    assert invoice_amount(Decimal("12.350"), Decimal("0.70")) == Decimal("8.65")  # 8.645
    assert invoice_amount(Decimal("1.250"), Decimal("0.30")) == Decimal("0.38")  # 0.375
    assert invoice_amount(Decimal("1.249"), Decimal("0.30")) == Decimal("0.37")  # 0.3747
    assert invoice_amount(Decimal("0"), Decimal("0.60")) == Decimal("0.00")


def test_amounts_are_consumption_times_the_regional_tariff(data: DemoData) -> None:
    zones_seen = set()
    fractional = 0
    for row in data.invoices:
        subscriber = data.subscribers[row["subscriber_code"]]
        tariff = expected_tariff(subscriber, row["service"])
        zones_seen.add((subscriber["category"], row["service"], tariff))
        consumption, amount = row["consumption_m3"], row["amount"]
        assert isinstance(consumption, Decimal) and isinstance(amount, Decimal)
        assert consumption >= 0
        assert consumption == consumption.quantize(Decimal("0.001"))
        fractional += consumption != consumption.to_integral_value()
        expected = (consumption * tariff).quantize(CENT, rounding=ROUND_HALF_UP)
        assert amount == expected, row
    assert fractional > 0
    assert ("RESIDENTIAL", "WATER", Decimal("0.70")) in zones_seen
    assert ("RESIDENTIAL", "WATER", Decimal("0.60")) in zones_seen
    assert ("RESIDENTIAL", "WASTEWATER", Decimal("0.30")) in zones_seen
    assert ("NON_RESIDENTIAL", "WATER", Decimal("1.00")) in zones_seen


def test_services_follow_the_contract_of_each_subscriber(data: DemoData) -> None:
    by_month: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    for row in data.invoices:
        key = (row["subscriber_code"], row["period_year"], row["period_month"])
        assert row["service"] not in by_month[key], "one invoice per service and month"
        by_month[key].add(row["service"])
        assert (row["period_year"], row["period_month"]) in WINDOW
    for (code, _, _), services in by_month.items():
        subscriber = data.subscribers[code]
        expected = {"WATER"} if subscriber["water_supply"] else set()
        if subscriber["wastewater"]:
            expected.add("WASTEWATER")
        assert services == expected


def test_subscribers_without_a_meter_pay_the_norm(data: DemoData) -> None:
    checked = 0
    for code, subscriber in data.subscribers.items():
        if subscriber["meter_type"] != "NONE" or subscriber["opened_on"] >= WINDOW_START:
            continue
        norm = Decimal(3 * subscriber["persons_count"])
        for row in data.invoices_of(code):
            assert row["consumption_m3"] == norm
            checked += 1
    assert checked > 0


def test_consumption_is_higher_in_summer(data: DemoData) -> None:
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for row in data.invoices:
        if row["service"] == "WATER" and row["period_year"] == 2021:
            totals[row["period_month"]] += row["consumption_m3"]
    assert totals[7] > totals[4] > totals[2]


def test_payments_are_positive_and_inside_the_window(data: DemoData) -> None:
    for row in data.payments:
        assert isinstance(row["amount"], Decimal)
        assert row["amount"] > 0
        assert row["amount"] == row["amount"].quantize(CENT)
        assert WINDOW_START <= row["paid_on"] <= WINDOW_END
        assert row["paid_on"] >= data.subscribers[row["subscriber_code"]]["opened_on"]


def test_some_pay_late_some_partially_some_never(data: DemoData) -> None:
    never = [c for c in data.subscribers if not data.payments_of(c) and data.invoices_of(c)]
    assert never
    months_with_two = 0
    for code in data.subscribers:
        months = [(p["paid_on"].year, p["paid_on"].month) for p in data.payments_of(code)]
        months_with_two += len(months) - len(set(months))
    assert months_with_two > 0  # split payments or top-ups


# --------------------------------------------------------------------------- people


def test_azerbaijani_letters_survive_the_round_trip(data: DemoData) -> None:
    text = "".join(
        s["last_name"] + s["first_name"] + (s["patronymic"] or "") + s["address"]
        for s in data.subscribers.values()
    )
    for letter in "əğıöşçüƏŞÇÜİ":
        assert letter in text, letter
    assert unicodedata.is_normalized("NFC", text)
    names = set(demo.MALE_FIRST_NAMES) | set(demo.FEMALE_FIRST_NAMES)
    assert {s["first_name"] for s in data.subscribers.values()} <= names
    # The raw driver sees the same text as SQLAlchemy.
    with sqlite3.connect(data.url.removeprefix("sqlite:///")) as conn:
        raw = dict(conn.execute("SELECT subscriber_code, address FROM subscriber"))
    assert raw == {code: s["address"] for code, s in data.subscribers.items()}


def test_names_and_patronymics_match_the_gender(data: DemoData) -> None:
    male_surnames = {m for m, _ in demo.SURNAMES}
    female_surnames = {f for _, f in demo.SURNAMES}
    genders = set()
    for s in data.subscribers.values():
        father, suffix = s["patronymic"].rsplit(" ", 1)
        assert father in demo.MALE_FIRST_NAMES
        if suffix == "oğlu":
            genders.add("male")
            assert s["first_name"] in demo.MALE_FIRST_NAMES
            assert s["last_name"] in male_surnames
        else:
            genders.add("female")
            assert suffix == "qızı"
            assert s["first_name"] in demo.FEMALE_FIRST_NAMES
            assert s["last_name"] in female_surnames
    assert genders == {"male", "female"}
    last_names = {s["last_name"] for s in data.subscribers.values()}
    assert any(name.endswith("ova") for name in last_names)
    assert any(name.endswith(("li", "lı")) for name in last_names)
    assert any(name.endswith("zadə") for name in last_names)


def test_fins_are_seven_characters_without_i_and_o(data: DemoData) -> None:
    fins = [s["fin"] for s in data.subscribers.values()]
    assert all(re.fullmatch(r"[A-HJ-NP-Z0-9]{7}", fin) for fin in fins)
    assert len(set(fins)) > N * 0.99


def test_addresses_are_in_baku_and_the_regions(data: DemoData) -> None:
    addresses = [s["address"] for s in data.subscribers.values()]
    assert any(a.startswith("Bakı şəhəri, ") and " rayonu, " in a for a in addresses)
    assert any(a.startswith("Sumqayıt şəhəri, ") for a in addresses)
    assert any(not a.startswith(ABSHERON_PREFIXES) for a in addresses)
    assert all(re.search(r", ev \d+(, mənzil \d+)?$", a) for a in addresses)


# --------------------------------------------------------------------------- life cycle


def test_closed_accounts_have_no_invoices_after_closing(data: DemoData) -> None:
    closed = [c for c, s in data.subscribers.items() if s["status"] == "CLOSED"]
    assert closed
    for code in closed:
        periods = data.periods_of(code)
        assert periods, "closed during the window, so invoiced before"
        assert periods[0] == WINDOW[0]
        last = WINDOW.index(periods[-1])
        assert periods[-1] < END
        # Every month up to the closing one, bar at most one unread month; none after.
        assert len(periods) >= last
        assert set(periods) <= set(WINDOW[: last + 1])


def test_active_accounts_are_invoiced_in_the_last_period(data: DemoData) -> None:
    for code, subscriber in data.subscribers.items():
        if subscriber["status"] == "ACTIVE":
            assert data.periods_of(code)[-1] == END


def test_new_accounts_have_no_invoices_before_opening(data: DemoData) -> None:
    new = [c for c, s in data.subscribers.items() if s["opened_on"] >= WINDOW_START]
    assert new
    for code in new:
        opened_on = data.subscribers[code]["opened_on"]
        assert opened_on >= date(2021, 7, 1), "opened in the last six months"
        periods = data.periods_of(code)
        assert periods[0] == (opened_on.year, opened_on.month)
    old = [c for c, s in data.subscribers.items() if s["opened_on"] < WINDOW_START]
    assert all(data.periods_of(code)[0] == WINDOW[0] for code in old)


def test_some_subscribers_miss_a_month(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gaps.sqlite'}"
    generate_demo(url, 1000, 12, end_period=END, seed=3)
    _, invoices, _ = read_demo(url)
    periods: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for row in invoices:
        periods[row["subscriber_code"]].add((row["period_year"], row["period_month"]))
    gaps = 0
    for months in periods.values():
        ordinals = sorted(y * 12 + m for y, m in months)
        gaps += ordinals[-1] - ordinals[0] + 1 != len(ordinals)
    assert 0 < gaps < 50


# --------------------------------------------------------------------------- database


def test_refuses_a_database_that_holds_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'billing.sqlite'}"
    generate_demo(url, 40, 3, end_period=END)
    before = dump(url)
    with pytest.raises(DemoDatabaseNotEmpty, match="already holds billing data") as caught:
        generate_demo(url, 50, 3, end_period=END)
    assert isinstance(caught.value, ValueError)
    assert dump(url) == before
    summary = generate_demo(url, 50, 3, end_period=END, replace=True)
    assert summary.subscribers == 50
    subscribers, invoices, _ = read_demo(url)
    assert len(subscribers) == 50 and len(invoices) == summary.invoices


def test_fills_empty_tables_created_from_the_ddl_file(tmp_path: Path) -> None:
    path = tmp_path / "billing.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript((SCHEMAS / "billing_sqlite_postgresql.sql").read_text("utf-8"))
    summary = generate_demo(f"sqlite:///{path}", 30, 2, end_period=END)
    assert summary.subscribers == 30
    engine = create_engine(f"sqlite:///{path}")
    try:
        indexes = {i["name"] for i in inspect(engine).get_indexes("invoice")}
    finally:
        engine.dispose()
    assert indexes == {"ix_invoice_sub_period", "ix_invoice_period"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subscribers": 0}, "subscribers must be between 1 and 1,700,000"),
        ({"subscribers": 1_700_001}, "subscribers must be between 1 and 1,700,000"),
        ({"months": 0}, "months must be between 1 and 120"),
        ({"months": 121}, "months must be between 1 and 120"),
        ({"end_period": (2021, 13)}, "end_period must be a"),
        ({"end_period": (2021,)}, "end_period must be a"),
        ({"end_period": (1900, 1)}, "year must be between"),
    ],
)
def test_rejects_arguments_out_of_range(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    path = tmp_path / "never.sqlite"
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_demo(f"sqlite:///{path}", **kwargs)
    assert not path.exists()


def test_rejects_a_bad_url() -> None:
    with pytest.raises(ValueError, match="invalid database URL"):
        generate_demo("not a url", 10, 1, end_period=END)


def test_one_month_and_one_subscriber(tmp_path: Path) -> None:
    summary = generate_demo(f"sqlite:///{tmp_path / 'tiny.sqlite'}", 1, 1, end_period=(2021, 1))
    assert summary.subscribers == 1
    assert summary.end_period == (2021, 1)
    assert set(summary.samples) == set(SAMPLE_KINDS)


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_server(postgres_server: PostgresServer) -> PostgresServer:
    """The session's PostgreSQL server (tests/conftest.py): skipped without one, except on CI."""
    return postgres_server


def plain_postgresql_url(server: Any, name: str) -> str:
    """Create database ``name``; return its URL as a user types it: ``postgresql://``, no driver."""
    url = make_url(server.create_database(name)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def sorted_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(row.values()) for row in rows)


def test_postgresql_demo_is_the_sqlite_demo(data: DemoData, pg_server: Any) -> None:
    """COPY into PostgreSQL stores exactly the rows of the SQLite fast path, same seed."""
    url = plain_postgresql_url(pg_server, "demo_same_rows")
    stream = io.StringIO()
    summary = generate_demo(url, N, MONTHS, end_period=END, seed=SEED, progress=stream)
    assert summary == data.summary
    assert "creating indexes..." in stream.getvalue()
    assert "analyzing..." in stream.getvalue()
    subscribers, invoices, payments = read_demo(str(normalize_url(url, "--db")))
    assert subscribers == data.subscribers  # text, dates and integers as SQLAlchemy reads them
    assert sorted_rows(invoices) == sorted_rows(data.invoices)  # Decimal money and volumes
    assert sorted_rows(payments) == sorted_rows(data.payments)
    assert {type(row["amount"]) for row in invoices + payments} == {Decimal}


def test_postgresql_demo_has_the_indexes_and_statistics(pg_server: Any) -> None:
    url = plain_postgresql_url(pg_server, "demo_indexes")
    generate_demo(url, 60, 4, end_period=END, seed=3)
    engine = create_engine(normalize_url(url, "--db"))
    try:
        inspector = inspect(engine)
        assert {i["name"] for i in inspector.get_indexes("invoice")} == {
            "ix_invoice_sub_period",
            "ix_invoice_period",
        }
        assert {i["name"] for i in inspector.get_indexes("payment")} == {"ix_payment_sub_paid"}
        assert inspector.get_pk_constraint("subscriber")["constrained_columns"] == [
            "subscriber_code"
        ]
        with engine.connect() as conn:
            analyzed = conn.exec_driver_sql(
                "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL"
            ).scalars()
            assert set(analyzed) == {"subscriber", "invoice", "payment"}
            # COPY FREEZE: every page is all-visible without a vacuum (ANALYZE counts them).
            pages = conn.exec_driver_sql(
                "SELECT relname, relpages, relallvisible FROM pg_class"
                " WHERE relname IN ('subscriber', 'invoice', 'payment')"
            ).all()
            assert len(pages) == 3
            assert all(relpages > 0 and visible == relpages for _, relpages, visible in pages)
            # The planner knows how many rows a subscriber has (not ANALYZE's sample guess).
            n_distinct: dict[str, float] = dict(
                conn.exec_driver_sql(
                    "SELECT tablename, n_distinct FROM pg_stats WHERE attname = 'subscriber_code'"
                ).all()
            )
    finally:
        engine.dispose()
    _, invoices, payments = read_demo(str(normalize_url(url, "--db")))
    for name, rows in (("invoice", invoices), ("payment", payments)):
        codes = {row["subscriber_code"] for row in rows}
        assert n_distinct[name] == pytest.approx(-len(codes) / len(rows), rel=1e-4)


def test_postgresql_refuses_data_then_replaces_it(pg_server: Any) -> None:
    url = plain_postgresql_url(pg_server, "demo_replace")
    generate_demo(url, 20, 2, end_period=END, seed=1)
    with pytest.raises(DemoDatabaseNotEmpty, match="already holds billing data"):
        generate_demo(url, 30, 2, end_period=END, seed=1)
    summary = generate_demo(url, 30, 2, end_period=END, seed=1, replace=True)
    subscribers, invoices, _ = read_demo(str(normalize_url(url, "--db")))
    assert len(subscribers) == 30 and len(invoices) == summary.invoices


def test_postgresql_failed_load_leaves_empty_tables(
    pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the COPY thread reaches the caller, and the load is rolled back."""
    import psycopg

    url = plain_postgresql_url(pg_server, "demo_failure")
    monkeypatch.setattr(demo, "CHUNK_SUBSCRIBERS", 10)
    monkeypatch.setattr(demo, "_subscriber_code", lambda index: str(100_000_000 + index % 25))
    with pytest.raises(psycopg.errors.UniqueViolation):
        generate_demo(url, 60, 2, end_period=END, seed=1)
    subscribers, invoices, payments = read_demo(str(normalize_url(url, "--db")))
    assert subscribers == {} and invoices == [] and payments == []


def test_fixed_point_text_is_exact() -> None:
    money, volume = demo._FixedPoint(2), demo._FixedPoint(3)
    assert [money[q] for q in (0, 5, 1234, -5, -1234)] == [
        "0.00",
        "0.05",
        "12.34",
        "-0.05",
        "-12.34",
    ]
    assert [volume[v] for v in (0, 7, 9125, 24000)] == ["0.000", "0.007", "9.125", "24.000"]


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("today", "period"),
    [
        (date(2021, 1, 15), (2020, 12)),
        (date(2021, 7, 1), (2021, 6)),
        (date(2021, 12, 31), (2021, 11)),
    ],
)
def test_latest_closed_period(today: date, period: tuple[int, int]) -> None:
    assert latest_closed_period(today) == period


def test_format_summary_lists_counts_period_and_samples(data: DemoData) -> None:
    text = format_summary(data.summary)
    assert f"{N:,} subscribers" in text
    assert f"{data.summary.invoices:,} invoices" in text
    assert "2021-12" in text
    for kind, codes in data.summary.samples.items():
        line = next(line for line in text.splitlines() if line.strip().startswith(kind))
        assert all(code in line for code in codes)


def test_progress_bar_is_one_line(tmp_path: Path) -> None:
    stream = io.StringIO()
    generate_demo(f"sqlite:///{tmp_path / 'p.sqlite'}", 25, 2, end_period=END, progress=stream)
    out = stream.getvalue()
    assert out.startswith("\r[..............................]   0%  0/25 subscribers")
    assert "\r[##############################] 100%  25/25 subscribers  creating indexes..." in out
    assert out.endswith(
        "\r[##############################] 100%  25/25 subscribers" + " " * 21 + "\n"
    )
    assert out.count("\n") == 1


# --------------------------------------------------------------------------- DDL files


def test_sqlite_ddl_creates_the_contract_tables(tmp_path: Path) -> None:
    path = tmp_path / "ddl.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript((SCHEMAS / "billing_sqlite_postgresql.sql").read_text("utf-8"))
    contract = build_billing_tables()
    engine = create_engine(f"sqlite:///{path}")
    try:
        inspector = inspect(engine)
        assert sorted(n.lower() for n in inspector.get_table_names()) == sorted(
            contract.metadata.tables
        )
        for table in contract.metadata.tables.values():
            name = next(n for n in inspector.get_table_names() if n.lower() == table.name)
            columns = inspector.get_columns(name)
            assert [c["name"].lower() for c in columns] == [c.name for c in table.columns]
            nullable = {c["name"].lower(): c["nullable"] for c in columns}
            assert nullable == {c.name: c.nullable for c in table.columns}
            pk = inspector.get_pk_constraint(name)["constrained_columns"]
            assert [c.lower() for c in pk] == [c.name for c in table.primary_key.columns]
            indexes = {
                str(i["name"]).lower(): [c.lower() for c in i["column_names"] if c]
                for i in inspector.get_indexes(name)
            }
            assert indexes == {str(i.name): [c.name for c in i.columns] for i in table.indexes}
    finally:
        engine.dispose()


def test_sqlite_ddl_keeps_money_exact(tmp_path: Path) -> None:
    path = tmp_path / "ddl.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript((SCHEMAS / "billing_sqlite_postgresql.sql").read_text("utf-8"))
        conn.execute("INSERT INTO INVOICE VALUES ('100000000', 2021, 5, 'WATER', 12.345, 8.64)")
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            row = conn.execute(select(build_billing_tables().invoice)).one()
    finally:
        engine.dispose()
    assert row.consumption_m3 == Decimal("12.345")
    assert row.amount == Decimal("8.64")


@pytest.mark.parametrize("name", ["billing_sqlite_postgresql.sql", "billing_oracle.sql"])
def test_ddl_files_name_every_table_column_and_index(name: str) -> None:
    text = (SCHEMAS / name).read_text("utf-8")
    prose = " ".join(line.strip("- ") for line in text.splitlines() if line.startswith("--"))
    assert "provides SUBSCRIBER, INVOICE and PAYMENT as views" in prose
    assert "The statement service only reads" in prose
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    contract = build_billing_tables()
    for table in contract.metadata.tables.values():
        match = re.search(rf"CREATE TABLE {table.name.upper()} \((.*?)\n\);", code, re.S)
        assert match, table.name
        body = match.group(1)
        declared = re.findall(r"^\s+([A-Z_0-9]+)\s+[A-Z]", body, re.M)
        declared = [c for c in declared if c != "CONSTRAINT"]
        assert declared == [c.name.upper() for c in table.columns]
        for index in table.indexes:
            columns = ", ".join(c.name.upper() for c in index.columns)
            assert (
                f"CREATE INDEX {str(index.name).upper()} ON {table.name.upper()} ({columns});"
                in code
            )
    assert code == code.upper(), "identifiers and keywords in upper case"
    money = "NUMBER(14,2)" if "oracle" in name else "NUMERIC(14,2)"
    volume = "NUMBER(14,3)" if "oracle" in name else "NUMERIC(14,3)"
    assert code.count(money) == 2 and code.count(volume) == 1
    assert "PRIMARY KEY (SUBSCRIBER_CODE)" in code
