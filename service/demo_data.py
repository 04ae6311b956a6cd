"""Generate a realistic, deterministic demo billing database.

The demo fills the three relations of the billing data contract
(:mod:`service.billing.tables`: ``SUBSCRIBER``, ``INVOICE``, ``PAYMENT``) with
synthetic Azərsu subscribers, so that the statement service can be run and
benchmarked without access to the real billing system.  What it contains:

* Subscribers with 9-digit subscriber codes, Azerbaijani first names, surnames
  in the form matching the gender (``Əliyev``/``Əliyeva``, ``-li``, ``-zadə``),
  patronymics ``<father> oğlu`` / ``<father> qızı``, a 7-character FIN and an
  address in one of Baku's districts or settlements, in Sumqayıt, Xırdalan,
  the Abşeron district or a regional town.  1 to 8 persons are served.
* Residential subscribers and about 3 % non-residential ones, about 3 % closed
  accounts (invoices stop at a closing month before the last period) and about
  5 % accounts opened during the last few months (invoices start at the
  opening month, which is prorated).  All other accounts were opened before
  the window.
* Mechanical meters (read in whole m³, with the odd zero month and, for a few
  subscribers, an unread month caught up by the next reading), prepaid
  smart-card meters (read to the litre; payments are top-ups in round sums)
  and subscribers without a meter, billed by the norm of
  :data:`NORM_M3_PER_PERSON` m³ per person per month.  Most subscribers take
  water supply and wastewater, some water only and a few wastewater only.
  Consumption follows the season (more in summer).
* One invoice per month of the window and service while the account is open,
  at the 2021 tariffs (:data:`TARIFFS`): water 0.70 AZN/m³ in Baku, Sumqayıt,
  Xırdalan and Abşeron and 0.60 AZN/m³ elsewhere, wastewater 0.30 AZN/m³;
  non-residential 1.00 and 0.50 AZN/m³.  The amount is the consumption times
  the tariff rounded half-up to the qəpik.
* Payments in the month after the invoice, late payments of two or more months
  at once, partial payments, round-sum overpayments, subscribers who never pay
  and smart-card top-ups.  All payment dates fall inside the window.

Generation is deterministic: the same seed, number of subscribers, number of
months and end period always give the same rows, on every database.  It runs
in bounded memory, chunk by chunk, and builds the secondary indexes after
loading.  On SQLite it writes through the raw ``sqlite3`` connection with
journalling off; on PostgreSQL (``postgresql://`` URLs get psycopg 3) it
streams each chunk with ``COPY ... FROM STDIN`` in one transaction, from a
second thread, and runs ``ANALYZE`` at the end; other databases go through
SQLAlchemy Core.  Money is computed exactly, in integer qəpik (litres for
volumes), and never as a float.
"""

from __future__ import annotations

import calendar
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Any, TextIO, cast
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, inspect, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateIndex, CreateTable, Table

from service.billing.engine import normalize_url
from service.billing.tables import BillingTables, build_billing_tables
from service.errors import ConfigurationError

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "MAX_MONTHS",
    "MAX_SUBSCRIBERS",
    "NORM_M3_PER_PERSON",
    "SAMPLE_KINDS",
    "TARIFFS",
    "DemoDatabaseNotEmpty",
    "DemoSummary",
    "format_summary",
    "generate_demo",
    "invoice_amount",
    "latest_closed_period",
]

#: Upper bound of ``subscribers``: roughly Azərsu's residential subscriber base.
MAX_SUBSCRIBERS = 1_700_000
#: Upper bound of ``months`` (ten years).
MAX_MONTHS = 120
#: Subscribers generated and written per batch (bounds the memory use).
CHUNK_SUBSCRIBERS = 10_000
#: Time zone of the billing calendar.
BAKU_TZ = ZoneInfo("Asia/Baku")

#: Monthly norm for subscribers without a meter, in m³ per person.
NORM_M3_PER_PERSON = Decimal("3")

RESIDENTIAL = "RESIDENTIAL"
NON_RESIDENTIAL = "NON_RESIDENTIAL"
ACTIVE = "ACTIVE"
CLOSED = "CLOSED"
WATER = "WATER"
WASTEWATER = "WASTEWATER"
MECHANICAL = "MECHANICAL"
SMART_CARD = "SMART_CARD"
NO_METER = "NONE"

#: Tariff zone of Baku, Sumqayıt, Xırdalan and the Abşeron district.
ZONE_ABSHERON = "ABSHERON"
#: Tariff zone of every other town.
ZONE_REGIONS = "REGIONS"

#: 2021 tariffs in AZN per m³, by (category, tariff zone) and then service.
TARIFFS: dict[tuple[str, str], dict[str, Decimal]] = {
    (RESIDENTIAL, ZONE_ABSHERON): {WATER: Decimal("0.70"), WASTEWATER: Decimal("0.30")},
    (RESIDENTIAL, ZONE_REGIONS): {WATER: Decimal("0.60"), WASTEWATER: Decimal("0.30")},
    (NON_RESIDENTIAL, ZONE_ABSHERON): {WATER: Decimal("1.00"), WASTEWATER: Decimal("0.50")},
    (NON_RESIDENTIAL, ZONE_REGIONS): {WATER: Decimal("1.00"), WASTEWATER: Decimal("0.50")},
}

#: The keys of :attr:`DemoSummary.samples`, in display order, with a description.
SAMPLE_KINDS: dict[str, str] = {
    "residential": "ordinary residential, mechanical meter, pays every month",
    "overpayment": "pays round sums, more than invoiced",
    "no_payments": "invoiced but never paid",
    "closed": "closed account, invoices stop before the last period",
    "new_account": "opened during the last months, invoices from the opening month",
    "non_residential": "non-residential tariff (not served by the e-service)",
    "smart_card": "prepaid smart-card meter, payments are top-ups",
    "no_meter": "no meter, billed by the norm per person",
    "water_only": "water supply only, no wastewater",
}
SAMPLES_PER_KIND = 3

_MILLI_M3_PER_M3 = 1000
_NORM_LITRES = int(NORM_M3_PER_PERSON * _MILLI_M3_PER_M3)
#: Months at the end of the window in which new accounts open.
_NEW_ACCOUNT_MONTHS = 6
#: Earliest opening date of old accounts.
_EARLIEST_OPENING = date(1995, 1, 2)
#: Relative consumption by calendar month (January first): more in summer.
_SEASON = (0.92, 0.90, 0.93, 0.97, 1.03, 1.15, 1.26, 1.24, 1.10, 1.00, 0.94, 0.92)
#: FIN characters: digits and Latin capitals without I and O.
_FIN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"

MALE_FIRST_NAMES = (
    "Əli", "Vüqar", "Rəşad", "Elçin", "Orxan", "Tural", "Kamran", "Elvin", "Ramil", "Fuad",
    "Anar", "Nicat", "Ülvi", "Cavid", "Şahin", "Çingiz", "İlham", "Zaur", "Elşən", "Mübariz",
    "Rövşən", "Səbuhi", "Fərid", "Emin", "Murad", "Nurlan", "Vüsal", "Təbriz", "Hüseyn",
    "Həsən", "İsmayıl", "Məmməd", "Qurban", "Əkbər", "Rauf", "Namiq", "Samir", "Tofiq",
    "Yaşar", "Ağası", "Şükür", "Rüstəm", "Elnur", "Pərviz", "Coşqun", "Sənan", "Toğrul",
    "Ayxan", "Kənan", "Ömər", "Xəyyam", "Bəhruz", "Azər", "Qələndər", "İlqar", "Fəxrəddin",
)  # fmt: skip
FEMALE_FIRST_NAMES = (
    "Şəhla", "Gülnarə", "Ülviyyə", "Aygün", "Leyla", "Nərmin", "Səbinə", "Günel", "Aynur",
    "Könül", "Sevinc", "Lalə", "Nigar", "Xədicə", "Zəhra", "Fatimə", "Aysel", "Türkan",
    "Gülşən", "Səadət", "Məleykə", "Rəna", "Şəfəq", "Elnarə", "Vüsalə", "Nərgiz", "Gülər",
    "Ülkər", "İlahə", "Xatirə", "Pərvanə", "Çiçək", "Səkinə", "Zümrüd", "Dilarə", "Mehriban",
    "Afət", "Şəbnəm", "Təranə", "Cəmilə", "Gövhər", "Sürəyya", "Nüşabə", "Röya", "Aytən",
)  # fmt: skip
#: Surnames as (male form, female form).
SURNAMES = (
    ("Əliyev", "Əliyeva"), ("Məmmədov", "Məmmədova"), ("Həsənov", "Həsənova"),
    ("Hüseynov", "Hüseynova"), ("Quliyev", "Quliyeva"), ("İsmayılov", "İsmayılova"),
    ("Əhmədov", "Əhmədova"), ("Abbasov", "Abbasova"), ("Cəfərov", "Cəfərova"),
    ("Rəhimov", "Rəhimova"), ("Süleymanov", "Süleymanova"), ("Nəsirov", "Nəsirova"),
    ("Şükürov", "Şükürova"), ("Qasımov", "Qasımova"), ("Bağırov", "Bağırova"),
    ("Babayev", "Babayeva"), ("Musayev", "Musayeva"), ("İbrahimov", "İbrahimova"),
    ("Kərimov", "Kərimova"), ("Sadıqov", "Sadıqova"), ("Vəliyev", "Vəliyeva"),
    ("Orucov", "Orucova"), ("Nağıyev", "Nağıyeva"), ("Rüstəmov", "Rüstəmova"),
    ("Çələbiyev", "Çələbiyeva"), ("Əsgərov", "Əsgərova"), ("Xəlilov", "Xəlilova"),
    ("Zeynalov", "Zeynalova"), ("Mirzəyev", "Mirzəyeva"), ("Ağayev", "Ağayeva"),
    ("Səfərov", "Səfərova"), ("Ələkbərov", "Ələkbərova"), ("Hacıyev", "Hacıyeva"),
    ("Tağıyev", "Tağıyeva"), ("Ömərov", "Ömərova"), ("Göyüşov", "Göyüşova"),
    ("Əhmədli", "Əhmədli"), ("Hüseynli", "Hüseynli"), ("Qarabağlı", "Qarabağlı"),
    ("Bayramlı", "Bayramlı"), ("Şirinli", "Şirinli"), ("Cəfərli", "Cəfərli"),
    ("Rzazadə", "Rzazadə"), ("Quluzadə", "Quluzadə"), ("Hacızadə", "Hacızadə"),
    ("Məmmədzadə", "Məmmədzadə"), ("Əlizadə", "Əlizadə"), ("Axundzadə", "Axundzadə"),
)  # fmt: skip

_STREETS = (
    "Füzuli küçəsi", "Nizami küçəsi", "Səməd Vurğun küçəsi", "Üzeyir Hacıbəyov küçəsi",
    "Xurşidbanu Natəvan küçəsi", "Cəlil Məmmədquluzadə küçəsi", "Mirzə Fətəli Axundov küçəsi",
    "Hüseyn Cavid küçəsi", "Bəxtiyar Vahabzadə küçəsi", "28 May küçəsi", "20 Yanvar küçəsi",
    "Sülh küçəsi", "Dostluq küçəsi", "Gənclik küçəsi", "Şah İsmayıl Xətai küçəsi",
    "Heydər Əliyev prospekti", "Azadlıq prospekti", "Zərifə Əliyeva küçəsi",
    "Məhəmməd Əmin Rəsulzadə küçəsi", "Çingiz Mustafayev küçəsi", "Mikayıl Müşfiq küçəsi",
)  # fmt: skip
_BAKU_STREETS = (
    *_STREETS,
    "Rəşid Behbudov küçəsi", "Atatürk prospekti", "Həsən bəy Zərdabi prospekti",
    "Hüseyn Cavid prospekti", "Tbilisi prospekti", "Qara Qarayev prospekti",
    "Nobel prospekti", "Bülbül prospekti", "İstiqlaliyyət küçəsi", "Şərifzadə küçəsi",
    "Mirzə İbrahimov küçəsi", "Xətai prospekti", "Babək prospekti", "Ziya Bünyadov prospekti",
    "Ağa Nemətulla küçəsi", "Əhməd Rəcəbli küçəsi", "Məhəmməd Hadi küçəsi",
    "Şəmsi Bədəlbəyli küçəsi", "Cəfər Cabbarlı küçəsi", "Neftçilər prospekti",
    "Abbasqulu ağa Bakıxanov küçəsi", "Yusif Səfərov küçəsi", "Fətəli xan Xoyski küçəsi",
)  # fmt: skip
#: Baku districts: (name, settlements, share of apartments).
_BAKU_DISTRICTS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("Nəsimi", (), 0.95),
    ("Yasamal", (), 0.92),
    ("Nərimanov", (), 0.92),
    ("Binəqədi", ("Biləcəri", "Xocəsən", "Rəsulzadə"), 0.75),
    ("Xətai", ("Əhmədli",), 0.88),
    ("Səbail", ("Bayıl",), 0.90),
    ("Nizami", ("Keşlə",), 0.90),
    ("Sabunçu", ("Bakıxanov", "Maştağa", "Zabrat", "Bilgəh", "Pirşağı"), 0.45),
    ("Suraxanı", ("Hövsan", "Qaraçuxur", "Əmircan", "Yeni Suraxanı"), 0.45),
    ("Xəzər", ("Mərdəkan", "Şüvəlan", "Buzovna", "Türkan", "Qala"), 0.25),
    ("Qaradağ", ("Lökbatan", "Sahil", "Qobustan", "Ələt"), 0.35),
    ("Pirallahı", ("Pirallahı",), 0.20),
)
_ABSHERON_SETTLEMENTS = ("Masazır", "Novxanı", "Saray", "Mehdiabad", "Görədil", "Fatmayı")
_REGIONAL_TOWNS = (
    "Gəncə", "Mingəçevir", "Şəki", "Lənkəran", "Şirvan", "Quba", "Naxçıvan", "Şamaxı",
    "Qəbələ", "Bərdə", "Göyçay", "Masallı", "Zaqatala", "Salyan", "Yevlax", "Ağdaş",
)  # fmt: skip
#: Persons served, 1 to 8, and their weights.
_PERSONS = (1, 2, 3, 4, 5, 6, 7, 8)
_PERSONS_CUMULATIVE = (8, 24, 44, 66, 83, 93, 98, 100)

# Payment behaviours.
_PAY_REGULAR, _PAY_LATE, _PAY_PARTIAL, _PAY_ROUND_UP, _PAY_NEVER, _PAY_TOP_UP = range(6)
#: Smart-card top-up denominations in qəpik.
_TOP_UPS = (500, 1000, 2000, 3000, 5000, 10000, 20000)


class DemoDatabaseNotEmpty(ValueError):
    """The target database already holds billing data and ``replace`` was not given."""


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate_demo` wrote."""

    subscribers: int
    invoices: int
    payments: int
    #: The latest closed billing period (year, month): the last month of the window.
    end_period: tuple[int, int]
    #: Kind (see :data:`SAMPLE_KINDS`) -> a few subscriber codes of that kind.
    samples: dict[str, list[str]]


def latest_closed_period(today: date) -> tuple[int, int]:
    """Return the billing period (year, month) of the month before ``today``'s month."""
    if today.month == 1:
        return today.year - 1, 12
    return today.year, today.month - 1


def invoice_amount(consumption_m3: Decimal, tariff: Decimal) -> Decimal:
    """Return consumption times tariff, rounded half-up to the qəpik (0.01 AZN).

    This is the reference rule; the generator applies it in integer litres and
    qəpik, which gives the same result without the cost of ``Decimal``.
    """
    return (consumption_m3 * tariff).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def generate_demo(
    url: str,
    subscribers: int = 10_000,
    months: int = 24,
    *,
    end_period: tuple[int, int] | None = None,
    seed: int = 2021,
    replace: bool = False,
    progress: TextIO | None = None,
    tables: BillingTables | None = None,
) -> DemoSummary:
    """Create the billing tables at ``url`` and fill them with demo data.

    ``months`` is the length of the window that ends with ``end_period`` (by
    default the latest closed period in Baku today).  If any of the tables
    already holds rows, raise :class:`DemoDatabaseNotEmpty` unless ``replace``
    is true, in which case drop and recreate the three tables.  Existing empty
    tables are recreated.  Write a progress bar to ``progress`` if given.
    ``tables`` overrides the default relation names and schema.
    """
    _check_arguments(subscribers, months, end_period, seed)
    if end_period is None:
        end_period = latest_closed_period(datetime.now(BAKU_TZ).date())
    try:
        # postgresql:// gets psycopg 3 (SQLAlchemy's default psycopg2 is not installed).
        sa_url = normalize_url(url, "--db")
    except ConfigurationError as exc:
        raise ValueError(f"invalid database URL {url!r}: {exc.problem}") from exc
    if tables is None:
        tables = build_billing_tables()
    backend = sa_url.get_backend_name()
    is_sqlite = backend == "sqlite"
    database = sa_url.database or ""
    if is_sqlite and database not in ("", ":memory:") and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)

    # Demo data, not secrets: a seeded, reproducible generator is the point.
    generator = _Generator(Random(seed), months, end_period)  # noqa: S311
    bar = _ProgressBar(progress, subscribers) if progress is not None else None
    engine = create_engine(sa_url)
    try:
        _prepare_tables(engine, tables, replace, sa_url.render_as_string(hide_password=True))
        writer: _Writer
        if is_sqlite:
            writer = _SqliteWriter(engine, tables, generator.window)
        elif backend == "postgresql" and sa_url.get_driver_name() == "psycopg":
            writer = _PostgresWriter(engine, tables, generator.window)
        else:
            writer = _CoreWriter(engine, tables, generator.window)
        invoices = payments = 0
        try:
            for start in range(0, subscribers, CHUNK_SUBSCRIBERS):
                chunk = generator.chunk(start, min(start + CHUNK_SUBSCRIBERS, subscribers))
                writer.write(chunk)
                invoices += len(chunk.invoices)
                payments += len(chunk.payments)
                if bar is not None:
                    bar.update(start + len(chunk.subscribers))
            if bar is not None:
                bar.note("creating indexes...")
            writer.create_indexes()
            if writer.analyzes:
                if bar is not None:
                    bar.note("analyzing...")
                writer.analyze()
            writer.commit()
        finally:
            writer.close()
        if bar is not None:
            bar.finish()
    finally:
        engine.dispose()
    return DemoSummary(
        subscribers=subscribers,
        invoices=invoices,
        payments=payments,
        end_period=end_period,
        samples={kind: list(codes) for kind, codes in generator.samples.items()},
    )


def format_summary(summary: DemoSummary) -> str:
    """Describe a demo database for people: counts, end period and sample codes."""
    year, month = summary.end_period
    width = max(len(kind) for kind in SAMPLE_KINDS)
    lines = [
        f"Demo billing data: {summary.subscribers:,} subscribers, "
        f"{summary.invoices:,} invoices, {summary.payments:,} payments.",
        f"Latest closed billing period: {year:04d}-{month:02d}.",
        "Sample subscriber codes:",
    ]
    for kind, description in SAMPLE_KINDS.items():
        codes = summary.samples.get(kind) or []
        shown = ", ".join(codes) if codes else "(none in this data)"
        lines.append(f"  {kind:<{width}}  {shown}  - {description}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- checks


def _check_arguments(
    subscribers: int, months: int, end_period: tuple[int, int] | None, seed: int
) -> None:
    """Raise ValueError (TypeError for wrong types) for arguments out of range."""
    for name, value in (("subscribers", subscribers), ("months", months), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, not {value!r}")
    if not 1 <= subscribers <= MAX_SUBSCRIBERS:
        raise ValueError(
            f"subscribers must be between 1 and {MAX_SUBSCRIBERS:,}, not {subscribers:,}"
        )
    if not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"months must be between 1 and {MAX_MONTHS}, not {months}")
    if end_period is not None:
        try:
            year, month = end_period
        except (TypeError, ValueError):
            raise ValueError(
                f"end_period must be a (year, month) pair, not {end_period!r}"
            ) from None
        if not (isinstance(year, int) and isinstance(month, int)) or not 1 <= month <= 12:
            raise ValueError(f"end_period must be a (year, month) pair, not {end_period!r}")
        if not 2000 <= year <= 2100:
            raise ValueError(f"end_period year must be between 2000 and 2100, not {year}")


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class _Window:
    """The months of the demo, with one extra month before the first one.

    Lists are indexed by ``k + 1`` for window month ``k`` in ``-1 .. months-1``;
    month ``-1`` is never written, it only gives the payments of the first month.
    Days are counted from the first day of month 0.
    """

    months: int
    years: tuple[int, ...]
    month_numbers: tuple[int, ...]
    month_lengths: tuple[int, ...]
    first_days: tuple[int, ...]
    seasons: tuple[float, ...]
    start: date
    end: date

    @classmethod
    def ending(cls, end_period: tuple[int, int], months: int) -> _Window:
        """Build the window of ``months`` months that ends with ``end_period``."""
        end_index = end_period[0] * 12 + end_period[1] - 1
        periods = [divmod(end_index - back, 12) for back in range(months, -1, -1)]
        years = tuple(y for y, _ in periods)
        numbers = tuple(m + 1 for _, m in periods)
        lengths = tuple(calendar.monthrange(y, m)[1] for y, m in zip(years, numbers, strict=True))
        start = date(years[1], numbers[1], 1)
        firsts = tuple(
            date(y, m, 1).toordinal() - start.toordinal()
            for y, m in zip(years, numbers, strict=True)
        )
        return cls(
            months=months,
            years=years,
            month_numbers=numbers,
            month_lengths=lengths,
            first_days=firsts,
            seasons=tuple(_SEASON[m - 1] for m in numbers),
            start=start,
            end=date(years[-1], numbers[-1], lengths[-1]),
        )

    def day(self, offset: int) -> date:
        """Return the date ``offset`` days after the first day of the window."""
        return self.start + timedelta(days=offset)


@dataclass
class _Chunk:
    """Rows of one batch of subscribers, with money in qəpik and volumes in litres.

    ``subscribers`` rows follow the SUBSCRIBER columns; ``invoices`` rows are
    (code, year, month, service, litres, qəpik); ``payments`` rows are
    (code, day offset in the window, qəpik).
    """

    subscribers: list[tuple[Any, ...]]
    invoices: list[tuple[str, int, int, str, int, int]]
    payments: list[tuple[str, int, int]]


def _subscriber_code(index: int) -> str:
    """Return the unique 9-digit code of the ``index``-th demo subscriber."""
    # Steps of 53 with an offset below 53: strictly increasing, so unique.
    return str(100_000_000 + index * 53 + (index * 7919) % 47)


def _ordinal_suffix(number: int) -> str:
    """Return the Azerbaijani ordinal suffix of ``number`` (1-ci, 3-cü, 6-cı, 9-cu)."""
    units = {1: "ci", 2: "ci", 3: "cü", 4: "cü", 5: "ci", 6: "cı", 7: "ci", 8: "ci", 9: "cu"}
    tens = {1: "cu", 2: "ci", 3: "cu", 4: "cı", 5: "ci", 6: "cı", 7: "ci", 8: "ci", 9: "cı"}
    if number % 10:
        return units[number % 10]
    return tens[(number // 10) % 10]


class _Generator:
    """Draw subscribers, invoices and payments from one random stream, in order."""

    def __init__(self, rng: Random, months: int, end_period: tuple[int, int]) -> None:
        self.rng = rng
        self.window = _Window.ending(end_period, months)
        self.samples: dict[str, list[str]] = {kind: [] for kind in SAMPLE_KINDS}
        self._wanted = set(SAMPLE_KINDS)
        start = self.window.start.toordinal()
        self._old_opening_lo = min(_EARLIEST_OPENING.toordinal(), start - 365)
        self._old_opening_span = start - self._old_opening_lo
        self._tariffs = {
            key: (
                int(value[WATER] * 100),
                int(value[WASTEWATER] * 100),
            )
            for key, value in TARIFFS.items()
        }

    # ---------------------------------------------------------------- people

    def _address(self) -> tuple[str, str]:
        """Return (address, tariff zone)."""
        rand = self.rng.random
        r = rand()
        house = 1 + int(rand() * 180)
        flat = 1 + int(rand() * 160)
        if r < 0.55:
            name, settlements, apartments = _BAKU_DISTRICTS[int(rand() * len(_BAKU_DISTRICTS))]
            where = f"Bakı şəhəri, {name} rayonu, "
            streets: tuple[str, ...] = _BAKU_STREETS
            if settlements and rand() < 0.5:
                where += f"{settlements[int(rand() * len(settlements))]} qəsəbəsi, "
                streets = _STREETS
            street = streets[int(rand() * len(streets))]
            zone = ZONE_ABSHERON
        else:
            street = _STREETS[int(rand() * len(_STREETS))]
            apartments = 0.6
            zone = ZONE_ABSHERON
            if r < 0.64:
                where = "Sumqayıt şəhəri, "
                apartments = 0.85
                if rand() < 0.5:
                    micro = 1 + int(rand() * 18)
                    street = f"{micro}-{_ordinal_suffix(micro)} mikrorayon"
            elif r < 0.68:
                where = "Xırdalan şəhəri, "
            elif r < 0.73:
                settlement = _ABSHERON_SETTLEMENTS[int(rand() * len(_ABSHERON_SETTLEMENTS))]
                where = f"Abşeron rayonu, {settlement} qəsəbəsi, "
                apartments = 0.3
            else:
                where = f"{_REGIONAL_TOWNS[int(rand() * len(_REGIONAL_TOWNS))]} şəhəri, "
                zone = ZONE_REGIONS
        if rand() < apartments:
            return f"{where}{street}, ev {house}, mənzil {flat}", zone
        return f"{where}{street}, ev {house}", zone

    # ---------------------------------------------------------------- chunk

    def chunk(self, start: int, stop: int) -> _Chunk:
        """Generate subscribers ``start`` (inclusive) to ``stop`` (exclusive)."""
        rng = self.rng
        rand = rng.random
        choices = rng.choices
        window = self.window
        months = window.months
        years, numbers = window.years, window.month_numbers
        lengths, firsts, seasons = window.month_lengths, window.first_days, window.seasons
        can_close = months >= 2
        new_lo = max(0, months - _NEW_ACCOUNT_MONTHS)
        subscribers: list[tuple[Any, ...]] = []
        invoices: list[tuple[str, int, int, str, int, int]] = []
        payments: list[tuple[str, int, int]] = []
        add_invoice = invoices.append
        add_payment = payments.append
        wanted = self._wanted

        for index in range(start, stop):
            code = _subscriber_code(index)

            # --- who
            male = rand() < 0.5
            surname = SURNAMES[int(rand() * len(SURNAMES))]
            father = MALE_FIRST_NAMES[int(rand() * len(MALE_FIRST_NAMES))]
            if male:
                first = MALE_FIRST_NAMES[int(rand() * len(MALE_FIRST_NAMES))]
                last, patronymic = surname[0], f"{father} oğlu"
            else:
                first = FEMALE_FIRST_NAMES[int(rand() * len(FEMALE_FIRST_NAMES))]
                last, patronymic = surname[1], f"{father} qızı"
            fin = "".join(choices(_FIN_ALPHABET, k=7))
            address, zone = self._address()
            r = rand() * 100
            persons = next(p for p, c in zip(_PERSONS, _PERSONS_CUMULATIVE, strict=True) if r < c)

            # --- contract
            non_residential = rand() < 0.03
            category = NON_RESIDENTIAL if non_residential else RESIDENTIAL
            r = rand()
            if r < 0.88:
                water, wastewater = 1, 1
            elif r < 0.97 or non_residential:
                water, wastewater = 1, 0
            else:
                water, wastewater = 0, 1  # own well: billed for wastewater by the norm
            r = rand()
            if not water:
                meter = NO_METER
            elif non_residential:
                meter = SMART_CARD if r < 0.2 else MECHANICAL
            elif r < 0.80:
                meter = MECHANICAL
            elif r < 0.92:
                meter = SMART_CARD
            else:
                meter = NO_METER

            # --- life cycle: first and last window month with an invoice
            r = rand()
            status = ACTIVE
            open_k = -1  # opened before the window; month -1 only feeds payments
            open_day = 1
            last_k = months - 1
            if can_close and r < 0.03:
                status = CLOSED
                last_k = int(rand() * (months - 1))  # 0 .. months-2
            if 0.03 <= r < 0.08:
                open_k = new_lo + int(rand() * (months - new_lo))
                open_day = 1 + int(rand() * lengths[open_k + 1])
                opened_on = window.day(firsts[open_k + 1] + open_day - 1)
            else:
                opened_on = date.fromordinal(
                    self._old_opening_lo + int(rand() * self._old_opening_span)
                )
            missing_k = -2
            if meter != NO_METER and last_k - open_k >= 4 and rand() < 0.02:
                # Never the first or last month of the account, and never month -1.
                lo = max(open_k, 0) + 1
                missing_k = lo + int(rand() * (last_k - lo))

            subscribers.append(
                (
                    code, fin, last, first, patronymic, address, persons, category, status,
                    opened_on, water, wastewater, meter,
                )
            )  # fmt: skip

            # --- invoices
            tariff_water, tariff_wastewater = self._tariffs[(category, zone)]
            if non_residential:
                base = 8000.0 + rand() * 142000.0
            else:
                base = persons * (2600.0 + rand() * 1800.0)
            norm = _NORM_LITRES * persons
            mechanical = meter == MECHANICAL
            bills = [0] * (months + 1)
            invoiced = 0
            carry = 0
            for k in range(open_k, last_k + 1):
                ki = k + 1
                if meter == NO_METER:
                    volume = float(norm)
                else:
                    r = rand()  # below 0.006 a mechanical meter reads zero: nobody home
                    volume = base * seasons[ki] * (0.8 + 0.4 * r)
                    if mechanical and r < 0.006:
                        volume = 0.0
                if k == open_k and k >= 0:  # prorate the opening month
                    volume = volume * (lengths[ki] - open_day + 1) / lengths[ki]
                litres = int(volume * 0.001 + 0.5) * 1000 if mechanical else int(volume)
                litres += carry
                carry = 0
                if k == missing_k:  # not read: the next reading catches up
                    carry = litres if mechanical else 0
                    continue
                # amount in qəpik = litres * tariff(qəpik/m³) / 1000, rounded half-up
                bill = 0
                if water:
                    amount = (litres * tariff_water + 500) // 1000
                    bill += amount
                    if k >= 0:
                        add_invoice((code, years[ki], numbers[ki], WATER, litres, amount))
                if wastewater:
                    amount = (litres * tariff_wastewater + 500) // 1000
                    bill += amount
                    if k >= 0:
                        add_invoice((code, years[ki], numbers[ki], WASTEWATER, litres, amount))
                bills[ki] = bill
                if k >= 0:
                    invoiced += bill

            # --- payments (paid on a day of window month j, j >= 0)
            r = rand()
            if meter == SMART_CARD:
                behaviour = _PAY_TOP_UP
            elif non_residential:
                behaviour = _PAY_REGULAR if r < 0.85 else (_PAY_LATE if r < 0.95 else _PAY_NEVER)
            elif r < 0.70:
                behaviour = _PAY_REGULAR
            elif r < 0.80:
                behaviour = _PAY_LATE
            elif r < 0.88:
                behaviour = _PAY_PARTIAL
            elif r < 0.96:
                behaviour = _PAY_ROUND_UP
            else:
                behaviour = _PAY_NEVER
            paid = 0
            if behaviour == _PAY_TOP_UP:
                # Prepaid: top up the card in round sums when the balance runs low.
                typical = bills[last_k + 1] or bills[months] or 500
                balance = int(typical * 2.0 * rand()) if open_k < 0 else 0
                for j in range(max(open_k, 0), last_k + 1):
                    bill = bills[j + 1]
                    if balance < 1.5 * bill or rand() < 0.1:
                        target = max(typical, bill) * (1.0 + 2.0 * rand())
                        amount = next((t for t in _TOP_UPS if t >= target), 0)
                        if not amount:
                            amount = (int(target) // 10000 + 1) * 10000
                        day = open_day - 1 if j == open_k else 0
                        day += int(rand() * (lengths[j + 1] - day))
                        add_payment((code, firsts[j + 1] + day, amount))
                        paid += amount
                        balance += amount
                    balance -= bill
            elif behaviour != _PAY_NEVER:
                debt = 0  # negative: credit
                for k in range(open_k, min(last_k + 1, months - 1)):
                    ki = k + 1
                    debt += bills[ki]
                    if debt <= 0:
                        continue
                    if behaviour == _PAY_REGULAR:
                        amount = debt if rand() < 0.92 else 0  # now and then two months at once
                    elif behaviour == _PAY_LATE:
                        amount = debt if rand() < 0.4 else 0
                    elif behaviour == _PAY_PARTIAL:
                        amount = int(debt * (0.5 + 0.45 * rand()))
                    else:  # _PAY_ROUND_UP: the debt rounded up to 5 AZN, now and then in advance
                        amount = -(-debt // 500) * 500
                        if rand() < 0.15:
                            amount += 1000 * (1 + int(rand() * 5))
                    if amount <= 0:
                        continue
                    debt -= amount
                    paid += amount
                    length = lengths[ki + 1]
                    if amount >= 1000 and rand() < 0.03:  # split over two payments
                        part = amount // 2
                        add_payment((code, firsts[ki + 1] + int(rand() * length), part))
                        amount -= part
                    add_payment((code, firsts[ki + 1] + int(rand() * length), amount))

            # --- samples
            if wanted:
                self._sample(
                    code,
                    residential=not non_residential,
                    status=status,
                    new=open_k >= 0,
                    meter=meter,
                    water=water,
                    wastewater=wastewater,
                    behaviour=behaviour,
                    read_every_month=missing_k < -1,
                    invoiced=invoiced,
                    paid=paid,
                )

        return _Chunk(subscribers, invoices, payments)

    def _sample(
        self,
        code: str,
        *,
        residential: bool,
        status: str,
        new: bool,
        meter: str,
        water: int,
        wastewater: int,
        behaviour: int,
        read_every_month: bool,
        invoiced: int,
        paid: int,
    ) -> None:
        """Record ``code`` under every sample kind it illustrates that is not full yet."""
        plain = residential and status == ACTIVE and not new
        kinds = []
        if plain and meter == MECHANICAL and water and wastewater and read_every_month:
            if behaviour == _PAY_REGULAR:
                kinds.append("residential")
            elif behaviour == _PAY_ROUND_UP and paid > invoiced:
                kinds.append("overpayment")
        if plain and behaviour == _PAY_NEVER and invoiced > 0:
            kinds.append("no_payments")
        if status == CLOSED and residential:
            kinds.append("closed")
        if new and residential and status == ACTIVE:
            kinds.append("new_account")
        if not residential:
            kinds.append("non_residential")
        if plain and meter == SMART_CARD:
            kinds.append("smart_card")
        if plain and meter == NO_METER and water:
            kinds.append("no_meter")
        if plain and water and not wastewater:
            kinds.append("water_only")
        for kind in kinds:
            codes = self.samples[kind]
            if len(codes) < SAMPLES_PER_KIND:
                codes.append(code)
                if len(codes) == SAMPLES_PER_KIND:
                    self._wanted.discard(kind)


# --------------------------------------------------------------------------- writing


def _prepare_tables(engine: Engine, tables: BillingTables, replace: bool, shown_url: str) -> None:
    """Refuse billing data unless ``replace``; (re)create the tables without indexes."""
    relations = (tables.subscriber, tables.invoice, tables.payment)
    with engine.begin() as conn:
        inspector = inspect(conn)
        existing = [t for t in relations if inspector.has_table(t.name, schema=t.schema)]
        filled = [
            t.name
            for t in existing
            if conn.execute(select(t.c.subscriber_code).limit(1)).first() is not None
        ]
        if filled and not replace:
            raise DemoDatabaseNotEmpty(
                f"{shown_url} already holds billing data (in {', '.join(filled)}); "
                "refusing to overwrite it without replace"
            )
        for table in existing:
            table.drop(conn)
        for table in relations:
            conn.execute(CreateTable(table))  # indexes come after loading


class _Writer:
    """Write chunks to the database, then build the secondary indexes."""

    #: Whether :meth:`analyze` gathers planner statistics (and is worth a progress note).
    analyzes = False

    def write(self, chunk: _Chunk) -> None:
        """Insert the rows of ``chunk``."""
        raise NotImplementedError

    def create_indexes(self) -> None:
        """Create the secondary indexes of the contract."""
        raise NotImplementedError

    def analyze(self) -> None:
        """Gather the planner's statistics of the loaded tables."""

    def commit(self) -> None:
        """Make everything written durable and visible (if not done already)."""

    def close(self) -> None:
        """Release the connection."""


def _insert_sql(engine: Engine, table: Table) -> str:
    """Return the driver's INSERT of all columns of ``table``, in column order."""
    return str(table.insert().compile(dialect=engine.dialect))


class _SqliteWriter(_Writer):
    """Fast path: the raw sqlite3 connection, no journal, executemany of tuples.

    Dates are stored as ISO text (as SQLAlchemy's ``Date`` does on SQLite) and
    numbers as the float nearest to the exact decimal value; the NUMERIC
    columns keep it, and SQLAlchemy's ``Numeric(14, 2)`` reads it back as the
    exact ``Decimal`` by formatting it to the column's scale.
    """

    def __init__(self, engine: Engine, tables: BillingTables, window: _Window) -> None:
        self._tables = tables
        self._dialect = engine.dialect
        self._raw = engine.raw_connection()
        self._conn = cast(sqlite3.Connection, self._raw.driver_connection)
        # A demo database is rebuilt rather than recovered: no rollback journal,
        # no fsync.  Measured: the default page cache and temp store build the
        # indexes faster than a large cache; worker threads help the sorter.
        threads = min(4, os.cpu_count() or 1)
        cur = self._conn.cursor()
        for pragma in ("journal_mode = OFF", "synchronous = OFF", f"threads = {threads}"):
            cur.execute(f"PRAGMA {pragma}").fetchall()
        cur.close()
        self._sql = {t.name: _insert_sql(engine, t) for t in tables.metadata.sorted_tables}
        days = (window.end - window.start).days + 1
        self._days = [window.day(offset).isoformat() for offset in range(days)]

    def write(self, chunk: _Chunk) -> None:
        """Insert the rows of ``chunk`` in one transaction."""
        days = self._days
        conn = self._conn
        tables = self._tables
        conn.executemany(
            self._sql[tables.subscriber.name],
            [(*row[:9], row[9].isoformat(), *row[10:]) for row in chunk.subscribers],
        )
        conn.executemany(
            self._sql[tables.invoice.name],
            [(c, y, m, s, litres / 1000, q / 100) for c, y, m, s, litres, q in chunk.invoices],
        )
        conn.executemany(
            self._sql[tables.payment.name],
            [(c, days[d], q / 100) for c, d, q in chunk.payments],
        )
        conn.commit()

    def create_indexes(self) -> None:
        """Create the secondary indexes of the contract."""
        for table in (self._tables.invoice, self._tables.payment):
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                self._conn.execute(str(CreateIndex(index).compile(dialect=self._dialect)))
        self._conn.commit()

    def close(self) -> None:
        """Release the connection."""
        self._raw.close()


class _FixedPoint(dict[int, str]):
    """Integer qəpik or litres -> exact decimal text (``1234`` -> ``12.34``), memoized.

    The amounts and volumes of the demo take a few ten thousand distinct
    values, so a dictionary lookup replaces most of the formatting.
    """

    def __init__(self, scale: int) -> None:
        super().__init__()
        self._scale = scale
        self._unit = 10**scale

    def __missing__(self, value: int) -> str:
        whole, fraction = divmod(abs(value), self._unit)
        text = f"{'-' if value < 0 else ''}{whole}.{fraction:0{self._scale}d}"
        if len(self) < 1_000_000:  # bound the memory of pathological data
            self[value] = text
        return text


class _PostgresWriter(_Writer):
    """Fast path for PostgreSQL through psycopg 3: ``COPY ... FROM STDIN``.

    The whole load is one transaction that first truncates the (new, empty)
    tables, so every ``COPY`` may use ``FREEZE``: the rows are written frozen
    and all-visible, with no hint bits to set and no vacuum to run before
    index-only scans work, and with ``wal_level = minimal`` no WAL either.  A
    failed load leaves empty tables rather than half a demo.  Each chunk is
    sent as three ``COPY`` commands: subscribers with ``write_row`` (names and
    addresses are escaped by psycopg), invoices and payments as preformatted
    text lines, since they hold only digits, dates and fixed words.  Money and
    volumes go over the wire as exact decimal text, never as floats.  The
    secondary indexes are built after the load, then ``ANALYZE`` gives the
    planner the statistics of the full tables (with the true number of
    distinct subscriber codes, see :meth:`analyze`).
    """

    analyzes = True
    #: Session setting for the index builds; PostgreSQL's default is 64MB.
    MAINTENANCE_WORK_MEM = "512MB"

    def __init__(self, engine: Engine, tables: BillingTables, window: _Window) -> None:
        self._tables = tables
        self._dialect = engine.dialect
        self._raw = engine.raw_connection()
        self._conn = cast("psycopg.Connection[Any]", self._raw.driver_connection)
        preparer = engine.dialect.identifier_preparer
        relations = (tables.subscriber, tables.invoice, tables.payment)
        self._names = {t.name: preparer.format_table(t) for t in relations}
        self._copy = {
            t.name: (
                f"COPY {self._names[t.name]} "
                f"({', '.join(preparer.quote(c.name) for c in t.columns)}) "
                "FROM STDIN WITH (FREEZE)"
            )
            for t in relations
        }
        days = (window.end - window.start).days + 1
        self._days = [window.day(offset).isoformat() for offset in range(days)]
        self._periods = {
            (y, m): f"{y}\t{m}" for y, m in zip(window.years, window.month_numbers, strict=True)
        }
        self._volume = _FixedPoint(3)
        self._money = _FixedPoint(2)
        #: Table name -> (distinct subscriber codes, rows) written so far.
        self._distinct = {tables.invoice.name: (0, 0), tables.payment.name: (0, 0)}
        with self._conn.cursor() as cur:
            # Session settings (the connection is discarded after the load).
            cur.execute("SET synchronous_commit = off")
            cur.execute(f"SET maintenance_work_mem = '{self.MAINTENANCE_WORK_MEM}'")
            # The transaction that loads the tables must have created or
            # truncated them for COPY FREEZE.
            cur.execute(f"TRUNCATE {', '.join(self._names.values())}")
        # A thread sends the chunks: while the server parses one chunk (the
        # socket waits release the GIL), the caller generates the next.
        self._queue: queue.Queue[_Chunk | None] = queue.Queue(maxsize=2)
        self._failure: BaseException | None = None
        self._sender = threading.Thread(target=self._send, name="demo-copy", daemon=True)
        self._sender.start()

    def write(self, chunk: _Chunk) -> None:
        """Hand ``chunk`` to the sending thread (wait while it is two chunks behind)."""
        self._raise_failure()
        self._queue.put(chunk)

    def _send(self) -> None:
        """The sending thread: copy every queued chunk, until ``None``."""
        while (chunk := self._queue.get()) is not None:
            if self._failure is None:  # after a failure, only drain the queue
                try:
                    self._copy_chunk(chunk)
                except BaseException as exc:  # re-raised in the generating thread
                    self._failure = exc

    def _copy_chunk(self, chunk: _Chunk) -> None:
        """Send the rows of ``chunk`` with one ``COPY`` per table."""
        tables = self._tables
        periods, volume, money, days = self._periods, self._volume, self._money, self._days
        # A subscriber's rows never span two chunks: count the distinct codes per chunk.
        for table, rows in ((tables.invoice, chunk.invoices), (tables.payment, chunk.payments)):
            distinct, total = self._distinct[table.name]
            self._distinct[table.name] = (
                distinct + len({row[0] for row in rows}),
                total + len(rows),
            )
        with self._conn.cursor() as cur:
            with cur.copy(self._copy[tables.subscriber.name]) as copy:
                write_row = copy.write_row
                for row in chunk.subscribers:
                    write_row(row)
            with cur.copy(self._copy[tables.invoice.name]) as copy:
                copy.write(
                    "".join(
                        [
                            f"{c}\t{periods[y, m]}\t{s}\t{volume[litres]}\t{money[q]}\n"
                            for c, y, m, s, litres, q in chunk.invoices
                        ]
                    )
                )
            with cur.copy(self._copy[tables.payment.name]) as copy:
                copy.write("".join([f"{c}\t{days[d]}\t{money[q]}\n" for c, d, q in chunk.payments]))

    def _stop_sending(self) -> None:
        """Let the sending thread finish the queue and end."""
        if self._sender.is_alive():
            self._queue.put(None)
            self._sender.join()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def create_indexes(self) -> None:
        """Wait for the last chunk, then create the secondary indexes of the contract."""
        self._stop_sending()
        self._raise_failure()
        with self._conn.cursor() as cur:
            for table in (self._tables.invoice, self._tables.payment):
                for index in sorted(table.indexes, key=lambda i: str(i.name)):
                    cur.execute(str(CreateIndex(index).compile(dialect=self._dialect)))

    def analyze(self) -> None:
        """Gather the statistics of the three tables for the planner.

        ``ANALYZE`` samples 30,000 rows, in which nearly every subscriber code
        of INVOICE and PAYMENT appears once: it would estimate some 90,000
        distinct codes among 1.7 million and expect a statement to read about
        800 invoice rows instead of about 40.  The loader knows the true
        number, so it records it (as a fraction of the rows, which is what a
        negative ``n_distinct`` means) before analyzing.
        """
        with self._conn.cursor() as cur:
            for table in (self._tables.invoice, self._tables.payment):
                distinct, rows = self._distinct[table.name]
                if rows:
                    fraction = min(1.0, distinct / rows)
                    cur.execute(
                        f"ALTER TABLE {self._names[table.name]} ALTER COLUMN "
                        f"{self._dialect.identifier_preparer.quote('subscriber_code')} "
                        f"SET (n_distinct = {-fraction:.8f})"
                    )
            cur.execute(f"ANALYZE {', '.join(self._names.values())}")

    def commit(self) -> None:
        """Commit the load."""
        self._conn.commit()

    def close(self) -> None:
        """Release the connection (rolling back a load that did not commit)."""
        try:
            self._stop_sending()
        finally:
            self._raw.close()


class _CoreWriter(_Writer):
    """Portable path: SQLAlchemy Core executemany, Decimal money, date objects."""

    def __init__(self, engine: Engine, tables: BillingTables, window: _Window) -> None:
        self._engine = engine
        self._tables = tables
        self._window = window
        self._conn: Connection = engine.connect()

    def write(self, chunk: _Chunk) -> None:
        """Insert the rows of ``chunk`` in one transaction."""
        tables = self._tables
        day = self._window.day
        sub_names = [c.name for c in tables.subscriber.columns]
        inv_names = [c.name for c in tables.invoice.columns]
        pay_names = [c.name for c in tables.payment.columns]
        with self._conn.begin():
            _insert_many(self._conn, tables.subscriber, sub_names, chunk.subscribers)
            _insert_many(
                self._conn,
                tables.invoice,
                inv_names,
                [
                    (c, y, m, s, Decimal(litres).scaleb(-3), Decimal(q).scaleb(-2))
                    for c, y, m, s, litres, q in chunk.invoices
                ],
            )
            _insert_many(
                self._conn,
                tables.payment,
                pay_names,
                [(c, day(d), Decimal(q).scaleb(-2)) for c, d, q in chunk.payments],
            )

    def create_indexes(self) -> None:
        """Create the secondary indexes of the contract."""
        with self._conn.begin():
            for table in (self._tables.invoice, self._tables.payment):
                for index in sorted(table.indexes, key=lambda i: str(i.name)):
                    index.create(self._conn)

    def close(self) -> None:
        """Release the connection."""
        self._conn.close()


def _insert_many(
    conn: Connection, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (tuples in column order) with one executemany per 10,000."""
    for start in range(0, len(rows), 10_000):
        batch = [dict(zip(names, row, strict=True)) for row in rows[start : start + 10_000]]
        if batch:
            conn.execute(table.insert(), batch)


# --------------------------------------------------------------------------- progress


class _ProgressBar:
    """A one-line text progress bar, redrawn at most ten times a second."""

    def __init__(
        self,
        stream: TextIO,
        total: int,
        width: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._total = total
        self._width = width
        self._clock = clock
        self._last = float("-inf")
        self._done = 0
        self._drawn = (-1, "")
        self._length = 0
        self._draw(0)

    def update(self, done: int) -> None:
        """Record ``done`` subscribers; redraw if 0.1 s passed since the last redraw."""
        self._done = done
        if self._clock() - self._last >= 0.1:
            self._draw(done)

    def note(self, text: str) -> None:
        """Redraw the bar with ``text`` after it, for a step that reports no progress."""
        self._draw(self._done, f"  {text}")

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self._drawn != (self._done, ""):
            self._draw(self._done)
        self._stream.write("\n")
        self._stream.flush()

    def _draw(self, done: int, suffix: str = "") -> None:
        """Write the bar for ``done`` subscribers, blanking a longer previous line."""
        self._last = self._clock()
        filled = self._width * done // self._total
        percent = 100 * done // self._total
        bar = "#" * filled + "." * (self._width - filled)
        line = f"[{bar}] {percent:3d}%  {done}/{self._total} subscribers{suffix}"
        blank = " " * max(0, self._length - len(line))
        self._stream.write(f"\r{line}{blank}")
        self._stream.flush()
        self._drawn = (done, suffix)
        self._length = len(line)
