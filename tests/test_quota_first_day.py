"""Quota stops and waits on the first real day (issue 13): no "partial" forever, no silence.

Kept apart from test_rate_limits.py, which the lead engineer is reworking.
"""

from __future__ import annotations

from strava_simulator import StravaSimulator
from tap_strava import ratelimit
from tests.conftest import tap_config_for
from tests.support import next_quota_window, quota_stops, run_tap


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
        assert quota_stops(stopped.final_state), "the stop is recorded"
        sim.clear_faults()
        next_quota_window(sim, config)
        clean = run_tap(config, state=stopped.final_state)
        assert len(clean.ids()) == len(sim.activities)
        assert not quota_stops(clean.final_state), clean.final_state
        for stream in clean.final_state["bookmarks"].values():
            assert "quota_starved" not in stream


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
