"""Several athletes of one app: own tokens and state partitions, failures isolated, quota shared."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

import pytest

from strava_simulator import StravaSimulator
from strava_simulator.athlete import SimulatedAthlete
from tap_strava.errors import StravaUserError
from tests.conftest import tap_config_for
from tests.support import next_quota_window, run_tap

CORE_STREAMS = ("activities", "athlete")


@pytest.fixture
def two_athletes() -> t.Iterator[tuple[StravaSimulator, SimulatedAthlete, SimulatedAthlete]]:
    """One app, two athletes (150 and 60 activities); quota high enough for both."""
    with StravaSimulator(seed=7, activity_count=150, read_limit_15min=600) as sim:
        bob = sim.add_athlete(seed=99, activity_count=60)
        yield sim, sim.primary, bob


def athletes_config(sim: StravaSimulator, tmp_path: t.Any, **overrides: t.Any) -> dict:
    """``athletes`` instead of ``refresh_token``: ann is the primary athlete, bob the second."""
    config = tap_config_for(sim, tmp_path, **overrides)
    del config["refresh_token"]
    config["athletes"] = [
        {"name": "ann", "refresh_token": sim.primary.refresh_token},
        {"name": "bob", "refresh_token": sim.athletes[1].refresh_token},
    ]
    return config


def partitions(state: dict, stream: str = "activities") -> dict[int, dict]:
    """A stream's state partitions by athlete id."""
    found = state["bookmarks"][stream].get("partitions", [])
    return {p["context"]["athlete_id"]: p for p in found}


def ids_by_athlete(records: list[dict]) -> dict[int, set[int]]:
    """Emitted activity ids grouped by the athlete_id each record carries."""
    grouped: dict[int, set[int]] = {}
    for record in records:
        grouped.setdefault(record["athlete_id"], set()).add(record["id"])
    return grouped


def test_two_athletes_each_get_their_own_activities_and_state(two_athletes, tmp_path):
    sim, ann, bob = two_athletes
    assert not {a["id"] for a in ann.activities} & {a["id"] for a in bob.activities}

    result = run_tap(athletes_config(sim, tmp_path), streams=CORE_STREAMS)

    assert ids_by_athlete(result.records("activities")) == {
        ann.athlete_id: {a["id"] for a in ann.activities},
        bob.athlete_id: {a["id"] for a in bob.activities},
    }
    assert {r["athlete_id"] for r in result.records("athlete")} == {
        ann.athlete_id,
        bob.athlete_id,
    }
    state = result.final_state
    bookmarks = {k: p["replication_key_value"] for k, p in partitions(state).items()}
    assert bookmarks == {
        ann.athlete_id: max(a["start_date"] for a in ann.activities),
        bob.athlete_id: max(a["start_date"] for a in bob.activities),
    }
    assert "skipped_athletes" not in state["bookmarks"]["activities"]

    # Each athlete's token chain has its own entry in the one token store file.
    store = json.loads((tmp_path / "tokens" / "tokens.json").read_text())
    assert len(store["tokens"]) == 2

    # A new activity of bob's moves bob's bookmark only.
    new = bob.add_activity(name="Bob's new ride")
    again = run_tap(athletes_config(sim, tmp_path), state=state, streams=CORE_STREAMS)
    assert new["id"] in ids_by_athlete(again.records("activities"))[bob.athlete_id]
    after = partitions(again.final_state)
    assert after[bob.athlete_id]["replication_key_value"] == new["start_date"]
    assert after[ann.athlete_id]["replication_key_value"] == bookmarks[ann.athlete_id]


def test_a_revoked_athlete_is_skipped_and_reported_while_the_other_syncs(two_athletes, tmp_path):
    sim, ann, bob = two_athletes
    config = athletes_config(sim, tmp_path)
    bob.revoke_tokens()

    result = run_tap(config, streams=CORE_STREAMS)

    assert ids_by_athlete(result.records("activities")) == {
        ann.athlete_id: {a["id"] for a in ann.activities}
    }
    state = result.final_state
    assert set(partitions(state)) == {ann.athlete_id}
    skipped = state["bookmarks"]["activities"]["skipped_athletes"]
    assert list(skipped) == ["bob"]
    assert "tap-strava-auth" in skipped["bob"]
    secrets = [config["client_secret"], *(a["refresh_token"] for a in config["athletes"])]
    assert not any(secret in json.dumps(result.messages) for secret in secrets)

    # Bob authorizes again; his new token is configured: he catches up, the report goes.
    config["athletes"][1]["refresh_token"] = bob.issue_refresh_token()
    again = run_tap(config, state=state, streams=CORE_STREAMS)
    assert ids_by_athlete(again.records("activities"))[bob.athlete_id] == {
        a["id"] for a in bob.activities
    }
    assert "skipped_athletes" not in again.final_state["bookmarks"]["activities"]
    assert set(partitions(again.final_state)) == {ann.athlete_id, bob.athlete_id}


def test_a_failure_inside_one_athletes_partition_keeps_the_others(tmp_path):
    """Bob's profile is read, then his token dies before his activities are listed."""
    profiles_read: list[str] = []
    holder: dict[str, SimulatedAthlete] = {}

    def revoke_bob_after_both_profiles(record: t.Any) -> None:
        if record.path.endswith("/athlete"):
            profiles_read.append(record.path)
            if len(profiles_read) == 2:
                holder["bob"].revoke_tokens()

    with StravaSimulator(
        seed=7, activity_count=150, read_limit_15min=600, request_log=revoke_bob_after_both_profiles
    ) as sim:
        holder["bob"] = sim.add_athlete(seed=99, activity_count=60)
        result = run_tap(athletes_config(sim, tmp_path), streams=CORE_STREAMS)

    assert len(profiles_read) == 2
    # Skipped for the rest of the run: his profile is not emitted either.
    assert {r["athlete_id"] for r in result.records("athlete")} == {sim.primary.athlete_id}
    assert ids_by_athlete(result.records("activities")) == {
        sim.primary.athlete_id: {a["id"] for a in sim.primary.activities}
    }
    skipped = result.final_state["bookmarks"]["activities"]["skipped_athletes"]
    assert "Strava rejected the refresh token" in skipped["bob"]
    assert "tap-strava-auth --athlete bob" in skipped["bob"]


def test_every_athlete_failing_fails_the_run_in_one_line(two_athletes, tmp_path):
    sim, ann, bob = two_athletes
    config = athletes_config(sim, tmp_path)
    ann.revoke_tokens()
    bob.revoke_tokens()
    result = run_tap(config, streams=CORE_STREAMS, allow_failure=True)
    assert isinstance(result.error, StravaUserError)
    message = str(result.error)
    assert message.startswith("no athlete could be synced: ann: ")
    assert "bob: " in message
    assert "\n" not in message
    assert result.records("activities") == []


def test_the_per_run_budget_is_shared_across_athletes(two_athletes, tmp_path):
    sim, ann, bob = two_athletes
    config = athletes_config(sim, tmp_path, activity_details_per_run=10)
    result = run_tap(config, streams=("activity_details",))
    per_athlete = ids_by_athlete(
        [{"athlete_id": r["athlete_id"], "id": r["id"]} for r in result.records("activity_details")]
    )
    assert {k: len(v) for k, v in per_athlete.items()} == {ann.athlete_id: 5, bob.athlete_id: 5}
    # Oldest first, for each athlete.
    for athlete in (ann, bob):
        oldest = sorted(athlete.activities, key=lambda a: (a["start_date"], a["id"]))[:5]
        assert per_athlete[athlete.athlete_id] == {a["id"] for a in oldest}


def test_the_athlete_the_quota_left_out_goes_first_next_run(tmp_path):
    # 6 reads per window: two profiles, then ann's first sync is cut by the quota and
    # bob gets nothing. Next run bob goes first; over the runs both complete exactly.
    with StravaSimulator(seed=7, activity_count=1500, read_limit_15min=6) as sim:
        bob = sim.add_athlete(seed=99, activity_count=40)
        config = athletes_config(
            sim, tmp_path, max_rate_limit_wait_seconds=0, start_date="2020-01-01T00:00:00Z"
        )
        first = run_tap(config, streams=("activities",))
        state = first.final_state
        ann_state, bob_state = (partitions(state)[a.athlete_id] for a in (sim.primary, bob))
        assert ann_state["quota_stop"]
        assert "quota_starved" not in ann_state, "ann was served, then cut short"
        assert bob_state["quota_starved"] is True

        emitted = list(first.records("activities"))
        for run in range(30):
            next_quota_window(sim, config)
            result = run_tap(config, state=state, streams=("activities",))
            if run == 0:
                assert result.records("activities")[0]["athlete_id"] == bob.athlete_id
            emitted += result.records("activities")
            state = result.final_state
            if not any(p.get("quota_stop") for p in partitions(state).values()):
                break
        assert ids_by_athlete(emitted) == {
            sim.primary.athlete_id: {
                a["id"] for a in sim.primary.activities if a["start_date"] >= "2020-01-01"
            },
            bob.athlete_id: {a["id"] for a in bob.activities if a["start_date"] >= "2020-01-01"},
        }


def test_single_athlete_and_athletes_list_together(two_athletes, tmp_path):
    """refresh_token and athletes add up; the same token twice is a configuration error."""
    sim, ann, bob = two_athletes
    config = tap_config_for(sim, tmp_path)
    config["athletes"] = [{"refresh_token": bob.refresh_token}]
    result = run_tap(config, streams=CORE_STREAMS)
    assert set(ids_by_athlete(result.records("activities"))) == {ann.athlete_id, bob.athlete_id}

    same = config["athletes"][0]["refresh_token"]
    config["athletes"].append({"name": "again", "refresh_token": same})
    with pytest.raises(StravaUserError, match="the same refresh token is configured twice"):
        run_tap(config)


def test_an_error_that_is_not_about_one_athlete_fails_the_run_in_one_line(two_athletes, tmp_path):
    """A 400 (or a bug) is not "athlete skipped": the run fails, exit 1, one line."""
    sim, _ann, _bob = two_athletes
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(athletes_config(sim, tmp_path)))
    sim.inject_fault("/athlete/activities", "status", count=1, status=400)
    proc = subprocess.run(
        [sys.executable, "-m", "tap_strava.tap", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tap-strava: error: Strava refused /api/v3/athlete/activities")
    assert "Traceback" not in proc.stderr
    assert "skipped_athletes" not in proc.stdout


def test_persistent_5xx_for_one_athlete_skips_that_athlete_only(two_athletes, tmp_path):
    sim, _ann, bob = two_athletes
    sim.inject_fault("/athlete/activities", "status", count=5, status=503)
    result = run_tap(athletes_config(sim, tmp_path), streams=CORE_STREAMS)
    skipped = result.final_state["bookmarks"]["activities"]["skipped_athletes"]
    assert set(skipped) == {"ann"}
    assert "503" in skipped["ann"] or "server error" in skipped["ann"]
    assert ids_by_athlete(result.records("activities"))[bob.athlete_id] == {
        a["id"] for a in bob.activities
    }


def test_a_bug_is_one_line_naming_it_not_a_traceback():
    from tap_strava.tap import describe_bug

    try:
        {}["missing"]
    except KeyError as exc:
        line = describe_bug(exc)
    assert line.startswith("unexpected KeyError: 'missing'")
    assert "a bug in tap-strava" in line
    assert "\n" not in line
