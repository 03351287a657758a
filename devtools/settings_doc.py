"""`make settings-doc`: the README's settings table, generated from the tap itself.

The table in README.md between the ``<!-- settings-table ... -->`` marker and the next
heading is the "Settings" section of ``tap-strava --about --format=markdown``, verbatim.
A hand-kept table drifts as soon as someone adds a setting; ``tests/test_docs.py`` fails
then and points here.

    python -m devtools.settings_doc          # rewrite the README's table
    python -m devtools.settings_doc --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
README = PROJECT_ROOT / "README.md"
MARKER = "<!-- settings-table"


def about_markdown() -> str:
    """What `tap-strava --about --format=markdown` prints (run from this interpreter)."""
    return subprocess.run(
        [sys.executable, "-m", "tap_strava.tap", "--about", "--format=markdown"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


def generated_table(about: str | None = None) -> str:
    """The body of the ``## Settings`` section of the about text (no heading)."""
    lines = (about if about is not None else about_markdown()).splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "## Settings") + 1
    end = next(
        (i for i in range(start, len(lines)) if lines[i].startswith("#")),
        len(lines),
    )
    return "\n".join(lines[start:end]).strip() + "\n"


def split_readme(text: str) -> tuple[str, str, str]:
    """(up to and including the marker line, the generated part, from the next heading)."""
    lines = text.splitlines(keepends=True)
    marker = next(i for i, line in enumerate(lines) if line.startswith(MARKER))
    end = next(
        (i for i in range(marker + 1, len(lines)) if lines[i].startswith("#")),
        len(lines),
    )
    return "".join(lines[: marker + 1]), "".join(lines[marker + 1 : end]), "".join(lines[end:])


def current_table(text: str) -> str:
    """The README's table as it stands (surrounding blank lines ignored)."""
    return split_readme(text)[1].strip() + "\n"


def render(text: str, table: str) -> str:
    """README text with the generated table put in place."""
    head, _, tail = split_readme(text)
    return f"{head}\n{table.strip()}\n\n{tail}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite README.md's settings table, or with ``--check`` only compare."""
    parser = argparse.ArgumentParser(prog="python -m devtools.settings_doc")
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    table = generated_table()
    if args.check:
        if current_table(text) != table:
            print("README.md's settings table is out of date: run `make settings-doc`")
            return 1
        return 0
    updated = render(text, table)
    if updated != text:
        README.write_text(updated, encoding="utf-8")
        print("README.md: settings table regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
