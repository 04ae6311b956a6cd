"""Fuzz the WS-Security front door for longer than CI does (``make fuzz``).

The target is the one of ``tests/test_fuzz.py``: :func:`parse_request`, then
the gateway's admission (``WsseVerifier.verify``, the signed X-Road header
check, the X-Road header rules), or for a signed response the portal's
checks (``WsseVerifier`` with the Statement's signature in the Body, then
``StatementVerifier``).  Nothing but a ``ServiceFault`` may escape, and a
message that verifies must still carry exactly the signed content.

Engines:

* ``atheris`` (default when it imports): coverage-guided libFuzzer over the
  ``service`` package, with two targets that share the time --
  ``ops``, where the fuzz input chooses the structured mutations of
  ``tests/test_fuzz.py`` (tree edits before or after signing, byte edits), and
  ``raw``, where libFuzzer mutates the signed request bytes themselves,
  starting from a corpus of real signed requests (a message that verifies
  must then carry one of the corpus's signed contents);
* ``hypothesis``: the CI property with a large ``max_examples``.

Every exception that escapes is recorded, classified (a known, reported bug
or a new finding), its input saved under ``var/bench/fuzz/findings``, and the
run goes on.  The report gives iterations, executions per second, the
outcome distribution and the findings; ``bench/results/fuzz.json`` keeps it.

Run from the repository root::

    .venv/bin/python bench/fuzz_verifier.py --seconds 300
    .venv/bin/python bench/fuzz_verifier.py --engine hypothesis --examples 50000
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``service`` and ``tests`` importable
    sys.path.insert(0, str(ROOT))

WORK_DIR = ROOT / "var" / "bench" / "fuzz"
RESULTS = ROOT / "bench" / "results" / "fuzz.json"
OP_VALUE_LIMITS = (1000, 10**6, 10**6, 200)


# --------------------------------------------------------------------------- recording


class Recorder:
    """Counts outcomes, keeps findings (deduplicated by signature), flushes stats to a file."""

    def __init__(self, stats_path: Path, findings_dir: Path) -> None:
        self.stats_path = stats_path
        self.findings_dir = findings_dir
        findings_dir.mkdir(parents=True, exist_ok=True)
        self.iterations = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.findings: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()
        self._flushed = 0.0

    def outcome(self, label: str) -> None:
        """Count one iteration's outcome."""
        self.iterations += 1
        self.outcomes[label] += 1
        self._maybe_flush()

    def exception(self, exc: BaseException, data: bytes, known: str | None) -> None:
        """Record an escaped exception (and the input that caused it)."""
        self.iterations += 1
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if "/service/" in f.filename] or frames
        where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno} {ours[-1].name}" if ours else "?"
        signature = f"{type(exc).__module__}.{type(exc).__name__} at {where}"
        self.outcomes["known bug" if known else "NEW FINDING"] += 1
        finding = self.findings.get(signature)
        if finding is None:
            digest = hashlib.sha256(data).hexdigest()[:16]
            path = self.findings_dir / f"{digest}.bin"
            path.write_bytes(data)
            finding = self.findings[signature] = {
                "signature": signature,
                "known_bug": known,
                "message": str(exc)[:300],
                "traceback": "".join(traceback.format_exception(exc))[-3000:],
                "input": str(path.relative_to(ROOT)),
                "count": 0,
            }
        finding["count"] += 1
        self._maybe_flush(force=True)

    def _maybe_flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._flushed > 2:
            self._flushed = now
            self.flush()

    def flush(self) -> None:
        """Write the stats so far (libFuzzer may end the process at any time)."""
        elapsed = time.monotonic() - self.started
        stats = {
            "iterations": self.iterations,
            "seconds": round(elapsed, 1),
            "executions_per_s": round(self.iterations / elapsed, 1) if elapsed else 0,
            "outcomes": dict(self.outcomes.most_common()),
            "findings": list(self.findings.values()),
        }
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats, indent=1))
        tmp.replace(self.stats_path)


# --------------------------------------------------------------------------- the targets


def make_targets(pki_dir: Path, recorder: Recorder) -> dict[str, Callable[[bytes], None]]:
    """Build the kit (keys, bases, verifiers) and return the targets by name."""
    from service.signing.hardened_xml import parse_request
    from tests.test_fuzz import (
        FuzzCase,
        FuzzKit,
        SignatureBypass,
        covered_content,
        known_bug,
        outcome_of,
        run_case,
    )

    pki = {p.name: p for p in pki_dir.iterdir()}
    kit = FuzzKit(pki)
    request_contents = {b.covered for b in kit.bases if b.kind == "request"}

    def ops_target(data: bytes) -> None:
        import atheris

        provider = atheris.FuzzedDataProvider(data)

        def op() -> tuple[int, int, int, int]:
            a, b, c, d = (provider.ConsumeIntInRange(0, limit) for limit in OP_VALUE_LIMITS)
            return (a, b, c, d)

        case = FuzzCase(
            base=provider.ConsumeIntInRange(0, len(kit.bases) - 1),
            resign=provider.ConsumeBool(),
            tree_ops=tuple(op() for _ in range(provider.ConsumeIntInRange(0, 5))),
            byte_ops=tuple(op() for _ in range(provider.ConsumeIntInRange(0, 4))),
        )
        run_ops_case(case, data)

    def run_ops_case(case: Any, data: bytes) -> None:
        try:
            recorder.outcome(run_case(kit, case))
        except Exception as exc:
            recorder.exception(exc, data, known_bug(exc))

    def raw_target(data: bytes) -> None:
        try:
            outcome = outcome_of(kit, data, "request")
            if (
                outcome == "accepted"
                and covered_content(parse_request(data)) not in request_contents
            ):
                raise SignatureBypass("a raw mutation verified with new signed content")
            recorder.outcome(outcome)
        except Exception as exc:
            recorder.exception(exc, data, known_bug(exc))

    def seeds() -> list[bytes]:
        return [b.signed for b in kit.bases if b.kind == "request"]

    ops_target.run_case = run_ops_case  # type: ignore[attr-defined]
    raw_target.seeds = seeds  # type: ignore[attr-defined]
    return {"ops": ops_target, "raw": raw_target}


def child_atheris(args: argparse.Namespace) -> None:
    """Run libFuzzer on one target until ``--seconds`` (in this process)."""
    import atheris

    with atheris.instrument_imports(include=["service"]):
        import service.signing.hardened_xml
        import service.signing.wsse
        import service.soap_gateway
        import service.xroad  # noqa: F401
    recorder = Recorder(Path(args.stats), Path(args.findings))
    targets = make_targets(Path(args.pki), recorder)
    target = targets[args.child]
    corpus = Path(args.corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    if args.child == "raw":
        for seed in target.seeds():  # type: ignore[attr-defined]
            (corpus / hashlib.sha256(seed).hexdigest()[:16]).write_bytes(seed)
    libfuzzer = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={int(args.seconds)}",
        f"-max_len={16384 if args.child == 'raw' else 1024}",
        "-timeout=20",
        "-rss_limit_mb=3072",
        "-print_final_stats=1",
    ]
    atheris.Setup(libfuzzer, target)
    try:
        atheris.Fuzz()
    finally:
        recorder.flush()


def run_hypothesis(args: argparse.Namespace, pki_dir: Path) -> dict[str, Any]:
    """Run the CI property with many examples, recording instead of stopping."""
    from hypothesis import HealthCheck, given, settings

    from tests.test_fuzz import cases

    stats = WORK_DIR / "hypothesis-stats.json"
    recorder = Recorder(stats, WORK_DIR / "findings")
    targets = make_targets(pki_dir, recorder)
    run_ops_case = targets["ops"].run_case  # type: ignore[attr-defined]

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(max_ops=6))
    def fuzz(case: Any) -> None:
        run_ops_case(case, repr(case).encode())

    fuzz()
    recorder.flush()
    return {"hypothesis": json.loads(stats.read_text())}


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("atheris", "hypothesis"), default=None)
    parser.add_argument("--seconds", type=float, default=300, help="atheris: total time (300)")
    parser.add_argument(
        "--targets", default="ops,raw", help="atheris targets sharing the time (ops,raw)"
    )
    parser.add_argument("--examples", type=int, default=50_000, help="hypothesis: examples")
    parser.add_argument("--output", type=Path, default=RESULTS)
    # Internal: one atheris target in a child process.
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--pki", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    parser.add_argument("--findings", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args, _libfuzzer = parser.parse_known_args(argv)
    return args


def atheris_available() -> bool:
    """Return whether atheris imports here."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def run_atheris(args: argparse.Namespace, pki_dir: Path) -> dict[str, Any]:
    """Run each target in its own libFuzzer process; return their stats."""
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    seconds = max(5.0, args.seconds / len(targets))
    report: dict[str, Any] = {}
    for name in targets:
        stats = WORK_DIR / f"atheris-{name}-stats.json"
        stats.unlink(missing_ok=True)
        log = WORK_DIR / f"atheris-{name}.log"
        print(f"atheris target {name}: {seconds:.0f} s (libFuzzer log: {log})", flush=True)
        with log.open("wb") as out:
            completed = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    name,
                    "--pki",
                    str(pki_dir),
                    "--seconds",
                    str(seconds),
                    "--stats",
                    str(stats),
                    "--findings",
                    str(WORK_DIR / "findings"),
                    "--corpus",
                    str(WORK_DIR / f"corpus-{name}"),
                ],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=seconds + 300,
                check=False,
            )
        result = json.loads(stats.read_text()) if stats.exists() else {}
        result["exit_code"] = completed.returncode
        result["libfuzzer"] = _libfuzzer_summary(log)
        report[f"atheris:{name}"] = result
    return report


def _libfuzzer_summary(log: Path) -> dict[str, str]:
    summary = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("stat::"):
            key, _, value = line.partition(":")[2].partition(":")
            summary[key.strip(": ")] = value.strip()
        elif line.startswith("Done ") or "cov:" in line:
            summary["last"] = line.strip()
    return summary


def print_report(report: dict[str, Any]) -> None:
    """Print iterations, speed, outcomes and findings per engine/target."""
    for name, stats in report["runs"].items():
        print(
            f"\n{name}: {stats.get('iterations', 0):,} iterations in {stats.get('seconds', 0)} s "
            f"({stats.get('executions_per_s', 0)}/s)"
        )
        if stats.get("libfuzzer", {}).get("last"):
            print(f"  libFuzzer: {stats['libfuzzer']['last']}")
        for outcome, count in stats.get("outcomes", {}).items():
            print(f"  {count:9,}  {outcome}")
        for finding in stats.get("findings", []):
            tag = finding["known_bug"] or "NEW FINDING"
            print(f"  finding ({tag}), {finding['count']}x: {finding['signature']}")
            print(f"    {finding['message'][:160]}")
            print(f"    input: {finding['input']}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fuzzer; exit 1 if a new (not yet reported) finding turned up."""
    args = parse_args(argv)
    if args.child:
        child_atheris(args)
        return 0
    from service.pki import init_pki

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    pki_dir = Path(tempfile.mkdtemp(prefix="pki-", dir=WORK_DIR))
    init_pki(pki_dir, force=True)
    engine = args.engine or ("atheris" if atheris_available() else "hypothesis")
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    runs = run_atheris(args, pki_dir) if engine == "atheris" else run_hypothesis(args, pki_dir)
    report = {
        "fuzzer": "bench/fuzz_verifier.py",
        "engine": engine,
        "started_at": started,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print_report(report)
    new = [f for s in runs.values() for f in s.get("findings", []) if not f["known_bug"]]
    print(f"\n{len(new)} new finding(s); report in {args.output}")
    for path in pki_dir.iterdir():
        path.unlink()
    os.rmdir(pki_dir)
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
