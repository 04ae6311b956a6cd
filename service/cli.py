"""The ``azersu-statement`` command (also ``python -m service``).

Commands:

* ``serve [--host H] [--port P]`` -- serve the SOAP service with gunicorn;
* ``init-demo [--db URL] [--subscribers N] [--months M]`` -- build the demo
  billing database;
* ``call --url URL --code CODE --fin FIN [--lang az|en|ru] [--xml]`` -- call the
  service as the portal would and print the statement.

A configuration error ends the command with one line naming the setting and
exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from service.errors import ConfigurationError
from service.settings import Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="azersu-statement",
        description="Azərsu e-service: the last 12 months of invoices and payments.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the SOAP service with gunicorn")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")

    demo = commands.add_parser("init-demo", help="build the demo billing database")
    demo.add_argument("--db", help="SQLAlchemy URL (default: the demo SQLite file under var/)")
    demo.add_argument("--subscribers", type=int, default=10_000, help="default 10000")
    demo.add_argument("--months", type=int, default=24, help="months of history, default 24")
    demo.add_argument("--end-period", help="latest closed period YYYY-MM (default: last month)")
    demo.add_argument("--seed", type=int, default=2021, help="random seed (default 2021)")
    demo.add_argument("--replace", action="store_true", help="drop and rebuild existing tables")

    call = commands.add_parser("call", help="call the service as the portal would")
    call.add_argument("--url", default="http://127.0.0.1:8080/soap", help="the /soap endpoint")
    call.add_argument("--code", required=True, help="subscriber code (abonent kodu)")
    call.add_argument("--fin", help="the citizen's FIN")
    call.add_argument("--lang", choices=("az", "en", "ru"), help="language of the message")
    call.add_argument("--xml", action="store_true", help="print the raw response XML")
    call.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "serve":
            return _serve(settings, args)
        if args.command == "init-demo":
            return _init_demo(settings, args)
        if args.command == "call":
            return _call(args)
    except ConfigurationError as exc:
        print(f"azersu-statement: configuration error: {exc}", file=sys.stderr)
        return 2
    return 2


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from service.serving import serve

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    serve(dataclasses.replace(settings, **overrides).validate())
    return 0


def _init_demo(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from service.billing.demo import DemoDatabaseNotEmpty, format_summary, generate_demo
    from service.settings import parse_period

    url = args.db or settings.resolved_billing_url
    end_period = parse_period(args.end_period, "--end-period") if args.end_period else None
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        summary = generate_demo(
            url,
            subscribers=args.subscribers,
            months=args.months,
            end_period=end_period,
            seed=args.seed,
            replace=args.replace,
            progress=sys.stderr,
        )
    except DemoDatabaseNotEmpty as exc:
        print(f"azersu-statement: {exc} (use --replace to rebuild it)", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"azersu-statement: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0


def _call(args: argparse.Namespace) -> int:
    import requests
    from zeep.exceptions import Fault, TransportError

    from service.client import call_statement, pretty_xml
    from service.statement_text import format_response

    try:
        result = call_statement(args.url, args.code, args.fin, args.lang, args.timeout)
    except Fault as fault:
        print(f"SOAP Fault {fault.code}: {fault.message}", file=sys.stderr)
        return 3
    except (requests.RequestException, TransportError) as exc:
        print(f"azersu-statement: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 4
    if args.xml:
        print(pretty_xml(result.raw_xml))
    else:
        print(format_response(result.response))
    return 0 if result.response.Status == "OK" else 1
