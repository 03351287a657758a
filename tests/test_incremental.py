"""Incremental syncs against the simulator: nothing skipped, nothing emitted twice."""

from __future__ import annotations

import datetime

from tests.support import bookmark, run_tap


def _utc(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_first_sync_emits_every_activity_exactly_once(simulator, tap_config):
    result = run_tap(tap_config)
    ids = result.ids()
    assert len(ids) == len(set(ids)), "an activity was emitted twice"
    assert set(ids) == {a["id"] for a in simulator.activities}
    records = result.records("activities")
    assert all(r["athlete_id"] == simulator.athlete_id for r in records)
    by_id = {a["id"]: a for a in simulator.activities}
    for record in records:
        source = by_id[record["id"]]
        assert record["name"] == source["name"]
        assert record["start_latlng"] == source["start_latlng"]
        assert record["distance"] == source["distance"]
    starts = [r["start_date"] for r in records]
    assert len(starts) != len(set(starts)), "the simulated account has equal start times"
    assert bookmark(result.final_state) == max(a["start_date"] for a in simulator.activities)


def test_the_first_sync_goes_newest_first_and_sets_the_bookmark_only_at_its_end(
    simulator, tap_config
):
    first = run_tap(tap_config)
    keys = [(_utc(r["start_date"]), r["id"]) for r in first.records("activities")]
    assert keys == sorted(keys, reverse=True)
    partitions = [
        p
        for state in first.states[:-1]
        for p in state.get("bookmarks", {}).get("activities", {}).get("partitions", [])
    ]
    assert partitions, "checkpointed page by page"
    backfilling = [p for p in partitions if "backfill" in p]
    assert len(backfilling) >= 2, "a checkpoint before each request"
    assert all("replication_key_value" not in p for p in backfilling), "no bookmark mid-way"
    assert "backfill" not in first.final_state["bookmarks"]["activities"]["partitions"][0]


def test_incremental_runs_emit_in_start_date_order_so_the_bookmark_is_safe(simulator, tap_config):
    state = run_tap(tap_config).final_state
    for days in (1, 2, 3):
        simulator.add_activity(
            start_date=_iso(_utc(bookmark(state)) - datetime.timedelta(days=days))
        )
    records = run_tap(tap_config, state=state).records("activities")
    keys = [(_utc(r["start_date"]), r["id"]) for r in records]
    assert len(keys) > 3
    assert keys == sorted(keys)


def test_second_run_brings_new_uploads_and_rereads_only_the_lookback_window(simulator, tap_config):
    first = run_tap(tap_config)
    state = first.final_state
    mark = _utc(bookmark(state))
    new = simulator.add_activity(start_date=_iso(mark + datetime.timedelta(hours=2)))

    second = run_tap(tap_config, state=state)
    ids = second.ids()
    assert new["id"] in ids
    assert len(ids) == len(set(ids))
    window_start = mark - datetime.timedelta(days=7)
    for record in second.records("activities"):
        assert _utc(record["start_date"]) >= window_start - datetime.timedelta(seconds=1)
    assert bookmark(second.final_state) == new["start_date"]


def test_late_upload_inside_the_lookback_window_is_caught(simulator, tap_config):
    state = run_tap(tap_config).final_state
    mark = _utc(bookmark(state))
    late = simulator.add_activity(start_date=_iso(mark - datetime.timedelta(days=3)))
    second = run_tap(tap_config, state=state)
    assert late["id"] in second.ids()
    # The bookmark never goes below what was already loaded.
    assert _utc(bookmark(second.final_state)) >= mark


def test_late_upload_older_than_the_lookback_window_is_left_to_the_reconcile(simulator, tap_config):
    """Documented limit: Strava has no 'updated since' filter; lookback_days bounds it."""
    state = run_tap(tap_config).final_state
    mark = _utc(bookmark(state))
    old = simulator.add_activity(start_date=_iso(mark - datetime.timedelta(days=30)))
    assert old["id"] not in run_tap(tap_config, state=state).ids()


def test_equal_start_time_is_caught_even_without_lookback(simulator, tmp_path):
    from tests.conftest import tap_config_for

    config = tap_config_for(simulator, tmp_path, lookback_days=0)
    state = run_tap(config).final_state
    newest = bookmark(state)
    twin = simulator.add_activity(start_date=newest)
    second = run_tap(config, state=state)
    assert twin["id"] in second.ids(), "after is exclusive: the tap must ask from 1 s earlier"


def test_an_edit_of_a_recent_activity_arrives_as_an_update(simulator, tap_config):
    state = run_tap(tap_config).final_state
    mark = _utc(bookmark(state))
    recent = next(
        a
        for a in sorted(simulator.activities, key=lambda a: a["start_date"], reverse=True)
        if _utc(a["start_date"]) > mark - datetime.timedelta(days=5)
    )
    simulator.update_activity(recent["id"], name='Renamed, with "quotes" \\ and é', gear_id=None)
    second = run_tap(tap_config, state=state)
    edited = [r for r in second.records("activities") if r["id"] == recent["id"]]
    assert len(edited) == 1
    assert edited[0]["name"] == 'Renamed, with "quotes" \\ and é'
    assert edited[0]["gear_id"] is None


def test_start_date_limits_the_first_sync(simulator, tmp_path):
    from tests.conftest import tap_config_for

    starts = sorted(a["start_date"] for a in simulator.activities)
    cutoff = starts[len(starts) // 2]
    config = tap_config_for(simulator, tmp_path, start_date=cutoff)
    ids = set(run_tap(config).ids())
    assert ids == {a["id"] for a in simulator.activities if a["start_date"] >= cutoff}


def test_an_interrupted_sync_resumes_where_its_last_state_stopped(tmp_path):
    """A failure mid-backfill keeps the state of the finished pages; the re-run completes."""
    from strava_simulator import StravaSimulator

    with StravaSimulator(seed=8, activity_count=900) as simulator:
        _interrupt_and_resume(simulator, tmp_path)


def _interrupt_and_resume(simulator, tmp_path):
    from tests.conftest import tap_config_for

    oldest = min(a["start_date"] for a in simulator.activities)
    config = tap_config_for(simulator, tmp_path, window_days=15, start_date=oldest)
    # Let two pages succeed, then make the list endpoint fail past the retries.
    simulator.inject_fault(r"/athlete/activities", "slow", count=2, delay=0.0)
    simulator.inject_fault(r"/athlete/activities", "status", count=5, status=503)
    first = run_tap(config, streams=["activities"], allow_failure=True)
    assert first.error is not None
    emitted_first = first.ids()
    assert len(emitted_first) == 399, "two pages (the second repeats one) before the failure"
    (partition,) = first.final_state["bookmarks"]["activities"]["partitions"]
    assert "replication_key_value" not in partition, "no bookmark before the history is read"
    # The cursor never runs ahead of what was emitted: it is the oldest start emitted.
    oldest_emitted = min(r["start_date"] for r in first.records("activities"))
    assert partition["backfill"]["before"] - 1 == _utc(oldest_emitted).timestamp()

    simulator.clear_faults()
    second = run_tap(config, state=first.final_state, streams=["activities"])
    assert set(emitted_first) | set(second.ids()) == {a["id"] for a in simulator.activities}
    # At most the equal start times at the cursor are read twice.
    assert len(set(emitted_first) & set(second.ids())) <= 2
    assert bookmark(second.final_state) == max(a["start_date"] for a in simulator.activities)


def test_athlete_and_stats_streams(simulator, tap_config):
    result = run_tap(tap_config)
    (athlete,) = result.records("athlete")
    assert athlete["id"] == simulator.athlete_id == athlete["athlete_id"]
    (stats,) = result.records("athlete_stats")
    assert stats["athlete_id"] == simulator.athlete_id
    assert stats["snapshot_date"] == datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    assert isinstance(stats["all_run_totals"]["count"], int)


def test_the_state_keeps_digests_that_tell_new_updated_and_unchanged_apart(simulator, tap_config):
    from tap_strava.digest import DIGESTS_KEY, classify
    from tap_strava.schemas import ACTIVITY_SCHEMA

    state = run_tap(tap_config).final_state
    mark = _utc(bookmark(state))
    recent = [
        a for a in simulator.activities if _utc(a["start_date"]) > mark - datetime.timedelta(days=6)
    ]
    assert len(recent) >= 2
    edited = recent[0]
    simulator.update_activity(edited["id"], name="Edited name")
    new = simulator.add_activity(start_date=_iso(mark + datetime.timedelta(minutes=30)))
    late = simulator.add_activity(start_date=_iso(mark - datetime.timedelta(days=2)))

    second = run_tap(tap_config, state=state)
    first_state = second.states[0]  # the input state, as a mapper downstream sees it first
    partition = first_state["bookmarks"]["activities"]["partitions"][0]
    previous = partition[DIGESTS_KEY]
    kinds = {
        r["id"]: classify(r, ACTIVITY_SCHEMA["properties"], previous)
        for r in second.records("activities")
    }
    assert {i for i, k in kinds.items() if k == "new"} == {new["id"], late["id"]}
    assert {i for i, k in kinds.items() if k == "updated"} == {edited["id"]}
    assert sum(1 for k in kinds.values() if k == "unchanged") >= len(recent) - 1
    # Only the look-back window's digests are kept.
    kept = second.final_state["bookmarks"]["activities"]["partitions"][0][DIGESTS_KEY]
    assert len(kept) < len(simulator.activities)


def test_a_date_range_backfill_with_its_own_state_leaves_the_daily_bookmark_alone(
    simulator, tap_config
):
    daily = run_tap(tap_config).final_state
    starts = sorted(a["start_date"] for a in simulator.activities)
    first, last = starts[10], starts[40]
    backfill = run_tap({**tap_config, "start_date": first, "end_date": last}, state={})
    ids = set(backfill.ids())
    in_range = {a["id"] for a in simulator.activities if first <= a["start_date"] <= last}
    assert ids == in_range
    assert bookmark(backfill.final_state) == last
    assert bookmark(daily) == max(starts)


def test_a_date_range_backfill_run_on_the_daily_state_reads_the_range_and_keeps_the_bookmark(
    simulator, tap_config
):
    """Forgetting --state-id-suffix must neither skip the range nor move the bookmark back."""
    daily = run_tap(tap_config).final_state
    starts = sorted(a["start_date"] for a in simulator.activities)
    first, last = starts[10], starts[40]
    backfill = run_tap({**tap_config, "start_date": first, "end_date": last}, state=daily)
    in_range = {a["id"] for a in simulator.activities if first <= a["start_date"] <= last}
    assert set(backfill.ids()) == in_range
    assert bookmark(backfill.final_state) == max(starts), "the daily bookmark stays"
    new = simulator.add_activity()
    again = run_tap(tap_config, state=backfill.final_state)
    assert new["id"] in again.ids()
    assert len(again.ids()) < 40, "only the look-back, not the history again"
