"""Headless Chromium (Debian's ``chromium``) for the dashboard's test and screenshot.

Offline and throw-away on purpose: a fresh profile folder per call, no background
networking, component updates, sync or first-run work, so a run here needs no network
and leaves nothing behind. ``--no-sandbox`` because CI runs as root.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    # No name resolves: a page that would fetch anything by URL shows it broken.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    # Lets the page's load events (image decoding) finish before the dump/screenshot.
    "--virtual-time-budget=5000",
)


def chromium() -> str:
    """The browser's executable, or a one-line hint how to install it."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    msg = "No chromium on PATH: `apt-get install -y chromium` (make test-extras does)"
    raise FileNotFoundError(msg)


def _run(page: Path, width: int, height: int, *action: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [
                chromium(),
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                *action,
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 2400) -> Path:
    """A PNG of the page's first ``width`` x ``height`` CSS pixels."""
    _run(page, width, height, f"--screenshot={out.resolve()}")
    if not out.exists():
        msg = f"chromium wrote no screenshot of {page}"
        raise RuntimeError(msg)
    return out


def dump_dom(page: Path, width: int = 1400, height: int = 2400) -> str:
    """The DOM after the page's scripts ran (``--dump-dom``)."""
    return _run(page, width, height, "--dump-dom").stdout
