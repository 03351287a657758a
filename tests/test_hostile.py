"""Strava's worst days: the hostile simulator, and the tap syncing through them.

The simulator with ``hostile=True`` answers ``after`` queries unsorted, cuts short pages
that are not the last, holds an activity dated 2031 (a watch clock years ahead) and one
dated 1999 (a GPS week rollover), sends keys no schema declares (top level, in ``map``
and in ``athlete``) and gets two uploads while a client pages through the list.
"""

from __future__ import annotations

import copy
import datetime
import json
import urllib.request

import pytest

from strava_simulator import StravaSimulator
from strava_simulator.athlete import HOSTILE_FUTURE, HOSTILE_ROLLOVER
from tests.conftest import tap_config_for
from tests.support import bookmark, run_tap


@pytest.fixture
def hostile():
    with StravaSimulator(
        seed=31,
        activity_count=450,
        hostile=True,
        read_limit_15min=1000,
        overall_limit_15min=2000,
    ) as sim:
        yield sim


def _list(sim: StravaSimulator, **query: int) -> list[dict]:
    token = sim.issue_access_token()
    url = f"{sim.api_url}/athlete/activities?" + "&".join(f"{k}={v}" for k, v in query.items())
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _utc(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_the_hostile_simulator_is_hostile():
    with StravaSimulator(seed=32, activity_count=450, hostile=True) as sim:
        starts = {a["start_date"] for a in sim.activities}
        assert HOSTILE_FUTURE in starts
        assert HOSTILE_ROLLOVER in starts
        first = sim.activities[1]
        assert "brand_new_metric" in first
        assert "surface_type" in first["map"]
        assert "badge_type_id" in first["athlete"]

        pages = [_list(sim, after=0, per_page=100, page=n) for n in range(1, 8)]
        sizes = [len(p) for p in pages]
        assert any(0 < size < 100 for size in sizes[:-1] if size), sizes
        assert sizes[-1] == 0
        short = sizes.index(next(size for size in sizes if 0 < size < 100))
        assert sizes[short + 1] > 0, "a short page that is not the last"
        listed = [item["id"] for page in pages for item in page]
        keys = [(item["start_date"], item["id"]) for page in pages for item in page]
        assert keys != sorted(keys), "answers to `after` are not sorted"
        assert len(listed) > len(set(listed)), "an upload while listing repeats an item"


def test_a_hostile_history_syncs_completely_and_keeps_every_field(hostile, tmp_path, caplog):
    config = tap_config_for(hostile, tmp_path)
    with caplog.at_level("WARNING"):
        first = run_tap(config)
    now = datetime.datetime.now(datetime.timezone.utc)
    # The bookmark never passes the run's start: a future activity must not end syncing.
    assert _utc(bookmark(first.final_state)) <= now
    second = run_tap(config, state=copy.deepcopy(first.final_state))
    assert _utc(bookmark(second.final_state)) <= now
    seen = first.ids() + second.ids()
    expected = {a["id"] for a in hostile.activities}
    assert set(seen) == expected, "nothing lost, the uploads while listing included"
    assert len(first.ids()) == len(set(first.ids())), "no duplicate within a run"

    by_id = {r["id"]: r for r in first.records("activities")}
    future = next(a for a in hostile.activities if a["start_date"] == HOSTILE_FUTURE)
    rollover = next(a for a in hostile.activities if a["start_date"] == HOSTILE_ROLLOVER)
    assert future["id"] in by_id
    assert rollover["id"] in by_id
    unknown = by_id[rollover["id"]]["_unknown_fields"]
    assert set(unknown) == {"brand_new_metric", "map.surface_type", "athlete.badge_type_id"}
    assert "surface_type" not in by_id[rollover["id"]]["map"]
    assert any(str(future["id"]) in r.getMessage() for r in caplog.records), "one warning"

    assert future["id"] not in second.ids(), "an unchanged future activity is not re-sent"

    new = hostile.add_activity()
    third = run_tap(config, state=second.final_state)
    assert new["id"] in third.ids(), "a new upload after the future activity arrives"


def test_a_future_activity_that_changes_is_sent_again(hostile, tmp_path):
    config = tap_config_for(hostile, tmp_path)
    state = run_tap(config).final_state
    future = next(a for a in hostile.activities if a["start_date"] == HOSTILE_FUTURE)
    hostile.update_activity(future["id"], name="Renamed in the future")
    again = run_tap(config, state=state)
    (record,) = [r for r in again.records("activities") if r["id"] == future["id"]]
    assert record["name"] == "Renamed in the future"


def test_a_bookmark_left_in_the_future_by_an_earlier_version_heals(hostile, tmp_path):
    config = tap_config_for(hostile, tmp_path)
    state = run_tap(config).final_state
    partition = state["bookmarks"]["activities"]["partitions"][0]
    real = partition["replication_key_value"]
    partition["replication_key_value"] = HOSTILE_FUTURE  # what the old tap wrote
    new = hostile.add_activity()
    healed = run_tap(config, state=state)
    assert new["id"] in healed.ids()
    assert bookmark(healed.final_state) >= real
    assert _utc(bookmark(healed.final_state)) <= datetime.datetime.now(datetime.timezone.utc)


def test_per_activity_streams_clamp_their_bookmark_and_fetch_each_once(hostile, tmp_path):
    config = tap_config_for(hostile, tmp_path, start_date="2026-06-01T00:00:00Z")
    config["activity_details_per_run"] = 1000
    first = run_tap(config, streams=["activity_details"])
    future = next(a for a in hostile.activities if a["start_date"] == HOSTILE_FUTURE)
    assert future["id"] in {d["id"] for d in first.records("activity_details")}
    mark = bookmark(first.final_state, "activity_details")
    assert _utc(mark) <= datetime.datetime.now(datetime.timezone.utc)
    second = run_tap(config, state=first.final_state, streams=["activity_details"])
    assert future["id"] not in {d["id"] for d in second.records("activity_details")}
