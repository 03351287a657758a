"""Reading the raw tables the loaders wrote (PostgreSQL or DuckDB) into plain objects.

The dashboard reads the raw tables, not the dbt models, so that it works right after a
load, without dbt installed. Its few sums use the same definitions as the models in
``transform/`` (local dates from ``start_date_local``, ISO weeks, indoor rides = trainer or
VirtualRide).

One report is about one athlete (``athlete_id``, the partition key of every table). Its
activities come from the API's ``activities`` and, for those the API does not have, from
the archive's ``export_activities``, so an archive-only user and the years before a
user's API history are in the report too. The archive has no local time: its rows use
the UTC start (``Activity.local_time`` says so). Deletions are left out as in
``activities_merged`` (the reconcile's ``_sdc_deleted_at``, ``activity_deletions``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import typing as t
from pathlib import Path

RIDE_TYPES = frozenset(
    {
        "Ride",
        "MountainBikeRide",
        "GravelRide",
        "EBikeRide",
        "EMountainBikeRide",
        "VirtualRide",
        "Velomobile",
        "Handcycle",
    }
)
RUN_TYPES = frozenset({"Run", "TrailRun", "VirtualRun"})
WALK_TYPES = frozenset({"Walk", "Hike"})

#: The columns read from ``activities`` (API) and, in the same order, ``export_activities``.
API_COLUMNS = (
    "id",
    "name",
    "sport_type",
    "start_date_local",
    "distance",
    "moving_time",
    "total_elevation_gain",
    "gear_id",
    "trainer",
)
ARCHIVE_COLUMNS = (
    "id",
    "name",
    "sport_type",
    "start_date",
    "distance",
    "moving_time",
    "total_elevation_gain",
    "gear_name",
    "activity_type",
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sport_group(sport_type: str) -> str:
    """Ride, Run, Swim, Walk or Other: the colours of the charts (Strava's list grows)."""
    if sport_type in RIDE_TYPES:
        return "Ride"
    if sport_type in RUN_TYPES:
        return "Run"
    if sport_type == "Swim":
        return "Swim"
    if sport_type in WALK_TYPES:
        return "Walk"
    return "Other"


@dataclasses.dataclass(frozen=True)
class Activity:
    """One activity in the units the report shows."""

    id: int
    name: str
    sport_type: str
    start_local: datetime.datetime
    distance_km: float
    moving_s: int
    elevation_m: float
    gear_id: str | None
    trainer: bool
    #: ``api`` (the activities table only), ``archive`` (export_activities only) or ``both``.
    source: str = "api"

    @property
    def group(self) -> str:
        """The sport group the charts colour by."""
        return sport_group(self.sport_type)

    @property
    def day(self) -> datetime.date:
        """The athlete's local date (Strava's local wall time; UTC for archive rows)."""
        return self.start_local.date()

    @property
    def local_time(self) -> bool:
        """Whether ``start_local`` is a local wall time (the archive has only UTC)."""
        return self.source != "archive"

    @property
    def pace_min_per_km(self) -> float | None:
        """Minutes per km over the moving time; None without a distance."""
        if self.distance_km <= 0 or self.moving_s <= 0:
            return None
        return self.moving_s / 60 / self.distance_km


@dataclasses.dataclass(frozen=True)
class Gear:
    """A bike or pair of shoes from the athlete profile (or the archive's bikes/shoes)."""

    id: str
    name: str
    kind: str
    strava_km: float | None


@dataclasses.dataclass
class Dataset:
    """Everything the report is drawn from: one athlete's activities and gear."""

    activities: list[Activity]
    gear: dict[str, Gear]
    athlete_id: int | None = None
    athlete_name: str = ""

    def count(self, source: str) -> int:
        """Activities the source has (``api`` or ``archive``; those in both count for each)."""
        return sum(1 for a in self.activities if a.source in (source, "both"))

    @property
    def sources(self) -> list[str]:
        """The sources holding any of the activities, ``api`` first."""
        return [s for s in ("api", "archive") if self.count(s)]


def _to_datetime(value: t.Any) -> datetime.datetime:
    """A timestamp as the database returns it (datetime or ISO text), without a zone."""
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None)
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)


def _to_bool(value: t.Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t", "1")
    return bool(value)


def _activity(row: t.Sequence[t.Any], source: str = "api") -> Activity:
    ident, name, sport, start, distance, moving, elevation, gear_id, trainer = row
    return Activity(
        id=int(ident),
        name=str(name or ""),
        sport_type=str(sport or "Unknown"),
        start_local=_to_datetime(start),
        distance_km=float(distance or 0) / 1000,
        moving_s=int(moving or 0),
        elevation_m=float(elevation or 0),
        gear_id=str(gear_id) if gear_id else None,
        trainer=_to_bool(trainer),
        source=source,
    )


def json_value(value: t.Any) -> t.Any:
    """A JSON column's value: parsed already (PostgreSQL jsonb) or JSON text (DuckDB)."""
    if isinstance(value, str):
        return json.loads(value)
    return value


def _gear_items(value: t.Any) -> list[dict[str, t.Any]]:
    """bikes/shoes as a list of dicts: jsonb[] (Postgres), JSON text (DuckDB) or None."""
    if value is None:
        return []
    value = json_value(value)
    items = value if isinstance(value, list) else [value]
    return [json_value(i) for i in items if i is not None]


def _gear(rows: t.Iterable[t.Sequence[t.Any]]) -> dict[str, Gear]:
    gear: dict[str, Gear] = {}
    for bikes, shoes in rows:
        for kind, items in (("bike", bikes), ("shoe", shoes)):
            for item in _gear_items(items):
                if not isinstance(item, dict) or not item.get("id"):
                    continue
                distance = item.get("distance")
                gear[str(item["id"])] = Gear(
                    id=str(item["id"]),
                    name=str(item.get("name") or item["id"]),
                    kind=kind,
                    strava_km=float(distance) / 1000 if distance is not None else None,
                )
    return gear


class Database:
    """One open connection to the loaded tables of ``schema`` (PostgreSQL or DuckDB).

    Statements are written with ``?`` placeholders and table names from :meth:`table`;
    ``columns`` maps each table of the schema to its column names, so a reader can ask
    for what exists (a database loaded by an older version, an API-only or archive-only
    user) instead of failing on what does not.
    """

    def __init__(self, database_url: str, schema: str = "strava") -> None:
        if not _IDENTIFIER.match(schema):
            msg = f"Not a plain schema name: {schema!r}"
            raise ValueError(msg)
        self.schema = schema
        self._conn: t.Any
        params: tuple[str, ...]
        if database_url.startswith("duckdb:"):
            import duckdb

            path = database_url.removeprefix("duckdb:").removeprefix("///")
            if not Path(path).exists():
                msg = f"No DuckDB file at {path}"
                raise FileNotFoundError(msg)
            self.kind = "duckdb"
            self._conn = duckdb.connect(path, read_only=True)
            # target-duckdb's strava.duckdb is the catalog "strava" holding the schema
            # "strava": only a three-part name is unambiguous.
            (catalog,) = self._conn.execute("SELECT current_database()").fetchone()
            if not _IDENTIFIER.match(str(catalog)):
                msg = f"Not a plain catalog name: {catalog!r}"
                raise ValueError(msg)
            self._prefix = f'"{catalog}"."{schema}"'
            where, params = "table_catalog = ? AND table_schema = ?", (str(catalog), schema)
        elif database_url.startswith(("postgresql", "postgres:")):
            import psycopg

            # SQLAlchemy's "postgresql+psycopg://" is what the loader's setting holds.
            url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", database_url)
            self.kind = "postgres"
            self._conn = psycopg.connect(url, autocommit=True)
            self._prefix = f'"{schema}"'
            where, params = "table_schema = ?", (schema,)
        else:
            msg = f"Unsupported database URL (postgresql:// or duckdb:///): {database_url}"
            raise ValueError(msg)
        self.columns: dict[str, set[str]] = {}
        for table, column in self.rows(
            f"SELECT table_name, column_name FROM information_schema.columns WHERE {where}",  # noqa: S608
            params,
        ):
            self.columns.setdefault(str(table), set()).add(str(column))

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def table(self, name: str) -> str:
        """The quoted full name of a table of the schema."""
        if not _IDENTIFIER.match(name):
            msg = f"Not a plain table name: {name!r}"
            raise ValueError(msg)
        return f'{self._prefix}."{name}"'

    def has(self, table: str, *columns: str) -> bool:
        """Whether the table exists with all these columns."""
        return table in self.columns and set(columns) <= self.columns[table]

    def rows(self, statement: str, params: t.Sequence[t.Any] = ()) -> list[tuple[t.Any, ...]]:
        """All rows of one statement (``?`` placeholders)."""
        if self.kind == "postgres":
            statement = statement.replace("?", "%s")
        return [tuple(r) for r in self._conn.execute(statement, tuple(params)).fetchall()]

    def select_list(self, table: str, wanted: t.Sequence[str]) -> str:
        """``"a", "b", NULL, ...``: the wanted columns the table has, NULL for the others."""
        have = self.columns.get(table, set())
        return ", ".join(f'"{c}"' if c in have else "NULL" for c in wanted)

    def athlete_filter(self, table: str, athlete_id: int | None) -> tuple[str, tuple[t.Any, ...]]:
        """``WHERE athlete_id = ?`` when the table is partitioned and an athlete is given."""
        if athlete_id is None or "athlete_id" not in self.columns.get(table, set()):
            return "", ()
        return " WHERE athlete_id = ?", (athlete_id,)


def athletes(db: Database) -> list[int | None]:
    """The athletes with activities from either source; ``[None]`` without a partition key."""
    found: set[int] = set()
    partitioned = False
    for table in ("activities", "export_activities"):
        if db.has(table, "athlete_id"):
            partitioned = True
            found.update(
                int(a)
                for (a,) in db.rows(f"SELECT DISTINCT athlete_id FROM {db.table(table)}")  # noqa: S608
                if a is not None
            )
    if not partitioned:
        return [None]
    return [*sorted(found)]


def _deleted_ids(db: Database, athlete_id: int | None) -> set[int]:
    if not db.has("activity_deletions", "id"):
        return set()
    where, params = db.athlete_filter("activity_deletions", athlete_id)
    statement = f"SELECT id FROM {db.table('activity_deletions')}{where}"  # noqa: S608
    return {int(i) for (i,) in db.rows(statement, params)}


def _api_rows(db: Database, athlete_id: int | None) -> list[tuple[t.Any, ...]]:
    if "activities" not in db.columns:
        return []
    where, params = db.athlete_filter("activities", athlete_id)
    if "_sdc_deleted_at" in db.columns["activities"]:
        where += (" AND" if where else " WHERE") + " _sdc_deleted_at IS NULL"
    columns = db.select_list("activities", API_COLUMNS)
    return db.rows(f"SELECT {columns} FROM {db.table('activities')}{where}", params)  # noqa: S608


def _archive_rows(db: Database, athlete_id: int | None) -> list[tuple[t.Any, ...]]:
    if "export_activities" not in db.columns:
        return []
    where, params = db.athlete_filter("export_activities", athlete_id)
    columns = db.select_list("export_activities", ARCHIVE_COLUMNS)
    return db.rows(f"SELECT {columns} FROM {db.table('export_activities')}{where}", params)  # noqa: S608


def _archive_gear(db: Database, athlete_id: int | None) -> dict[str, Gear]:
    if not db.has("export_gear", "id", "name", "kind"):
        return {}
    where, params = db.athlete_filter("export_gear", athlete_id)
    return {
        str(i): Gear(id=str(i), name=str(n or i), kind=str(k or ""), strava_km=None)
        for i, n, k in db.rows(
            f"SELECT id, name, kind FROM {db.table('export_gear')}{where}",  # noqa: S608
            params,
        )
    }


def _athlete(db: Database, athlete_id: int | None) -> tuple[dict[str, Gear], str]:
    if "athlete" not in db.columns:
        return {}, ""
    where, params = db.athlete_filter("athlete", athlete_id)
    names = db.select_list("athlete", ("bikes", "shoes", "firstname", "lastname"))
    rows = db.rows(f"SELECT {names} FROM {db.table('athlete')}{where}", params)  # noqa: S608
    gear = _gear((bikes, shoes) for bikes, shoes, _, _ in rows)
    name = ""
    if rows and athlete_id is not None:
        name = " ".join(str(p) for p in rows[0][2:] if p).strip()
    return gear, name


def load_athlete(db: Database, athlete_id: int | None) -> Dataset:
    """One athlete's activities (API first, the archive for the rest) and gear."""
    deleted = _deleted_ids(db, athlete_id)
    gear, name = _athlete(db, athlete_id)
    archive_gear = _archive_gear(db, athlete_id)
    # An archive activity's gear is known by name: the profile's gear of that name, else
    # the archive's own bikes.csv/shoes.csv entry.
    by_name = {g.name: g.id for g in archive_gear.values()}
    by_name.update({g.name: g.id for g in gear.values()})
    activities: dict[int, Activity] = {}
    for row in _api_rows(db, athlete_id):
        activity = _activity(row, "api")
        if activity.id not in deleted:
            activities[activity.id] = activity
    for ident, name_, sport, start, distance, moving, climb, gear_name, kind in _archive_rows(
        db, athlete_id
    ):
        if ident is None or int(ident) in deleted:
            continue
        if int(ident) in activities:
            activities[int(ident)] = dataclasses.replace(activities[int(ident)], source="both")
            continue
        gear_id = by_name.get(str(gear_name)) if gear_name else None
        row = (ident, name_, sport or kind, start, distance, moving, climb, gear_id, False)
        activities[int(ident)] = _activity(row, "archive")
    used = {a.gear_id for a in activities.values() if a.gear_id}
    gear.update({k: g for k, g in archive_gear.items() if k in used and k not in gear})
    ordered = sorted(activities.values(), key=lambda a: (a.start_local, a.id))
    return Dataset(activities=ordered, gear=gear, athlete_id=athlete_id, athlete_name=name)


def load(database_url: str, schema: str = "strava") -> Dataset:
    """Every activity of a one-athlete database (the report before it was per athlete)."""
    with Database(database_url, schema) as db:
        found = athletes(db)
        return load_athlete(db, found[0] if len(found) == 1 else None)
