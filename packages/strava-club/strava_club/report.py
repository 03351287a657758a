"""``strava-club-report``: the club's day in one message, from Dagster's own records.

How many athletes the last polls synced, which failed and why, whether Dagster retries
them, the last events run when it failed, and each athlete's last details backfill or
archive import when it failed. Every reason is the ``strava/failure`` tag of the
failed run (set by its op, or by the run failure sensor): the report needs nothing but
the instance named by ``DAGSTER_HOME``, read through Dagster's public API, so it gives
the same answer on every machine of the deployment. ``--json`` gives every run for
scripts and tests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import typing as t

import dagster as dg

from strava_club import names
from strava_club.names import FAILURE_TAG, SYNC_SECONDS_TAG
from strava_club.settings import ClubSettingsError, club_settings


def job_runs(instance: dg.DagsterInstance, job_name: str) -> list[dict[str, t.Any]]:
    """Every run of one job, oldest first, with its partition, status, retry tags, reason."""
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=job_name))
    runs = []
    for record in sorted(records, key=lambda r: r.create_timestamp):
        run = record.dagster_run
        runs.append(
            {
                "run_id": run.run_id,
                "job": job_name,
                "partition": run.tags.get("dagster/partition"),
                "status": run.status.value,
                "will_retry": run.tags.get("dagster/will_retry"),
                "retry_number": int(run.tags.get("dagster/retry_number", 0)),
                "parent_run_id": run.parent_run_id,
                "reason": run.tags.get(FAILURE_TAG),
                "sync_seconds": float(run.tags.get(SYNC_SECONDS_TAG) or 0) or None,
                "created": record.create_timestamp.timestamp(),
                "start": record.start_time,
                "end": record.end_time,
            }
        )
    return runs


def failures(runs: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The failed runs, each with its athlete (None for the events run) and its reason."""
    return [
        {
            "athlete_id": run["partition"],
            "job": run["job"],
            "run_id": run["run_id"],
            "reason": run["reason"] or "",
            "will_retry": run["will_retry"] == "true",
        }
        for run in runs
        if run["status"] == "FAILURE"
    ]


def last_runs(
    partitions: t.Iterable[str], runs: list[dict[str, t.Any]], job: str
) -> dict[str, dict[str, t.Any]]:
    """Each current athlete's last run of one job (a retry replaces the run it retried)."""
    current = set(partitions)
    last: dict[str, dict[str, t.Any]] = {}
    for run in runs:  # oldest first: the last run of each athlete wins
        if run["job"] == job and run["partition"] in current:
            last[str(run["partition"])] = run
    return last


def last_polls(report: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """Each current athlete's last poll run."""
    return last_runs(report["partitions"], report["runs"], names.DAILY_POLL)


def events_failed(report: dict[str, t.Any]) -> bool:
    """Whether the last events run failed."""
    events = report["events_runs"]
    return bool(events) and events[-1]["status"] == "FAILURE"


def summary(report: dict[str, t.Any]) -> str:
    """One message: athletes, synced, failed with their reasons; a failed events run."""
    last = last_polls(report)
    synced = [key for key, run in last.items() if run["status"] == "SUCCESS"]
    failed = [key for key, run in last.items() if run["status"] == "FAILURE"]
    lines = [f"{len(report['partitions'])} athletes; {len(synced)} synced; {len(failed)} failed"]
    for key in failed:
        reason = str(last[key]["reason"] or "no reason recorded")
        lines.append(f"  athlete {key}: {reason.removeprefix(f'athlete {key}: ')}")
    if events_failed(report):
        reason = str(report["events_runs"][-1]["reason"] or "no reason recorded")
        lines.append(f"  the last events run failed: {reason.removeprefix('events: ')}")
    for job, what in ((names.DETAILS_BACKFILL, "details"), (names.ARCHIVE_IMPORT, "archive")):
        for key, run in last_runs(report["partitions"], report["other_runs"], job).items():
            if run["status"] == "FAILURE":
                reason = str(run["reason"] or "no reason recorded")
                lines.append(f"  athlete {key}, {what}: {reason.removeprefix(f'athlete {key}: ')}")
    return "\n".join(lines)


def club_day(instance: dg.DagsterInstance) -> dict[str, t.Any]:
    """The partitions, every poll and events run, and the failed ones with their reasons."""
    runs = job_runs(instance, names.DAILY_POLL)
    events_runs = job_runs(instance, names.EVENTS_RUN)
    other_runs = job_runs(instance, names.DETAILS_BACKFILL) + job_runs(
        instance, names.ARCHIVE_IMPORT
    )
    return {
        "partitions": instance.get_dynamic_partitions(names.ATHLETES),
        "runs": runs,
        "events_runs": events_runs,
        "other_runs": sorted(other_runs, key=lambda run: run["created"]),
        "failures": failures(runs + events_runs + other_runs),
    }


def notify_type(report: dict[str, t.Any]) -> str:
    """The message's kind, as the daily job's: success, warning (partial), failure."""
    athletes = len(report["partitions"])
    statuses = [run["status"] for run in last_polls(report).values()]
    synced = statuses.count("SUCCESS")
    if athletes and statuses.count("FAILURE") == athletes:
        return "failure"
    others_failed = any(
        run["status"] == "FAILURE"
        for job in (names.DETAILS_BACKFILL, names.ARCHIVE_IMPORT)
        for run in last_runs(report["partitions"], report["other_runs"], job).values()
    )
    if synced < athletes or events_failed(report) or others_failed:
        return "warning"
    return "success"


def post(report: dict[str, t.Any], command: t.Sequence[str]) -> None:
    """Pipe the day's message to ``command`` (``strava-notify``); one line if it fails.

    The club's environment posts nothing itself: the project's ``strava-notify`` delivers
    it as the daily job's own message (the same URLs, forms and retries).
    """
    kind = notify_type(report)
    title = f"Strava club: {kind}"
    proc = subprocess.run(
        [*command, "--title", title, "--type", kind],
        input=summary(report),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        msg = f"{command[0]} did not deliver the club's message: {tail[:300]}"
        raise NotDelivered(msg)


class NotDelivered(Exception):
    """The notification command failed (one line)."""


def main(argv: list[str] | None = None) -> int:
    """Print the report; one line and exit 1 when the settings are wrong."""
    parser = argparse.ArgumentParser(prog="strava-club-report", description=__doc__)
    parser.add_argument("--json", action="store_true", help="every run, as JSON")
    parser.add_argument(
        "--notify",
        action="store_true",
        help="also post the message through STRAVA_CLUB_NOTIFY_COMMAND (strava-notify)",
    )
    args = parser.parse_args(argv)
    try:
        instance = dg.DagsterInstance.get()
        report = club_day(instance)
        if args.notify:
            command = club_settings().notify_command
            if command is None:
                msg = "STRAVA_CLUB_NOTIFY_COMMAND is not set: nowhere to post the message"
                raise ClubSettingsError(msg)
            post(report, command)
    except (dg.DagsterError, ClubSettingsError, NotDelivered) as exc:
        # DAGSTER_HOME unset or its dagster.yaml wrong: Dagster's first line names it.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"strava-club-report: error: {first}", file=sys.stderr)
        return 1
    print(json.dumps(report) if args.json else summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
