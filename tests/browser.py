"""Tools the page tests drive: headless Chromium, zbarimg, pdftoppm (Debian's packages).

Without one of them a test is skipped, except on CI (``CI=true``) where it fails.
Chromium runs with nothing that talks to the network on its own (no
background networking, component updates, sync or QUIC) and a fresh profile
per run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_tool


def chromium(target: str, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's headless Chromium on ``target`` (a URL) with a fresh profile."""
    binary = require_tool("chromium", "chromium")
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    result = subprocess.run(
        [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--hide-scrollbars",
            "--force-device-scale-factor=1", f"--user-data-dir={profile}", *mode,
            target,
        ],
        capture_output=True, text=True, encoding="utf-8", timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def read_qr(png: Path) -> str:
    """Return the text of the QR code in a picture, as zbarimg reads it ("" if none)."""
    zbarimg = require_tool("zbarimg", "zbar-tools")
    result = subprocess.run(
        [zbarimg, "--raw", "-q", str(png)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result.stdout.strip()
