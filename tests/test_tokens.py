"""OAuth refresh with Strava's rotating refresh tokens, across runs and processes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading

from strava_simulator import StravaSimulator
from strava_simulator.oauth import token_fingerprint
from tests.conftest import tap_config_for
from tests.support import run_tap


def _token_calls(sim: StravaSimulator) -> int:
    return sum(1 for r in sim.requests if r["path"] == "/oauth/token")


def stored_refresh_token(tmp_path) -> str:
    """The refresh token of the (single) chain in the test's token store."""
    store = json.loads((tmp_path / "tokens" / "tokens.json").read_text())["tokens"]
    assert len(store) == 1, "one configured token, one chain"
    return str(next(iter(store.values()))["refresh_token"])


def test_rotated_refresh_token_is_kept_and_used_by_the_next_runs(tmp_path):
    # Access tokens shorter than the tap's safety margin: every run must refresh.
    with StravaSimulator(seed=3, activity_count=20, access_token_lifetime=120) as sim:
        config = tap_config_for(sim, tmp_path)
        configured = config["refresh_token"]
        for _ in range(3):
            run_tap(config, streams=["activities"])
        assert sim.refresh_token != configured, "the simulator rotated the token"
        assert _token_calls(sim) >= 3, "every run refreshed (tokens shorter than the margin)"
        store = tmp_path / "tokens" / "tokens.json"
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
        assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
        stored = next(iter(json.loads(store.read_text())["tokens"].values()))
        assert stored["refresh_token"] == sim.refresh_token


def test_a_still_valid_access_token_is_reused_without_refreshing(simulator, tap_config):
    run_tap(tap_config, streams=["athlete"])
    run_tap(tap_config, streams=["athlete"])
    assert _token_calls(simulator) == 1


def test_the_token_travels_in_the_authorization_header_only(simulator, tap_config):
    run_tap(tap_config)
    api_calls = [r for r in simulator.requests if r["path"].startswith("/api/v3")]
    assert api_calls
    assert all(r["token_in"] == "header" for r in api_calls)


def test_a_newly_configured_refresh_token_takes_over_from_the_stored_one(tmp_path):
    with StravaSimulator(seed=3, activity_count=5, access_token_lifetime=120) as sim:
        config = tap_config_for(sim, tmp_path)
        run_tap(config, streams=["athlete"])
        # The user authorizes again: a new chain; the stored one dies with it.
        fresh = sim.issue_refresh_token()
        result = run_tap({**config, "refresh_token": fresh}, streams=["athlete"])
        assert result.records("athlete"), "the new token was used, not the dead stored one"
        store = json.loads((tmp_path / "tokens" / "tokens.json").read_text())["tokens"]
        assert len(store) == 2, "each configured token has its own chain"


def test_concurrent_runs_do_not_race_on_a_rotation(tmp_path):
    """Two processes refresh at once; the lock makes the second reuse the first's token."""
    with StravaSimulator(seed=3, activity_count=5, access_token_lifetime=120) as sim:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(tap_config_for(sim, tmp_path)))
        results: list[subprocess.CompletedProcess] = []

        def run() -> None:
            results.append(
                subprocess.run(
                    [sys.executable, "-m", "tap_strava.tap", "--config", str(config_path)],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
            )

        threads = [threading.Thread(target=run) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-500:] for r in results]
        # Tokens shorter than the tap's expiry margin: the three runs refresh again and again,
        # always under the lock with the token the last refresh stored. One unbroken chain:
        # every refresh token presented once, the last one in the store.
        grants = sim.token_grants
        assert len(grants) >= 3, "every run refreshed"
        presented = [g.presented for g in grants]
        assert len(presented) == len(set(presented)), "a refresh token was presented twice"
        assert all(g.accepted and g.rotated for g in grants), [g for g in grants if not g.accepted]
        assert [g.presented for g in grants[1:]] == [g.issued for g in grants[:-1]]
        assert grants[-1].issued == token_fingerprint(sim.refresh_token)
        assert stored_refresh_token(tmp_path) == sim.refresh_token, "the store holds the newest"


def test_revoked_token_fails_with_one_line_that_says_what_to_do(simulator, tmp_path):
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(tap_config_for(simulator, tmp_path)))
    simulator.revoke_tokens()
    proc = subprocess.run(
        [sys.executable, "-m", "tap_strava.tap", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tap-strava: error: Strava rejected the refresh token")
    assert "refresh_token" in last
    assert "Traceback" not in proc.stderr
    assert simulator.client_secret not in proc.stderr
