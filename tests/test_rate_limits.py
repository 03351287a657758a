"""Pacing by Strava's quota headers: never provoke a 429, wait or stop cleanly."""

from __future__ import annotations

import pytest

from tap_strava import ratelimit
from tap_strava.simulator import StravaSimulator
from tests.conftest import tap_config_for
from tests.support import bookmark, run_tap


@pytest.fixture
def waits(monkeypatch):
    """Record the tap's waits and really sleep them (the simulator's windows are short)."""
    seen: list[float] = []
    real_sleep = ratelimit.time.sleep

    def sleep(seconds: float) -> None:
        seen.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(ratelimit.time, "sleep", sleep)
    return seen


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
    with StravaSimulator(seed=5, activity_count=900, read_limit_15min=5, window_seconds=3) as sim:
        oldest = min(a["start_date"] for a in sim.activities)
        config = tap_config_for(
            sim,
            tmp_path,
            window_days=60,
            start_date=oldest,
            rate_limit_window_seconds=3,
            max_rate_limit_wait_seconds=0,
        )
        first = run_tap(config, streams=["activities"])
        assert first.error is None, "a spent quota is a clean stop, not a failure"
        assert 0 < len(first.ids()) < len(sim.activities)
        assert 429 not in _statuses(sim)
        saved = bookmark(first.final_state)
        assert saved == max(r["start_date"] for r in first.records("activities"))

        done = set(first.ids())
        state = first.final_state
        for _ in range(30):
            sim.reset_rate_limits()
            run = run_tap(config, state=state, streams=["activities"])
            done |= set(run.ids())
            state = run.final_state
            if done == {a["id"] for a in sim.activities}:
                break
        assert done == {a["id"] for a in sim.activities}


def _list_answers(sim: StravaSimulator) -> list[tuple[int, list[int]]]:
    """(``after``, ids) of every activity-list answer the tap received since the last clear."""
    return [
        (int(r["query"]["after"]), list(r["ids"]))
        for r in sim.requests
        if r["path"] == "/api/v3/athlete/activities" and r["ids"] is not None
    ]


def _resume_from(state: dict) -> int | None:
    partitions = state.get("bookmarks", {}).get("activities", {}).get("partitions", [])
    return next((int(p["resume_from"]) for p in partitions if p.get("resume_from")), None)


def assert_emitted_what_finished_windows_fetched(sim: StravaSimulator, run) -> list[int]:
    """A quota stop emits every activity of the windows it finished, each once, and none of
    the window it was reading (that one starts at ``resume_from`` and is read again, whole,
    by the next run). Returns the ids fetched but held back."""
    resume = _resume_from(run.final_state)
    assert resume is not None, "a stopped run says where to go on"
    answers = _list_answers(sim)
    finished = {i for after, ids in answers if after + 1 < resume for i in ids}
    held_back = [i for after, ids in answers if after + 1 >= resume for i in ids]
    assert len(run.ids()) == len(set(run.ids())), "an activity emitted twice"
    assert set(run.ids()) == finished, "emitted = fetched in the finished windows"
    assert not set(held_back) & set(run.ids())
    return held_back


def test_a_spent_daily_quota_stops_cleanly(tmp_path, waits):
    with StravaSimulator(seed=5, activity_count=60, read_limit_daily=3) as sim:
        config = tap_config_for(sim, tmp_path)
        result = run_tap(config)
        assert result.error is None
        assert 429 not in _statuses(sim)
        assert not waits, "no point waiting for a daily window"
        # Every stream the stop cut short says so: activities, then the ones skipped.
        stopped = {
            name
            for name, stream in result.final_state["bookmarks"].items()
            if _quota_stops({"bookmarks": {name: stream}})
        }
        assert {"activities", "athlete", "athlete_stats"} <= stopped
        assert all("daily quota is spent" in s for s in _quota_stops(result.final_state))
        assert_emitted_what_finished_windows_fetched(sim, result)


def test_quota_headers_are_parsed_from_real_answers():
    pair = ratelimit.WindowPair.parse("8,151")
    assert pair == ratelimit.WindowPair(8, 151)
    assert ratelimit.WindowPair.parse("garbage") is None
    assert ratelimit.WindowPair.parse(None) is None


def _quota_stops(state: dict) -> list[str]:
    return [
        part["quota_stop"]
        for stream in state.get("bookmarks", {}).values()
        for part in [stream, *stream.get("partitions", [])]
        if part.get("quota_stop")
    ]


def test_a_quota_stop_is_recorded_in_the_state_and_cleared_by_a_complete_run(tmp_path, waits):
    with StravaSimulator(seed=5, activity_count=60, read_limit_daily=4) as sim:
        oldest = min(a["start_date"] for a in sim.activities)
        config = tap_config_for(sim, tmp_path, window_days=30, start_date=oldest)
        run = run_tap(config, streams=["activities"])
        assert run.error is None
        stops = _quota_stops(run.final_state)
        assert len(stops) == 1, "the state says the run stopped early"
        assert "daily quota is spent" in stops[0]
        held_back = assert_emitted_what_finished_windows_fetched(sim, run)
        assert run.ids(), "the first window arrived before the stop"
        assert held_back, "the stop came in the middle of a window"
        emitted = list(run.ids())
        for _ in range(40):
            sim.reset_rate_limits()
            sim.clear_requests()
            run = run_tap(config, state=run.final_state, streams=["activities"])
            assert run.error is None
            emitted += run.ids()
            if not _quota_stops(run.final_state):
                break
            assert_emitted_what_finished_windows_fetched(sim, run)
        # None lost across the stops, none emitted twice (a stopped run resumes where it
        # stopped, not a look-back earlier), and the run that finished cleared the stop.
        assert sorted(emitted) == sorted(a["id"] for a in sim.activities)
        assert set(held_back) <= set(emitted)
        assert not _quota_stops(run.final_state)
        assert _resume_from(run.final_state) is None
        sim.reset_rate_limits()
        later = run_tap(config, state=run.final_state, streams=["activities"])
        assert later.error is None
        assert not _quota_stops(later.final_state), "a later complete run stays clear"


def test_a_wait_is_announced_at_once_and_repeated_until_it_ends(
    tmp_path, waits, monkeypatch, caplog
):
    """Issue 13.2: a 15-minute wait said one line, then nothing for 13 minutes."""
    monkeypatch.setattr(ratelimit, "WAIT_ANNOUNCE_SECONDS", 0.5)  # 60 s in real use
    with StravaSimulator(seed=5, activity_count=10, window_seconds=3) as sim:
        config = tap_config_for(
            sim, tmp_path, rate_limit_window_seconds=3, max_rate_limit_wait_seconds=10
        )
        sim.inject_fault(r"^/api/v3/athlete$", "rate_limit", count=1)
        with caplog.at_level("WARNING", logger="tap-strava.ratelimit"):
            result = run_tap(config, streams=["athlete"])
        assert result.records("athlete")
    lines = [r.getMessage() for r in caplog.records if r.name == "tap-strava.ratelimit"]
    assert lines[0].startswith(ratelimit.WAIT_MARKER + ": Strava answered 429")
    assert " UTC (the next 15-minute window)" in lines[0]
    repeats = [line for line in lines if "still waiting" in line]
    assert repeats, lines
    assert all(line.startswith(ratelimit.WAIT_MARKER) for line in repeats)
    assert max(waits) <= 0.5 + 1e-6, "it sleeps in announced steps, never in one go"


def test_a_429_before_any_partition_is_cleared_by_the_next_clean_run(tmp_path, waits):
    """Issue 13.1: another user of the app spent the quota before our first request.

    With no athlete partition yet the stop lands at stream level; the next run that gets
    past it must clear it there too, or every later run is "partial" forever.
    """
    with StravaSimulator(seed=5, activity_count=20) as sim:
        config = tap_config_for(sim, tmp_path)
        sim.inject_fault(r"^/api/v3/athlete$", "rate_limit", count=1)
        stopped = run_tap(config)
        assert stopped.error is None
        assert _quota_stops(stopped.final_state), "the stop is recorded"
        sim.clear_faults()
        sim.reset_rate_limits()
        clean = run_tap(config, state=stopped.final_state)
        assert len(clean.ids()) == len(sim.activities)
        assert not _quota_stops(clean.final_state), clean.final_state
        for stream in clean.final_state["bookmarks"].values():
            assert "quota_starved" not in stream
