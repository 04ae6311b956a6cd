"""CPU per stage of the request path, in one process, without gunicorn.

``bench/load.py`` measures the whole server under load; this script says
where a request's CPU goes.  It builds the service with ``create_app`` on
the benchmark's demo database (100,000 subscribers, built by ``load.py`` if
missing), signs requests as the portal does, calls the WSGI application
directly in one thread, and times each stage with ``time.thread_time()``
(the stages nest: the operation includes the billing reads).  The audit
commit runs in its own thread; its CPU is reported apart.  Logging goes to
/dev/null, metrics to a throwaway folder, as in production.

Run from the repository root::

    .venv/bin/python bench/request_stages.py --requests 2000
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:  # run as a script, like bench/soak.py
    sys.path.insert(0, str(BENCH))

import load  # noqa: E402  (bench/load.py: the demo database and the requests)
from lxml import etree  # noqa: E402

cpu: collections.Counter[str] = collections.Counter()
#: The stages in the order they are reported.
stages: list[str] = []


def timed(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` by a wrapper that adds its thread CPU to ``label``."""
    original = getattr(owner, name)
    stages.append(label)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            cpu[label] += time.thread_time() - started

    setattr(owner, name, wrapper)


def instrument() -> None:
    """Time the stages (import-time names are patched where they are called from)."""
    import service.audit as audit
    import service.handlers.billing_statement as handler
    import service.signing.statement_signature as statement_signature
    import service.signing.wsse as wsse
    import service.soap_gateway as gateway

    timed(gateway.SoapGateway, "__call__", "whole request (request thread)")
    timed(gateway, "parse_request", "parse (hardened parser)")
    timed(wsse.WsseVerifier, "verify", "verify WS-Security")
    timed(wsse, "verify_signature", "  of which the signature check (C14N, digests, RSA)")
    timed(
        handler.StatementOperation,
        "__call__",
        "operation (schema, validate, billing, answer XML)",
    )
    timed(handler, "build_statement", "  of which the billing reads and sums")
    timed(statement_signature.StatementSigner, "sign", "sign the Statement")
    timed(wsse.WsseSigner, "sign", "sign the envelope")
    timed(gateway.SoapGateway, "_committed", "audit hand-off, metrics, log line")
    timed(audit.AuditStore, "record", "  of which the audit wait (the commit's hand-off)")
    timed(audit.AuditStore, "insert_now", "audit commit (its own thread)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests measured")
    parser.add_argument("--warmup", type=int, default=400, help="requests before measuring")
    parser.add_argument("--subscribers", type=int, default=100_000, help="demo size")
    args = parser.parse_args(argv)

    db = load.ensure_demo_db(args.subscribers)
    work = Path(tempfile.mkdtemp(prefix="stages-", dir=load.WORK_DIR))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work / "metrics")
    (work / "metrics").mkdir()

    from service.app import create_app
    from service.json_logging import configure_logging
    from service.pki import init_pki
    from service.settings import Settings
    from service.signing.keys import load_signing_identity
    from service.signing.wsse import WsseSigner
    from tests.test_properties import call

    pki = init_pki(work / "pki")
    settings = Settings(
        var_dir=str(work / "var"),
        billing_url=f"sqlite:///{db}",
        sign_key=str(pki["service.key"]),
        sign_cert=str(pki["service.pem"]),
        trust_ca=str(pki["ca.pem"]),
        trusted_clients=load.portal_fingerprint(pki),
        log_level="INFO",
    )
    configure_logging("INFO")
    devnull = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the script)
    import logging

    for handler in logging.getLogger().handlers + logging.getLogger("service").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)
    instrument()
    app = create_app(settings)
    portal = WsseSigner(load_signing_identity(str(pki["portal.key"]), str(pki["portal.pem"]), None))
    subscribers = load.residential_subscribers(db)[: args.warmup + args.requests]

    def signed(code: str, fin: str) -> bytes:
        root = etree.fromstring(load.soap_request(code, fin, "az"))
        portal.sign(root)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    requests = [signed(code, fin) for code, fin in subscribers]

    def request(body: bytes) -> None:
        status, _headers, answer = call(app, body)
        if not status.startswith("200") or b">OK</" not in answer:
            raise SystemExit(f"not an OK statement: {status} {answer[:300]!r}")

    for body in requests[: args.warmup]:
        request(body)
    cpu.clear()
    n = args.requests
    thread_started, process_started = time.thread_time(), time.process_time()
    for body in requests[args.warmup :]:
        request(body)
    thread_ms = (time.thread_time() - thread_started) / n * 1000
    process_ms = (time.process_time() - process_started) / n * 1000
    app.close()

    print(f"{n:,} requests on {args.subscribers:,} subscribers, one thread, no gunicorn")
    print(f"process CPU {process_ms:.3f} ms/request (request thread {thread_ms:.3f} ms)\n")
    print("| stage | CPU ms/request |\n|---|---:|")
    for label in stages:
        print(f"| {label} | {cpu[label] / n * 1000:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
