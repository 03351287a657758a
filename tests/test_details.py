"""Per-activity streams (details, laps, zones, time-series) and gear, within budgets."""

from __future__ import annotations

import collections
import copy
import datetime
import typing as t

import pytest

from strava_simulator import StravaSimulator
from strava_simulator import details as sim_details
from tests.conftest import tap_config_for
from tests.support import bookmark, next_quota_window, run_tap


def parse(value: str) -> int:
    return int(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def sim_iso(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


DETAIL_STREAMS = ("activity_details", "laps", "activity_zones", "activity_streams")


def _served(sim: StravaSimulator, kind: str) -> set[tuple[int, t.Any]]:
    """What the simulator itself serves: (activity id, lap id or zone type) for every activity.

    The oracle is the simulator's own answer builder, not anything the tap computed.
    """
    build = {"laps": sim_details.laps, "zones": sim_details.zones}[kind]
    field = {"laps": "id", "zones": "type"}[kind]
    served = set()
    for summary in sim.activities:
        stored = sim.primary.store.get(summary["id"])
        served |= {(summary["id"], item[field]) for item in build(stored)}
    return served


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
    assert len({lap["id"] for lap in laps}) == len(laps)
    assert {(lap["activity_id"], lap["id"]) for lap in laps} == _served(simulator, "laps")
    zones = result.records("activity_zones")
    assert len({(z["activity_id"], z["type"]) for z in zones}) == len(zones)
    assert {(z["activity_id"], z["type"]) for z in zones} == _served(simulator, "zones")
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
            next_quota_window(sim, config)
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
        laps: set[tuple[int, t.Any]] = set()
        zones: set[tuple[int, t.Any]] = set()
        gear: set[str] = set()
        runs = 0
        while runs < 20 and any(len(ids) < 40 for ids in done.values()):
            runs += 1
            result = run_tap(config, state=state)
            for name in DETAIL_STREAMS:
                done[name] |= {r["activity_id"] for r in result.records(name)}
            laps |= {(r["activity_id"], r["id"]) for r in result.records("laps")}
            zones |= {(r["activity_id"], r["type"]) for r in result.records("activity_zones")}
            gear |= {g["id"] for g in result.records("gear")}
            state = result.final_state
            next_quota_window(sim, config)  # the next day
        activity_ids = {a["id"] for a in sim.activities}
        assert runs > 3, "the quota cut the work into several runs"
        # Every activity has its details and streams; laps and zones where Strava has any.
        assert done["activity_details"] == activity_ids
        assert done["activity_streams"] == activity_ids
        assert laps == _served(sim, "laps")
        assert zones == _served(sim, "zones")
        newest = max(a["start_date"] for a in sim.activities)
        assert all(bookmark(state, name) == newest for name in DETAIL_STREAMS), "all walked"
        assert set(sim.gear) <= gear
        calls = _detail_calls(sim)
        assert all(count == 1 for count in calls.values()), "nothing fetched twice"
        assert 429 not in [r.status for r in sim.requests]


def _details_config(sim: StravaSimulator, tmp_path, **overrides):
    return tap_config_for(sim, tmp_path, activity_details_per_run=1000, **overrides)


def test_a_late_upload_inside_the_look_back_gets_its_details(tmp_path):
    with StravaSimulator(seed=25, activity_count=40, read_limit_15min=1000) as sim:
        config = _details_config(sim, tmp_path)
        first = run_tap(config, streams=["activity_details"])
        mark = bookmark(first.final_state, "activity_details")
        # Uploaded today, started two days before the bookmark: behind the bookmark.
        late_start = sim_iso(parse(mark) - 2 * 86400)
        late = sim.add_activity(start_date=late_start)
        sim.clear_requests()
        second = run_tap(
            config, state=copy.deepcopy(first.final_state), streams=["activity_details"]
        )
        assert [d["id"] for d in second.records("activity_details")] == [late["id"]]
        assert set(_detail_calls(sim)) == {f"/api/v3/activities/{late['id']}"}


def test_an_edit_is_fetched_again_and_a_kudo_is_not(tmp_path):
    with StravaSimulator(seed=26, activity_count=40, read_limit_15min=1000) as sim:
        config = _details_config(sim, tmp_path)
        state = run_tap(config, streams=["activity_details"]).final_state
        recent = [a for a in sim.activities[:10] if a.get("gear_id")][:3]
        sim.update_activity(recent[0]["id"], name="Renamed after the fact")
        sim.update_activity(recent[1]["id"], kudos_count=recent[1]["kudos_count"] + 5)
        sim.update_activity(recent[2]["id"], gear_id=None)
        second = run_tap(config, state=state, streams=["activity_details"])
        by_id = {d["id"]: d for d in second.records("activity_details")}
        assert set(by_id) == {recent[0]["id"], recent[2]["id"]}
        assert by_id[recent[0]["id"]]["name"] == "Renamed after the fact"


def test_an_old_edit_reaches_the_details_with_the_weekly_full_pass(tmp_path):
    with StravaSimulator(seed=27, activity_count=60, read_limit_15min=1000) as sim:
        config = _details_config(sim, tmp_path)
        state = run_tap(config, streams=["activity_details"]).final_state
        oldest = sim.activities[-1]
        sim.update_activity(oldest["id"], name="Renamed years later")
        daily = run_tap(config, state=copy.deepcopy(state), streams=["activity_details"])
        assert daily.records("activity_details") == [], "older than the look-back: not yet"
        # A week later the full pass is due (its time is kept in the state).
        for partition in state["bookmarks"]["activity_details"]["partitions"]:
            partition["full_pass_at"] -= 7 * 86400
        weekly = run_tap(config, state=state, streams=["activity_details"])
        assert [d["name"] for d in weekly.records("activity_details")] == ["Renamed years later"]


def test_a_state_of_the_previous_version_refetches_nothing(tmp_path):
    """Upgrading: done_at_bookmark and a bookmark, no digests yet."""
    with StravaSimulator(seed=28, activity_count=30, read_limit_15min=1000) as sim:
        config = _details_config(sim, tmp_path)
        state = run_tap(config, streams=["activity_details"]).final_state
        for partition in state["bookmarks"]["activity_details"]["partitions"]:
            del partition["fetched"]
            mark = partition["replication_key_value"]
            partition["done_at_bookmark"] = [
                a["id"] for a in sim.activities if a["start_date"] == mark
            ]
        again = run_tap(config, state=state, streams=["activity_details"])
        assert again.records("activity_details") == []
