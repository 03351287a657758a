"""Token trouble in the middle of real work: expiry mid-sync, lost answers, a bad store.

Each test drives the simulator over real HTTP; none mocks a server. They guard what the
README's "Tokens and rotation" and "Troubleshooting" promise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

from tap_strava.simulator import StravaSimulator
from tap_strava.simulator.records import RequestRecord
from tests.conftest import tap_config_for
from tests.support import run_tap

LIFETIME = 21600  # Strava's six hours


def _store(tmp_path: Path) -> Path:
    return tmp_path / "tokens" / "tokens.json"


def _stored_refresh_token(tmp_path: Path) -> str:
    entries = json.loads(_store(tmp_path).read_text())["tokens"]
    assert len(entries) == 1
    return str(next(iter(entries.values()))["refresh_token"])


def test_an_access_token_expiring_mid_sync_is_refreshed_and_nothing_is_lost(tmp_path):
    """Six hours pass between two pages: one 401, one refresh, the sync goes on."""
    list_pages = 0
    sim: StravaSimulator | None = None

    def after_request(record: RequestRecord) -> None:
        nonlocal list_pages
        if record.path.endswith("/athlete/activities") and record.status == 200:
            list_pages += 1
            if list_pages == 3 and sim is not None:
                sim.advance_clock(LIFETIME + 60)  # the token the tap holds is now dead

    sim = StravaSimulator(seed=11, activity_count=120, request_log=after_request)
    with sim:
        oldest = min(a["start_date"] for a in sim.activities)
        config = tap_config_for(sim, tmp_path, window_days=20, start_date=oldest)
        result = run_tap(config, streams=["activities"])

        assert result.error is None
        assert list_pages > 4, "the expiry came in the middle of the sync"
        statuses = [r.status for r in sim.requests if r.path.startswith("/api/v3")]
        assert statuses.count(401) == 1, "one rejected request, then a fresh token"
        assert [r.status for r in sim.requests if r.path == "/oauth/token"] == [200, 200]
        ids = result.ids()
        assert len(ids) == len(set(ids)), "nothing emitted twice"
        assert set(ids) == {a["id"] for a in sim.activities}, "nothing lost"
        assert _stored_refresh_token(tmp_path) == sim.refresh_token, "the rotation is stored"


def _tap_process(config: dict[str, t.Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`tap-strava --config` as Meltano runs it: its exit code and stderr."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-m", "tap_strava.tap", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stderr.strip().splitlines()[-1]


def test_a_token_answer_lost_after_the_rotation_says_so_in_one_line(tmp_path):
    """Strava rotated, the answer never arrived: the old token is dead, the new one lost."""
    with StravaSimulator(seed=3, activity_count=5) as sim:
        config = tap_config_for(sim, tmp_path)
        configured = config["refresh_token"]
        sim.inject_fault(r"^/oauth/token$", "lost_answer", count=1)
        proc = _tap_process(config, tmp_path)

        grants = sim.token_grants
        assert grants[0].accepted
        assert grants[0].rotated, "Strava did rotate"
        assert sim.refresh_token != configured
        assert proc.returncode == 1
        last = _last_line(proc)
        assert last.startswith(
            "tap-strava: error: Strava's answer to the token refresh was lost (ConnectionError)"
        ), last
        assert "most likely rotated" in last
        assert "tap-strava-auth" in last
        assert "Traceback" not in proc.stderr
        assert sim.client_secret not in proc.stderr
        assert configured not in proc.stderr
        assert str(sim.refresh_token) not in proc.stderr

        # What the README says to do: authorize again; the new token syncs.
        fresh = sim.issue_refresh_token()
        again = _tap_process({**config, "refresh_token": fresh}, tmp_path)
        assert again.returncode == 0, _last_line(again)


def test_a_connection_reset_before_strava_answered_is_retried(tmp_path):
    """The request never reached Strava (nothing rotated): the retry simply works."""
    with StravaSimulator(seed=3, activity_count=5) as sim:
        config = tap_config_for(sim, tmp_path)
        sim.inject_fault(r"^/oauth/token$", "reset", count=1)
        result = run_tap(config, streams=["athlete"])
        assert result.records("athlete")
        assert [g.accepted for g in sim.token_grants] == [True]
        assert _stored_refresh_token(tmp_path) == sim.refresh_token
