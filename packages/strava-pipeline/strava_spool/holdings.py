"""What the destinations hold: the activity ids in PostgreSQL and in the CSV folders.

``strava-job`` checks its claims against the destinations themselves, not against the
bookkeeping of the pipelines that fed them: target-postgres reports no counts, and the
tally mapper sits before the target, so "new" is an activity whose key was absent from
PostgreSQL before the run (read under the job's lock), and the one-time state upgrade
copies a bookmark only where every destination holds what it covers.

Where PostgreSQL is comes from Meltano (``meltano config --unsafe print target-postgres``:
meltano.yml, the environment and ``.env``, resolved the way the loader gets them), never
from a second parser of those files.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import subprocess
import typing as t
from pathlib import Path
from urllib.parse import quote

POSTGRES_LOADER = "target-postgres"
ACTIVITIES = "activities"

Meltano = t.Callable[[list[str]], "subprocess.CompletedProcess[str]"]


class HoldingsError(Exception):
    """A destination could not be read: one line naming it and why."""


@dataclasses.dataclass(frozen=True)
class PostgresPlace:
    """The loader's database (a libpq URL, never logged) and its schema."""

    dsn: str
    schema: str


def postgres_place(meltano: Meltano) -> PostgresPlace:
    """Where target-postgres loads, as Meltano resolves its settings."""
    proc = meltano(["config", "--unsafe", "print", POSTGRES_LOADER])
    if proc.returncode != 0:
        msg = f"meltano config print {POSTGRES_LOADER} failed (exit {proc.returncode})"
        raise HoldingsError(msg)
    try:
        config = json.loads(proc.stdout)
    except ValueError:
        msg = f"meltano config print {POSTGRES_LOADER} printed no JSON"
        raise HoldingsError(msg) from None
    if not isinstance(config, dict):
        msg = f"meltano config print {POSTGRES_LOADER} printed no settings"
        raise HoldingsError(msg)
    url = str(config.get("sqlalchemy_url") or "")
    if not url:
        host = config.get("host")
        if not host:
            msg = f"{POSTGRES_LOADER} has neither sqlalchemy_url nor host"
            raise HoldingsError(msg)
        user = quote(str(config.get("user") or "postgres"))
        password = config.get("password")
        auth = f"{user}:{quote(str(password))}" if password else user
        port = config.get("port") or 5432
        database = quote(str(config.get("database") or "postgres"))
        url = f"postgresql://{auth}@{host}:{port}/{database}"
    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    return PostgresPlace(url, str(config.get("default_target_schema") or "strava"))


def postgres_activity_ids(place: PostgresPlace) -> set[int]:
    """Ids in ``<schema>.activities`` (empty when the table does not exist yet)."""
    return set(postgres_activities(place))


def postgres_activities(place: PostgresPlace) -> dict[int, datetime.datetime | None]:
    """Id to start time of every row of ``<schema>.activities`` (empty: no table yet)."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(place.dsn, connect_timeout=10) as connection:
            cursor = connection.cursor()
            cursor.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (place.schema, ACTIVITIES),
            )
            columns = {str(row[0]) for row in cursor.fetchall()}
            if "id" not in columns:
                return {}
            start = sql.Identifier("start_date") if "start_date" in columns else sql.NULL
            cursor.execute(
                sql.SQL("SELECT id, {} FROM {}.{}").format(
                    start, sql.Identifier(place.schema), sql.Identifier(ACTIVITIES)
                )
            )
            return {int(key): _moment(value) for key, value in cursor.fetchall() if key is not None}
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        msg = f"PostgreSQL could not be read ({first})"
        raise HoldingsError(msg) from None


def _moment(value: t.Any) -> datetime.datetime | None:
    """A start time as an aware UTC datetime (target-postgres may keep text or timestamps)."""
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    if isinstance(value, str) and value:
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)
    return None


def csv_activity_ids(output_root: Path) -> set[int]:
    """Ids in every ``activities*.csv`` of the CSV folders under ``output_root``."""
    ids: set[int] = set()
    if not output_root.is_dir():
        return ids
    for path in sorted(output_root.glob(f"*/{ACTIVITIES}*.csv")):
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    value = str(row.get("id") or "").strip()
                    if value.isdigit():
                        ids.add(int(value))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    return ids
