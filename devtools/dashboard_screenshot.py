"""docs/dashboard.png: the picture of the training dashboard in docs/destinations.md.

Renders the report from a database (the demo's: `make dashboard` leaves it in .demo/),
takes a headless-Chromium screenshot and stores it as a 256-colour PNG, small enough
for the repository (the charts are flat colours, so nothing visible is lost).

    .venv/bin/python -m devtools.dashboard_screenshot [--page .demo/report.html]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image

from devtools import browser
from devtools.postgres import PROJECT_ROOT

OUT = PROJECT_ROOT / "docs" / "dashboard.png"


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--page", type=Path, default=PROJECT_ROOT / ".demo" / "report.html")
    cli.add_argument("--out", type=Path, default=OUT)
    cli.add_argument("--width", type=int, default=1280)
    cli.add_argument("--height", type=int, default=1720)
    args = cli.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shot = browser.screenshot(args.page, Path(tmp) / "shot.png", args.width, args.height)
        image = Image.open(shot).convert("RGB")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"{args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
