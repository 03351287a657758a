"""`meltano run tap-strava target-postgres` end to end: simulator -> tap -> real Postgres."""

from __future__ import annotations

import datetime
import json

import pytest

from strava_simulator import StravaSimulator
from tap_strava.schemas import ACTIVITY_SCHEMA
from tests.pipeline import MeltanoProject, assert_table_equals_source, utc

pytestmark = pytest.mark.e2e

STATE_ID = "dev:tap-strava-to-target-postgres"


@pytest.fixture
def big_simulator():
    with StravaSimulator(seed=2026, activity_count=1000) as sim:
        yield sim


def test_an_account_lands_in_postgres_and_reruns_bring_exactly_the_changes(
    big_simulator, postgres_url, tmp_path
):
    project = MeltanoProject(
        sim=big_simulator,
        postgres_url=postgres_url,
        workdir=tmp_path,
        refresh_token=big_simulator.refresh_token,
    )
    try:
        project.run("tap-strava", "target-postgres")
        first = project.rows("activities")
        assert len(first) == 1000
        assert_table_equals_source(first, big_simulator)
        (athlete,) = project.rows("athlete")
        assert athlete["id"] == big_simulator.athlete_id
        assert len(project.rows("athlete_stats")) == 1

        state = project.state(STATE_ID)
        partitions = state["singer_state"]["bookmarks"]["activities"]["partitions"]
        assert partitions[0]["replication_key_value"] == max(
            a["start_date"] for a in big_simulator.activities
        )

        newest = max(utc(a["start_date"]) for a in big_simulator.activities)
        new = big_simulator.add_activity(
            start_date=(newest + datetime.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        late = big_simulator.add_activity(
            start_date=(newest - datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        recent = max(
            big_simulator.activities,
            key=lambda a: (
                (a["start_date"], a["id"]) if a["id"] not in (new["id"], late["id"]) else ("", 0)
            ),
        )
        big_simulator.update_activity(
            recent["id"], name='Édité: "quoted", comma\\slash', private=True, visibility="only_me"
        )

        project.run("tap-strava", "target-postgres")
        second = project.rows("activities")
        assert_table_equals_source(second, big_simulator)
        before = {r["id"]: r for r in first}
        added = {r["id"] for r in second} - set(before)
        assert added == {new["id"], late["id"]}
        changed = {
            r["id"]
            for r in second
            if r["id"] in before
            and any(r[c] != before[r["id"]][c] for c in ACTIVITY_SCHEMA["properties"])
        }
        assert changed == {recent["id"]}
    finally:
        project.drop_schema()


def test_rerunning_after_a_completed_run_changes_nothing(meltano_project):
    meltano_project.run("tap-strava", "target-postgres")
    first = meltano_project.rows("activities")
    meltano_project.run("tap-strava", "target-postgres")
    second = meltano_project.rows("activities")
    assert len(second) == len(first)
    assert_table_equals_source(second, meltano_project.sim)


def test_nested_values_are_json_in_postgres(meltano_project):
    meltano_project.run("tap-strava", "target-postgres")
    rows = meltano_project.rows("activities")
    no_gps = [r for r in rows if r["start_latlng"] == []]
    assert no_gps, "manual and indoor activities keep an empty coordinate list"
    sample = next(r for r in rows if r["map"])
    assert json.loads(json.dumps(sample["map"]))["id"].startswith("a")
