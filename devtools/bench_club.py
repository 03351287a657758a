"""``make bench-club``: a simulated club on one Strava app, synced 1, 2 and 4 at a time.

What a club's organiser wants to know before adding athletes (issue 26, docs/scaling.md):
how long a day takes, what each athlete-day costs in CPU and in reads, and whether the
app's quota holds. The simulator runs in this process with Extended-like limits (600
reads per window, 30,000 a day, read from its headers by the tap) and a shortened window
(60 s for 15 minutes, so that the busiest window is measured on the same scale); every
athlete's run is what a Dagster run of ``strava-club`` executes (``strava_club.sync``:
tap-strava restricted to the athlete, piped into target-postgres), with the shared store
and the quota ledger in PostgreSQL, so that concurrent runs share one quota.

1. The club joins: every athlete's first sync (their history), ``--first-concurrency`` at
   a time (4).
2. One day per concurrency level (1, 2, 4): each athlete uploads one activity, renames one
   and deletes one, then every athlete's daily poll runs, that many at a time.

Printed per day: wall seconds, CPU seconds per athlete-day (the tap's and the target's
processes, start-up included), reads per athlete per day (the simulator's log), the
busiest window against the limit, 429s, and whether every athlete's table equals the
simulator (ids; a deletion shows at the weekly reconcile, as documented, so it is left
out of the comparison). Dagster's own run overhead is not in these figures (measured by
the daemon test, docs/benchmarks.md).

Run: ``make bench-club`` (50 athletes x 447 activities); ``BENCH_ARGS="--athletes 200"``
for the bigger club; ``--athletes 4 --activities 60`` for a quick check.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import resource
import sys
import tempfile
import time
import typing as t
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packages" / "strava-club"))  # sync.py needs no Dagster

from devtools.postgres import scratch_database  # noqa: E402
from strava_club.settings import ClubSettings  # noqa: E402
from strava_club.sync import create_tables, discover, sync_athlete  # noqa: E402
from strava_simulator import StravaSimulator  # noqa: E402
from tap_strava import backends  # noqa: E402
from tap_strava.token_keys import KEYS_ENV, new_key  # noqa: E402
from tap_strava.token_store import StoredTokens  # noqa: E402

TAP = ROOT / ".venv" / "bin" / "tap-strava"
TARGET = ROOT / ".meltano" / "loaders" / "target-postgres" / "venv" / "bin" / "target-postgres"
SERVER = "postgresql://postgres@127.0.0.1:5432"
READS_PER_WINDOW = 600
READS_PER_DAY = 30_000


def children_cpu() -> float:
    """CPU seconds of every finished child process of this one (taps and targets)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def club_settings(sim: StravaSimulator, url: str, folder: Path, window: float) -> ClubSettings:
    """The club's files: the tap's config (every athlete, the shared store) and the target's."""
    tap_config = {
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "athletes": [
            {"name": f"athlete-{a.athlete_id}", "refresh_token": a.refresh_token}
            for a in sim.athletes
        ],
        "api_url": sim.api_url,
        "token_url": sim.token_url,
        "token_store_path": str(folder / "tokens.json"),
        "shared_database_url": url.replace("postgresql://", "postgresql+psycopg://"),
        "max_rate_limit_wait_seconds": int(window) + 5,
        # The simulator's shortened "15 minutes": the ledger's windows must be the same.
        "rate_limit_window_seconds": int(window),
        "start_date": "2000-01-01T00:00:00Z",
    }
    target_config = {
        "sqlalchemy_url": url.replace("postgresql://", "postgresql+psycopg://"),
        "default_target_schema": "strava",
        "add_record_metadata": True,
        "use_copy": True,
        "validate_records": False,
    }
    for name, value in (("tap.json", tap_config), ("target.json", target_config)):
        (folder / name).write_text(json.dumps(value), encoding="utf-8")
        (folder / name).chmod(0o600)
    for athlete in sim.athletes:  # what the Connect page leaves for each athlete
        store = backends.token_store(
            tap_config,
            client_id=sim.client_id,
            configured_refresh_token=str(athlete.refresh_token),
        )
        with store.locked():
            store.save(
                StoredTokens(
                    refresh_token=str(athlete.refresh_token), athlete_id=athlete.athlete_id
                )
            )
    return ClubSettings(
        tap=str(TAP),
        target=str(TARGET),
        tap_config=folder / "tap.json",
        target_config=folder / "target.json",
        state_dir=folder / "state",
        streams=("activities", "athlete", "athlete_stats"),
    )


def run_all(
    settings: ClubSettings, catalog: dict[str, t.Any], ids: list[int], concurrency: int
) -> dict[str, t.Any]:
    """Every athlete's run, ``concurrency`` at a time: wall, CPU, failures."""
    cpu_before, started = children_cpu(), time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = list(
            pool.map(lambda i: sync_athlete(settings, i, catalog, lambda _line: None), ids)
        )
    return {
        "wall": time.monotonic() - started,
        "cpu": children_cpu() - cpu_before,
        "failed": [(o.athlete_id, o.reason) for o in outcomes if not o.ok],
        "quota_stops": sum(bool(o.quota_stops) for o in outcomes),
    }


def reads_of(sim: StravaSimulator, since: float, window: float) -> dict[str, t.Any]:
    """API reads since ``since`` (the simulator's log): count, busiest window, 429s."""
    reads = [
        r
        for r in sim.requests
        if r.time >= since and r.method == "GET" and not r.path.startswith(("/_sim", "/oauth"))
    ]
    per_window = collections.Counter(int(r.time // window) for r in reads)
    return {
        "reads": len(reads),
        "busiest": max(per_window.values(), default=0),
        "429": sum(1 for r in sim.requests if r.time >= since and r.status == 429),
    }


def a_day(sim: StravaSimulator, day: int) -> None:
    """Each athlete uploads one activity, renames one and deletes one."""
    for athlete in sim.athletes:
        listed = athlete.activities
        athlete.add_activity(name=f"Day {day} ride")
        if len(listed) > 2:
            athlete.update_activity(int(listed[1]["id"]), name=f"Renamed on day {day}")
            athlete.delete_activity(int(listed[-1]["id"]))


def exact(sim: StravaSimulator, url: str) -> bool:
    """Whether every athlete's rows hold each activity of theirs (deletions aside)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT athlete_id, id FROM strava.activities").fetchall()
    held: dict[int, set[int]] = collections.defaultdict(set)
    for athlete_id, activity_id in rows:
        held[int(athlete_id)].add(int(activity_id))
    return all(
        {int(a["id"]) for a in athlete.activities} <= held[athlete.athlete_id]
        for athlete in sim.athletes
    )


def main(argv: list[str] | None = None) -> int:
    """Run the club's days and print the table (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--athletes", type=int, default=50)
    parser.add_argument("--activities", type=int, default=447)
    parser.add_argument("--concurrency", default="1,2,4", help="one day per level (1,2,4)")
    parser.add_argument("--first-concurrency", type=int, default=4)
    parser.add_argument("--window-seconds", type=float, default=60.0, help="the '15 minutes'")
    args = parser.parse_args(argv)
    levels = [int(part) for part in args.concurrency.split(",") if part.strip()]
    if not TAP.exists() or not TARGET.exists():
        print(
            "bench-club: run `make setup` first (tap-strava and target-postgres)", file=sys.stderr
        )
        return 2
    os.environ[KEYS_ENV] = new_key()
    rows = []
    with (
        scratch_database(SERVER, "bench_club") as url,
        tempfile.TemporaryDirectory(prefix="bench-club-") as folder,
        StravaSimulator(
            seed=500,
            activity_count=args.activities,
            read_limit_15min=READS_PER_WINDOW,
            read_limit_daily=READS_PER_DAY,
            overall_limit_15min=READS_PER_WINDOW * 2,
            overall_limit_daily=READS_PER_DAY * 2,
            window_seconds=args.window_seconds,
        ) as sim,
    ):
        generated = time.monotonic()
        for index in range(1, args.athletes):
            sim.add_athlete(seed=500 + index, activity_count=args.activities)
        print(
            f"bench-club: {args.athletes} athletes x {args.activities} activities generated "
            f"in {time.monotonic() - generated:.0f} s",
            file=sys.stderr,
        )
        settings = club_settings(sim, url, Path(folder), args.window_seconds)
        catalog = discover(settings)
        create_tables(settings, catalog)
        ids = [a.athlete_id for a in sim.athletes]
        days: list[tuple[str, int, int | None]] = [
            ("first sync (history)", args.first_concurrency, None)
        ]
        days += [(f"day {n}: daily polls", level, n) for n, level in enumerate(levels, 1)]
        for label, level, day in days:
            if day is not None:
                a_day(sim, day)
            since = sim.now()
            result = run_all(settings, catalog, ids, level)
            reads = reads_of(sim, since, args.window_seconds)
            rows.append(
                (
                    label,
                    level,
                    result["wall"],
                    result["cpu"] / len(ids),
                    reads["reads"] / len(ids),
                    reads["busiest"],
                    reads["429"],
                    len(result["failed"]),
                    result["quota_stops"],
                    exact(sim, url),
                )
            )
            print(f"bench-club: {label} at {level}: {result['wall']:.0f} s", file=sys.stderr)
            for athlete_id, reason in result["failed"][:3]:
                print(f"bench-club:   athlete {athlete_id} failed: {reason}", file=sys.stderr)
    print(
        f"\n{args.athletes} athletes x {args.activities} activities; limit {READS_PER_WINDOW} "
        f"reads per {args.window_seconds:g}-second window (Strava's 15 minutes), "
        f"{READS_PER_DAY:,} a day\n"
    )
    print(
        "| run | concurrent | wall s | CPU s per athlete | reads per athlete | busiest "
        "window / limit | 429s | failed | quota stops | tables exact |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for label, level, wall, cpu, reads_each, busiest, limited, failed, stops, ok in rows:
        print(
            f"| {label} | {level} | {wall:.0f} | {cpu:.2f} | {reads_each:.1f} | "
            f"{busiest} / {READS_PER_WINDOW} | {limited} | {failed} | {stops} | "
            f"{'yes' if ok else 'NO'} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
