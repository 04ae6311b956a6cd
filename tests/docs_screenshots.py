"""Make the documentation's screenshots from the demo database, as ``make run`` serves it.

Run from the repository root::

    .venv/bin/python -m tests.docs_screenshots

It builds the demo billing database with ``init-demo``'s defaults and a
development PKI in a temporary folder, starts the real ``serve`` on them,
asks for the README's example statement (subscriber 100000000, FIN X9SCKS7)
as the portal would, and takes two screenshots with headless Chromium:

* ``docs/statement-az.png``: the printed statement (``render --format html``),
  its QR code leading to ``make run``'s verification page
  (``http://127.0.0.1:8080/verify?n=…&d=…``);
* ``docs/verify-valid-az.png``: that page on a phone, answering VALID.

Both carry a PNG text chunk naming their source and the statement number, so
that a test can tell they were made together, from the demo data.  They show
nothing secret: the demo's invented subscriber, and on the page a masked code
and the totals only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lxml import etree
from PIL import Image, PngImagePlugin

ROOT = Path(__file__).resolve().parent.parent
STATEMENT_PNG = ROOT / "docs" / "statement-az.png"
VERIFY_PNG = ROOT / "docs" / "verify-valid-az.png"
#: The README's example (tests/test_docs.py checks it is a residential demo subscriber).
CODE, FIN = "100000000", "X9SCKS7"
#: Where ``make run`` serves the verification page.
MAKE_RUN_VERIFY_URL = "http://127.0.0.1:8080/verify"
#: A4 at 96 dpi, and a phone's viewport, in CSS pixels.
A4 = (794, 1123)
PHONE = (390, 1010)
SOURCE = "init-demo defaults (seed 2021), subscriber 100000000, make run's addresses"


def _run(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "service", *args],
        capture_output=True, text=True, encoding="utf-8", env=env, timeout=900, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"azersu-statement {args[0]} failed:\n{result.stderr}")
    return result.stdout


def _chromium(url: str, png: Path, size: tuple[int, int], profile: Path) -> None:
    subprocess.run(
        [
            "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--hide-scrollbars",
            "--force-device-scale-factor=1", f"--user-data-dir={profile}",
            f"--screenshot={png}", "--window-size={},{}".format(*size), url,
        ],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip


def _save(raw: Path, target: Path, number: str) -> None:
    """Save a screenshot as a small palette PNG with its source in a text chunk."""
    image = Image.open(raw).convert("RGB").quantize(colors=128, dither=Image.Dither.NONE)
    info = PngImagePlugin.PngInfo()
    info.add_text("Source", SOURCE)
    info.add_text("Statement", number)
    image.save(target, optimize=True, pnginfo=info)


def main() -> int:
    """Build the demo, serve it, and write the two screenshots."""
    from service.client import StatementClient
    from service.signing.keys import fingerprint, load_signing_identity
    from service.signing.trust import TrustStore
    from tests.gunicorn_process import ServedProcess

    with tempfile.TemporaryDirectory(prefix="azersu-docs-") as folder:
        work = Path(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZERSU_")}
        env["PYTHONIOENCODING"] = "utf-8"
        database = work / "billing-demo.sqlite"
        print("building the demo database (init-demo, its defaults) ...", file=sys.stderr)
        _run("init-demo", "--db", f"sqlite:///{database}", env=env)
        _run("pki", "init", "--out", str(work / "pki"), env=env)
        pki = work / "pki"
        portal = load_signing_identity(str(pki / "portal.key"), str(pki / "portal.pem"), None)
        served = {
            **env,
            "AZERSU_SIGN_KEY": str(pki / "service.key"),
            "AZERSU_SIGN_CERT": str(pki / "service.pem"),
            "AZERSU_TRUST_CA": str(pki / "ca.pem"),
            "AZERSU_TRUSTED_CLIENTS": fingerprint(portal.certificate),
            "AZERSU_BILLING_URL": f"sqlite:///{database}",
            "AZERSU_VAR_DIR": str(work / "var"),
        }
        server = ServedProcess(served, work / "serve.log")
        try:
            trust = TrustStore.from_pem_file(str(pki / "ca.pem"), accept_any_signer_of_ca=True)
            result = StatementClient(server.url, portal, trust).call(CODE, FIN, "az")
            if result.statement is None:
                raise SystemExit(f"no statement for {CODE}: {result.response.Status}")
            number = result.statement.statement_number
            digest = result.statement.signature_value_sha256
            saved = work / "statement.xml"
            saved.write_bytes(etree.tostring(result.statement.statement, encoding="UTF-8"))
            page = work / "statement.html"
            _run(
                "render", str(saved), "--format", "html", "-o", str(page),
                "--trust", str(pki / "ca.pem"),
                env={**env, "AZERSU_VERIFY_URL": MAKE_RUN_VERIFY_URL},
            )  # fmt: skip
            raw = work / "statement.png"
            _chromium(page.as_uri(), raw, A4, work / "profile-1")
            _save(raw, STATEMENT_PNG, number)
            raw = work / "verify.png"
            _chromium(f"{server.base_url}/verify?n={number}&d={digest}", raw, PHONE, work / "p2")
            _save(raw, VERIFY_PNG, number)
        finally:
            server.stop()
    for png in (STATEMENT_PNG, VERIFY_PNG):
        print(f"wrote {png.relative_to(ROOT)} ({png.stat().st_size // 1024} KiB), {number}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
