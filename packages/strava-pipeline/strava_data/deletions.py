"""``strava-apply-deletions``: apply confirmed deletions (``activity_deletions``) to the tables.

The events mode emits a deletion only after the owner's token got 404 for the activity,
keyed by ``(id, athlete_id)``. This step flags (``_sdc_deleted_at``, as the weekly
reconcile's ACTIVATE_VERSION does) or with ``--hard`` deletes the matching rows of every
table of the schema that holds activities: ``activities``, ``activity_details`` and the
archive's ``export_activities`` by ``id``; laps, zones, time-series and the archive's
tracks by ``activity_id``. Always by the pair with ``athlete_id``, never by id alone: a
forged event naming athlete A and B's activity produced a deletion that matches no row.

It runs after every events run (the ``strava-events`` job) and is idempotent: a row a
later replay loaded again is flagged again.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing as t

from strava_data.postgres import (
    add_connection_options,
    resolve_connection,
    run_on_postgres,
    table_columns,
)

if t.TYPE_CHECKING:
    import psycopg

DELETIONS_TABLE = "activity_deletions"


@dataclasses.dataclass
class Applied:
    """Rows of one table matched by a deletion."""

    table: str
    rows: int


def apply_deletions(connection: psycopg.Connection, schema: str, *, hard: bool) -> list[Applied]:
    """Flag (or delete) every row a confirmed deletion names, in one transaction."""
    from psycopg import sql

    applied: list[Applied] = []
    with connection.transaction(), connection.cursor() as cursor:
        tables = table_columns(cursor, schema)
        if DELETIONS_TABLE not in tables:
            return applied  # no deletion was ever loaded
        deletions = sql.Identifier(schema, DELETIONS_TABLE)
        for table, columns in sorted(tables.items()):
            if table == DELETIONS_TABLE or "athlete_id" not in columns:
                continue
            key = (
                "id"
                if table in {"activities", "activity_details", "export_activities"}
                else ("activity_id" if "activity_id" in columns else None)
            )
            if key is None:
                continue
            target = sql.Identifier(schema, table)
            match = sql.SQL("t.{key} = d.id AND t.athlete_id = d.athlete_id").format(
                key=sql.Identifier(key)
            )
            if hard:
                statement = sql.SQL("DELETE FROM {target} t USING {deletions} d WHERE {match}")
            elif "_sdc_deleted_at" in columns:
                statement = sql.SQL(
                    "UPDATE {target} t SET _sdc_deleted_at = "
                    "COALESCE(d.deleted_at, d.confirmed_at) "
                    "FROM {deletions} d WHERE {match} AND t._sdc_deleted_at IS NULL"
                )
            else:
                msg = (
                    f"{schema}.{table} has no _sdc_deleted_at column (add_record_metadata is "
                    "off): run with --hard to delete the rows instead"
                )
                raise ValueError(msg)
            cursor.execute(statement.format(target=target, deletions=deletions, match=match))
            if cursor.rowcount:
                applied.append(Applied(f"{schema}.{table}", cursor.rowcount))
    return applied


def main(argv: list[str] | None = None) -> int:
    """Apply the deletions; one line and exit 1 for what the user can fix."""
    parser = argparse.ArgumentParser(
        prog="strava-apply-deletions",
        description="Flag (--hard: delete) rows of activities deleted on Strava, by "
        "(id, athlete_id), from the activity_deletions table the events mode loads.",
    )
    add_connection_options(parser)
    parser.add_argument("--hard", action="store_true", help="delete instead of flagging")
    args = parser.parse_args(argv)
    resolved = resolve_connection(parser.prog, args)
    if resolved is None:
        return 1
    dsn, schema = resolved
    applied = run_on_postgres(
        parser.prog,
        dsn,
        lambda connection: apply_deletions(connection, schema, hard=args.hard),
        errors=(ValueError,),
    )
    if applied is None:
        return 1
    verb = "deleted" if args.hard else "flagged"
    for item in applied:
        print(f"{verb} {item.rows} row(s) of {item.table}")
    print(f"deletions applied: {sum(item.rows for item in applied)} row(s) {verb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
