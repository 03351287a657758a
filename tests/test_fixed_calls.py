"""Fixed calls only when they can have changed, and no request while the quota is spent.

The profile and the stats snapshot are read at most once per UTC day per athlete, gear
only when new or older than ``gear_max_age_days``; the shared facts file beside the token
store caches Strava's answers (at most 7 days) and the last quota reading for every
pipeline, while what each pipeline delivered is in its own state.
"""

from __future__ import annotations

import collections
import json
import time
import typing as t
from pathlib import Path

from strava_simulator import StravaSimulator
from tap_strava.dates import iso
from tap_strava.shared_facts import SharedFacts
from tests.conftest import tap_config_for
from tests.support import bookmark, run_tap

DAILY = ("activities", "athlete", "athlete_stats", "gear")


def _reads(sim: StravaSimulator) -> collections.Counter:
    """API reads by kind, from the simulator's own request log."""
    kinds: collections.Counter = collections.Counter()
    for record in sim.requests:
        if not record.path.startswith("/api/v3/"):
            continue
        path = record.path.removeprefix("/api/v3")
        kind = path.split("/")[1] if path.startswith(("/gear/", "/athletes/")) else path
        kinds[kind] += 1
    return kinds


def _facts(config: dict[str, t.Any]) -> Path:
    return Path(config["token_store_path"]).with_name("facts.json")


def _edit_facts(config: dict[str, t.Any], change: t.Callable[[dict], None]) -> None:
    path = _facts(config)
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _age(entry: dict, seconds: int) -> None:
    """Make a cached answer ``seconds`` older (as the clock would have)."""
    entry["fetched_at"] -= seconds


def test_a_second_run_the_same_day_with_nothing_new_costs_only_the_list(simulator, tap_config):
    first = run_tap(tap_config, streams=DAILY)
    assert first.records("athlete")
    assert first.records("athlete_stats")
    assert first.records("gear")
    simulator.clear_requests()

    second = run_tap(tap_config, state=first.final_state, streams=DAILY)
    assert _reads(simulator) == {"/athlete/activities": 2}, "the look-back page and its end"
    assert second.records("athlete") == []
    assert second.records("athlete_stats") == []
    assert second.records("gear") == []


def test_every_pipeline_of_one_token_store_gets_every_stream_from_its_first_run(
    simulator, tap_config
):
    """Issue 23: the facts file said "loaded today" for every pipeline of the store.

    Two Singer pipelines with their own (fresh) states and one token store, as
    ``tap-strava | target-x`` and ``meltano run tap-strava target-y`` are: the second gets
    the profile, stats and gear the first fetched, from the shared cache, without a read,
    carrying the time Strava answered.
    """
    first = run_tap(tap_config, streams=DAILY)
    simulator.clear_requests()
    second = run_tap(tap_config, streams=DAILY)  # another pipeline: its own, empty state
    for stream in ("athlete", "athlete_stats", "gear"):
        assert second.records(stream) == first.records(stream), stream
    assert len(second.records("athlete")) == 1
    assert len(second.records("athlete_stats")) == 1
    assert second.records("athlete")[0]["fetched_at"]
    reads = _reads(simulator)
    assert reads["/athlete"] == reads["athletes"] == reads["gear"] == 0, reads
    # A load that failed saves no state: the pipeline delivers again on its next run.
    third = run_tap(tap_config, state=first.final_state, streams=DAILY)
    assert third.records("athlete") == []
    assert run_tap(tap_config, streams=["athlete"]).records("athlete") == first.records("athlete")


def test_the_next_day_loads_profile_and_stats_again_and_gear_after_a_week(simulator, tap_config):
    state = run_tap(tap_config, streams=DAILY).final_state
    athlete = str(simulator.athlete_id)

    def yesterday(document: dict) -> None:
        entry = document["athletes"][athlete]
        _age(entry["profile"], 86400)
        _age(entry["stats"], 86400)

    _edit_facts(tap_config, yesterday)
    simulator.clear_requests()
    next_day = run_tap(tap_config, state=state, streams=DAILY)
    assert len(next_day.records("athlete")) == 1
    assert len(next_day.records("athlete_stats")) == 1
    reads = _reads(simulator)
    assert reads["/athlete"] == 1
    assert reads["athletes"] == 1
    assert reads["gear"] == 0, "gear fetched less than a week ago"

    one = sorted(json.loads(_facts(tap_config).read_text())["athletes"][athlete]["gear_cache"])[0]

    def a_week_ago(document: dict) -> None:
        _age(document["athletes"][athlete]["gear_cache"][one], 7 * 86400)

    _edit_facts(tap_config, a_week_ago)
    simulator.clear_requests()
    later = run_tap(tap_config, state=next_day.final_state, streams=DAILY)
    assert [g["id"] for g in later.records("gear")] == [one]
    assert _reads(simulator)["gear"] == 1


def test_the_cache_keeps_nothing_older_than_strava_allows(simulator, tap_config):
    """Strava's API agreement: cached data at most 7 days; the record says when it was read."""
    run_tap(tap_config, streams=("athlete", "gear"))
    athlete = str(simulator.athlete_id)

    def eight_days_ago(document: dict) -> None:
        _age(document["athletes"][athlete]["profile"], 8 * 86400)

    _edit_facts(tap_config, eight_days_ago)
    simulator.clear_requests()
    fresh = run_tap(tap_config, streams=("athlete_stats",))  # any write expires old entries
    assert len(fresh.records("athlete_stats")) == 1
    assert "profile" not in json.loads(_facts(tap_config).read_text())["athletes"][athlete]
    again = run_tap(tap_config, streams=("athlete",))
    assert _reads(simulator)["/athlete"] == 1, "an expired profile is read again"
    kept = json.loads(_facts(tap_config).read_text())["athletes"][athlete]["profile"]
    assert abs(kept["fetched_at"] - time.time()) < 120
    assert again.records("athlete")[0]["fetched_at"] == iso(kept["fetched_at"])
    # Personal data: forgetting the athlete leaves nothing of theirs in the cache.
    facts = SharedFacts(_facts(tap_config))
    assert facts.forget_athlete(simulator.athlete_id)
    assert athlete not in json.loads(_facts(tap_config).read_text()).get("athletes", {})
    assert not facts.forget_athlete(simulator.athlete_id), "nothing left to forget"


def test_a_gear_id_not_fetched_before_is_fetched_at_once(simulator, tap_config):
    state = run_tap(tap_config, streams=DAILY).final_state
    athlete = str(simulator.athlete_id)
    fetched = json.loads(_facts(tap_config).read_text())["athletes"][athlete]["gear_cache"]
    assert set(fetched) == set(simulator.gear) & {
        *(g["id"] for kind in ("bikes", "shoes") for g in simulator.athlete.get(kind) or []),
        *(a["gear_id"] for a in simulator.activities if a.get("gear_id")),
    }
    unseen = sorted(fetched)[0]

    def forget(document: dict) -> None:
        del document["athletes"][athlete]["gear_cache"][unseen]

    _edit_facts(tap_config, forget)
    simulator.clear_requests()
    result = run_tap(tap_config, state=state, streams=DAILY)
    assert [g["id"] for g in result.records("gear")] == [unseen]
    assert _reads(simulator)["gear"] == 1


def test_a_run_that_knows_the_quota_is_spent_asks_nothing(tmp_path):
    with StravaSimulator(seed=9, activity_count=1200, read_limit_15min=4) as sim:
        config = tap_config_for(sim, tmp_path, max_rate_limit_wait_seconds=0)
        first = run_tap(config, streams=("activities",))
        assert first.final_state["bookmarks"]["activities"]["partitions"][0]["quota_stop"]
        sim.clear_requests()
        second = run_tap(config, state=first.final_state, streams=("activities",))
        assert [r for r in sim.requests if r.path.startswith("/api/")] == [], "not even one"
        (partition,) = second.final_state["bookmarks"]["activities"]["partitions"]
        assert "quota" in partition["quota_stop"]
        assert second.error is None, "a clean stop"


def test_ten_athletes_with_nothing_new_fit_one_window(tmp_path):
    """The standard tier's ten athletes: a day with nothing new is ~2-4 reads each."""
    with StravaSimulator(seed=50, activity_count=30, read_limit_15min=1000) as sim:
        athletes = [sim.add_athlete(seed=60 + n, activity_count=30) for n in range(9)]
        config = tap_config_for(sim, tmp_path)
        config["athletes"] = [
            {"name": f"a{n}", "refresh_token": a.refresh_token} for n, a in enumerate(athletes)
        ]
        state = run_tap(config, streams=DAILY).final_state
        sim.clear_requests()
        run_tap(config, state=state, streams=DAILY)
        reads = sum(1 for r in sim.requests if r.path.startswith("/api/"))
        assert reads <= 4 * 10, reads
        assert 429 not in [r.status for r in sim.requests]


def test_a_bookmark_60_days_old_costs_the_look_back_page_and_its_end(tmp_path):
    """An athlete who paused training: nothing new costs 2 reads (4 on the day's first run).

    The look-back from a bookmark 60 days old to now is one open window: its page and the
    closing empty page, not a window of ``window_days`` and then the open one after it.
    """
    sixty_days_ago = time.time() - 60 * 86400
    with StravaSimulator(seed=12, activity_count=40, now=sixty_days_ago) as sim:
        config = tap_config_for(sim, tmp_path)
        first = run_tap(config, streams=DAILY)
        assert bookmark(first.final_state) == sim.activities[0]["start_date"]
        athlete = str(sim.athlete_id)

        def yesterday(document: dict) -> None:
            entry = document["athletes"][athlete]
            _age(entry["profile"], 86400)
            _age(entry["stats"], 86400)

        _edit_facts(config, yesterday)
        sim.clear_requests()
        day_first = run_tap(config, state=first.final_state, streams=DAILY)
        assert _reads(sim) == {"/athlete/activities": 2, "/athlete": 1, "athletes": 1}
        list_pages = [r for r in sim.requests if r.path == "/api/v3/athlete/activities"]
        assert all("before" not in r.query for r in list_pages), "one open window"
        assert day_first.ids(), "the look-back's activities, read again"

        sim.clear_requests()
        later = run_tap(config, state=day_first.final_state, streams=DAILY)
        assert _reads(sim) == {"/athlete/activities": 2}, "the look-back page and its end"
        assert later.ids() == day_first.ids()
