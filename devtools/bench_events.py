"""Reads per day with push events against polling (issue 17), from the simulator's log.

One athlete with a two-year history uploads two activities a day and edits one old one.
For a simulated week:

- **events**: the simulator pushes each change to the real receiver (``strava-events
  serve`` as a process on 127.0.0.1, SQLite queue); the events tap runs (in this process, as
  cron would every five minutes: runs with nothing pending cost nothing) and loads each
  named activity with one read, ``activity_details`` from the same answer;
- **polling**: the daily job (activities, athlete, stats), the details block for the new
  uploads (``activity_details``), and the weekly reconcile, the only polling run that sees
  an edit older than the look-back window.

Every figure is counted from ``sim.requests`` (Strava's read quota counts API GETs).
``make bench-events`` runs it (``python -m devtools.bench_events``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import typing as t
from pathlib import Path

from devtools.bench import (
    _api_reads,
    _next_utc_day,
    _tap_config,
    _unlimited_simulator,
    run_tap_in_process,
)
from devtools.receiver_abuse import CALLBACK_PATH, TAP_TOKEN, ReceiverProcess

if t.TYPE_CHECKING:
    from strava_simulator import StravaSimulator

JSONDict = dict[str, t.Any]


class Receiver(ReceiverProcess):
    """The real receiver, ``strava-events serve`` as a process (SQLite queue)."""

    def __init__(self, folder: Path, athlete_id: int) -> None:
        super().__init__(folder, athlete_id=athlete_id, subscription_id=None)

    def subscribe(self, sim: StravaSimulator) -> int:
        """Create the app's push subscription (the simulator runs the handshake)."""
        from strava_events import subscription_record, subscriptions
        from strava_events.settings import load_strava_app

        app = load_strava_app(
            {
                **self.env,
                "STRAVA_EVENTS_CLIENT_ID": sim.client_id,
                "STRAVA_EVENTS_CLIENT_SECRET": sim.client_secret,
                "STRAVA_EVENTS_API_BASE": sim.api_url,
                "STRAVA_EVENTS_CALLBACK_URL": f"{self.url}/{CALLBACK_PATH}",
            }
        )
        identifier = subscriptions.create(app)
        # As `strava-events subscription create` does: the running receiver takes it.
        subscription_record.record(app.subscription_file, identifier)
        return identifier


def _day_of_changes(sim: StravaSimulator, day: int, old: list[JSONDict]) -> None:
    """Two uploads and one edit of an old activity, as one athlete's ordinary day."""
    for _ in range(2):
        sim.add_activity()
    target = old[day % len(old)]
    sim.update_activity(target["id"], name=f"Renamed on day {day + 1}")


def events_week(seed: int, activities: int, days: int, workdir: Path) -> list[int]:
    """Reads per day of the events mode (the first day includes learning the athlete id)."""
    per_day: list[int] = []
    with _unlimited_simulator(seed, activities) as sim, Receiver(workdir, sim.athlete_id) as rx:
        rx.subscribe(sim)
        time.sleep(3)  # a running receiver takes the new subscription id within 2 s
        config = _tap_config(
            sim, workdir / "events", events_url=f"{rx.tap_url}/tap", events_token=TAP_TOKEN
        )
        old = sorted(sim.activities, key=lambda a: a["start_date"])[: days * 2]
        state: JSONDict = {}
        for day in range(days):
            sim.clear_requests()
            _day_of_changes(sim, day, old)
            assert sim.push.wait_idle(30), "the simulator delivered every event"
            time.sleep(0.5)  # the receiver's spool drain, if any, is done
            for _ in range(3):  # cron every five minutes: later runs find nothing
                state = run_tap_in_process(config, state).state
            per_day.append(len(_api_reads(sim.requests)))
    return per_day


def _record_full_scope(config: JSONDict) -> None:
    """What tap-strava-auth records: the granted scope, which a reconcile requires."""
    from tap_strava.token_store import StoredTokens, TokenStore

    token = str(config["refresh_token"])
    store = TokenStore(
        Path(config["token_store_path"]),
        client_id=str(config["client_id"]),
        configured_refresh_token=token,
    )
    with store.locked():
        store.save(
            StoredTokens(refresh_token=token, scope="read,activity:read_all,profile:read_all")
        )


def polling_week(seed: int, activities: int, days: int, workdir: Path) -> tuple[list[int], int]:
    """Reads per day of the polling jobs, and the reconcile's reads (once a week)."""
    per_day: list[int] = []
    with _unlimited_simulator(seed, activities) as sim:
        daily = _tap_config(sim, workdir / "poll")
        details = {**daily, "activity_details_per_run": 150}
        daily_state = run_tap_in_process(daily, {}).state
        # The details of the whole history first (150 per run), so the week is steady.
        details_state: JSONDict = {}
        while True:
            sim.clear_requests()
            details_state = run_tap_in_process(
                details, details_state, streams=("activity_details",)
            ).state
            if not [r for r in _api_reads(sim.requests) if "/activities/" in r.path]:
                break
        old = sorted(sim.activities, key=lambda a: a["start_date"])[: days * 2]
        for day in range(days):
            _next_utc_day(workdir / "poll" / "facts.json")
            sim.clear_requests()
            _day_of_changes(sim, day, old)
            daily_state = run_tap_in_process(daily, daily_state).state
            details_state = run_tap_in_process(
                details, details_state, streams=("activity_details",)
            ).state
            per_day.append(len(_api_reads(sim.requests)))
        reconcile_config = {**_tap_config(sim, workdir / "reconcile"), "reconcile": True}
        _record_full_scope(reconcile_config)
        sim.clear_requests()
        run_tap_in_process(reconcile_config, {}, streams=("activities",))
        reconcile = len(_api_reads(sim.requests))
    return per_day, reconcile


def report(events: list[int], polling: list[int], reconcile: int, activities: int) -> str:
    """The table for docs/benchmarks.md."""
    days = len(events)
    steady_events = events[1:] or events
    steady_polling = polling[1:] or polling
    lines = [
        f"One athlete, {activities:,} activities, 2 uploads and 1 edit of an old activity a "
        f"day, {days} days (reads counted from the simulator's log):",
        "",
        "| | reads, day 1 | reads, a later day | per week | sees an old edit |",
        "|---|---:|---:|---:|---|",
        f"| push events (strava-events job) | {events[0]} | {max(steady_events)} | "
        f"{sum(events)} | within one run (minutes) |",
        f"| polling (daily job + details block) | {polling[0]} | {max(steady_polling)} | "
        f"{sum(polling)} | no |",
        f"| polling + weekly reconcile | | | {sum(polling) + reconcile} | after up to 7 days |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run both weeks and print the table."""
    parser = argparse.ArgumentParser(prog="python -m devtools.bench_events")
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-events-") as folder:
        root = Path(folder)
        events = events_week(args.seed, args.activities, args.days, root / "events")
        polling, reconcile = polling_week(args.seed, args.activities, args.days, root / "poll")
    print(report(events, polling, reconcile, args.activities))


if __name__ == "__main__":
    main()
