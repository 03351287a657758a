"""How long the report's route maps take: 300 tracks of 3,600 points (an hour at 1 Hz).

Two timings:

* **draw**: hiding (two privacy zones), projection and the heatmap (numpy + Pillow) of
  tracks already in memory, as :func:`strava_dashboard.routes.build` does after reading;
* **read + draw**: :func:`strava_dashboard.routes.build` end to end on PostgreSQL, the
  tracks in a table laid out as target-postgres lays out ``export_tracks`` (``latlng``
  ``jsonb[]``), read one activity per query.

    .venv/bin/python -m devtools.bench_routes [--tracks 300] [--points 3600]

PostgreSQL: ``TARGET_POSTGRES_*`` (or an embedded server), schema ``bench_routes``
(dropped afterwards). Needs the dashboard extra (``make setup-extras``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

import numpy as np

from devtools.postgres import connect, postgres_server
from strava_dashboard import data, heatmap, privacy, routes

SCHEMA = "bench_routes"
ATHLETE = 4242


def synthetic_tracks(count: int, points: int, seed: int = 3) -> list[np.ndarray]:
    """Random walks from homes around one city (a step of about 3 m per second)."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(count):
        start = np.array([52.37, 4.89]) + rng.normal(0, 0.03, 2)
        heading = np.cumsum(rng.normal(0, 0.08, points)) + rng.uniform(0, 2 * np.pi)
        steps = np.column_stack((np.cos(heading), np.sin(heading) * 1.6)) * 2.7e-5
        found.append(start + np.cumsum(steps, axis=0))
    return found


def draw(tracks: list[np.ndarray], zones: list[privacy.Zone]) -> tuple[float, float, int]:
    """Wall and CPU seconds of hiding and drawing, and the PNG's size."""
    started, cpu = time.perf_counter(), time.process_time()
    visible = [routes.to_world(privacy.hide(track, zones)) for track in tracks]
    box = heatmap.bounds_of(visible)
    assert box is not None
    frame = heatmap.frame_for(box, *routes.HEATMAP_SIZE)
    png = heatmap.heatmap_png(visible, frame, routes.HEAT_LINE)
    return time.perf_counter() - started, time.process_time() - cpu, len(png)


def load_postgres(url: str, tracks: list[np.ndarray]) -> None:
    with connect(url) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(
            f"CREATE TABLE {SCHEMA}.export_activities (id bigint PRIMARY KEY, athlete_id bigint,"
            " name text, sport_type text, start_date timestamp, distance numeric,"
            " moving_time bigint, total_elevation_gain numeric, gear_name text,"
            " activity_type text)"
        )
        conn.execute(
            f"CREATE TABLE {SCHEMA}.export_tracks (activity_id bigint PRIMARY KEY,"
            " athlete_id bigint, latlng jsonb[])"
        )
        start = datetime.datetime(2025, 1, 1, 7)
        with conn.cursor() as cur:
            for ident, track in enumerate(tracks, start=1):
                cur.execute(
                    f"INSERT INTO {SCHEMA}.export_activities VALUES"
                    " (%s, %s, 'Run', 'Run', %s, 10000, 3600, 10, NULL, 'Run')",
                    (ident, ATHLETE, start + datetime.timedelta(days=ident)),
                )
                cur.execute(
                    f"INSERT INTO {SCHEMA}.export_tracks VALUES"
                    " (%s, %s, ARRAY(SELECT jsonb_array_elements(%s::jsonb)))",
                    (ident, ATHLETE, json.dumps(np.round(track, 7).tolist())),
                )


def main() -> None:
    cli = argparse.ArgumentParser(prog="python -m devtools.bench_routes")
    cli.add_argument("--tracks", type=int, default=300)
    cli.add_argument("--points", type=int, default=3600)
    args = cli.parse_args()
    tracks = synthetic_tracks(args.tracks, args.points)
    zones = [privacy.Zone(52.37, 4.89, 400, "bench"), privacy.Zone(52.40, 4.85, 300, "bench")]
    seconds, cpu, size = draw(tracks, zones)
    print(
        f"draw: {args.tracks} tracks x {args.points} points: {seconds:.2f} s "
        f"(CPU {cpu:.2f} s; {size:,} B PNG)"
    )
    with postgres_server() as url:
        load_postgres(url, tracks)
        try:
            with data.Database(url, SCHEMA) as db:
                started, cpu = time.perf_counter(), time.process_time()
                dataset = data.load_athlete(db, ATHLETE)
                built = routes.build(db, dataset, zones)
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            print(
                f"read + draw (PostgreSQL, one query per track): {seconds:.2f} s "
                f"(CPU of this process {cpu:.2f} s), "
                f"{built.sources} routes, {built.hidden_points:,} points hidden, "
                f"{len(built.maps)} route maps"
            )
        finally:
            with connect(url) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
