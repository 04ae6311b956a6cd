"""The front door under the four attacks of docs/security.md, with figures (not a test).

Starts ``serve`` (two workers, ``make run``'s limits) on the hand-made billing
data, and for each attack -- slowloris, keep-alive hoarding, one-byte chunks,
an endless trailer -- runs the attack from 127.0.0.3 for 8 s while the
legitimate portal signs and sends real calls from 127.0.0.2, one after
another on fresh connections.  Prints, per attack, the calls' median and
slowest duration, the workers' largest resident-size growth, and how many
connections the server closed or refused.  The attack traffic is the test
suite's own (:mod:`tests.test_worker`), bounded in time.

    .venv/bin/python bench/front_door.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.pki import init_pki  # noqa: E402
from service.signing.keys import signing_identity_from_bytes  # noqa: E402
from service.signing.trust import TrustStore  # noqa: E402
from tests import billing_fixtures as bf  # noqa: E402
from tests.gunicorn_process import ServedProcess, fixture_service_env  # noqa: E402
from tests.test_worker import (  # noqa: E402
    _SLOW_HEAD,
    Caller,
    Flood,
    TinyChunks,
    TrailerFlood,
    attack_while_calling,
    closed_count,
)


def main() -> int:
    """Run the four attacks one after another; print a line each."""
    with tempfile.TemporaryDirectory(prefix="front-door-") as folder:
        work = Path(folder)
        pki = init_pki(work / "pki")
        bf.create_billing_db(f"sqlite:///{work / 'billing.sqlite'}")
        env = fixture_service_env(
            pki, f"sqlite:///{work / 'billing.sqlite'}", work / "var", AZERSU_WORKERS="2"
        )
        server = ServedProcess(env, work / "serve.log")
        try:
            identity = signing_identity_from_bytes(
                pki["portal.key"].read_bytes(), pki["portal.pem"].read_bytes(), None
            )
            trust = TrustStore.from_pem_bytes(
                pki["ca.pem"].read_bytes(), accept_any_signer_of_ca=True
            )
            caller = Caller(server, identity, trust)
            quiet = caller.during(4.0)
            print(f"no attack: {len(quiet)} calls, median {statistics.median(quiet) * 1000:.0f} ms")
            attacks: dict[str, Flood] = {
                "slowloris, 2100 connections": Flood(server.port, 2100, _SLOW_HEAD, b"a", 1.0),
                "keep-alive, 2100 connections": Flood(
                    server.port, 2100, b"", b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 4.0
                ),
                "one-byte chunks, 4 connections": TinyChunks(server.port),
                "endless trailer, 2 connections": TrailerFlood(server.port),
            }
            for name, flood in attacks.items():
                refused = closed_count(server, "per_client_limit")
                durations, growth_kb = attack_while_calling(server, caller, flood, seconds=8.0)
                refused = closed_count(server, "per_client_limit") - refused
                print(
                    f"{name}: {len(durations)} calls, median "
                    f"{statistics.median(durations) * 1000:.0f} ms, slowest "
                    f"{max(durations) * 1000:.0f} ms, RSS growth {growth_kb / 1024:.1f} MB, "
                    f"closed by the server {flood.closed_by_server}, "
                    f"refused for the per-client limit {refused:.0f}"
                )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
