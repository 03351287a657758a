"""Reconcile: a full-history pass that lets the target flag activities deleted on Strava."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from strava_simulator import StravaSimulator
from tap_strava.errors import StravaConfigError
from tap_strava.token_store import StoredTokens, TokenStore
from tests.conftest import tap_config_for
from tests.support import SyncResult, next_quota_window, run_tap

FULL_SCOPE = "read,activity:read_all,profile:read_all"


def record_scope(config: dict[str, t.Any], refresh_token: str, scope: str | None) -> None:
    """What tap-strava-auth leaves in the token store: the chain and the granted scope."""
    store = TokenStore(
        Path(config["token_store_path"]),
        client_id=config["client_id"],
        configured_refresh_token=refresh_token,
    )
    with store.locked():
        store.save(StoredTokens(refresh_token=refresh_token, scope=scope))


def reconcile_config(sim: StravaSimulator, tmp_path: Path, **overrides: t.Any) -> dict:
    config = tap_config_for(sim, tmp_path, reconcile=True, **overrides)
    record_scope(config, config["refresh_token"], FULL_SCOPE)
    return config


def activity_messages(result: SyncResult) -> list[dict[str, t.Any]]:
    return [m for m in result.messages if m.get("stream") == "activities"]


def activations(result: SyncResult) -> list[int]:
    return [m["version"] for m in activity_messages(result) if m["type"] == "ACTIVATE_VERSION"]


def test_a_daily_run_stamps_its_version_and_never_activates(simulator, tap_config):
    result = run_tap(tap_config, streams=("activities",))
    versions = {m["version"] for m in activity_messages(result) if m["type"] == "RECORD"}
    assert len(versions) == 1
    assert activations(result) == []


def test_a_complete_pass_activates_its_version_after_the_last_record(simulator, tmp_path):
    config = reconcile_config(simulator, tmp_path)
    daily = run_tap(tap_config_for(simulator, tmp_path), streams=("activities",))
    daily_version = next(m["version"] for m in activity_messages(daily) if m["type"] == "RECORD")

    result = run_tap(config, streams=("activities",))

    messages = activity_messages(result)
    records = [m for m in messages if m["type"] == "RECORD"]
    assert {m["record"]["id"] for m in records} == {a["id"] for a in simulator.activities}
    version = records[0]["version"]
    assert {m["version"] for m in records} == {version}
    assert version >= daily_version
    assert activations(result) == [version]
    # ACTIVATE_VERSION comes after the very last record of the stream.
    last_record = max(i for i, m in enumerate(messages) if m["type"] == "RECORD")
    assert messages[-1]["type"] == "ACTIVATE_VERSION"
    assert len(messages) - 1 > last_record
    # The pass is over: the next reconcile starts a new one.
    stream_state = result.final_state["bookmarks"]["activities"]
    assert "reconcile_version" not in stream_state
    assert not any(p.get("reconcile_done") for p in stream_state["partitions"])


def test_an_interrupted_pass_activates_nothing_and_resumes_under_the_same_version(tmp_path):
    with StravaSimulator(seed=3, activity_count=1200, read_limit_15min=3) as sim:
        config = reconcile_config(sim, tmp_path, max_rate_limit_wait_seconds=0)
        seen: dict[int, int] = {}
        state: dict[str, t.Any] = {}
        runs = []
        for _ in range(20):
            result = run_tap(config, state=state, streams=("activities",))
            runs.append(result)
            for m in activity_messages(result):
                if m["type"] == "RECORD":
                    seen[m["record"]["id"]] = m["version"]
            state = result.final_state
            if activations(result):
                break
            next_quota_window(sim, config)

    assert len(runs) > 2, "the quota cut the pass into several runs"
    assert all(activations(r) == [] for r in runs[:-1])
    assert set(seen) == {a["id"] for a in sim.activities}
    assert set(seen.values()) == {activations(runs[-1])[0]}


def test_reconcile_refuses_without_a_known_activity_read_all_scope(simulator, tmp_path):
    config = tap_config_for(simulator, tmp_path, reconcile=True)
    with pytest.raises(StravaConfigError, match=r"reconcile refused: .* is not known"):
        run_tap(config, streams=("activities",))
    record_scope(config, config["refresh_token"], "read,activity:read")
    with pytest.raises(StravaConfigError, match="granted only read,activity:read") as caught:
        run_tap(config, streams=("activities",))
    assert "tap-strava-auth" in str(caught.value)
    assert not [r for r in simulator.requests if r.path.startswith("/api/")]


def test_no_activation_while_an_athlete_is_skipped(tmp_path):
    with StravaSimulator(seed=7, activity_count=80, read_limit_15min=600) as sim:
        bob = sim.add_athlete(seed=99, activity_count=30)
        config = tap_config_for(sim, tmp_path, reconcile=True)
        config["athletes"] = [{"name": "bob", "refresh_token": bob.refresh_token}]
        record_scope(config, config["refresh_token"], FULL_SCOPE)
        record_scope(config, str(bob.refresh_token), FULL_SCOPE)
        bob.revoke_tokens()
        result = run_tap(config, streams=("activities",))
        assert result.records("activities")
        assert activations(result) == []

        # Bob authorizes again: the pass completes with him and is activated once.
        new_token = bob.issue_refresh_token()
        config["athletes"] = [{"name": "bob", "refresh_token": new_token}]
        record_scope(config, new_token, FULL_SCOPE)
        again = run_tap(config, state=result.final_state, streams=("activities",))
        assert {r["athlete_id"] for r in again.records("activities")} == {bob.athlete_id}
        assert len(activations(again)) == 1


@pytest.mark.parametrize(
    "limits",
    [
        {"start_date": "2024-01-01T00:00:00Z"},
        {"end_date": "2025-01-01T00:00:00Z"},
        {"start_date": "2024-01-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z"},
    ],
)
def test_a_reconcile_limited_to_a_date_range_is_refused_before_any_request(
    simulator, tmp_path, limits
):
    """ACTIVATE_VERSION covers the whole table: a partial pass would flag what it skipped."""
    config = reconcile_config(simulator, tmp_path, **limits)
    with pytest.raises(StravaConfigError, match="reconcile refused") as caught:
        run_tap(config, streams=("activities",))
    for name in limits:
        assert name in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not [r for r in simulator.requests if r.path.startswith("/api/")]


def test_a_reconcile_missing_an_athlete_who_has_rows_is_refused(tmp_path):
    with StravaSimulator(seed=7, activity_count=40, read_limit_15min=600) as sim:
        bob = sim.add_athlete(seed=99, activity_count=20)
        both = tap_config_for(sim, tmp_path)
        both["athletes"] = [{"name": "bob", "refresh_token": bob.refresh_token}]
        run_tap(both, streams=("activities",))  # bob's rows reach the table

        config = reconcile_config(sim, tmp_path)  # bob is no longer configured
        sim.clear_requests()
        with pytest.raises(StravaConfigError, match=f"athlete {bob.athlete_id} has tokens"):
            run_tap(config, streams=("activities",))
        # (ann's profile may be read: record_scope rewrote her entry without her id)
        assert not [r for r in sim.requests if r.path.startswith("/api/v3/athlete/activities")]

        # He left for good: his tokens go, and the reconcile runs.
        from tap_strava.token_store import forget_athlete

        assert forget_athlete(Path(config["token_store_path"]), bob.athlete_id) == 1
        result = run_tap(config, streams=("activities",))
        assert len(activations(result)) == 1


def test_a_late_upload_dated_1999_is_found_by_the_next_reconcile(simulator, tmp_path):
    """Older than any look-back (a GPS week rollover): the daily run misses it by design."""
    daily_config = tap_config_for(simulator, tmp_path)
    state = run_tap(daily_config, streams=("activities",)).final_state
    old = simulator.add_activity(start_date="1999-08-22T06:30:00Z")
    daily = run_tap(daily_config, state=state, streams=("activities",))
    assert old["id"] not in daily.ids()
    reconciled = run_tap(reconcile_config(simulator, tmp_path), streams=("activities",))
    assert old["id"] in reconciled.ids()
    assert len(activations(reconciled)) == 1
