"""``strava-check-archive``: the archive job's first step, so that it never loads nothing.

``tap-strava-archive`` reads ``export_archive_path: $STRAVA_EXPORT_ARCHIVE``. When that
variable is unset or misspelt, Meltano hands the tap an empty setting, the tap runs as the
API tap with only archive streams selected, and the job exits 0 having loaded nothing.
This step stops the job first with one line naming the variable, where it was looked for,
and the fix; likewise for a path that names no file or folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from strava_data.project import Project

PROG = "strava-check-archive"
VARIABLES = ("TAP_STRAVA_ARCHIVE_EXPORT_ARCHIVE_PATH", "STRAVA_EXPORT_ARCHIVE")


def check(project: Project) -> str | None:
    """None when the archive is there, else the one line that says what to fix."""
    where = "the environment" + (f" or {project.root / '.env'}" if project.root else "")
    name, raw = next(
        ((name, project.settings[name]) for name in VARIABLES if project.settings.get(name)),
        (VARIABLES[-1], ""),
    )
    if not raw.strip():
        return (
            f"STRAVA_EXPORT_ARCHIVE is not set in {where}: set it to the export zip (or its "
            "folder), e.g. STRAVA_EXPORT_ARCHIVE=/data/export_12345.zip meltano run strava-archive"
        )
    path = Path(raw.strip()).expanduser()
    if not path.is_absolute() and project.root is not None:
        path = project.root / path
    if not path.exists():
        return f"{name} names {path}, which does not exist: fix the path (the zip or its folder)"
    return None


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when the archive is there; else one line and exit 2."""
    del argv
    problem = check(Project.here())
    if problem is None:
        return 0
    print(f"{PROG}: error: {problem}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
