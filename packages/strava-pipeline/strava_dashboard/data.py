"""Reading the analytics models (PostgreSQL or DuckDB) into plain objects.

The report draws what the dbt models in ``transform/`` define, never a Python copy of
them: every activity of every source once per athlete, with its local date, ISO week,
month, sport group and the rule that gave its local time (``activities_enriched``), and
the kilometres per bike and pair of shoes (``gear_mileage``). The command builds the
models before reading them (:mod:`strava_dashboard.models`). What the models do not hold
is read from the raw tables the loaders wrote: the athlete's name and, one activity at a
time, the tracks (:mod:`strava_dashboard.tracks`).

One report is about one athlete (``athlete_id``, the key of every mart).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import typing as t
from pathlib import Path

#: The marts the report reads (transform/models/marts).
ACTIVITIES_MART = "activities_enriched"
GEAR_MART = "gear_mileage"
#: The models' sport groups (the ``sport_group`` macro) as the charts label them.
GROUP_LABELS = {"ride": "Ride", "run": "Run", "swim": "Swim", "walk": "Walk", "other": "Other"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ModelsMissing(Exception):
    """The marts are not in the analytics schema (one line naming the fix)."""


@dataclasses.dataclass(frozen=True)
class Activity:
    """One row of ``activities_enriched`` in the units the report shows."""

    id: int
    name: str
    sport_type: str
    #: The model's sport group, as the charts label it (Ride, Run, Swim, Walk, Other).
    group: str
    #: The local wall time of the start (the model's ``start_date_local``).
    start_local: datetime.datetime
    #: The model's local date, the Monday of its ISO week and the first of its month.
    day: datetime.date
    week: datetime.date
    month: datetime.date
    distance_km: float
    moving_s: int
    elevation_m: float
    #: Minutes per km over the moving time (the model's); None without a distance.
    pace_min_per_km: float | None
    gear_id: str | None
    trainer: bool
    #: ``api`` (the activities table only), ``archive`` (export_activities only) or ``both``.
    source: str = "api"
    #: Where the local time came from (``api``, ``fit_local_timestamp``,
    #: ``start_coordinates``, ``athlete_timezone`` or ``utc``: none known).
    local_time_rule: str = "api"

    @property
    def local_time(self) -> bool:
        """Whether ``start_local`` is a local wall time (``utc``: no zone was known)."""
        return self.local_time_rule != "utc"


@dataclasses.dataclass(frozen=True)
class Gear:
    """One row of ``gear_mileage``: a bike or pair of shoes and its loaded kilometres."""

    id: str
    name: str
    kind: str
    #: Kilometres in the loaded activities (the model's sum).
    km: float
    #: Strava's own total for the gear (older activities included), when the profile has it.
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
    return datetime.datetime.fromisoformat(str(value)).replace(tzinfo=None)


def _to_date(value: t.Any) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(str(value)[:10])


def json_value(value: t.Any) -> t.Any:
    """A JSON column's value: parsed already (PostgreSQL jsonb) or JSON text (DuckDB)."""
    if isinstance(value, str):
        return json.loads(value)
    return value


def _to_bool(value: t.Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t", "1")
    return bool(value)


class Database:
    """One open connection to the loaded tables of ``schema`` (PostgreSQL or DuckDB).

    Statements are written with ``?`` placeholders and table names from :meth:`table`;
    ``columns`` maps each table of the schema to its column names, so a reader can ask
    for what exists (a database loaded by an older version, an API-only or archive-only
    user) instead of failing on what does not.
    """

    def __init__(
        self, database_url: str, schema: str = "strava", analytics_schema: str = "analytics"
    ) -> None:
        for name in (schema, analytics_schema):
            if not _IDENTIFIER.match(name):
                msg = f"Not a plain schema name: {name!r}"
                raise ValueError(msg)
        self.schema = schema
        self.analytics_schema = analytics_schema
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
            self._catalog = f'"{catalog}".'
            where, params = "table_catalog = ? AND table_schema = ?", (str(catalog), schema)
        elif database_url.startswith(("postgresql", "postgres:")):
            import psycopg

            # SQLAlchemy's "postgresql+psycopg://" is what the loader's setting holds.
            url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", database_url)
            self.kind = "postgres"
            self._conn = psycopg.connect(url, autocommit=True)
            self._catalog = ""
            where, params = "table_schema = ?", (schema,)
        else:
            msg = f"Unsupported database URL (postgresql:// or duckdb:///): {database_url}"
            raise ValueError(msg)
        self.columns = self._columns(where, params)
        self.model_columns = self._columns(where, (*params[:-1], analytics_schema))

    def _columns(self, where: str, params: tuple[str, ...]) -> dict[str, set[str]]:
        """Each table of one schema with its column names."""
        columns: dict[str, set[str]] = {}
        for table, column in self.rows(
            f"SELECT table_name, column_name FROM information_schema.columns WHERE {where}",  # noqa: S608
            params,
        ):
            columns.setdefault(str(table), set()).add(str(column))
        return columns

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def table(self, name: str) -> str:
        """The quoted full name of a raw table (the loaders' schema)."""
        return self._name(self.schema, name)

    def model(self, name: str) -> str:
        """The quoted full name of a dbt model (the analytics schema)."""
        return self._name(self.analytics_schema, name)

    def _name(self, schema: str, name: str) -> str:
        if not _IDENTIFIER.match(name):
            msg = f"Not a plain table name: {name!r}"
            raise ValueError(msg)
        return f'{self._catalog}"{schema}"."{name}"'

    def has(self, table: str, *columns: str) -> bool:
        """Whether the table exists with all these columns."""
        return table in self.columns and set(columns) <= self.columns[table]

    def rows(self, statement: str, params: t.Sequence[t.Any] = ()) -> list[tuple[t.Any, ...]]:
        """All rows of one statement (``?`` placeholders)."""
        if self.kind == "postgres":
            statement = statement.replace("?", "%s")
        return [tuple(r) for r in self._conn.execute(statement, tuple(params)).fetchall()]

    def athlete_filter(self, table: str, athlete_id: int | None) -> tuple[str, tuple[t.Any, ...]]:
        """``WHERE athlete_id = ?`` when the table is partitioned and an athlete is given."""
        if athlete_id is None or "athlete_id" not in self.columns.get(table, set()):
            return "", ()
        return " WHERE athlete_id = ?", (athlete_id,)


def require_models(db: Database) -> None:
    """Fail in one line when the marts the report reads are not built."""
    missing = [m for m in (ACTIVITIES_MART, GEAR_MART) if m not in db.model_columns]
    if missing:
        msg = (
            f"no {', '.join(missing)} in schema {db.analytics_schema}: build the models "
            "(leave out --no-build, or run `meltano invoke dbt:build`) or set "
            "--analytics-schema"
        )
        raise ModelsMissing(msg)


def athletes(db: Database) -> list[int | None]:
    """The athletes the models hold activities of (None: loaded without an athlete id)."""
    require_models(db)
    found = db.rows(f"SELECT DISTINCT athlete_id FROM {db.model(ACTIVITIES_MART)}")  # noqa: S608
    ids = {int(a) for (a,) in found if a is not None}
    return [*sorted(ids), *([None] if any(a is None for (a,) in found) else [])]


def _athlete_name(db: Database, athlete_id: int | None) -> str:
    """The profile's first and last name (the raw ``athlete`` table; the marts have none)."""
    if athlete_id is None or not db.has("athlete", "firstname", "lastname"):
        return ""
    where, params = db.athlete_filter("athlete", athlete_id)
    rows = db.rows(f"SELECT firstname, lastname FROM {db.table('athlete')}{where}", params)  # noqa: S608
    return " ".join(str(p) for p in rows[0] if p).strip() if rows else ""


#: ``activities_enriched``'s columns read, in the order :func:`_activity` takes them.
ACTIVITY_COLUMNS = (
    "activity_id",
    "activity_name",
    "sport_type",
    "sport_group",
    "start_date_local",
    "local_date",
    "week_start",
    "month_start",
    "distance_km",
    "moving_time_s",
    "elevation_gain_m",
    "pace_min_per_km",
    "gear_id",
    "trainer",
    "source",
    "local_time_rule",
)


def _activity(row: t.Sequence[t.Any]) -> Activity:
    (ident, name, sport, group, start, day, week, month, km, moving, climb, pace, gear_id,
     trainer, source, rule) = row  # fmt: skip
    return Activity(
        id=int(ident),
        name=str(name or ""),
        sport_type=str(sport or "Unknown"),
        group=GROUP_LABELS.get(str(group), "Other"),
        start_local=_to_datetime(start),
        day=_to_date(day),
        week=_to_date(week),
        month=_to_date(month),
        distance_km=float(km or 0),
        moving_s=int(moving or 0),
        elevation_m=float(climb or 0),
        pace_min_per_km=float(pace) if pace is not None else None,
        gear_id=str(gear_id) if gear_id else None,
        trainer=_to_bool(trainer),
        source=str(source or "api"),
        local_time_rule=str(rule or "utc"),
    )


def load_athlete(db: Database, athlete_id: int | None) -> Dataset:
    """One athlete's activities (oldest first) and gear, as the marts hold them."""
    require_models(db)
    same = "athlete_id IS NOT DISTINCT FROM ?"
    columns = ", ".join(f'"{c}"' for c in ACTIVITY_COLUMNS)
    activities = [
        _activity(row)
        for row in db.rows(
            f"SELECT {columns} FROM {db.model(ACTIVITIES_MART)} WHERE {same}"  # noqa: S608
            " AND start_date_local IS NOT NULL ORDER BY start_date_local, activity_id",
            (athlete_id,),
        )
    ]
    gear_query = (
        "SELECT gear_id, gear_name, gear_kind, distance_km, strava_distance_km"  # noqa: S608
        f" FROM {db.model(GEAR_MART)} WHERE {same} AND gear_id IS NOT NULL"
    )
    gear = {
        str(ident): Gear(
            id=str(ident),
            name=str(name or ident),
            kind=str(kind or ""),
            km=float(km or 0),
            strava_km=float(strava) if strava is not None else None,
        )
        for ident, name, kind, km, strava in db.rows(gear_query, (athlete_id,))
    }
    return Dataset(
        activities=activities,
        gear=gear,
        athlete_id=athlete_id,
        athlete_name=_athlete_name(db, athlete_id),
    )
