"""Through Meltano into a real Postgres: reconcile (deletions), a 2019 backfill, two athletes."""

from __future__ import annotations

import json
import typing as t

import pytest

from strava_simulator import StravaSimulator
from tap_strava.token_store import TokenStore
from tests.pipeline import MeltanoProject
from tests.support import bookmark

pytestmark = pytest.mark.e2e

DAILY_STATE = "dev:tap-strava-to-target-postgres"
RECONCILE_STATE = "dev:tap-strava-reconcile-to-target-postgres"


def record_granted_scope(project: MeltanoProject, refresh_token: str) -> None:
    """What `tap-strava-auth` records: the scope granted to this token chain."""
    store = TokenStore(
        project.workdir / "tokens.json",
        client_id=project.sim.client_id,
        configured_refresh_token=refresh_token,
    )
    with store.locked():
        stored = store.load()
        assert stored is not None, "the daily run stored the chain"
        stored.scope = "read,activity:read_all,profile:read_all"
        store.save(stored)


def old_activities(sim: StravaSimulator, count: int) -> list[dict[str, t.Any]]:
    """Activities far older than the daily look-back window, oldest first."""
    return sorted(sim.activities, key=lambda a: (a["start_date"], a["id"]))[:count]


def test_reconcile_flags_deleted_activities_then_hard_deletes_them(meltano_project):
    project, sim = meltano_project, meltano_project.sim
    project.run("tap-strava", "target-postgres")
    record_granted_scope(project, project.refresh_token)
    daily_bookmark = bookmark(project.state(DAILY_STATE)["singer_state"])

    gone, edited, other = old_activities(sim, 3)
    sim.delete_activity(gone["id"])
    sim.update_activity(edited["id"], name='Renamed "long ago", with a comma')
    late = sim.add_activity(start_date="2019-06-01T07:00:00Z", name="Late upload from 2019")
    # The daily run cannot see any of it: all of it is older than the look-back window.
    project.run("tap-strava", "target-postgres")
    rows = {r["id"]: r for r in project.rows("activities")}
    assert late["id"] not in rows
    assert rows[edited["id"]]["name"] == edited["name"]

    project.run("tap-strava-reconcile", "target-postgres")

    rows = {r["id"]: r for r in project.rows("activities")}
    assert rows[gone["id"]]["_sdc_deleted_at"] is not None
    flagged = {i for i, r in rows.items() if r["_sdc_deleted_at"] is not None}
    assert flagged == {gone["id"]}
    assert rows[edited["id"]]["name"] == 'Renamed "long ago", with a comma'
    assert rows[late["id"]]["name"] == "Late upload from 2019"
    assert set(rows) - {gone["id"]} == {a["id"] for a in sim.activities}
    # Its own state: the daily bookmark has not moved, the pass left no open version.
    assert bookmark(project.state(DAILY_STATE)["singer_state"]) == daily_bookmark
    reconcile_state = project.state(RECONCILE_STATE)["singer_state"]
    assert "reconcile_version" not in reconcile_state["bookmarks"]["activities"]

    # A daily run after the reconcile keeps the flag; then a hard-deleting reconcile.
    project.run("tap-strava", "target-postgres")
    assert {r["id"] for r in project.rows("activities") if r["_sdc_deleted_at"]} == {gone["id"]}
    sim.delete_activity(other["id"])
    proc = project.meltano(
        "run", "tap-strava-reconcile", "target-postgres", TARGET_POSTGRES_HARD_DELETE="true"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["id"]: r for r in project.rows("activities")}
    assert set(rows) == {a["id"] for a in sim.activities}
    assert not any(r["_sdc_deleted_at"] for r in rows.values())


def test_a_2019_backfill_loads_the_range_and_leaves_the_bookmark_alone(meltano_project):
    project, sim = meltano_project, meltano_project.sim
    project.run("tap-strava", "target-postgres")
    before = project.state(DAILY_STATE)
    uploads = [
        sim.add_activity(start_date=f"2019-{month:02d}-15T06:30:00Z", name=f"Found 2019 {month}")
        for month in (1, 6, 12)
    ]
    outside = sim.add_activity(start_date="2018-12-31T23:59:59Z", name="Not in 2019")

    proc = project.meltano(
        "run",
        "--state-id-suffix=backfill-2019",
        "tap-strava",
        "target-postgres",
        TAP_STRAVA_START_DATE="2019-01-01T00:00:00Z",
        TAP_STRAVA_END_DATE="2019-12-31T23:59:59Z",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    ids = {r["id"] for r in project.rows("activities")}
    assert {u["id"] for u in uploads} <= ids
    assert outside["id"] not in ids
    assert project.state(DAILY_STATE) == before
    backfill = project.state(f"{DAILY_STATE}:backfill-2019")["singer_state"]
    assert bookmark(backfill) == "2019-12-15T06:30:00Z"


def test_two_athletes_load_into_one_table(postgres_url, tmp_path):
    with StravaSimulator(seed=11, activity_count=120) as sim:
        bob = sim.add_athlete(seed=12, activity_count=50)
        project = MeltanoProject(
            sim=sim, postgres_url=postgres_url, workdir=tmp_path, refresh_token=""
        )
        athletes = [
            {"name": "ann", "refresh_token": sim.primary.refresh_token},
            {"name": "bob", "refresh_token": bob.refresh_token},
        ]
        try:
            proc = project.meltano(
                "run", "tap-strava", "target-postgres", TAP_STRAVA_ATHLETES=json.dumps(athletes)
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
            rows = project.rows("activities")
            by_athlete: dict[int, set[int]] = {}
            for row in rows:
                by_athlete.setdefault(row["athlete_id"], set()).add(row["id"])
            assert by_athlete == {
                sim.primary.athlete_id: {a["id"] for a in sim.primary.activities},
                bob.athlete_id: {a["id"] for a in bob.activities},
            }
            assert {r["id"] for r in project.rows("athlete")} == {
                sim.primary.athlete_id,
                bob.athlete_id,
            }
            # No secret in the output Meltano kept.
            assert not any(a["refresh_token"] in proc.stderr for a in athletes)
        finally:
            project.drop_schema()
