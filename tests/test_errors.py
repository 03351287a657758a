"""Error paths: each ends in one clear line, or is retried and recovered from."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tap_strava.errors import StravaAuthError, StravaScopeError
from tests.conftest import tap_config_for
from tests.support import run_tap, run_tap_cli


def test_wrong_client_secret_names_the_app_credentials(simulator, tmp_path):
    config = tap_config_for(simulator, tmp_path, client_secret="not-the-secret")
    with pytest.raises(StravaAuthError, match="client_id and client_secret"):
        run_tap(config)


def test_missing_activity_scope_names_the_scope_to_grant(simulator, tap_config):
    simulator.set_scope("read")
    with pytest.raises(StravaScopeError, match=r"activity:read_all"):
        run_tap(tap_config, streams=["activities"])


def test_server_errors_are_retried_then_the_sync_completes(simulator, tap_config):
    simulator.inject_fault(r"/athlete/activities", "status", count=2, status=502)
    simulator.inject_fault(r"/athlete$", "html", count=1)
    result = run_tap(tap_config)
    assert set(result.ids()) == {a["id"] for a in simulator.activities}


@pytest.mark.parametrize("kind", ["malformed_json", "truncated_json", "reset"])
def test_broken_answers_are_retried_not_loaded(simulator, tap_config, kind):
    simulator.inject_fault(r"/athlete/activities", kind, count=1)
    result = run_tap(tap_config, streams=["activities"])
    ids = result.ids()
    assert len(ids) == len(set(ids))
    assert set(ids) == {a["id"] for a in simulator.activities}


def test_missing_setting_fails_at_start_without_a_traceback(simulator, tmp_path):
    config = tap_config_for(simulator, tmp_path)
    del config["client_id"]
    proc = run_tap_cli(config, tmp_path)
    assert proc.returncode != 0
    assert "client_id" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_url_setting_is_one_line(simulator, tmp_path):
    proc = run_tap_cli(tap_config_for(simulator, tmp_path, api_url="strava.example"), tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tap-strava: error: invalid configuration: api_url must be an http")
    assert "Traceback" not in proc.stderr


def test_wrong_token_url_is_named(simulator, tmp_path):
    config = tap_config_for(simulator, tmp_path, token_url=simulator.base_url + "/nope")
    proc = run_tap_cli(config, tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "token_url" in last
    assert "Traceback" not in proc.stderr


def test_no_secret_in_the_output_of_a_debug_run(simulator, tmp_path):
    config = tap_config_for(simulator, tmp_path)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", "tap_strava.tap", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"LOGLEVEL": "DEBUG", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    everything = proc.stdout + proc.stderr
    for secret in (config["client_secret"], config["refresh_token"], simulator.refresh_token):
        assert secret not in everything


def test_bad_settings_are_named_in_one_line(simulator, tmp_path):
    config = tap_config_for(simulator, tmp_path, start_date="last tuesday", lookback_days=-3)
    proc = run_tap_cli(config, tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tap-strava: error: invalid configuration:")
    assert "lookback_days" in last
    assert "start_date 'last tuesday'" in last
    assert "Traceback" not in proc.stderr


def test_a_refresh_token_of_another_app_is_named(simulator, tmp_path):
    config = tap_config_for(simulator, tmp_path, refresh_token="token-of-another-app")
    with pytest.raises(StravaAuthError, match="another app"):
        run_tap(config)


@pytest.mark.parametrize(
    ("field", "sent", "stored"),
    [
        ("distance", "1234.5", 1234.5),
        ("moving_time", 3600.0, 3600),
        ("moving_time", "3600", 3600),
        ("kudos_count", "many", None),
        ("trainer", "false", False),
        ("sport_type", "Quidditch", "Quidditch"),
    ],
)
def test_unexpected_types_are_converted_or_nulled_never_dropped(
    simulator, tap_config, field, sent, stored
):
    newest = max(simulator.activities, key=lambda a: a["start_date"])
    simulator.update_activity(newest["id"], **{field: sent})
    records = {
        r["id"]: r for r in run_tap(tap_config, streams=["activities"]).records("activities")
    }
    assert set(records) == {a["id"] for a in simulator.activities}
    assert records[newest["id"]][field] == stored


def test_null_and_missing_fields_are_tolerated(simulator, tap_config):
    newest = max(simulator.activities, key=lambda a: a["start_date"])
    simulator.update_activity(newest["id"], average_speed=None, gear_id=None)
    result = run_tap(tap_config, streams=["activities"])
    assert set(result.ids()) == {a["id"] for a in simulator.activities}


@pytest.mark.parametrize(
    ("summary", "fragment"),
    [
        ({"start_date": "2026-01-01T00:00:00Z"}, "without id"),
        ({"id": 5, "start_date": None}, "without start_date"),
        ({"id": "x5", "start_date": "2026-01-01T00:00:00Z"}, "cannot be read"),
        ({"id": 5, "start_date": "yesterday"}, "cannot be read"),
    ],
)
def test_a_listed_activity_without_a_usable_key_stops_with_one_clear_line(summary, fragment):
    from singer_sdk.exceptions import FatalAPIError

    from tap_strava.streams import _activity_key

    with pytest.raises(FatalAPIError, match=fragment) as caught:
        _activity_key(summary)
    assert "lose nothing" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_fields_strava_adds_later_are_kept_in_one_column_with_one_warning(
    simulator, tap_config, caplog
):
    """Unknown keys, top level and nested, move to _unknown_fields; none is lost."""
    first = simulator.activities[0]
    simulator.update_activity(
        first["id"],
        brand_new_field="x",
        map={**first["map"], "brand_new_nested": 1},
        athlete={**first["athlete"], "badge": {"kind": "gold"}},
    )
    with caplog.at_level("WARNING"):
        result = run_tap(tap_config, streams=("activities",))
    (record,) = [r for r in result.records("activities") if r["id"] == first["id"]]
    assert "brand_new_field" not in record
    # Removed from where it was: a new key inside `map` would be a CSV column too many.
    assert "brand_new_nested" not in record["map"]
    assert "badge" not in record["athlete"]
    assert record["_unknown_fields"] == {
        "brand_new_field": "x",
        "map.brand_new_nested": 1,
        "athlete.badge": {"kind": "gold"},
    }
    assert record["map"]["summary_polyline"] == first["map"]["summary_polyline"]
    others = [r for r in result.records("activities") if r["id"] != first["id"]]
    assert others
    assert all(r["_unknown_fields"] is None for r in others)
    warnings = [r.getMessage() for r in caplog.records if "does not declare" in r.getMessage()]
    assert len(warnings) == 1
    assert "brand_new_field" in warnings[0]
    assert "map.brand_new_nested" in warnings[0]


def test_every_stream_declares_the_catch_all_column_as_a_bare_object():
    """A catch-all with ``properties`` would make target-csv raise on every record."""
    from tap_strava.tap import TapStrava

    tap = TapStrava(config={"client_id": "x", "client_secret": "y", "refresh_token": "z"})
    for name, stream in tap.streams.items():
        assert stream.schema["properties"]["_unknown_fields"] == {"type": ["object", "null"]}, name


def test_persistent_server_errors_end_in_one_line_with_a_hint(
    simulator, tmp_path, monkeypatch, capsys
):
    """Issue 13.6: 503 on every try ended in a raw RetriableAPIError and no hint."""
    import backoff._sync

    from tap_strava import tap

    monkeypatch.setattr(backoff._sync.time, "sleep", lambda _seconds: None)  # 1+2+4+8 s
    simulator.inject_fault(r"/athlete$", "status", count=-1, status=503)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(tap_config_for(simulator, tmp_path)))
    monkeypatch.setattr(sys, "argv", ["tap-strava", "--config", str(config_path)])
    with pytest.raises(SystemExit) as exited:
        tap.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("tap-strava: error: Strava server error on /api/v3/athlete: HTTP 503")
    assert "status.strava.com" in last
    assert "run again later" in last
    assert "Traceback" not in err
