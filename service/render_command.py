"""``azersu-statement render FILE --format html|pdf -o OUT``: the arayış people see and print.

The command verifies the statement first (its signature, the signer's trust
and name, as ``verify`` does).  A statement that does not verify -- unsigned,
tampered, or signed under another CA -- is still rendered, but under the
large "NOT VERIFIED / TƏSDİQLƏNMƏYİB" banner and without digest or QR code,
and the command exits 1.  A file that is not a Statement, or that the hardened
parser refuses (a DOCTYPE, comments, malformed XML), is not rendered at all
(exit 1); an unreadable input or unwritable output is exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.rendering import BANNER, LANGUAGES
from service.settings import Settings
from service.signing.trust import DEFAULT_SERVICE_SIGNER

FORMATS = ("html", "pdf")


def add_render_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``render`` command to the ``azersu-statement`` sub-commands."""
    render: argparse.ArgumentParser = subparsers.add_parser(
        "render",
        help="render a saved statement as a printable HTML page or PDF (verifies it first)",
    )
    render.add_argument("file", help="a Statement saved as XML")
    render.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    render.add_argument(
        "--format", choices=FORMATS, help="html or pdf (default: from OUT's suffix, else html)"
    )
    render.add_argument("--lang", choices=LANGUAGES, default="az", help="labels (default az)")
    render.add_argument("--trust", help="CA bundle (default AZERSU_TRUST_CA or var/pki/ca.pem)")
    render.add_argument(
        "--signer",
        action="append",
        help=f"name in the service's certificate (default {DEFAULT_SERVICE_SIGNER}; repeatable)",
    )
    return render


def output_format(args: argparse.Namespace) -> str:
    """Return the format asked for, or the one OUT's suffix names (html by default)."""
    if args.format:
        return str(args.format)
    return "pdf" if Path(args.output).suffix.lower() == ".pdf" else "html"


def run_render(settings: Settings, args: argparse.Namespace) -> int:
    """Verify and render ``args.file``; return the exit status (0, 1 not verified, 2 I/O)."""
    from service.errors import AzersuError
    from service.rendering import Verification, render_html, render_pdf
    from service.signing.hardened_xml import parse_request
    from service.signing.statement_signature import (
        STATEMENT_TAG,
        StatementVerifier,
        verify_saved_statement,
    )
    from service.signing.trust import TrustStore

    # Any certificate of the CA may have signed the statement: its name is checked.
    trust = TrustStore.from_pem_file(
        args.trust or settings.trust_ca or "var/pki/ca.pem",
        setting="--trust",
        accept_any_signer_of_ca=True,
    )
    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"azersu-statement: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        statement = parse_request(raw)
    except AzersuError as failure:
        print(f"{BANNER}: {failure}; nothing rendered", file=sys.stderr)
        return 1
    if statement.tag != STATEMENT_TAG:
        print(f"{BANNER}: {statement.tag} is not a Statement; nothing rendered", file=sys.stderr)
        return 1
    try:
        signers = frozenset(args.signer or [DEFAULT_SERVICE_SIGNER])
        verified = verify_saved_statement(raw, StatementVerifier(trust, signers))
        # The page shows the very element that verified.
        statement = verified.statement
        verification = Verification.of(verified, settings.resolved_verify_url)
    except AzersuError as failure:
        verification = Verification.failed(str(failure))

    fmt = output_format(args)
    if fmt == "pdf":
        data = render_pdf(statement, verification, args.lang)
    else:
        data = render_html(statement, verification, args.lang).encode("utf-8")
    try:
        Path(args.output).write_bytes(data)
    except OSError as exc:
        print(f"azersu-statement: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 2
    if not verification.verified:
        print(
            f"{BANNER}: {verification.note}; rendered under the banner to {args.output}",
            file=sys.stderr,
        )
        return 1
    print(f"VERIFIED: signed by {verification.signer_subject}")
    print(f"SHA-256 of the signature value: {verification.signature_value_sha256}")
    print(f"Verification link (QR code): {verification.qr_payload}")
    print(f"Wrote {args.output} ({fmt}, {args.lang})")
    return 0
