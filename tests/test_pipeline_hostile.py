"""Through Meltano into CSV and a real Postgres, on Strava's worst days (issue 12's "done").

A world with an activity dated 2031, one dated 1999, undeclared keys at the top level and
inside ``map`` and ``athlete``, unsorted answers and short pages that are not the last:
everything lands in CSV and Postgres with the new keys kept, a new upload afterwards still
arrives, and a reconcile limited to a date range with ``hard_delete`` deletes nothing.
"""

from __future__ import annotations

import json
import typing as t

import pytest

from strava_simulator import StravaSimulator
from strava_simulator.athlete import HOSTILE_FUTURE, HOSTILE_ROLLOVER
from tests.pipeline import MeltanoProject, read_csv
from tests.test_pipeline_reconcile import record_granted_scope

pytestmark = pytest.mark.e2e

NEW_KEYS = {"brand_new_metric", "map.surface_type", "athlete.badge_type_id"}


@pytest.fixture
def hostile_project(postgres_url, tmp_path) -> t.Iterator[MeltanoProject]:
    with StravaSimulator(seed=41, activity_count=300, hostile=True, read_limit_15min=600) as sim:
        project = MeltanoProject(
            sim=sim, postgres_url=postgres_url, workdir=tmp_path, refresh_token=sim.refresh_token
        )
        yield project
        project.drop_schema()


def test_a_hostile_world_lands_whole_in_csv_and_postgres(hostile_project):
    project, sim = hostile_project, hostile_project.sim
    project.run("tap-strava", "target-csv", run_stamp="run-1")
    project.run("tap-strava", "target-postgres")
    project.run("tap-strava", "target-postgres")  # the uploads made while listing arrive

    rows = {r["id"]: r for r in project.rows("activities")}
    assert set(rows) == {a["id"] for a in sim.activities}
    future = next(a for a in sim.activities if a["start_date"] == HOSTILE_FUTURE)
    rollover = next(a for a in sim.activities if a["start_date"] == HOSTILE_ROLLOVER)
    assert rows[future["id"]]["start_date"].year == 2031
    assert rows[rollover["id"]]["start_date"].year == 1999
    kept = rows[rollover["id"]]["_unknown_fields"]  # jsonb: a dict
    assert set(kept) == NEW_KEYS
    assert kept["map.surface_type"] == "gravel"

    (csv_file,) = (project.output_root / "run-1").glob("activities-*.csv")
    csv_rows = {int(r["id"]): r for r in read_csv(csv_file)}
    # The first run may miss an upload made while it listed; the rest is all there.
    assert len(csv_rows) >= len(rows) - 2
    assert "map__surface_type" not in next(iter(csv_rows.values()))
    assert set(json.loads(csv_rows[rollover["id"]]["_unknown_fields"])) == NEW_KEYS

    new = sim.add_activity(name="After the watch from the future")
    project.run("tap-strava", "target-postgres")
    assert new["id"] in {r["id"] for r in project.rows("activities")}


def test_a_reconcile_limited_to_a_range_with_hard_delete_deletes_nothing(hostile_project):
    project, sim = hostile_project, hostile_project.sim
    project.run("tap-strava", "target-postgres")
    record_granted_scope(project, project.refresh_token)
    before = {r["id"] for r in project.rows("activities")}
    proc = project.meltano(
        "run",
        "tap-strava-reconcile",
        "target-postgres",
        TAP_STRAVA_START_DATE="2026-01-01T00:00:00Z",
        TARGET_POSTGRES_HARD_DELETE="true",
    )
    assert proc.returncode != 0
    assert "reconcile refused: start_date" in proc.stderr
    assert {r["id"] for r in project.rows("activities")} == before
    assert not any(r["_sdc_deleted_at"] for r in project.rows("activities"))

    # As the refusal says: unset it for the reconcile, and the pass runs.
    proc = project.meltano(
        "run",
        "tap-strava-reconcile",
        "target-postgres",
        TAP_STRAVA_START_DATE="2026-01-01T00:00:00Z",
        TAP_STRAVA_RECONCILE_START_DATE="",
        TARGET_POSTGRES_HARD_DELETE="true",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {r["id"] for r in project.rows("activities")} >= before
    assert sim.activities
