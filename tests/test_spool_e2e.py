"""One extraction for both targets (issue 14), through real ``meltano run`` and strava-job.

The daily job spools the tap's output once and replays it into CSV and Postgres. Here:
a CSV load that fails is caught up by the next run from the spool (its folder rewritten,
not added to), and an install whose daily bookmark is under the old state id upgrades
without reading its history again. Postgres down for a run, the request count per run
and the writer order with the weekly reconcile are in ``test_notify_e2e.py`` (the cron
line's own tests).
"""

from __future__ import annotations

import pytest

from strava_spool.folder import SpoolFolder
from tests.pipeline import assert_csv_matches_postgres, list_requests, read_csv
from tests.test_notify_e2e import assert_one_extraction, deployed  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e


def test_a_failed_csv_load_is_replayed_into_its_own_files_by_the_next_run(
    meltano_project, simulator
):
    out = meltano_project.output_root
    # A folder where target-csv wants the athlete file: the CSV load of run R1 fails.
    blocker = out / "R1" / "athlete-R1.csv"
    blocker.mkdir(parents=True)
    failed = meltano_project.meltano("run", "strava-daily", STRAVA_RUN_STAMP="R1")
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert [s.label for s in SpoolFolder(meltano_project.spool_dir).spools()] == ["R1"]
    first_pages = list_requests(simulator)
    seen = len(simulator.requests)

    # The disk is fixed; a half-written file of the failed load is still there.
    blocker.rmdir()
    (out / "R1" / "activities-R1.csv").write_text("id,name\n999,stale half-written row\n")
    newest = max(simulator.activities, key=lambda a: a["start_date"])
    simulator.update_activity(newest["id"], name="Edited between the runs")
    done = meltano_project.meltano("run", "strava-daily", STRAVA_RUN_STAMP="R2")
    assert done.returncode == 0, done.stderr[-3000:]

    # Strava was asked only for what is new since R1's bookmark.
    pages = assert_one_extraction(simulator, seen)
    assert all(dict(page).get("after") for page in pages), (pages, first_pages)
    # R1's folder was rewritten whole from its spool: every activity once, nothing stale,
    # and the same file names as R2's (no second set of files).
    r1 = {p.name.replace("R1", "R") for p in (out / "R1").iterdir()}
    r2 = {p.name.replace("R2", "R") for p in (out / "R2").iterdir()}
    assert r1 == r2
    ids = [int(row["id"]) for row in read_csv(out / "R1" / "activities-R1.csv")]
    assert sorted(ids) == sorted(a["id"] for a in simulator.activities)
    assert_csv_matches_postgres(meltano_project, out, finished_only=False)
    names = {r["id"]: r["name"] for r in meltano_project.rows("activities")}
    assert names[newest["id"]] == "Edited between the runs"


def test_the_users_own_postgres_run_then_the_daily_job_gives_every_destination_everything(
    deployed,  # noqa: F811
    simulator,
):
    """Issue 23: `meltano run tap-strava target-postgres` (the user's own command) was taken
    for an old install's daily state: its bookmark was copied and the first strava-job CSV
    folder got 6 activities and no athlete, stats or gear (the facts file said "loaded")."""
    total = len(simulator.activities)
    own = deployed.meltano.meltano("--environment=prod", "run", "tap-strava", "target-postgres")
    assert own.returncode == 0, own.stderr[-3000:]
    profile_reads = sum(1 for r in simulator.requests if r.path == "/api/v3/athlete")

    assert deployed.cron().returncode == 0, (deployed.root / "logs" / "cron.log").read_text()
    (message,) = deployed.posts()
    body = message["body"]
    assert "prod:tap-strava-to-target-postgres was not copied" in body
    assert "CSV lacks" in body
    # Postgres had every activity: none is new, each is an update of its row.
    assert message["title"] == "Strava sync (prod): no new activities", message
    assert f"Postgres: activities 0 new, {total} updated ({total} read)" in body
    assert f"CSV: activities {total} rows written" in body
    (folder,) = [p for p in (deployed.root / "output").iterdir() if p.is_dir()]
    ids = [int(row["id"]) for row in read_csv(next(folder.glob("activities-*.csv")))]
    assert sorted(ids) == sorted(a["id"] for a in simulator.activities)
    for stream in ("athlete", "athlete_stats", "gear"):
        assert read_csv(next(folder.glob(f"{stream}-*.csv"))), stream
    # The profile came from the shared cache: one read today for both pipelines.
    assert sum(1 for r in simulator.requests if r.path == "/api/v3/athlete") == profile_reads
    rows = deployed.meltano.rows("activities")
    assert len(rows) == total
    assert len({r["id"] for r in rows}) == total
