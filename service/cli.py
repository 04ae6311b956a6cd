"""The ``azersu-statement`` command (also ``python -m service``).

Commands:

* ``serve [--host H] [--port P]`` -- serve the SOAP service with gunicorn;
* ``init-demo [--db URL] [--subscribers N] [--months M]`` -- build the demo
  billing database;
* ``call --url URL --code CODE --fin FIN [--lang az|en|ru] [--xml]`` -- call the
  service as the portal would (a signed request), verify the signed answer
  strictly and print the statement; with ``--dump-request FILE``, only write
  the signed request, for another client to post;
* ``pki init --out var/pki`` -- create a development CA, service and portal keys;
* ``pki fingerprint CERT`` -- print the SHA-256 fingerprint that registers a
  caller in ``AZERSU_TRUSTED_CLIENTS`` (refused for a certificate unfit to sign);
* ``verify FILE [--trust CA.pem] [--digest D]`` -- check a saved statement offline
  (and, with ``--digest``, a printed copy against it);
* ``check-request FILE [--trust CA.pem] [--client-certs PEM] [--trusted-clients FP,...]``
  -- check a captured SOAP request with the service's own WS-Security check
  (the verifier, and the rule that X-Road headers be signed), offline (no
  replay check), and print why the service would refuse it;
* ``render FILE --format html|pdf -o OUT [--lang az|en|ru]`` -- the printable
  statement (arayış), verified first; see :mod:`service.render_command`;
* ``revoke NUMBER --reason TEXT`` -- revoke an issued statement (audited): the
  verification page then answers REVOKED;
* ``registry show NUMBER`` and ``registry purge`` -- the registry of issued
  statements: one row, and the deletion of rows older than
  ``AZERSU_REGISTRY_RETENTION_DAYS``.

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
from service.signing.trust import DEFAULT_SERVICE_SIGNER


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="azersu-statement",
        description="Azərsu e-service: the last 12 months of invoices and payments.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the SOAP service with gunicorn")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", help="the TLS certificate's key (PEM)")
    serve.add_argument("--tls-client-ca", help="require client certificates from this CA")

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
    call.add_argument("--key", default="var/pki/portal.key", help="the caller's signing key")
    call.add_argument("--cert", default="var/pki/portal.pem", help="the caller's certificate")
    call.add_argument(
        "--trust", default="var/pki/ca.pem", help="CA bundle the service's signatures chain to"
    )
    call.add_argument("--save-statement", metavar="FILE", help="save the signed Statement")
    call.add_argument(
        "--dump-request",
        metavar="FILE",
        help="write the signed request to FILE ('-': standard output) and do NOT send it: "
        "for posting with another client such as curl (examples/shell/). It can be posted "
        "once (a second post is a replay) and only while its Timestamp is fresh (5 minutes); "
        "the HTTP headers to send with it go to standard error",
    )
    call.add_argument(
        "--signer",
        action="append",
        help=f"name in the service's certificate (default {DEFAULT_SERVICE_SIGNER}; repeatable)",
    )
    call.add_argument(
        "--xroad-client", metavar="INSTANCE/CLASS/CODE[/SUBSYSTEM]", help="send X-Road headers"
    )
    call.add_argument(
        "--xroad-service",
        metavar="INSTANCE/CLASS/CODE/SUBSYSTEM",
        help="the X-Road service (with --xroad-client)",
    )
    call.add_argument("--xroad-user-id", help="X-Road userId, e.g. AZ5ZT3K9M (default: AZ+FIN)")

    pki = commands.add_parser("pki", help="development keys and certificates")
    pki_commands = pki.add_subparsers(dest="pki_command", required=True)
    pki_init = pki_commands.add_parser("init", help="create a development CA, service and portal")
    pki_init.add_argument("--out", default="var/pki", help="folder (default var/pki)")
    pki_init.add_argument("--force", action="store_true", help="replace existing files")
    pki_fingerprint = pki_commands.add_parser(
        "fingerprint", help="print a caller certificate's SHA-256, for AZERSU_TRUSTED_CLIENTS"
    )
    pki_fingerprint.add_argument("cert", help="the caller's certificate (PEM)")

    audit = commands.add_parser("audit", help="list access audit records, newest first")
    audit.add_argument("--fin", help="only requests by this citizen FIN")
    audit.add_argument("--code", help="only requests for this subscriber code")
    audit.add_argument("--since", help="only records from this date (YYYY-MM-DD) or time on")
    audit.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")

    verify = commands.add_parser("verify", help="check a saved statement's signature offline")
    verify.add_argument("file", help="a Statement saved as XML")
    verify.add_argument("--trust", help="CA bundle (default AZERSU_TRUST_CA or var/pki/ca.pem)")
    verify.add_argument(
        "--signer",
        action="append",
        help=f"name in the service's certificate (default {DEFAULT_SERVICE_SIGNER}; repeatable)",
    )
    verify.add_argument(
        "--digest",
        metavar="D",
        help="check a printed copy: the SHA-256 printed on it (or its QR code's text)",
    )

    check = commands.add_parser(
        "check-request",
        help="would the service accept this captured request? (offline, no replay check)",
        description="Check a captured SOAP request (the envelope, as sent) with the service's "
        "WS-Security verifier and its rule that X-Road headers be signed: print "
        "'would be accepted' (exit 0) or the fault code, reason "
        "and detail the service's log would give (exit 1).  Offline, so the replay check is "
        "not made; the Timestamp is checked against the current time.",
    )
    check.add_argument("file", help="the request's SOAP envelope, as sent")
    check.add_argument("--trust", help="CA bundle (default AZERSU_TRUST_CA or var/pki/ca.pem)")
    check.add_argument(
        "--client-certs",
        metavar="PEM",
        help="registered caller certificates: a PEM bundle or a folder of *.pem "
        "(default AZERSU_CLIENT_CERTS)",
    )
    check.add_argument(
        "--trusted-clients",
        metavar="FP,...",
        help="registered callers' SHA-256 fingerprints (default AZERSU_TRUSTED_CLIENTS)",
    )

    from service.render_command import add_render_parser

    add_render_parser(commands)

    revoke = commands.add_parser(
        "revoke", help="revoke an issued statement: the verification page then says REVOKED"
    )
    revoke.add_argument("number", help="the statement number, e.g. AZS-20261207-ABC3BD2D844E")
    revoke.add_argument(
        "--reason", required=True, help="why (shown on the verification page; 500 characters)"
    )

    registry = commands.add_parser("registry", help="the registry of issued statements")
    registry_commands = registry.add_subparsers(dest="registry_command", required=True)
    registry_show = registry_commands.add_parser("show", help="print one statement's row")
    registry_show.add_argument("number", help="the statement number")
    registry_commands.add_parser(
        "purge", help="delete the rows older than AZERSU_REGISTRY_RETENTION_DAYS (default 1825)"
    )
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
        if args.command == "pki":
            return _pki(args)
        if args.command == "verify":
            return _verify(settings, args)
        if args.command == "audit":
            return _audit(settings, args)
        if args.command == "check-request":
            return _check_request(settings, args)
        if args.command == "render":
            from service.render_command import run_render

            return run_render(settings, args)
        if args.command == "revoke":
            return _revoke(settings, args)
        if args.command == "registry":
            return _registry(settings, args)
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
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        if getattr(args, name):
            overrides[name] = getattr(args, name)
    serve(dataclasses.replace(settings, **overrides).validate())
    return 0


def _init_demo(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from service.app import billing_tables
    from service.demo_data import DemoDatabaseNotEmpty, format_summary, generate_demo
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
            tables=billing_tables(settings),
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
    from lxml import etree
    from zeep.exceptions import Fault, TransportError

    from service.client import StatementClient, XRoadEchoMismatch, pretty_xml
    from service.errors import ServiceFault
    from service.signing.keys import load_signing_identity
    from service.signing.trust import TrustStore
    from service.statement_text import format_response

    xroad_blocks = []
    if args.xroad_client or args.xroad_service:
        import uuid

        from service.xroad import build_request_headers

        if not (args.xroad_client and args.xroad_service):
            print(
                "azersu-statement: --xroad-client and --xroad-service go together", file=sys.stderr
            )
            return 2
        user_id = args.xroad_user_id or (f"AZ{args.fin.strip().upper()}" if args.fin else None)
        try:
            xroad_blocks = build_request_headers(
                args.xroad_client, args.xroad_service, str(uuid.uuid4()), user_id
            )
        except ValueError as exc:
            print(f"azersu-statement: {exc}", file=sys.stderr)
            return 2
    identity = load_signing_identity(
        args.key, args.cert, None, key_setting="--key", cert_setting="--cert"
    )
    # Any certificate of the CA may have signed the answer: the client checks its name.
    trust = TrustStore.from_pem_file(args.trust, setting="--trust", accept_any_signer_of_ca=True)
    try:
        client = StatementClient(
            args.url,
            identity,
            trust,
            timeout_s=args.timeout,
            service_signers=frozenset(args.signer or [DEFAULT_SERVICE_SIGNER]),
        )
        if args.dump_request:
            return _dump_request(client, args, xroad_blocks)
        result = client.call(args.code, args.fin, args.lang, xroad_blocks)
    except (ServiceFault, XRoadEchoMismatch) as failure:  # the answer did not verify
        code = getattr(failure, "faultcode", "XRoadEchoMismatch")
        print(f"azersu-statement: the answer is NOT trusted: {code}: {failure}", file=sys.stderr)
        return 5
    except Fault as fault:
        print(f"SOAP Fault {fault.code}: {fault.message}", file=sys.stderr)
        return 3
    except (requests.RequestException, TransportError) as exc:
        print(f"azersu-statement: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 4
    if args.save_statement and result.statement is not None:
        with open(args.save_statement, "wb") as handle:
            handle.write(etree.tostring(result.statement.statement, encoding="UTF-8"))
    if args.xml:
        print(pretty_xml(result.raw_xml))
    else:
        print(format_response(result.response))
        if result.statement is not None:
            print(f"\nSigned by: {result.statement.signer.subject}")
    return 0 if result.response.Status == "OK" else 1


def _dump_request(client: Any, args: argparse.Namespace, xroad_blocks: list[Any]) -> int:
    """Write the signed request ``call`` would send, without sending it.

    Not sent, because the copy is for another client to post: the service
    takes a signed request once (a second post is refused as a replay) and
    only while its Timestamp is fresh.
    """
    request = client.signed_request(args.code, args.fin, args.lang, xroad_blocks)
    if args.dump_request == "-":
        sys.stdout.buffer.write(request.body)
        sys.stdout.buffer.flush()
    else:
        try:
            with open(args.dump_request, "wb") as handle:
                handle.write(request.body)
        except OSError as exc:
            print(f"azersu-statement: cannot write {args.dump_request}: {exc}", file=sys.stderr)
            return 2
    headers = " ".join(f"-H '{name}: {value}'" for name, value in request.headers.items())
    print(
        f"signed request written, not sent; post it once, within 5 minutes, with {headers}",
        file=sys.stderr,
    )
    return 0


def _pki(args: argparse.Namespace) -> int:
    from pathlib import Path

    from service.pki import init_pki

    if args.pki_command == "fingerprint":
        return _pki_fingerprint(args.cert)
    try:
        files = init_pki(Path(args.out), force=args.force)
    except FileExistsError as exc:
        print(f"azersu-statement: {exc}", file=sys.stderr)
        return 1
    for name, path in files.items():
        print(f"{name:12} {path}")
    return 0


def _pki_fingerprint(path: str) -> int:
    from pathlib import Path

    from cryptography import x509

    from service.errors import FailedAuthentication
    from service.signing.keys import fingerprint
    from service.signing.trust import check_fit_to_sign

    try:
        certificates = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        print(
            f"azersu-statement: cannot read a PEM certificate from {path}: {exc}", file=sys.stderr
        )
        return 2
    if len(certificates) != 1:
        print(
            f"azersu-statement: {path} holds {len(certificates)} certificates, not one",
            file=sys.stderr,
        )
        return 2
    try:
        check_fit_to_sign(certificates[0])
    except FailedAuthentication as refused:
        print(
            f"azersu-statement: not fit to sign ({refused.reason}): {refused.detail}",
            file=sys.stderr,
        )
        return 1
    print(fingerprint(certificates[0]))
    return 0


def _verify(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from service.errors import AzersuError
    from service.signing.statement_signature import StatementVerifier, verify_saved_statement
    from service.signing.trust import TrustStore
    from service.statement_text import format_statement, statement_view

    trust_path = args.trust or settings.trust_ca or "var/pki/ca.pem"
    # Any certificate of the CA may have signed the statement: its name is checked.
    trust = TrustStore.from_pem_file(trust_path, setting="--trust", accept_any_signer_of_ca=True)
    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"azersu-statement: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        signers = frozenset(args.signer or [DEFAULT_SERVICE_SIGNER])
        verified = verify_saved_statement(raw, StatementVerifier(trust, signers))
    except AzersuError as failure:
        print(f"NOT VERIFIED / TƏSDİQLƏNMƏYİB: {failure}", file=sys.stderr)
        return 1
    if args.digest is not None:
        from service.rendering import check_printed_digest

        if not check_printed_digest(verified, args.digest):
            print(
                "NOT VERIFIED / TƏSDİQLƏNMƏYİB: the printed digest is not this file's",
                file=sys.stderr,
            )
            return 1
    print(f"VERIFIED: signed by {verified.signer.subject}")
    print(f"SHA-256 of the signature value: {verified.signature_value_sha256}")
    if args.digest is not None:
        print("The printed copy's digest matches this file.")
    print()
    print(format_statement(statement_view(verified.statement)))
    return 0


def _check_request(settings: Settings, args: argparse.Namespace) -> int:
    """Judge a captured request as the gateway does, without a replay cache.

    The gateway's own check runs: the WS-Security verifier, then the rule that
    every X-Road header block be signed (:func:`service.soap_gateway.verify_signed_request`).
    """
    from pathlib import Path

    from service.errors import SecurityFault, ServiceFault
    from service.signing.hardened_xml import parse_request
    from service.signing.material import (
        check_client_certificates,
        load_client_certificates,
        read_client_certs,
    )
    from service.signing.trust import TrustStore
    from service.signing.wsse import WsseVerifier
    from service.soap_gateway import verify_signed_request

    trust_path = args.trust or settings.trust_ca or "var/pki/ca.pem"
    fingerprints = args.trusted_clients
    if fingerprints is None:
        fingerprints = settings.trusted_clients
    callers = load_client_certificates(
        read_client_certs(settings.client_certs if args.client_certs is None else args.client_certs)
    )
    try:
        bundle = Path(trust_path).read_bytes()
    except OSError as exc:
        raise ConfigurationError("--trust", f"cannot read {trust_path}: {exc.strerror}") from exc
    registered = tuple(part for part in fingerprints.replace(",", " ").split() if part)
    # The trust the service builds (TrustMaterial.build), without its signing key; with no
    # caller registered it still answers, naming the refusal the service would give.
    trust = TrustStore.from_pem_bytes(
        bundle,
        registered,
        "--trust",
        trust_path,
        accept_any_signer_of_ca=settings.accept_any_caller_of_ca,
        caller_certificates=callers,
    )
    check_client_certificates(trust)
    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"azersu-statement: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    verifier = WsseVerifier(
        trust,
        None,
        clock_skew_s=settings.wsse_clock_skew_s,
        max_age_s=settings.wsse_max_age_s,
    )
    try:
        verified = verify_signed_request(verifier, parse_request(raw))
    except ServiceFault as fault:
        # As the service logs it: the fault code, the typed reason and the detail.
        reason = fault.reason if isinstance(fault, SecurityFault) else "-"
        print(f"would be refused: {fault.faultcode} ({reason}): {fault.detail or fault}")
        print("(checked offline: the replay check is not made)")
        return 1
    print(f"would be accepted: signed by {verified.signer.subject}")
    print(f"SHA-256 fingerprint of the signer: {verified.signer.fingerprint}")
    print("(checked offline: the replay check is not made)")
    return 0


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    import datetime as dt

    from service.audit import AuditStore, format_entries
    from service.errors import FinInvalid
    from service.identifiers import normalize_fin

    since = None
    if args.since:
        try:
            since = dt.datetime.fromisoformat(args.since)
        except ValueError:
            print(f"azersu-statement: --since: not a date: {args.since!r}", file=sys.stderr)
            return 2
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
    fin = args.fin
    if fin:
        try:
            fin = normalize_fin(fin)
        except FinInvalid:
            fin = fin.strip()  # list what was recorded as typed
    store = AuditStore.from_url(settings.resolved_audit_url, settings.db_timeout_s)
    try:
        entries = store.search(fin=fin, code=args.code, since=since, limit=args.limit)
    finally:
        store.close()
    if entries:
        print(format_entries(entries))
    print(f"{len(entries)} record(s)", file=sys.stderr)
    return 0


def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    """Revoke a statement and audit it, in one transaction."""
    import datetime as dt
    import getpass
    import uuid

    from service.audit import AuditEntry, AuditStore
    from service.registry import REASON_MAX_CHARS

    number = args.number.strip().upper()
    reason = " ".join(args.reason.split())
    if not reason or len(reason) > REASON_MAX_CHARS:
        print(
            f"azersu-statement: --reason must be 1 to {REASON_MAX_CHARS} characters",
            file=sys.stderr,
        )
        return 2
    store = AuditStore.from_url(settings.resolved_audit_url, settings.db_timeout_s)
    try:
        row = store.registry.find(number)
        if row is None:
            print(f"azersu-statement: no statement {number} in the registry", file=sys.stderr)
            return 1
        if row.revoked_at is not None:
            print(
                f"azersu-statement: {number} was already revoked at "
                f"{row.revoked_at:%Y-%m-%d %H:%M:%S %Z}: {row.revocation_reason}",
                file=sys.stderr,
            )
            return 1
        entry = AuditEntry(
            request_id=str(uuid.uuid4()),
            recorded_at=dt.datetime.now(dt.UTC),
            outcome="REVOKED",
            client_subject=f"operator {getpass.getuser()} (azersu-statement revoke)",
            subscriber_code=row.subscriber_code,
            statement_number=number,
        )
        if not store.revoke(number, reason, entry):  # revoked by someone else meanwhile
            print(f"azersu-statement: {number} was revoked meanwhile", file=sys.stderr)
            return 1
    finally:
        store.close()
    print(f"Revoked {number} at {entry.recorded_at:%Y-%m-%d %H:%M:%S} UTC: {reason}")
    print(f"Audit record {entry.request_id}")
    return 0


def _registry(settings: Settings, args: argparse.Namespace) -> int:
    """``registry show NUMBER`` and ``registry purge``."""
    import datetime as dt

    from service.audit import AuditStore
    from service.registry import format_row

    store = AuditStore.from_url(settings.resolved_audit_url, settings.db_timeout_s)
    try:
        if args.registry_command == "show":
            number = args.number.strip().upper()
            row = store.registry.find(number)
            if row is None:
                print(f"azersu-statement: no statement {number} in the registry", file=sys.stderr)
                return 1
            print(format_row(row))
            return 0
        days = settings.registry_retention_days
        before = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        deleted = store.registry.purge(before)
    finally:
        store.close()
    print(
        f"Deleted {deleted} statement(s) issued before {before:%Y-%m-%d %H:%M:%S} UTC "
        f"(AZERSU_REGISTRY_RETENTION_DAYS={days})"
    )
    return 0
