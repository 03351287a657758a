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
import asyncio
import dataclasses
import os
import tempfile
import time
import typing as t
from pathlib import Path

from devtools import receiver_abuse as abuse
from devtools.bench import (
    _api_reads,
    _next_utc_day,
    _tap_config,
    _unlimited_simulator,
    run_tap_in_process,
)
from devtools.receiver_abuse import CALLBACK_PATH, TAP_TOKEN, Outcome, ReceiverProcess

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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def abuse_cases(workdir: Path, sizes: AbuseSizes) -> list[tuple[Outcome, str]]:
    """Each case against a fresh ``strava-events serve`` (defaults, SQLite queue).

    Every case ends by checking, through the tap's interface, that each valid event is
    stored once; the figure beside it is what a reader of docs/benchmarks.md needs.
    """
    abuse.raise_open_files()
    results: list[tuple[Outcome, str]] = []

    def checked(rx: ReceiverProcess, first_id: int, count: int) -> str:
        ids = rx.pending_object_ids()
        expected = list(range(first_id, first_id + count))
        return "each stored once" if sorted(ids) == expected else f"STORED {len(ids)} events"

    with ReceiverProcess(workdir / "idle") as rx:
        outcome = asyncio.run(abuse.idle_case(rx, sizes.idle, sizes.events, 1, 5.0))
        note = checked(rx, 1, sizes.events)
        extra = outcome.extra
        results.append(
            (
                outcome,
                f"{extra['opened']:,} opened in {extra['opening_took']:.1f} s; "
                f"{extra['closed']:,} closed by the receiver, {extra['first_closed']:.1f} to "
                f"{extra['last_closed']:.1f} s after the first opened (deadline 5 s); {note}",
            )
        )
    with ReceiverProcess(workdir / "slow") as rx:
        outcome = asyncio.run(abuse.slow_header_case(rx, sizes.slow, sizes.events, 1, 30.0))
        note = checked(rx, 1, sizes.events)
        results.append(
            (
                outcome,
                f"{outcome.extra['cut']} of {sizes.slow} cut, the last after "
                f"{outcome.extra['cut_max']:.1f} s (deadline 5 s); {note}",
            )
        )
    with ReceiverProcess(workdir / "token") as rx:
        outcome = asyncio.run(abuse.wrong_token_case(rx, sizes.wrong_tokens, 50, sizes.events, 1))
        note = checked(rx, 1, sizes.events)
        strangers = ", ".join(f"{n:,}x {code}" for code, n in outcome.extra["strangers"].items())
        results.append(
            (
                outcome,
                f"strangers got {strangers}; the tap's request {outcome.tap_status} in "
                f"{outcome.extra['tap_latency']:.2f} s; {note}",
            )
        )
    with ReceiverProcess(workdir / "burst") as rx:
        assert rx.proc is not None
        before = _cpu_seconds(rx.proc.pid)
        outcome = asyncio.run(abuse.burst_case(rx, sizes.burst, 1))
        cpu = _cpu_seconds(rx.proc.pid) - before
        commits = rx.tap("/tap/status")[1]["counters"]["store_commits"]
        again = asyncio.run(abuse.burst_case(rx, sizes.burst, 1))
        note = checked(rx, 1, sizes.burst)
        redelivered = "all 200" if again.all_ok else f"{sorted(set(again.statuses))}"
        results.append(
            (
                outcome,
                f"receiver CPU {cpu:.2f} s; stored in {commits} transactions; the same "
                f"{sizes.burst} again: {redelivered}, "
                f"p99 {again.percentile(0.99):.2f} s; {note}",
            )
        )
    return results


@dataclasses.dataclass(frozen=True)
class AbuseSizes:
    """How large each case is (the issue's sizes by default)."""

    idle: int = 2000
    slow: int = 200
    wrong_tokens: int = 3000
    burst: int = 500
    #: Valid events sent while the idle, slow and wrong-token cases go on.
    events: int = 50


def abuse_report(results: list[tuple[Outcome, str]], sizes: AbuseSizes) -> str:
    """The abuse table for docs/benchmarks.md."""
    cases = {
        "idle": f"{sizes.idle:,} idle connections, {sizes.events} valid events",
        "slow_headers": f"{sizes.slow} slow-header connections, {sizes.events} valid events",
        "wrong_token": f"{sizes.wrong_tokens:,} wrong-token requests to /tap, "
        f"{sizes.events} valid events",
        "burst": f"a burst of {sizes.burst} valid events from one address",
    }
    lines = [
        "| case | valid events answered | p50 | p99 | max | the tap's request | what else |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for outcome, note in results:
        answered = (
            f"all {len(outcome.statuses)} 200"
            if set(outcome.statuses) == {200}
            else ", ".join(
                f"{outcome.statuses.count(c)}x {c}" for c in sorted(set(outcome.statuses))
            )
        )
        lines.append(
            f"| {cases[outcome.case]} | {answered} | {outcome.percentile(0.5):.2f} s | "
            f"{outcome.percentile(0.99):.2f} s | {max(outcome.latencies):.2f} s | "
            f"{outcome.tap_status} | {note} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the reads-per-day weeks and the receiver's abuse cases; print the tables."""
    parser = argparse.ArgumentParser(prog="python -m devtools.bench_events")
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--part", choices=("all", "reads", "abuse"), default="all", help="what to measure"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-events-") as folder:
        root = Path(folder)
        if args.part in ("all", "reads"):
            events = events_week(args.seed, args.activities, args.days, root / "events")
            polling, reconcile = polling_week(args.seed, args.activities, args.days, root / "poll")
            print(report(events, polling, reconcile, args.activities))
            print()
        if args.part in ("all", "abuse"):
            sizes = AbuseSizes()
            started = time.perf_counter()
            results = abuse_cases(root / "abuse", sizes)
            print(abuse_report(results, sizes))
            print(f"\n(abuse cases: {time.perf_counter() - started:.0f} s, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
