"""Finding and removing one athlete's rows: PostgreSQL tables and the per-run CSV files.

Every stream of tap-strava carries ``athlete_id`` (the partition key), so an athlete's
data is exactly the rows with that id: in every table of the target schema that has the
column, and in every CSV file of the output folder whose header has it. Nothing here
guesses by name or date.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
import tempfile
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    import psycopg

# One CSV field may hold a whole description or polyline.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclasses.dataclass
class Found:
    """Where an athlete's rows are: ``place`` (table or file) and how many."""

    place: str
    rows: int


def postgres_rows(
    connection: psycopg.Connection, schema: str, athlete_id: int, *, apply: bool
) -> list[Found]:
    """Count (or, with ``apply``, delete) the athlete's rows in every table of ``schema``.

    One transaction: either every table loses the athlete's rows or none does.
    """
    from psycopg import sql

    found: list[Found] = []
    with connection.transaction(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.table_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = %s AND c.column_name = 'athlete_id' "
            "AND t.table_type = 'BASE TABLE' ORDER BY c.table_name",
            (schema,),
        )
        tables = [str(row[0]) for row in cursor.fetchall()]
        for table in tables:
            name = sql.Identifier(schema, table)
            if apply:
                cursor.execute(
                    sql.SQL("DELETE FROM {} WHERE athlete_id = %s").format(name), (athlete_id,)
                )
                count = cursor.rowcount
            else:
                cursor.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE athlete_id = %s").format(name),
                    (athlete_id,),
                )
                row = cursor.fetchone()
                count = int(row[0]) if row else 0
            if count:
                found.append(Found(f"{schema}.{table}", count))
    return found


def csv_rows(folder: Path, athlete_id: int, *, apply: bool) -> list[Found]:
    """Count (or, with ``apply``, remove) the athlete's rows in every CSV file under ``folder``.

    A file is rewritten to a temporary file beside it and renamed over the original, so a
    crash leaves either the old or the new file, never half of one; a file left with no
    row but its header is removed.
    """
    found: list[Found] = []
    wanted = str(athlete_id)
    for path in sorted(folder.rglob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header or "athlete_id" not in header:
                continue
            column = header.index("athlete_id")
            rows = list(reader)
        kept = [row for row in rows if len(row) <= column or row[column] != wanted]
        removed = len(rows) - len(kept)
        if not removed:
            continue
        found.append(Found(str(path), removed))
        if not apply:
            continue
        if not kept:
            path.unlink()
            continue
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            writer.writerows(kept)
        Path(temporary).replace(path)
    return found
