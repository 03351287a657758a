"""``strava-merged-view``: one view of every activity, from the API and the export archive.

``activities_merged`` has one row per ``(id, athlete_id)`` that either source has, with a
stated precedence:

- **the API wins** where it has the field (``activities``, then ``activity_details`` for
  what only a detail answer has: description, calories); an API row is never blanked by
  an archive that lacks a value, and a rename on Strava shows through;
- **the archive fills** what the API lacks: whole activities the API never listed (the
  history the quota has not reached), and fields left null;
- **a deletion stays deleted**: a row the reconcile flagged (``_sdc_deleted_at``) or that
  a confirmed push event deleted (``activity_deletions``) is left out, even if an older
  archive still has it.

``source`` says where a row came from (``api``, ``archive`` or ``both``); ``has_track``
whether a time-series exists (the API's ``activity_streams`` or the archive's
``export_tracks``). The view is built from the tables that exist, so it is re-created by
the jobs that may add one (``strava-archive``, ``strava-events``); running it again is
harmless.

The dbt model ``activities_all`` (``transform/models/intermediate/``) is the same merge
with the columns the marts need, for users with dbt; it reads the raw tables, never this
view (dropped and re-created here without CASCADE). Change the precedence in both:
``tests/test_models_all_sources.py`` fails when they disagree on a shared row.
"""

from __future__ import annotations

import argparse
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
    from psycopg import sql as sql_module

VIEW = "activities_merged"
# Columns of the view: (name, SQL type both sources are cast to).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "text"),
    ("sport_type", "text"),
    ("start_date", "timestamp"),
    ("distance", "double precision"),
    ("moving_time", "bigint"),
    ("elapsed_time", "bigint"),
    ("total_elevation_gain", "double precision"),
    ("average_speed", "double precision"),
    ("max_speed", "double precision"),
    ("average_heartrate", "double precision"),
    ("max_heartrate", "double precision"),
    ("average_watts", "double precision"),
    ("commute", "boolean"),
)
# What only a detail answer has, filled from activity_details before the archive.
DETAIL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("description", "text"),
    ("calories", "double precision"),
)


def _value(
    sql: t.Any, alias: str, columns: set[str] | None, name: str, kind: str
) -> sql_module.Composable:
    """``alias.name::kind``, or a typed NULL when that source lacks the column."""
    if columns is None or name not in columns:
        return sql.SQL("NULL::{}").format(sql.SQL(kind))
    return sql.SQL("{}.{}::{}").format(sql.Identifier(alias), sql.Identifier(name), sql.SQL(kind))


def view_statement(schema: str, tables: dict[str, set[str]]) -> sql_module.Composed | None:
    """The ``CREATE OR REPLACE VIEW`` for the tables that exist (None: no source yet)."""
    from psycopg import sql

    api, details = tables.get("activities"), tables.get("activity_details")
    archive = tables.get("export_activities")
    if api is None and archive is None:
        return None
    ident = {name: sql.Identifier(schema, name) for name in tables}
    # Every (id, athlete_id) of either source, once.
    keys = [
        sql.SQL("SELECT id, athlete_id FROM {}").format(ident[name])
        for name in ("activities", "export_activities")
        if name in tables
    ]
    joins: list[sql.Composable] = [sql.SQL("FROM ({}) k").format(sql.SQL(" UNION ").join(keys))]
    for alias, name in (("a", "activities"), ("d", "activity_details"), ("e", "export_activities")):
        if name in tables:
            joins.append(
                sql.SQL("LEFT JOIN {} {} ON {}.id = k.id AND {}.athlete_id = k.athlete_id").format(
                    ident[name],
                    sql.Identifier(alias),
                    sql.Identifier(alias),
                    sql.Identifier(alias),
                )
            )
    fields: list[sql.Composable] = [sql.SQL("k.id"), sql.SQL("k.athlete_id")]
    for name, kind in COLUMNS:
        fields.append(
            sql.SQL("COALESCE({}, {}) AS {}").format(
                _value(sql, "a", api, name, kind),
                _value(sql, "e", archive, name, kind),
                sql.Identifier(name),
            )
        )
    for name, kind in DETAIL_COLUMNS:
        fields.append(
            sql.SQL("COALESCE({}, {}) AS {}").format(
                _value(sql, "d", details, name, kind),
                _value(sql, "e", archive, name, kind),
                sql.Identifier(name),
            )
        )
    in_api = sql.SQL("a.id IS NOT NULL") if api is not None else sql.SQL("false")
    in_archive = sql.SQL("e.id IS NOT NULL") if archive is not None else sql.SQL("false")
    fields.append(
        sql.SQL(
            "CASE WHEN {api} AND {arc} THEN 'both' WHEN {api} THEN 'api' ELSE 'archive' END "
            "AS source"
        ).format(api=in_api, arc=in_archive)
    )
    tracks = [
        sql.SQL(
            "EXISTS (SELECT 1 FROM {} s WHERE s.activity_id = k.id AND s.athlete_id = k.athlete_id)"
        ).format(ident[name])
        for name in ("activity_streams", "export_tracks")
        if name in tables and {"activity_id", "athlete_id"} <= tables[name]
    ]
    fields.append(
        sql.SQL("({}) AS has_track").format(
            sql.SQL(" OR ").join(tracks) if tracks else sql.SQL("false")
        )
    )
    conditions: list[sql.Composable] = []
    if api is not None and "_sdc_deleted_at" in api:
        conditions.append(sql.SQL("a._sdc_deleted_at IS NULL"))
    if "activity_deletions" in tables:
        conditions.append(
            sql.SQL(
                "NOT EXISTS (SELECT 1 FROM {} x WHERE x.id = k.id AND x.athlete_id = k.athlete_id)"
            ).format(ident["activity_deletions"])
        )
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    return sql.SQL("CREATE OR REPLACE VIEW {view} AS SELECT {fields} {joins}{where}").format(
        view=sql.Identifier(schema, VIEW),
        fields=sql.SQL(", ").join(fields),
        joins=sql.SQL(" ").join(joins),
        where=where,
    )


def create_view(connection: psycopg.Connection, schema: str) -> bool:
    """(Re)create the view in one transaction; False if neither source table exists yet."""
    with connection.transaction(), connection.cursor() as cursor:
        statement = view_statement(schema, table_columns(cursor, schema))
        if statement is None:
            return False
        # CREATE OR REPLACE cannot change a view's columns: replace it whole.
        cursor.execute(sql_drop(schema))
        cursor.execute(statement)
    return True


def sql_drop(schema: str) -> sql_module.Composed:
    """``DROP VIEW IF EXISTS`` of the merged view."""
    from psycopg import sql

    return sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(schema, VIEW))


def main(argv: list[str] | None = None) -> int:
    """Create the view; one line and exit 1 for what the user can fix."""
    parser = argparse.ArgumentParser(
        prog="strava-merged-view",
        description="(Re)create <schema>.activities_merged: the API's activities, the "
        "export archive's where the API lacks them, deletions left out.",
    )
    add_connection_options(parser)
    args = parser.parse_args(argv)
    resolved = resolve_connection(parser.prog, args)
    if resolved is None:
        return 1
    dsn, schema = resolved
    created = run_on_postgres(
        parser.prog,
        dsn,
        lambda connection: create_view(connection, schema),
    )
    if created is None:
        return 1
    if created:
        print(f"{schema}.{VIEW} created")
    else:
        print(f"{schema}.{VIEW}: no activities or export_activities table yet; nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
