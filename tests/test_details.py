"""Per-activity streams (details, laps, zones, time-series) and gear, within budgets."""

from __future__ import annotations

import collections

import pytest

from tap_strava.simulator import StravaSimulator
from tests.conftest import tap_config_for
from tests.support import bookmark, run_tap

DETAIL_STREAMS = ("activity_details", "laps", "activity_zones", "activity_streams")


def _detail_calls(sim: StravaSimulator) -> collections.Counter:
    return collections.Counter(
        r.path for r in sim.requests if r.path.startswith("/api/v3/activities/")
    )


def test_per_activity_streams_are_off_by_default(simulator, tap_config):
    result = run_tap(tap_config)
    for name in DETAIL_STREAMS:
        assert result.records(name) == []
    assert not _detail_calls(simulator), "no request spent on a stream that is off"
    assert result.ids(), "activities are unaffected"


def test_each_stream_has_its_records_and_keys(tmp_path):
    with StravaSimulator(
        seed=7, activity_count=60, read_limit_15min=1000, overall_limit_15min=1000
    ) as simulator:
        _check_each_stream(simulator, tmp_path)


def _check_each_stream(simulator, tmp_path):
    budgets = {f"{n}_per_run": 500 for n in ("activity_details", "laps", "zones", "streams")}
    result = run_tap(tap_config_for(simulator, tmp_path, **budgets))
    activity_ids = {a["id"] for a in simulator.activities}
    details = result.records("activity_details")
    assert {d["id"] for d in details} == activity_ids
    assert all(d["activity_id"] == d["id"] and "calories" in d for d in details)
    assert "embed_token" not in details[0], "an embed token is never stored"
    assert "embed_token" not in (details[0].get("_unknown_fields") or {})
    laps = result.records("laps")
    assert laps
    assert len({lap["id"] for lap in laps}) == len(laps)
    assert {lap["activity_id"] for lap in laps} <= activity_ids
    zones = result.records("activity_zones")
    assert len({(z["activity_id"], z["type"]) for z in zones}) == len(zones)
    streams = result.records("activity_streams")
    assert {s["activity_id"] for s in streams} == activity_ids
    with_time = [s for s in streams if s.get("time")]
    assert with_time
    assert all(isinstance(v, int) for v in with_time[0]["time"])
    assert all(r["athlete_id"] == simulator.athlete_id for r in details + laps + zones + streams)


def test_a_detail_backfill_resumes_across_runs_without_fetching_twice(tmp_path):
    with StravaSimulator(seed=21, activity_count=70) as sim:
        config = tap_config_for(sim, tmp_path, activity_details_per_run=25)
        state: dict = {}
        seen: list[int] = []
        for _ in range(4):
            result = run_tap(config, state=state, streams=["activity_details"])
            batch = [d["id"] for d in result.records("activity_details")]
            assert len(batch) <= 25
            seen += batch
            state = result.final_state
        assert sorted(seen) == sorted(a["id"] for a in sim.activities)
        assert len(seen) == len(set(seen))
        calls = _detail_calls(sim)
        assert all(count == 1 for count in calls.values()), "no activity fetched twice"
        starts = [next(a["start_date"] for a in sim.activities if a["id"] == i) for i in seen]
        assert starts == sorted(starts), "oldest first"


def test_a_quota_stop_of_details_does_not_hold_back_activities(tmp_path):
    with StravaSimulator(seed=22, activity_count=60, read_limit_daily=45) as sim:
        config = tap_config_for(sim, tmp_path, activity_details_per_run=1000)
        first = run_tap(config)
        assert set(first.ids()) == {a["id"] for a in sim.activities}, "activities complete"
        done = {d["id"] for d in first.records("activity_details")}
        assert 0 < len(done) < 60
        state = first.final_state
        for _ in range(10):
            sim.reset_rate_limits()
            run = run_tap(config, state=state, streams=["activity_details"])
            done |= {d["id"] for d in run.records("activity_details")}
            state = run.final_state
            if len(done) == 60:
                break
        assert done == {a["id"] for a in sim.activities}
        assert 429 not in [r.status for r in sim.requests]


def test_equal_start_times_across_a_budget_stop_are_neither_skipped_nor_refetched(tmp_path):
    with StravaSimulator(seed=23, activity_count=12) as sim:
        twin_start = sorted(a["start_date"] for a in sim.activities)[4]
        extra = [sim.add_activity(start_date=twin_start) for _ in range(2)]
        config = tap_config_for(sim, tmp_path, laps_per_run=5, activity_details_per_run=5)
        state: dict = {}
        seen: list[int] = []
        for _ in range(5):
            result = run_tap(config, state=state, streams=["activity_details"])
            seen += [d["id"] for d in result.records("activity_details")]
            state = result.final_state
        assert sorted(seen) == sorted(a["id"] for a in sim.activities)
        assert {e["id"] for e in extra} <= set(seen)
        assert bookmark(state, "activity_details") == max(a["start_date"] for a in sim.activities)


def test_gear_is_fetched_once_per_run_from_profile_and_activities(simulator, tap_config):
    result = run_tap(tap_config)
    gear = result.records("gear")
    expected = {g["id"] for kind in ("bikes", "shoes") for g in simulator.athlete.get(kind) or []}
    expected |= {a["gear_id"] for a in simulator.activities if a.get("gear_id")}
    assert {g["id"] for g in gear} == expected
    calls = collections.Counter(
        r.path for r in simulator.requests if r.path.startswith("/api/v3/gear/")
    )
    assert all(count == 1 for count in calls.values())
    assert all(g.get("name") for g in gear)


@pytest.mark.parametrize("stream", DETAIL_STREAMS)
def test_detail_schemas_document_units(stream):
    from tap_strava.tap import TapStrava

    tap = TapStrava(config={"client_id": "x", "client_secret": "y", "refresh_token": "z"})
    properties = tap.streams[stream].schema["properties"]
    assert "activity_id" in properties
    assert "activity_start_date" in properties
    described = [p for p in properties.values() if p.get("description")]
    assert len(described) >= 3


@pytest.mark.e2e
def test_the_details_block_loads_postgres_without_touching_the_daily_state(meltano_project):
    meltano_project.run("tap-strava", "target-postgres")
    daily_state = meltano_project.state("dev:tap-strava-to-target-postgres")
    meltano_project.run("tap-strava-details", "target-postgres")
    details = meltano_project.rows("activity_details")
    # 150 details + 150 laps exceed the simulator's 100 reads per 15 minutes: the block
    # stops cleanly at the quota (laps wait for the next run), and nothing fails.
    assert 0 < len(details) <= 150
    assert len({d["id"] for d in details}) == len(details)
    assert meltano_project.state("dev:tap-strava-to-target-postgres") == daily_state
    assert meltano_project.state("dev:tap-strava-details-to-target-postgres")["singer_state"]


def test_everything_enabled_completes_over_several_quota_limited_runs(tmp_path):
    """Details, laps, zones, streams and gear for 40 activities with 50 reads a day."""
    with StravaSimulator(seed=24, activity_count=40, read_limit_daily=50) as sim:
        budgets = {f"{n}_per_run": 1000 for n in ("activity_details", "laps", "zones", "streams")}
        config = tap_config_for(sim, tmp_path, **budgets)
        state: dict = {}
        done: dict[str, set[int]] = {name: set() for name in DETAIL_STREAMS}
        gear: set[str] = set()
        runs = 0
        while runs < 20 and any(len(ids) < 40 for ids in done.values()):
            runs += 1
            result = run_tap(config, state=state)
            for name in DETAIL_STREAMS:
                done[name] |= {r["activity_id"] for r in result.records(name)}
            gear |= {g["id"] for g in result.records("gear")}
            state = result.final_state
            sim.reset_rate_limits()  # the next day
        activity_ids = {a["id"] for a in sim.activities}
        assert runs > 3, "the quota cut the work into several runs"
        # Every activity has its details and streams; laps and zones where Strava has any.
        assert done["activity_details"] == activity_ids
        assert done["activity_streams"] == activity_ids
        assert done["laps"] <= activity_ids
        assert done["activity_zones"] <= activity_ids
        newest = max(a["start_date"] for a in sim.activities)
        assert all(bookmark(state, name) == newest for name in DETAIL_STREAMS), "all walked"
        assert set(sim.gear) <= gear
        calls = _detail_calls(sim)
        assert all(count == 1 for count in calls.values()), "nothing fetched twice"
        assert 429 not in [r.status for r in sim.requests]
