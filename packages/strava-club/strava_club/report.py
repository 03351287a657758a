"""``strava-club-report``: the club's day in one message, from Dagster's own records.

How many athletes the last polls synced, which failed and why (the run failure sensor's
lines), and whether Dagster retries them. ``--json`` gives every run for scripts and
tests. Reads the instance named by ``DAGSTER_HOME`` through Dagster's public API.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing as t

import dagster as dg

from strava_club.definitions import ATHLETES, daily_poll
from strava_club.settings import ClubSettingsError, club_settings


def poll_runs(instance: dg.DagsterInstance) -> list[dict[str, t.Any]]:
    """Every daily-poll run, oldest first, with its partition, status and retry tags."""
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=daily_poll.name))
    runs = []
    for record in sorted(records, key=lambda r: r.create_timestamp):
        run = record.dagster_run
        runs.append(
            {
                "run_id": run.run_id,
                "partition": run.tags.get("dagster/partition"),
                "status": run.status.value,
                "will_retry": run.tags.get("dagster/will_retry"),
                "retry_number": int(run.tags.get("dagster/retry_number", 0)),
                "parent_run_id": run.parent_run_id,
                "start": record.start_time,
                "end": record.end_time,
            }
        )
    return runs


def failures() -> list[dict[str, t.Any]]:
    """The run failure sensor's lines (strava_club.definitions.report_failed_polls)."""
    path = club_settings().report_path
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def summary(report: dict[str, t.Any]) -> str:
    """One message: athletes, synced, failed with their reasons."""
    partitions = set(report["partitions"])
    last: dict[str, dict[str, t.Any]] = {}
    for run in report["runs"]:  # oldest first: the last run of each athlete wins
        if run["partition"] in partitions:
            last[str(run["partition"])] = run
    synced = [key for key, run in last.items() if run["status"] == "SUCCESS"]
    failed = [key for key, run in last.items() if run["status"] == "FAILURE"]
    reasons = {
        str(line["athlete_id"]): str(line["reason"]).removeprefix(f"athlete {line['athlete_id']}: ")
        for line in report["failures"]
    }
    lines = [f"{len(report['partitions'])} athletes; {len(synced)} synced; {len(failed)} failed"]
    lines += [f"  athlete {key}: {reasons.get(key, 'no reason recorded')}" for key in failed]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the report; one line and exit 1 when the settings are wrong."""
    parser = argparse.ArgumentParser(prog="strava-club-report", description=__doc__)
    parser.add_argument("--json", action="store_true", help="every run, as JSON")
    args = parser.parse_args(argv)
    try:
        instance = dg.DagsterInstance.get()
        report = {
            "partitions": instance.get_dynamic_partitions(ATHLETES.name),
            "runs": poll_runs(instance),
            "failures": failures(),
        }
    except (ClubSettingsError, dg.DagsterError) as exc:
        # DAGSTER_HOME unset or its dagster.yaml wrong: Dagster's first line names it.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"strava-club-report: error: {first}", file=sys.stderr)
        return 1
    print(json.dumps(report) if args.json else summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
