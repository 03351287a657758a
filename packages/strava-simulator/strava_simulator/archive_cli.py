"""``strava-sim export-archive``: write a simulated athlete's bulk export archive.

A separate subcommand so that plain ``strava-sim [options]`` keeps serving the API exactly
as before. Bad values (a track length the API cannot serve at one point per second, an
unknown language, an unwritable path) give one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from strava_simulator.archive import LANGUAGES, MAX_TRACK_SECONDS, write_archive
from strava_simulator.simulator import StravaSimulator

COMMAND = "export-archive"


def build_parser() -> argparse.ArgumentParser:
    """Options of ``strava-sim export-archive``."""
    parser = argparse.ArgumentParser(
        prog=f"strava-sim {COMMAND}",
        description="Write the bulk export archive (export_<athleteId>.zip) of a simulated "
        "athlete, consistent with the simulator's API for the same seed.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="zip file to write, or an existing folder to write export_<athleteId>.zip into "
        "(with --folder: the folder to fill)",
    )
    parser.add_argument("--activities", type=int, default=300, help="history size (300)")
    parser.add_argument("--seed", type=int, default=1, help="data generator seed (1)")
    parser.add_argument("--language", choices=LANGUAGES, default="en", help="header language")
    parser.add_argument("--no-quirks", action="store_true", help="no damaged or odd files")
    parser.add_argument("--folder", action="store_true", help="an unpacked folder, not a zip")
    parser.add_argument(
        "--track-seconds",
        type=int,
        default=None,
        help=f"make every recorded activity a one-second track this long (1..{MAX_TRACK_SECONDS})",
    )
    parser.add_argument(
        "--manifest", type=Path, default=None, help="also write the manifest JSON here"
    )
    return parser


def main(argv: list[str]) -> int:
    """Write the archive; print its path (stdout) and a summary (stderr)."""
    args = build_parser().parse_args(argv)
    try:
        if args.activities < 0:
            msg = f"--activities must be 0 or more, got {args.activities}"
            raise ValueError(msg)
        sim = StravaSimulator(seed=args.seed, activity_count=args.activities)
        manifest = write_archive(
            sim,
            args.out,
            quirks=not args.no_quirks,
            language=args.language,
            zipped=not args.folder,
            track_seconds=args.track_seconds,
        )
        if args.manifest is not None:
            args.manifest.write_text(manifest.to_json(), encoding="utf-8")
    except ValueError as exc:
        print(f"strava-sim {COMMAND}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = exc.filename or args.out
        reason = exc.strerror or exc
        print(
            f"strava-sim {COMMAND}: error: cannot write {where}: {reason} (choose another --out)",
            file=sys.stderr,
        )
        return 2
    files = sum(1 for e in manifest.entries.values() if e.filename)
    print(
        f"strava-sim {COMMAND}: {len(manifest.entries)} activities, {files} with a file, "
        f"athlete {manifest.athlete_id}, {manifest.seconds:.1f} s",
        file=sys.stderr,
    )
    print(manifest.path)
    return 0
