"""Reading the raw tables the loaders wrote (PostgreSQL or DuckDB) into plain objects.

The dashboard reads the raw ``activities`` and ``athlete`` tables, not the dbt models,
so that it works right after a load, without dbt installed. Its few sums use the same
definitions as the models in ``transform/`` (local dates from ``start_date_local``,
ISO weeks, indoor rides = trainer or VirtualRide).
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

ACTIVITY_COLUMNS = (
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

    @property
    def group(self) -> str:
        """The sport group the charts colour by."""
        return sport_group(self.sport_type)

    @property
    def day(self) -> datetime.date:
        """The athlete's local date (Strava's local wall time, not UTC)."""
        return self.start_local.date()

    @property
    def pace_min_per_km(self) -> float | None:
        """Minutes per km over the moving time; None without a distance."""
        if self.distance_km <= 0 or self.moving_s <= 0:
            return None
        return self.moving_s / 60 / self.distance_km


@dataclasses.dataclass(frozen=True)
class Gear:
    """A bike or pair of shoes from the athlete profile."""

    id: str
    name: str
    kind: str
    strava_km: float | None


@dataclasses.dataclass
class Dataset:
    """Everything the report is drawn from."""

    activities: list[Activity]
    gear: dict[str, Gear]


def _to_datetime(value: t.Any) -> datetime.datetime:
    """A timestamp as the database returns it (datetime or ISO text), without a zone."""
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None)
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)


def _to_bool(value: t.Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t", "1")
    return bool(value)


def _activity(row: tuple[t.Any, ...]) -> Activity:
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
    )


def _gear_items(value: t.Any) -> list[dict[str, t.Any]]:
    """bikes/shoes as a list of dicts: jsonb[] (Postgres), JSON text (DuckDB) or None."""
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value)
    items = value if isinstance(value, list) else [value]
    return [json.loads(i) if isinstance(i, str) else i for i in items if i is not None]


def _gear(rows: t.Iterable[tuple[t.Any, t.Any]]) -> dict[str, Gear]:
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


def _queries(schema: str, catalog: str | None = None) -> tuple[str, str]:
    for name in (schema, catalog or "x"):
        if not _IDENTIFIER.match(name):
            msg = f"Not a plain schema name: {name!r}"
            raise ValueError(msg)
    columns = ", ".join(f'"{c}"' for c in ACTIVITY_COLUMNS)
    prefix = f'"{catalog}"."{schema}"' if catalog else f'"{schema}"'
    # Names checked against _IDENTIFIER above: nothing but letters, digits and "_".
    return (
        f'SELECT {columns} FROM {prefix}."activities"',  # noqa: S608
        f'SELECT "bikes", "shoes" FROM {prefix}."athlete"',  # noqa: S608
    )


def load(database_url: str, schema: str = "strava") -> Dataset:
    """Read the activities and gear from ``postgresql://...`` or ``duckdb:///path``."""
    if database_url.startswith("duckdb:"):
        import duckdb

        path = database_url.removeprefix("duckdb:").removeprefix("///")
        if not Path(path).exists():
            msg = f"No DuckDB file at {path}"
            raise FileNotFoundError(msg)
        with duckdb.connect(path, read_only=True) as conn:
            # target-duckdb's strava.duckdb is the catalog "strava" holding the schema
            # "strava": only a three-part name is unambiguous.
            (catalog,) = t.cast("tuple[str]", conn.execute("SELECT current_database()").fetchone())
            activities_sql, athlete_sql = _queries(schema, catalog)
            rows = conn.execute(activities_sql).fetchall()
            gear_rows = conn.execute(athlete_sql).fetchall()
    elif database_url.startswith(("postgresql", "postgres:")):
        import psycopg

        activities_sql, athlete_sql = _queries(schema)

        # SQLAlchemy's "postgresql+psycopg://" is what the loader's setting holds.
        url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", database_url)
        with psycopg.connect(url) as conn:
            rows = conn.execute(activities_sql).fetchall()  # type: ignore[arg-type]
            gear_rows = conn.execute(athlete_sql).fetchall()  # type: ignore[arg-type]
    else:
        msg = f"Unsupported database URL (postgresql:// or duckdb:///): {database_url}"
        raise ValueError(msg)
    activities = sorted((_activity(r) for r in rows), key=lambda a: (a.start_local, a.id))
    return Dataset(activities=activities, gear=_gear(gear_rows))
