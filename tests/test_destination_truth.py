"""Notifications computed from what the destinations hold (issue 23), through strava-job.

strava-job runs against the scripted stand-in for meltano of ``test_notify_job.py``, in a
project with the real ``meltano.yml`` and a real spool folder: "behind" is claimed only
for a consumer of *this* job that lacks committed records, a failed tap's spool of
SCHEMA and STATE lines is no extraction anyone lacks, and a CSV folder without records
gets no ``_SUCCESS``.
"""

from __future__ import annotations

import io
import json
import shutil
import typing as t
from pathlib import Path

from strava_notify.tally import RunTally
from strava_spool import status
from strava_spool.folder import SpoolFolder
from strava_spool.spool import spool_messages
from tests.test_notify_helpers import plugin_line, tally
from tests.test_notify_job import Project, block_done, only_post, project, running  # noqa: F401
from tests.test_spool import line, replay, run_messages

REPO = Path(__file__).resolve().parents[1]


def _deploy(project: Project) -> SpoolFolder:  # noqa: F811
    """The real meltano.yml, an upgraded spool folder (no state copy to try)."""
    shutil.copy(REPO / "meltano.yml", project.root / "meltano.yml")
    folder = SpoolFolder(project.root / "spool" / "dev")
    folder.ensure()
    (folder.path / status.MIGRATED_MARKER).write_text("nothing to copy\n")
    return folder


def _failed_tap_run(folder: SpoolFolder, stamp: str) -> None:
    """What a tap that failed before its first record leaves: SCHEMA and STATE lines."""
    state = {"bookmarks": {"activities": {"run": 0}}}
    schema = {"properties": {"id": {"type": "integer"}}}
    lines = [
        line({"type": "STATE", "value": state}),
        line({"type": "SCHEMA", "stream": "activities", "schema": schema, "key_properties": []}),
        line({"type": "STATE", "value": state}),
    ]
    spool_messages(iter(lines), folder, stamp, io.BytesIO())


def _block(number: int, state_id: str, *plugins: tuple[str, str]) -> list[t.Any]:
    return [
        running(state_id),
        *(plugin_line(name, "working", role=role, state_id=state_id) for name, role in plugins),
        block_done(number),
    ]


def _daily_ok() -> list[t.Any]:
    return [
        *_block(0, "dev:tap-strava-to-target-strava-spool", ("tap-strava", "tap"),
                ("target-strava-spool", "target")),
        *_block(1, "dev:tap-strava-replay-csv-to-target-csv-replay",
                ("tap-strava-replay-csv", "tap"), ("tally-csv", "mapper"),
                ("target-csv-replay", "target")),
        *_block(2, "dev:tap-strava-replay-to-target-postgres", ("tap-strava-replay", "tap"),
                ("tally-postgres", "mapper"), ("target-postgres", "target")),
    ]  # fmt: skip


def _events_ok() -> list[t.Any]:
    return [
        *_block(0, "dev:tap-strava-replay-to-target-postgres", ("tap-strava-replay", "tap"),
                ("target-postgres", "target")),
        *_block(1, "dev:tap-strava-events-to-target-postgres", ("tap-strava-events", "tap"),
                ("tally-postgres", "mapper"), ("target-postgres", "target")),
    ]  # fmt: skip


def _events_tally() -> dict[str, t.Any]:
    events = tally("Postgres")
    events["events"] = {"outcomes": {}, "revoked_athletes": []}
    return events


def test_no_job_claims_a_consumer_behind_that_holds_every_record(project):  # noqa: F811
    folder = _deploy(project)
    spool_messages(iter(run_messages(1, [1, 2])), folder, "R1", io.BytesIO())
    # Both replays ran and recorded where their targets stood when they *started*.
    replay(folder, "csv", {})
    replay(folder, "postgres", {})
    project.play(
        {"tallies": {"csv.json": tally("CSV", new=2)}, "lines": _daily_ok()},
        {"tallies": {"postgres.json": _events_tally()}, "lines": _events_ok()},
    )
    daily = project.job()
    assert daily.returncode == 0, daily.stderr
    assert "behind" not in only_post(project)["body"]
    # The daily job saw both replays commit: nothing is pending for either any more.
    assert folder.pending("csv", folder.epoch()) == []
    assert folder.pending("postgres", folder.epoch()) == []

    events = project.job("--job", "strava-events")
    assert events.returncode == 0, events.stderr
    message = project.hook.posts[-1]["json"]
    assert message["title"].startswith("Strava push events (dev)")
    assert "behind" not in message["body"], message["body"]


def test_a_failed_tap_run_leaves_no_extraction_to_count(project):  # noqa: F811
    folder = _deploy(project)
    _failed_tap_run(folder, "R1")
    project.play({"exit": 1, "lines": [running("dev:tap-strava-to-target-strava-spool")]})
    failed = project.job()
    assert failed.returncode == 1
    assert "behind" not in only_post(project)["body"]

    # A spool with records is kept whatever the tap's exit code, and is what is behind.
    spool_messages(iter(run_messages(2, [7])), folder, "R2", io.BytesIO())
    project.job()
    body = project.hook.posts[-1]["json"]["body"]
    assert "CSV is behind: 1 extraction not loaded yet" in body
    assert "Postgres is behind: 1 extraction not loaded yet" in body
    assert "000002-R2.jsonl" in body
    assert "R1" not in body.split("behind")[1]


def test_a_spool_without_records_gets_no_csv_folder_and_no_success_marker(project):  # noqa: F811
    folder = _deploy(project)
    _failed_tap_run(folder, "R1")
    spool_messages(iter(run_messages(2, [7])), folder, "R2", io.BytesIO())
    messages = replay(folder, "csv", {}, csv_folders=True)
    streams = {m["stream"] for m in messages if "stream" in m}
    assert streams == {"R2/activities-R2"}, "the failed run's spool names no stream"
    assert messages[-1]["value"]["strava_replay"]["spool"] == "000002-R2.jsonl"

    # A CSV tally that names a folder without records (written by an older replay).
    out = project.root / "output"
    for label in ("R1", "R2"):
        (out / label).mkdir(parents=True)
        rows = "id\n" + ("7\n" if label == "R2" else "")
        (out / label / f"activities-{label}.csv").write_text(rows)
    csv = tally("CSV", new=1)
    csv["folders"] = {"R1": {"activities": 0}, "R2": {"activities": 1}}
    project.play({"tallies": {"csv.json": csv}, "lines": _daily_ok()})
    assert project.job().returncode == 0
    assert json.loads((out / "R2" / "_SUCCESS").read_text())["rows"] == {"activities": 1}
    assert not (out / "R1" / "_SUCCESS").exists()


def test_new_and_updated_are_counted_against_what_postgres_held(project, postgres_url):  # noqa: F811
    """ "300 new" for rows Postgres already had, and a rename counted as new (issue 23)."""
    import psycopg

    schema = f"truth_{project.root.name[-8:].lower().replace('-', '_')}"
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        connection.execute(f"CREATE SCHEMA {schema}")
        connection.execute(f"CREATE TABLE {schema}.activities (id bigint PRIMARY KEY)")
        connection.execute(f"INSERT INTO {schema}.activities VALUES (1), (2)")
    _deploy(project)
    # What the tally mapper sees: a pipeline with no digests of 1 and 2 (a fresh state, or
    # the events tap), so by its own count all three are new; 2 was renamed.
    run = RunTally("Postgres")
    csv = RunTally("CSV")
    for counter in (run, csv):
        counter.on_schema({"stream": "activities", "schema": {"properties": {"id": {}}}})
        for key in (1, 2, 3):
            record = {"id": key, "name": f"Run {key}", "start_date": "2026-11-27T07:00:00Z"}
            counter.on_record({"type": "RECORD", "stream": "activities", "record": record})
    project.play(
        {
            "tallies": {
                "csv.json": {**csv.as_dict(), "rows_written": True},
                "postgres.json": run.as_dict(),
            },
            "lines": _daily_ok(),
        }
    )
    config = {"sqlalchemy_url": postgres_url, "default_target_schema": schema}
    proc = project.job(FAKE_MELTANO_CONFIG=json.dumps(config))
    assert proc.returncode == 0, proc.stderr
    message = only_post(project)
    assert message["title"] == "Strava sync (dev): 1 new activity"
    assert "Postgres: activities 1 new, 2 updated (3 read)" in message["body"]
    assert "CSV: activities 3 rows written" in message["body"]
    assert "New activities:\n- 2026-11-27 Run 3 (" in message["body"]
    assert "Run 1" not in message["body"]
