"""Finding and removing one athlete's rows: database tables and the output files.

Every stream of tap-strava carries ``athlete_id`` (the partition key) and the events
mode's receipts and the receiver's queue ``owner_id``, so an athlete's data is exactly the
rows with that id in one of those owner columns: in every table of the schemas the project
writes that has one, and in every CSV, JSONL and XML file of the output folder. Nothing
here guesses by name or date.

A file is rewritten to a temporary file beside it and renamed over the original, so a
crash leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
import sys
import tempfile
import typing as t
import xml.etree.ElementTree as ET
from pathlib import Path

if t.TYPE_CHECKING:
    import psycopg

#: The columns that name whose a row is.
OWNER_COLUMNS = ("athlete_id", "owner_id")
XSI = "http://www.w3.org/2001/XMLSchema-instance"

# One CSV field may hold a whole description or polyline.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclasses.dataclass
class Found:
    """Where an athlete's rows are: ``place`` (table or file) and how many."""

    place: str
    rows: int


def postgres_rows(
    connection: psycopg.Connection, schemas: t.Sequence[str], athlete_id: int, *, apply: bool
) -> list[Found]:
    """Count (or, with ``apply``, delete) the athlete's rows in every table of ``schemas``.

    A catalog scan finds every base table with an owner column; one transaction: either
    every table loses the athlete's rows or none does.
    """
    from psycopg import sql

    found: list[Found] = []
    with connection.transaction(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.table_schema, c.table_name, c.column_name "
            "FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = ANY(%s) AND c.column_name = ANY(%s) "
            "AND t.table_type = 'BASE TABLE' ORDER BY 1, 2, 3",
            (list(schemas), list(OWNER_COLUMNS)),
        )
        owners: dict[tuple[str, str], list[str]] = {}
        for schema, table, column in cursor.fetchall():
            owners.setdefault((str(schema), str(table)), []).append(str(column))
        for (schema, table), columns in owners.items():
            where = sql.SQL(" OR ").join(
                sql.SQL("{} = %s").format(sql.Identifier(column)) for column in columns
            )
            name = sql.Identifier(schema, table)
            values = [athlete_id] * len(columns)
            if apply:
                cursor.execute(sql.SQL("DELETE FROM {} WHERE {}").format(name, where), values)
                count = cursor.rowcount
            else:
                cursor.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE {}").format(name, where), values
                )
                row = cursor.fetchone()
                count = int(row[0]) if row else 0
            if count:
                found.append(Found(f"{schema}.{table}", count))
    return found


def activity_markers(
    connection: psycopg.Connection, schemas: t.Sequence[str], athlete_id: int
) -> set[str]:
    """Ids and titles of the athlete's activities: what log lines name them by."""
    from psycopg import sql

    markers: set[str] = set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.columns "
            "WHERE table_schema = ANY(%s) AND column_name IN ('id', 'name', 'athlete_id') "
            "GROUP BY 1, 2 HAVING count(*) = 3",
            (list(schemas),),
        )
        for schema, table in cursor.fetchall():
            cursor.execute(
                sql.SQL("SELECT id::text, name FROM {} WHERE athlete_id = %s").format(
                    sql.Identifier(schema, table)
                ),
                (athlete_id,),
            )
            for identifier, name in cursor.fetchall():
                markers.update(str(value) for value in (identifier, name) if value)
    return markers


def existing_schemas(connection: psycopg.Connection, wanted: t.Iterable[str]) -> list[str]:
    """Those of ``wanted`` that exist in the database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) ORDER BY 1", (list(wanted),)
        )
        return [str(row[0]) for row in cursor.fetchall()]


def replace_file(path: Path, write: t.Callable[[t.TextIO], object]) -> None:
    """Write a new version of ``path`` beside it, then rename it over the original."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as out:
            write(out)
        Path(temporary).chmod(path.stat().st_mode & 0o777)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_lines(lines: list[str], out: t.TextIO) -> None:
    """Write ``lines`` as they are (for :func:`replace_file`)."""
    out.writelines(lines)


def keep_lines(path: Path, lines: list[str], kept: list[str], *, apply: bool) -> Found | None:
    """What dropping ``lines`` not in ``kept`` removes from ``path`` (written if ``apply``).

    None when every line is kept: the file is left untouched.
    """
    if len(kept) == len(lines):
        return None
    if apply:
        replace_file(path, functools.partial(write_lines, kept))
    return Found(str(path), len(lines) - len(kept))


def _write_tree(tree: ET.ElementTree[ET.Element], out: t.TextIO) -> None:
    tree.write(out, encoding="unicode", xml_declaration=True)


def csv_rows(folder: Path, athlete_id: int, *, apply: bool) -> list[Found]:
    """Count (or remove) the athlete's rows in every CSV file under ``folder``.

    A file left with no row but its header is removed.
    """
    found: list[Found] = []
    wanted = str(athlete_id)
    for path in sorted(folder.rglob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            columns = [i for i, name in enumerate(header or []) if name in OWNER_COLUMNS]
            if not header or not columns:
                continue
            rows = list(reader)
        kept = [row for row in rows if not any(i < len(row) and row[i] == wanted for i in columns)]
        if len(kept) == len(rows):
            continue
        found.append(Found(str(path), len(rows) - len(kept)))
        if not apply:
            continue
        if not kept:
            path.unlink()
            continue

        def write(out: t.TextIO, header: list[str] = header, kept: list[list[str]] = kept) -> None:
            writer = csv.writer(out)
            writer.writerow(header)
            writer.writerows(kept)

        replace_file(path, write)
    return found


def owned(record: t.Any, athlete_id: int) -> bool:
    """Whether a record (or an event) is the athlete's, by an owner column."""
    return isinstance(record, dict) and any(record.get(c) == athlete_id for c in OWNER_COLUMNS)


def jsonl_rows(folder: Path, athlete_id: int, *, apply: bool) -> list[Found]:
    """Count (or remove) the athlete's records in every JSONL file under ``folder``."""
    found: list[Found] = []
    for path in sorted(folder.rglob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                kept.append(line)  # not a record of ours: left as it is
                continue
            if not owned(record, athlete_id):
                kept.append(line)
        if removed := keep_lines(path, lines, kept, apply=apply):
            found.append(removed)
    return found


def xml_rows(folder: Path, athlete_id: int, *, apply: bool) -> list[Found]:
    """Count (or remove) the athlete's ``<record>`` elements in every XML file under ``folder``.

    target-xml writes one ``<record>`` per record with one child per field, so a record
    is the athlete's when its ``athlete_id`` (or ``owner_id``) child holds the id.
    """
    ET.register_namespace("xsi", XSI)
    found: list[Found] = []
    wanted = str(athlete_id)
    for path in sorted(folder.rglob("*.xml")):
        try:
            tree = ET.parse(path)  # noqa: S314 - written by the project's own loader
        except ET.ParseError:
            continue  # an unfinished file of a failed run: no record of it was committed
        root = tree.getroot()
        owned = [
            record
            for record in list(root)
            if any((record.findtext(column) or "").strip() == wanted for column in OWNER_COLUMNS)
        ]
        if not owned:
            continue
        found.append(Found(str(path), len(owned)))
        if apply:
            for record in owned:
                root.remove(record)
            replace_file(path, functools.partial(_write_tree, tree))
    return found


def duckdb_rows(path: Path, athlete_id: int, *, apply: bool) -> list[Found]:
    """Count (or delete) the athlete's rows in every table of a DuckDB file."""
    try:
        import duckdb
    except ImportError as exc:
        msg = (
            f"{path} exists but the duckdb module is not installed here: "
            "`make setup-extras` (or pip install duckdb), then run again"
        )
        raise OSError(msg) from exc
    found: list[Found] = []
    with duckdb.connect(str(path)) as connection:
        tables = connection.execute(
            "SELECT table_catalog, table_schema, table_name, column_name "
            "FROM information_schema.columns WHERE column_name IN ('athlete_id', 'owner_id')"
        ).fetchall()
        for catalog, schema, table, column in tables:
            name = f'"{catalog}"."{schema}"."{table}"'
            count = connection.execute(
                f'SELECT count(*) FROM {name} WHERE "{column}" = ?',  # noqa: S608 - catalog names
                [athlete_id],
            ).fetchone()
            rows = int(count[0]) if count else 0
            if rows and apply:
                connection.execute(
                    f'DELETE FROM {name} WHERE "{column}" = ?',  # noqa: S608 - catalog names
                    [athlete_id],
                )
            if rows:
                found.append(Found(f"{path}:{schema}.{table}", rows))
    return found
