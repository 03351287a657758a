"""Pacing by Strava's quota headers: never provoke a 429, wait or stop cleanly."""

from __future__ import annotations

import datetime

from strava_simulator import StravaSimulator
from tap_strava import ratelimit
from tests.conftest import tap_config_for
from tests.support import bookmark, next_quota_window, quota_stops, run_tap


def _statuses(sim: StravaSimulator) -> list[int | None]:
    return [r["status"] for r in sim.requests if r["path"].startswith("/api/v3")]


def test_a_small_quota_is_paced_without_a_single_429(tmp_path, waits):
    with StravaSimulator(seed=5, activity_count=120, read_limit_15min=4, window_seconds=2) as sim:
        oldest = min(a["start_date"] for a in sim.activities)
        config = tap_config_for(
            sim, tmp_path, window_days=60, start_date=oldest, rate_limit_window_seconds=2
        )
        result = run_tap(config)
        assert set(result.ids()) == {a["id"] for a in sim.activities}
        assert 429 not in _statuses(sim)
        assert waits, "the tap waited for the next window"
        assert all(w <= 3.1 for w in waits)


def test_a_429_from_other_users_waits_for_the_next_window(tmp_path, waits):
    with StravaSimulator(seed=5, activity_count=60, window_seconds=2) as sim:
        config = tap_config_for(sim, tmp_path, rate_limit_window_seconds=2)
        sim.inject_fault(r"/athlete/activities", "rate_limit", count=1)
        result = run_tap(config)
        assert set(result.ids()) == {a["id"] for a in sim.activities}
        assert _statuses(sim).count(429) == 1, "no hammering after a 429"


def test_a_window_too_far_away_stops_cleanly_and_the_next_run_resumes(tmp_path, waits):
    # A whole 15-minute window: the next one is "too far away" however slow the machine
    # (a window of a few seconds could roll over between two requests of a loaded run).
    with StravaSimulator(seed=5, activity_count=900, read_limit_15min=3) as sim:
        oldest = min(a["start_date"] for a in sim.activities)
        config = tap_config_for(
            sim,
            tmp_path,
            window_days=60,
            start_date=oldest,
            max_rate_limit_wait_seconds=0,
        )
        first = run_tap(config, streams=["activities"])
        assert first.error is None, "a spent quota is a clean stop, not a failure"
        assert 0 < len(first.ids()) < len(sim.activities)
        assert 429 not in _statuses(sim)
        # Newest first: the cursor is the oldest start emitted; no bookmark until the end.
        (partition,) = first.final_state["bookmarks"]["activities"]["partitions"]
        assert bookmark(first.final_state) is None
        oldest_emitted = min(r["start_date"] for r in first.records("activities"))
        assert partition["backfill"]["before"] == _epoch(oldest_emitted) + 1

        done = set(first.ids())
        state = first.final_state
        for _ in range(30):
            next_quota_window(sim, config)
            run = run_tap(config, state=state, streams=["activities"])
            done |= set(run.ids())
            state = run.final_state
            if done == {a["id"] for a in sim.activities}:
                break
        assert done == {a["id"] for a in sim.activities}


def _epoch(value: str) -> int:
    return int(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def _list_answers(sim: StravaSimulator) -> list[tuple[dict[str, str], list[int]]]:
    """(query, ids) of every activity-list answer the tap received since the last clear."""
    return [
        (dict(r["query"]), list(r["ids"]))
        for r in sim.requests
        if r["path"] == "/api/v3/athlete/activities" and r["ids"] is not None
    ]


def _partition(state: dict) -> dict:
    partitions = state.get("bookmarks", {}).get("activities", {}).get("partitions", [])
    assert len(partitions) == 1, partitions
    return dict(partitions[0])


def assert_emitted_what_was_fetched_before_the_stop(sim: StravaSimulator, run) -> set[int]:
    """A quota stop emits what it fetched, each once, except what the next run reads again.

    Exactly which depends on how the history is read. Newest first (a ``backfill`` cursor
    in the state): every page is emitted as it arrives, so all that was fetched. In time
    windows (``resume_from``): the windows finished before the stop, whole, and none of
    the window being read (it starts at ``resume_from`` and is read again). Returns the ids
    fetched but held back for the next run.
    """
    answers = _list_answers(sim)
    fetched = {i for _, ids in answers for i in ids}
    emitted = run.ids()
    assert len(emitted) == len(set(emitted)), "an activity emitted twice"
    partition = _partition(run.final_state)
    if partition.get("backfill") is not None:
        assert set(emitted) == fetched, "every page fetched before the stop is emitted"
        return set()
    resume = partition.get("resume_from")
    assert resume is not None, "a stopped run says where to go on"
    finished = {i for query, ids in answers if int(query["after"]) + 1 < resume for i in ids}
    assert set(emitted) == finished, "emitted = fetched in the finished windows"
    return fetched - finished


def test_a_spent_daily_quota_stops_cleanly(tmp_path, waits):
    with StravaSimulator(seed=5, activity_count=450, read_limit_daily=3) as sim:
        config = tap_config_for(sim, tmp_path)
        result = run_tap(config)
        assert result.error is None
        assert 429 not in _statuses(sim)
        assert not waits, "no point waiting for a daily window"
        # Every stream the stop cut short says so, activities first.
        stopped = {
            name
            for name, stream in result.final_state["bookmarks"].items()
            if quota_stops({"bookmarks": {name: stream}})
        }
        assert "activities" in stopped
        assert all("daily quota is spent" in s for s in quota_stops(result.final_state))
        assert_emitted_what_was_fetched_before_the_stop(sim, result)


def test_quota_headers_are_parsed_from_real_answers():
    pair = ratelimit.WindowPair.parse("8,151")
    assert pair == ratelimit.WindowPair(8, 151)
    assert ratelimit.WindowPair.parse("garbage") is None
    assert ratelimit.WindowPair.parse(None) is None


def test_a_quota_stop_is_recorded_in_the_state_and_cleared_by_a_complete_run(tmp_path, waits):
    with StravaSimulator(seed=5, activity_count=450, read_limit_daily=3) as sim:
        oldest = min(a["start_date"] for a in sim.activities)
        config = tap_config_for(sim, tmp_path, window_days=30, start_date=oldest)
        run = run_tap(config, streams=["activities"])
        assert run.error is None
        stops = quota_stops(run.final_state)
        assert len(stops) == 1, "the state says the run stopped early"
        assert "daily quota is spent" in stops[0]
        held_back = assert_emitted_what_was_fetched_before_the_stop(sim, run)
        assert run.ids(), "some activities arrived before the stop"
        emitted = list(run.ids())
        for _ in range(40):
            next_quota_window(sim, config)
            sim.clear_requests()
            run = run_tap(config, state=run.final_state, streams=["activities"])
            assert run.error is None
            emitted += run.ids()
            if not quota_stops(run.final_state):
                break
            held_back |= assert_emitted_what_was_fetched_before_the_stop(sim, run)
        # None lost across the stops, none emitted twice (a stopped run goes on where it
        # stopped, not a look-back earlier), and the run that finished cleared the stop.
        assert sorted(emitted) == sorted(a["id"] for a in sim.activities)
        assert held_back <= set(emitted)
        assert not quota_stops(run.final_state)
        partition = _partition(run.final_state)
        assert partition.get("resume_from") is None
        assert partition.get("backfill") is None
        next_quota_window(sim, config)
        later = run_tap(config, state=run.final_state, streams=["activities"])
        assert later.error is None
        assert not quota_stops(later.final_state), "a later complete run stays clear"


def test_four_reads_per_window_finish_a_2010_activity_history_in_few_runs(tmp_path):
    """Issue 14's bar: every run makes progress, at most 14 runs, no 429, exact."""
    with StravaSimulator(seed=14, activity_count=2010, read_limit_15min=4) as sim:
        config = tap_config_for(sim, tmp_path, max_rate_limit_wait_seconds=0)
        state: dict = {}
        seen: list[int] = []
        runs = 0
        while runs < 14:
            runs += 1
            result = run_tap(config, state=state, streams=("activities",))
            seen += result.ids()
            state = result.final_state
            if bookmark(state):
                break  # the closing (empty) answer may be all the last run reads
            assert result.ids(), f"run {runs} made no progress"
            next_quota_window(sim, config)
        assert bookmark(state), f"not complete after {runs} runs"
        assert set(seen) == {a["id"] for a in sim.activities}
        assert len(seen) - len(set(seen)) <= runs, "at most the cursor's second read twice"
        assert 429 not in _statuses(sim)
