"""Statement latency by database size: is a statement at 1.7M subscribers as fast as at 10k?

For each backend (SQLite, PostgreSQL) and each size, the script builds the demo
billing database with the real ``init-demo`` command (timed), then times
``build_statement(context, code)`` -- the three indexed queries and the
assembly of the statement, exactly what ``GetBillingStatement`` does between
the request check and the signing -- for random residential subscriber codes.
The context is the service's own: the read-only pooled engine of
:func:`service.billing.engine.create_read_only_engine` with the default
settings, :class:`BillingQueries` and :class:`StatementContext` built as
``service.app.create_app`` builds them.

Method:

* Codes are drawn with a fixed seed from the residential subscribers in the
  database; the warm-up codes and the measured codes are disjoint, so every
  measured statement reads a subscriber that was not read before (the
  database's upper index levels are warm, the leaf and table pages of that
  subscriber come from whatever cache holds them).
* Backend by backend: with ``--cache warm`` (the default) each database is
  first read into the OS page cache -- the building of the other databases
  may have evicted part of it, and the comparison would then measure the
  disk; ``--cache as-is`` measures exactly that.  The warm-up (connection
  pool, cached latest period) follows; then the measured codes run in rounds
  that alternate between the sizes, so that other load on the machine spreads
  over all sizes alike instead of biasing one of them.
* The table gives p50, p95, p99 and mean in milliseconds, and for each
  backend the ratio of the largest size's median to the smallest size's
  median (the target is at most 1.2).  The query plans (SQLite
  ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN``) of the three statement
  queries at the largest size show which index each one uses; a full scan is
  flagged.  On PostgreSQL, ``EXPLAIN (ANALYZE, BUFFERS)`` of fresh codes
  counts the pages a statement finds in shared buffers and those it reads.

PostgreSQL runs in a throwaway server (``tests.postgres_server``) under the
work directory unless ``--pg-url`` names an existing server, where the script
creates (or, with ``--keep``, reuses) databases ``azersu_bench_<size>``.
SQLite files live in the work directory; ``--keep`` reuses them when they
hold the same demo (a small manifest records the parameters).  A throwaway
server's databases are always rebuilt.

Run from the repository root::

    .venv/bin/python bench/statement_latency.py --sizes 10000,1700000 \\
        --backends sqlite,postgresql --samples 2000 --keep

Output: a Markdown report on stdout, and ``bench/results/statement_latency.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from random import Random
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``service`` and ``tests`` importable
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from service.app import build_statement_context, create_billing_engine  # noqa: E402
from service.billing.engine import normalize_url  # noqa: E402
from service.billing.tables import BillingTables, build_billing_tables  # noqa: E402
from service.demo_data import BAKU_TZ, latest_closed_period  # noqa: E402
from service.handlers.billing_statement import StatementContext, build_statement  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.statement import STATEMENT_MONTHS, report_window, window_dates  # noqa: E402

BACKENDS = ("sqlite", "postgresql")
DEFAULT_RESULTS = ROOT / "bench" / "results" / "statement_latency.json"
#: Target: the largest size's median at most this many times the smallest size's.
TARGET_RATIO = 1.2
#: The three queries of a statement (the latest period is cached, not per statement).
PLANNED = ("subscriber", "invoices", "payments")
#: PostgreSQL: fresh codes whose queries run under EXPLAIN (ANALYZE, BUFFERS).
PROBES = 100


@dataclasses.dataclass
class Target:
    """One database to measure: a backend at a size."""

    backend: str
    size: int
    url: str
    init_demo_s: float | None = None  # None when an existing database was reused
    command: list[str] = dataclasses.field(default_factory=list)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    db_bytes: int = 0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    plans: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    full_scans: list[str] = dataclasses.field(default_factory=list)
    #: SQLite: share of the file in the OS page cache before the prewarm.
    resident_before: float | None = None
    prewarm_s: float | None = None
    #: PostgreSQL: shared buffers hit and read per statement, by query (fresh codes).
    buffers: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.size}"


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Statement latency at several demo sizes on SQLite and PostgreSQL.",
    )
    parser.add_argument(
        "--sizes",
        type=_int_list,
        default=[10_000, 1_700_000],
        help="comma-separated numbers of subscribers (default 10000,1700000)",
    )
    parser.add_argument(
        "--backends",
        type=_backend_list,
        default=list(BACKENDS),
        help="comma-separated backends: sqlite, postgresql (default both)",
    )
    parser.add_argument(
        "--samples", type=int, default=2000, help="measured statements per target (default 2000)"
    )
    parser.add_argument(
        "--warmup", type=int, default=200, help="warm-up statements per target (default 200)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds the samples are split into (default 5)"
    )
    parser.add_argument("--seed", type=int, default=2021, help="demo and sampling seed")
    parser.add_argument("--months", type=int, default=24, help="demo months (default 24)")
    parser.add_argument(
        "--end-period",
        default="",
        help="demo's latest closed period YYYY-MM (default: the month before this one)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=ROOT / "var" / "bench",
        help="where databases (and a throwaway PostgreSQL server) live (default var/bench)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="reuse databases of earlier runs that hold the same demo, and keep them",
    )
    parser.add_argument(
        "--pg-url",
        default="",
        help="an existing PostgreSQL server (superuser URL) instead of a throwaway one",
    )
    parser.add_argument(
        "--cache",
        choices=("warm", "as-is"),
        default="warm",
        help="warm: read each database into the OS page cache before measuring it "
        "(default); as-is: measure the caches as the builds left them",
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON output file")
    args = parser.parse_args(argv)
    if args.samples < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--samples and --rounds must be positive, --warmup not negative")
    if args.end_period:
        match = re.fullmatch(r"(\d{4})-(\d{2})", args.end_period)
        if not match:
            parser.error("--end-period must be YYYY-MM")
        args.end_period = (int(match.group(1)), int(match.group(2)))
    else:
        args.end_period = latest_closed_period(datetime.now(BAKU_TZ).date())
    return args


def _int_list(text: str) -> list[int]:
    values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return sorted(set(values))


def _backend_list(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(values) - set(BACKENDS))
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"backends are {', '.join(BACKENDS)}; got {text!r}")
    return [b for b in BACKENDS if b in values]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- building


def demo_parameters(args: argparse.Namespace, size: int) -> dict[str, Any]:
    year, month = args.end_period
    return {
        "subscribers": size,
        "months": args.months,
        "seed": args.seed,
        "end_period": f"{year:04d}-{month:02d}",
    }


def init_demo_command(url: str, params: dict[str, Any]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "service",
        "init-demo",
        "--db",
        url,
        "--subscribers",
        str(params["subscribers"]),
        "--months",
        str(params["months"]),
        "--seed",
        str(params["seed"]),
        "--end-period",
        params["end_period"],
        "--replace",
    ]


def run_init_demo(target: Target, params: dict[str, Any]) -> None:
    """Build the demo with the real command line; time it (progress bar on stderr)."""
    command = init_demo_command(target.url, params)
    # Default settings: no AZERSU_* variable may rename the relations under us.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
    shown = " ".join(_hide_password(part) for part in command[1:])
    log(f"\n{target.name}: python {shown}")
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    target.init_demo_s = time.perf_counter() - started
    target.command = ["azersu-statement", *command[3:]]
    if result.returncode != 0:
        raise SystemExit(f"init-demo failed for {target.name} (exit {result.returncode})")
    log(result.stdout.splitlines()[0] if result.stdout else "")
    log(f"{target.name}: init-demo took {target.init_demo_s:.1f} s")


def _hide_password(text: str) -> str:
    if "://" not in text:
        return text
    return make_url(text).render_as_string(hide_password=True)


def demo_matches(url: str, manifest: Path, params: dict[str, Any]) -> bool:
    """Return whether the database at ``url`` holds the demo that ``manifest`` describes."""
    try:
        recorded = json.loads(manifest.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    if recorded != params:
        return False
    try:
        counts = table_counts(url)
    except Exception:  # anything wrong means: rebuild
        return False
    return counts.get("subscriber") == params["subscribers"] and counts.get("invoice", 0) > 0


def table_counts(url: str) -> dict[str, int]:
    tables = build_billing_tables()
    engine = create_engine(normalize_url(url, "--db"))
    try:
        with engine.connect() as conn:
            return {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (tables.subscriber, tables.invoice, tables.payment)
            }
    finally:
        engine.dispose()


def prepare_sqlite(args: argparse.Namespace, size: int) -> Target:
    path = args.work_dir / f"sqlite-{size}.sqlite"
    target = Target("sqlite", size, f"sqlite:///{path}")
    params = demo_parameters(args, size)
    manifest = path.with_suffix(".json")
    if args.keep and demo_matches(target.url, manifest, params):
        log(f"{target.name}: reusing {path}")
    else:
        manifest.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        run_init_demo(target, params)
        manifest.write_text(json.dumps(params), "utf-8")
    target.counts = table_counts(target.url)
    target.db_bytes = path.stat().st_size
    return target


def prepare_postgres(
    args: argparse.Namespace, size: int, server: Any, manifests: Path | None
) -> Target:
    name = f"azersu_bench_{size}"
    params = demo_parameters(args, size)
    if server is not None:
        # As a user types it: postgresql://, which init-demo gives the psycopg 3 driver.
        plain = make_url(server.create_database(name)).set(drivername="postgresql")
        target = Target("postgresql", size, plain.render_as_string(hide_password=False))
        run_init_demo(target, params)
    else:
        admin = normalize_url(args.pg_url, "--pg-url")
        url = admin.set(database=name).render_as_string(hide_password=False)
        target = Target("postgresql", size, url)
        assert manifests is not None
        manifest = manifests / f"postgresql-{size}.json"
        if args.keep and demo_matches(url, manifest, params):
            log(f"{target.name}: reusing database {name}")
        else:
            manifest.unlink(missing_ok=True)
            _create_database(admin.render_as_string(hide_password=False), name)
            run_init_demo(target, params)
            manifest.write_text(json.dumps(params), "utf-8")
    target.counts = table_counts(target.url)
    engine = create_engine(normalize_url(target.url, "--db"))
    try:
        with engine.connect() as conn:
            target.db_bytes = int(
                conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
            )
    finally:
        engine.dispose()
    return target


def _create_database(admin_url: str, name: str) -> None:
    engine = create_engine(normalize_url(admin_url, "--pg-url"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": name}
            ).first()
            if not exists:
                conn.exec_driver_sql(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8'")
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_server(work_dir: Path) -> Iterator[Any]:
    """Start a throwaway PostgreSQL (tests.postgres_server) with its files under ``work_dir``."""
    try:
        from tests.postgres_server import PostgresServer, unavailable_reason
    except ImportError as exc:
        raise SystemExit(f"tests.postgres_server is not available ({exc}); use --pg-url") from exc
    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"cannot start PostgreSQL: {reason}; use --pg-url")
    # The server's temporary directory goes under the work directory, on the
    # same disk as the SQLite files rather than wherever TMPDIR points.
    work_dir.mkdir(parents=True, exist_ok=True)
    saved = tempfile.tempdir
    tempfile.tempdir = str(work_dir)
    try:
        server = PostgresServer()
    finally:
        tempfile.tempdir = saved
    try:
        log(f"PostgreSQL: throwaway server {server!r}")
        yield server
    finally:
        server.cleanup()


# --------------------------------------------------------------------------- measuring


@dataclasses.dataclass
class Bench:
    """A target with the service's statement context open on it."""

    target: Target
    engine: Engine
    context: StatementContext
    warmup: list[str]
    measured: list[str]
    probed: list[str]


def open_bench(target: Target, args: argparse.Namespace) -> Bench:
    """Build the engine, queries and context as ``service.app.create_app`` does."""
    settings = dataclasses.replace(Settings(), billing_url=target.url)
    engine = create_billing_engine(settings)
    # The same queries and rules as the service; the per-request deadline
    # thread is left out so that only the billing reads are timed.
    context = build_statement_context(settings, engine, deadline=False)
    tables = context.queries.tables
    codes = residential_codes(engine, tables)
    probes = PROBES if target.backend == "postgresql" else 0
    wanted = args.warmup + args.samples + probes
    if len(codes) < wanted:
        raise SystemExit(
            f"{target.name}: {len(codes)} residential subscribers, fewer than the "
            f"{wanted} codes wanted (--warmup + --samples + {probes})"
        )
    drawn = Random(args.seed).sample(codes, wanted)  # noqa: S311 - a reproducible sample
    warmup, rest = drawn[: args.warmup], drawn[args.warmup :]
    return Bench(target, engine, context, warmup, rest[: args.samples], rest[args.samples :])


def residential_codes(engine: Engine, tables: BillingTables) -> list[str]:
    s = tables.subscriber
    query = (
        select(s.c.subscriber_code)
        .where(s.c.category == "RESIDENTIAL")
        .order_by(s.c.subscriber_code)
    )
    with engine.connect() as conn:
        return [str(code) for code in conn.execute(query).scalars()]


def time_statements(bench: Bench, codes: list[str]) -> list[float]:
    """Return the milliseconds of ``build_statement`` for each code."""
    context = bench.context
    clock = time.perf_counter
    out = []
    for code in codes:
        started = clock()
        statement = build_statement(context, code)
        out.append((clock() - started) * 1000.0)
        if not statement.periods:
            raise SystemExit(f"{bench.target.name}: statement of {code} has no months")
    return out


def measure(benches: list[Bench], rounds: int, cache: str) -> None:
    """Measure backend by backend: (prewarm), warm-up, then rounds alternating the sizes."""
    for backend in BACKENDS:
        group = [bench for bench in benches if bench.target.backend == backend]
        if cache == "warm":
            for bench in group:
                prewarm(bench.target)
        for bench in group:
            log(f"{bench.target.name}: warm-up, {len(bench.warmup)} statements")
            time_statements(bench, bench.warmup)
        for number in range(rounds):
            for bench in group:
                codes = bench.measured[number::rounds]
                gc.collect()
                bench.target.latencies_ms.extend(time_statements(bench, codes))
            if group:
                log(f"{backend}: round {number + 1}/{rounds} done")


def prewarm(target: Target) -> None:
    """Read the whole database into the OS page cache, as on a server where it fits in RAM.

    Without this, the pages that building the other databases pushed out of the
    page cache come from the disk, and the comparison measures the disk.
    """
    started = time.perf_counter()
    if target.backend == "sqlite":
        path = Path(make_url(target.url).database or "")
        target.resident_before = resident_fraction(path)
        buffer = bytearray(1 << 20)
        with path.open("rb", buffering=0) as file:
            while file.readinto(buffer):
                pass
    else:
        # pg_prewarm 'read' reads every block of the tables and their indexes
        # through the OS (shared_buffers stays whatever the server has).
        tables = build_billing_tables()
        names = [t.name for t in (tables.subscriber, tables.invoice, tables.payment)]
        engine = create_engine(normalize_url(target.url, "--db"))
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
                conn.exec_driver_sql(
                    "SELECT pg_prewarm(c.oid, 'read') FROM pg_class c"
                    " WHERE c.oid = ANY(%(oids)s)"
                    " OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY(%(oids)s))",
                    {"oids": _regclass_oids(conn, names)},
                ).all()
        except Exception as exc:  # no pg_prewarm on that server: measure as it is
            log(f"{target.name}: cannot prewarm ({type(exc).__name__}: {exc}); caches as they are")
            return
        finally:
            engine.dispose()
    target.prewarm_s = time.perf_counter() - started
    log(f"{target.name}: read into the page cache in {target.prewarm_s:.1f} s")


def _regclass_oids(conn: Any, names: list[str]) -> list[int]:
    return [
        int(conn.exec_driver_sql("SELECT %(name)s::regclass::oid", {"name": name}).scalar_one())
        for name in names
    ]


def resident_fraction(path: Path) -> float | None:
    """Return the share of ``path`` in the OS page cache (util-linux ``fincore``), if known."""
    fincore = shutil.which("fincore")
    size = path.stat().st_size
    if not fincore or not size:
        return None
    result = subprocess.run(
        [fincore, "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return int(result.stdout.split()[0]) / size
    except (IndexError, ValueError):
        return None


def summarize(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": cuts[94],
        "p99_ms": cuts[98],
        "mean_ms": statistics.fmean(latencies),
        "min_ms": min(latencies),
        "max_ms": max(latencies),
    }


# --------------------------------------------------------------------------- plans


def explain(bench: Bench) -> None:
    """Record the plans of the three statement queries (and on PostgreSQL, buffer use)."""
    target = bench.target
    target.plans = query_plans(bench, bench.measured[0], "")
    for name, lines in target.plans.items():
        if target.backend == "sqlite":
            scans = [line for line in lines if line.startswith("SCAN")]
        else:
            scans = [line for line in lines if "Seq Scan" in line]
        target.full_scans.extend(f"{name}: {line.strip()}" for line in scans)
    if target.backend != "postgresql" or not bench.probed:
        return
    # Which pages a statement needs from outside PostgreSQL's shared buffers
    # (the OS page cache, or the disk): the cache-warmth part of the latency.
    totals = {name: [0, 0] for name in PLANNED}
    for code in bench.probed:
        analyzed = query_plans(bench, code, "(ANALYZE, BUFFERS, TIMING OFF) ")
        for name, lines in analyzed.items():
            found = re.search(r"Buffers: shared((?: \w+=\d+)*)", "\n".join(lines))
            counts = dict(re.findall(r"(\w+)=(\d+)", found.group(1))) if found else {}
            totals[name][0] += int(counts.get("hit", 0))
            totals[name][1] += int(counts.get("read", 0))
    target.buffers = {
        name: {"hit": hit / len(bench.probed), "read": read / len(bench.probed)}
        for name, (hit, read) in totals.items()
    }


def query_plans(bench: Bench, code: str, options: str) -> dict[str, list[str]]:
    """Return the plan of each statement query for ``code`` (``options`` after EXPLAIN)."""
    queries = bench.context.queries
    subscriber = queries.find_subscriber(code)
    latest = queries.latest_closed_period()
    assert subscriber is not None and latest is not None
    window = report_window(latest, STATEMENT_MONTHS, subscriber.opened_on)
    start, end = window_dates(window)
    values: dict[str, dict[str, Any]] = {
        "subscriber": {"code": code},
        "invoices": {
            "code": code,
            "first_year": window[0][0],
            "last_year": window[-1][0],
            "first_key": window[0][0] * 100 + window[0][1],
            "last_key": window[-1][0] * 100 + window[-1][1],
        },
        "payments": {"code": code, "start_day": start, "end_day": end},
    }
    dialect = bench.engine.dialect
    plans: dict[str, list[str]] = {}
    with bench.engine.connect() as conn:
        for name in PLANNED:
            compiled = queries.statements[name].compile(dialect=dialect)  # type: ignore[attr-defined]
            params = compiled.construct_params(values[name])
            if bench.target.backend == "sqlite":
                params = {k: v.isoformat() if isinstance(v, date) else v for k, v in params.items()}
                positional = tuple(params[key] for key in compiled.positiontup)
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", positional).all()
                plans[name] = [str(row[-1]) for row in rows]
            else:
                rows = conn.exec_driver_sql(f"EXPLAIN {options}{compiled}", params).all()
                plans[name] = [str(row[0]) for row in rows]
    return plans


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        cpuinfo = Path("/proc/cpuinfo").read_text("utf-8")
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        info["cpu"] = found.group(1).strip() if found else platform.processor()
    with contextlib.suppress(OSError):
        meminfo = Path("/proc/meminfo").read_text("utf-8")
        found = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
        if found:
            info["mem_total_gib"] = round(int(found.group(1)) / 1024**2, 1)
    return info


def postgres_settings(targets: list[Target]) -> dict[str, str]:
    """Return the PostgreSQL server's version and the settings that matter for the latency."""
    for target in targets:
        if target.backend == "postgresql":
            engine = create_engine(normalize_url(target.url, "--db"))
            try:
                with engine.connect() as conn:
                    return {
                        name: str(conn.exec_driver_sql(f"SHOW {name}").scalar_one())
                        for name in ("server_version", "shared_buffers", "effective_cache_size")
                    }
            finally:
                engine.dispose()
    return {}


def ratios(targets: list[Target]) -> list[dict[str, Any]]:
    out = []
    for backend in BACKENDS:
        mine = sorted((t for t in targets if t.backend == backend), key=lambda t: t.size)
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        small_p50 = statistics.median(small.latencies_ms)
        large_p50 = statistics.median(large.latencies_ms)
        ratio = large_p50 / small_p50
        out.append(
            {
                "backend": backend,
                "small": small.size,
                "large": large.size,
                "small_p50_ms": small_p50,
                "large_p50_ms": large_p50,
                "ratio": ratio,
                "target": TARGET_RATIO,
                "met": ratio <= TARGET_RATIO,
            }
        )
    return out


def markdown(targets: list[Target], ratio_rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [
        "## Statement latency (`build_statement`, ms)",
        "",
        f"Machine: {info.get('cpu', '?')}, {info['nproc']} CPUs, "
        f"{info.get('mem_total_gib', '?')} GiB RAM; Python {info['python']}, "
        f"SQLite {info['sqlite']}"
        + (
            f", PostgreSQL {info['postgresql']['server_version']} "
            f"(shared_buffers {info['postgresql']['shared_buffers']})"
            if info.get("postgresql")
            else ""
        )
        + ".",
        "",
        _cache_note(targets, info.get("cache", "")),
        "",
        "| backend | subscribers | init-demo | database | samples | p50 | p95 | p99 | mean |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in targets:
        s = summarize(t.latencies_ms)
        built = f"{t.init_demo_s:.1f} s" if t.init_demo_s is not None else "reused"
        lines.append(
            f"| {t.backend} | {t.size:,} | {built} | {t.db_bytes / 1024**2:,.0f} MiB "
            f"| {len(t.latencies_ms):,} | {s['p50_ms']:.3f} | {s['p95_ms']:.3f} "
            f"| {s['p99_ms']:.3f} | {s['mean_ms']:.3f} |"
        )
    if ratio_rows:
        lines += [
            "",
            f"| backend | p50 at {ratio_rows[0]['small']:,} | p50 at {ratio_rows[0]['large']:,} "
            f"| ratio | target ≤ {TARGET_RATIO} |",
            "|---|---:|---:|---:|---|",
        ]
        for r in ratio_rows:
            lines.append(
                f"| {r['backend']} | {r['small_p50_ms']:.3f} ms | {r['large_p50_ms']:.3f} ms "
                f"| {r['ratio']:.2f}x | {'met' if r['met'] else 'MISSED'} |"
            )
    for backend in BACKENDS:
        mine = [t for t in targets if t.backend == backend]
        if not mine:
            continue
        largest = max(mine, key=lambda t: t.size)
        kind = "EXPLAIN QUERY PLAN" if backend == "sqlite" else "EXPLAIN"
        lines += ["", f"### {backend} plans at {largest.size:,} subscribers ({kind})", ""]
        for name in PLANNED:
            lines += [f"`{name}`:", "", "```", *largest.plans.get(name, []), "```", ""]
        verdict = (
            "full scans: " + "; ".join(largest.full_scans)
            if largest.full_scans
            else "no full scan: every query is an index search"
        )
        lines.append(f"{backend}: {verdict}.")
    probed = [t for t in targets if t.buffers]
    if probed:
        lines += [
            "",
            f"PostgreSQL shared buffers per statement ({PROBES} fresh codes, "
            "`EXPLAIN (ANALYZE, BUFFERS)`; *read* = not in shared buffers, from the OS):",
            "",
            "| subscribers | " + " | ".join(f"{name} hit / read" for name in PLANNED) + " |",
            "|---:|" + "---:|" * len(PLANNED),
        ]
        for t in probed:
            cells = [f"{t.buffers[n]['hit']:.1f} / {t.buffers[n]['read']:.1f}" for n in PLANNED]
            lines.append(f"| {t.size:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cache_note(targets: list[Target], cache: str) -> str:
    if cache != "warm":
        return "Caches: as the builds left them (no prewarm)."
    resident = [
        f"{t.name} {t.resident_before:.0%}" for t in targets if t.resident_before is not None
    ]
    return (
        "Caches: each database was read into the OS page cache before it was measured"
        + (f" (in the cache before: {', '.join(resident)})" if resident else "")
        + "."
    )


def write_json(
    path: Path,
    args: argparse.Namespace,
    targets: list[Target],
    ratio_rows: list[dict[str, Any]],
    info: dict[str, Any],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    year, month = args.end_period
    document = {
        "generated_at": datetime.now(BAKU_TZ).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "machine": info,
        "parameters": {
            "sizes": args.sizes,
            "backends": args.backends,
            "samples": args.samples,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "cache": args.cache,
            "seed": args.seed,
            "months": args.months,
            "end_period": f"{year:04d}-{month:02d}",
        },
        "targets": [
            {
                "backend": t.backend,
                "subscribers": t.size,
                "init_demo_s": t.init_demo_s,
                "init_demo_command": t.command,
                "rows": t.counts,
                "os_cache_resident_before_prewarm": t.resident_before,
                "prewarm_s": t.prewarm_s,
                "database_bytes": t.db_bytes,
                "samples": len(t.latencies_ms),
                **summarize(t.latencies_ms),
                "plans": t.plans,
                "full_scans": t.full_scans,
                "shared_buffers_per_statement": t.buffers,
            }
            for t in targets
        ],
        "ratios": ratio_rows,
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work_dir = args.work_dir.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    targets: list[Target] = []
    benches: list[Bench] = []
    with contextlib.ExitStack() as stack:
        if "sqlite" in args.backends:
            targets += [prepare_sqlite(args, size) for size in args.sizes]
        if "postgresql" in args.backends:
            server = None if args.pg_url else stack.enter_context(postgres_server(args.work_dir))
            manifests = args.work_dir if args.pg_url else None
            targets += [prepare_postgres(args, size, server, manifests) for size in args.sizes]
        try:
            benches = [open_bench(t, args) for t in targets]
            measure(benches, args.rounds, args.cache)
            for bench in benches:
                explain(bench)
            info = machine()
            info["postgresql"] = postgres_settings(targets)
            info["cache"] = args.cache
        finally:
            for bench in benches:
                bench.engine.dispose()
    ratio_rows = ratios(targets)
    write_json(args.results, args, targets, ratio_rows, info)
    print(markdown(targets, ratio_rows, info))
    log(f"\nwrote {args.results}")
    if not args.keep:
        for target in targets:
            if target.backend == "sqlite":
                path = Path(make_url(target.url).database or "")
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
