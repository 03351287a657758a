"""The routes of one athlete's activities, read from the loaded tables one at a time.

Three places hold a route, tried in this order for each activity:

1. ``api-stream``: the API's ``activity_streams.latlng`` (what Strava shows, after any
   crop made on strava.com);
2. ``archive-track``: the archive's ``export_tracks.latlng`` (the original upload, every
   ``point_step``-th sample);
3. ``api-polyline``: the activity list's ``map.summary_polyline`` (a simplified line of a
   few hundred points that costs no extra request: what an API-only user without streams
   has).

A track is some thousands of ``[lat, lng]`` pairs: the ids are listed first (no arrays),
then each track is read by its own query, so memory holds one raw array at a time and a
report over years of tracks never pulls every ``latlng`` through one result set.
"""

from __future__ import annotations

import dataclasses
import typing as t

import numpy as np

from strava_dashboard import polyline
from strava_dashboard.data import Database, json_value

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

#: What the report calls each source.
SOURCE_LABELS = {
    "api-stream": "API stream",
    "archive-track": "archive track",
    "api-polyline": "summary polyline",
}
_TABLES = (("api-stream", "activity_streams"), ("archive-track", "export_tracks"))


@dataclasses.dataclass(frozen=True)
class Track:
    """One activity's route: ``(n, 2)`` latitude, longitude in degrees, and its source."""

    activity_id: int
    source: str
    points: np.ndarray


def route_sources(db: Database, athlete_id: int | None) -> dict[int, list[str]]:
    """The tables holding each of the athlete's routes, in order (ids only, no arrays)."""
    sources: dict[int, list[str]] = {}
    for source, table in _TABLES:
        if not db.has(table, "activity_id", "latlng"):
            continue
        where, params = db.athlete_filter(table, athlete_id)
        where += (" AND" if where else " WHERE") + " latlng IS NOT NULL"
        for (ident,) in db.rows(f"SELECT activity_id FROM {db.table(table)}{where}", params):  # noqa: S608
            sources.setdefault(int(ident), []).append(source)
    return sources


def _polylines(db: Database, athlete_id: int | None, skip: set[int]) -> dict[int, str]:
    """The summary polylines of the activities without a track (short texts, one query)."""
    if db.has("activities", "map"):
        column = '"map"'
    elif db.has("activities", "map__summary_polyline"):
        column = '"map__summary_polyline"'  # a flattening loader (target-csv's layout)
    else:
        return {}
    where, params = db.athlete_filter("activities", athlete_id)
    found = {}
    for ident, value in db.rows(
        f"SELECT id, {column} FROM {db.table('activities')}{where}",  # noqa: S608
        params,
    ):
        if ident is None or int(ident) in skip or value is None:
            continue
        if column == '"map"':
            value = json_value(value)
            value = value.get("summary_polyline") if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            found[int(ident)] = value
    return found


_NO_FIX = (float("nan"), float("nan"))


def _latlng(value: t.Any) -> np.ndarray:
    """``[[lat, lng], ...]`` as JSON text (PostgreSQL's ``array_to_json``, DuckDB's JSON).

    Samples without a fix (null, or a pair holding null) are left out; the line joins
    their neighbours, and privacy zones still cut it (see
    :func:`strava_dashboard.privacy.hide`).
    """
    items = json_value(value) or []
    pairs = [_NO_FIX if item is None else item for item in items]
    try:
        points = np.asarray(pairs, dtype=float).reshape(-1, 2)
    except (TypeError, ValueError):  # an item that is not a pair of numbers
        kept = [
            item
            for item in pairs
            if isinstance(item, (list, tuple))
            and len(item) == 2
            and all(isinstance(v, (int, float)) for v in item)
        ]
        points = np.asarray(kept, dtype=float).reshape(-1, 2)
    return points[np.isfinite(points).all(axis=1)]


def read_track(db: Database, activity_id: int, athlete_id: int | None, source: str) -> np.ndarray:
    """One activity's points from one source (an empty array when it has none)."""
    table = dict(_TABLES).get(source)
    if table is None:
        msg = f"not a table source: {source}"
        raise ValueError(msg)
    where, params = db.athlete_filter(table, athlete_id)
    where += (" AND" if where else " WHERE") + " activity_id = ?"
    # PostgreSQL's jsonb[] would come back as one parsed value per sample (slow in
    # Python): ask for one JSON text. DuckDB (target-duckdb) holds JSON text already.
    column = "array_to_json(latlng)::text" if db.kind == "postgres" else "latlng"
    rows = db.rows(
        f"SELECT {column} FROM {db.table(table)}{where}",  # noqa: S608
        (*params, activity_id),
    )
    return _latlng(rows[0][0]) if rows else np.empty((0, 2))


def tracks(
    db: Database, athlete_id: int | None, activity_ids: Iterable[int] | None = None
) -> Iterator[Track]:
    """The athlete's routes, one query per track, in ``activity_ids`` order when given."""
    sources = route_sources(db, athlete_id)
    lines = _polylines(db, athlete_id, set(sources))
    wanted = list(activity_ids) if activity_ids is not None else [*sources, *lines]
    for ident in wanted:
        points, source = np.empty((0, 2)), ""
        for source in sources.get(ident, ()):
            points = read_track(db, ident, athlete_id, source)
            if len(points):
                break
        if not len(points) and ident in lines:
            try:
                points = np.asarray(polyline.decode(lines[ident]), dtype=float).reshape(-1, 2)
            except polyline.PolylineError:
                continue  # a cut polyline draws nothing rather than a wrong line
            source = "api-polyline"
        if len(points):
            yield Track(activity_id=ident, source=source, points=points)
