"""``strava-forget-athlete``: list, then remove, everything the pipeline holds of one athlete.

Strava's API agreement asks that a revoking athlete's data be deleted (docs/events.md,
"Revocations"). The events mode removes the athlete's tokens when it confirms a
revocation; this command does the rest: the athlete's rows in every PostgreSQL table of
the target schema, their rows in the CSV output, and their token store entries. Without
``--apply`` it only lists what it would remove.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from strava_data.postgres import postgres_dsn, run_on_postgres, target_schema
from strava_data.rows import Found, csv_rows, postgres_rows
from tap_strava.token_store import default_token_store_path, forget_athlete


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strava-forget-athlete",
        description="List (or with --apply remove) one athlete's rows in PostgreSQL and the "
        "CSV output, and their token store entries.",
    )
    parser.add_argument("--athlete", type=int, required=True, help="the Strava athlete id")
    parser.add_argument("--apply", action="store_true", help="remove; without it, only list")
    parser.add_argument(
        "--dsn",
        help="PostgreSQL connection (default: from TARGET_POSTGRES_*; none: skip PostgreSQL)",
    )
    parser.add_argument(
        "--schema",
        help="the target schema (default: $TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA or strava)",
    )
    parser.add_argument(
        "--csv-dir", type=Path, default=Path("output"), help="the CSV output folder (output)"
    )
    parser.add_argument(
        "--token-store-path",
        type=Path,
        help="the token store (default: $TAP_STRAVA_TOKEN_STORE_PATH, else the tap's default)",
    )
    return parser


def _report(found: list[Found], verb: str) -> None:
    for item in found:
        print(f"{verb} {item.rows} row(s) in {item.place}")


def main(argv: list[str] | None = None) -> int:
    """Run the command; one line and exit 1 for what the user can fix."""
    args = _parser().parse_args(argv)
    verb = "removed" if args.apply else "would remove"
    total = 0
    dsn = args.dsn or postgres_dsn()
    if dsn:
        schema = target_schema(args.schema)
        found = run_on_postgres(
            "strava-forget-athlete",
            dsn,
            lambda connection: postgres_rows(connection, schema, args.athlete, apply=args.apply),
        )
        if found is None:
            return 1
        _report(found, verb)
        total += sum(item.rows for item in found)
    else:
        print("PostgreSQL: not configured (TARGET_POSTGRES_* or --dsn); skipped")
    if args.csv_dir.is_dir():
        found = csv_rows(args.csv_dir, args.athlete, apply=args.apply)
        _report(found, verb)
        total += sum(item.rows for item in found)
    configured = os.environ.get("TAP_STRAVA_TOKEN_STORE_PATH")
    store = args.token_store_path or (Path(configured) if configured else None)
    store = store or default_token_store_path()
    if args.apply and store.exists():
        entries = forget_athlete(store, args.athlete)
        print(f"removed {entries} token store entr{'y' if entries == 1 else 'ies'} from {store}")
    print(
        f"athlete {args.athlete}: {total} row(s) {verb.replace('would remove', 'to remove')}"
        + ("" if args.apply else "; run again with --apply to remove them")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
