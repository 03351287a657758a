"""Token trouble in the middle of real work: expiry mid-sync, lost answers, a bad store.

Each test drives the simulator over real HTTP; none mocks a server. They guard what the
docs' "Tokens and rotation" (operations.md) and troubleshooting.md promise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from strava_simulator import StravaSimulator
from strava_simulator.records import RequestRecord
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
            if list_pages == 2 and sim is not None:
                sim.advance_clock(LIFETIME + 60)  # the token the tap holds is now dead

    # Several pages however the history is read (time windows or newest first, 200 a page).
    sim = StravaSimulator(seed=11, activity_count=900, request_log=after_request)
    with sim:
        oldest = min(a["start_date"] for a in sim.activities)
        config = tap_config_for(sim, tmp_path, window_days=20, start_date=oldest)
        result = run_tap(config, streams=["activities"])

        assert result.error is None
        assert list_pages >= 4, "the expiry came in the middle of the sync"
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

        # What docs/troubleshooting.md says to do: authorize again; the new token syncs.
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


# -- a token store that cannot be used -------------------------------------------------


def _snapshot(path: Path) -> dict[str, bytes | None]:
    """Every file at or under ``path`` with its bytes (None for a folder).

    An empty lock file the run created is left out: creating it overwrites nothing.
    """
    if path.is_file():
        return {str(path): path.read_bytes()}
    return {
        str(p): (p.read_bytes() if p.is_file() else None)
        for p in sorted(path.rglob("*"))
        if not (p.name.endswith(".lock") and p.is_file() and not p.stat().st_size)
    }


def _folder_is_a_file(store: Path) -> Path:
    store.parent.rmdir()
    store.parent.write_text("notes, not a folder\n")
    return store.parent


BAD_STORES: dict[str, t.Callable[[Path], Path]] = {
    # what the user has at token_store_path -> (set it up, return the path to name)
    "truncated JSON": lambda p: (p.write_text('{"version": 1, "tokens": {"ab'), p)[1],
    "binary garbage": lambda p: (p.write_bytes(b"\xff\xfe\x00\x81\x93 not text"), p)[1],
    "another program's JSON": lambda p: (p.write_text('{"theme": "dark"}\n'), p)[1],
    "a JSON list": lambda p: (p.write_text("[1, 2, 3]\n"), p)[1],
    # Tests may run as root, who reads a mode-000 file anyway: a folder in the file's
    # place is unreadable as a file for everyone.
    "a folder in its place": lambda p: (p.mkdir(), (p / "keep.txt").write_text("x"), p)[2],
    "a folder in the lock's place": lambda p: (p.with_name(p.name + ".lock").mkdir(), p)[1],
    "its folder is a file": _folder_is_a_file,
}
FIXES = {
    "truncated JSON": "move it away",
    "binary garbage": "move it away",
    "another program's JSON": "set token_store_path to another file",
    "a JSON list": "set token_store_path to another file",
    "a folder in its place": "fix it or set token_store_path",
    "a folder in the lock's place": "fix it or set token_store_path",
    "its folder is a file": "move that file away",
}


@pytest.mark.parametrize("case", list(BAD_STORES))
def test_a_bad_token_store_stops_with_one_line_and_is_left_as_it_was(case, simulator, tmp_path):
    config = tap_config_for(simulator, tmp_path)
    store = Path(config["token_store_path"])
    store.parent.mkdir(parents=True)
    named = BAD_STORES[case](store)
    before = _snapshot(store.parent)

    proc = _tap_process(config, tmp_path)

    assert proc.returncode == 1
    err = proc.stderr
    last = _last_line(proc)
    assert last.startswith("tap-strava: error: "), last
    assert str(named) in last, "the line names the file"
    assert FIXES[case] in last, last
    assert "Traceback" not in err
    assert simulator.client_secret not in err
    assert simulator.refresh_token not in err
    assert _snapshot(store.parent) == before, "nothing was overwritten"
    assert not simulator.token_grants, "no refresh was spent (nothing rotated at Strava)"


HOLD_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""
# The tap's real entry point, with the lock wait shortened from 120 s for the test.
TAP_WITH_SHORT_LOCK_WAIT = """
import sys
import tap_strava.token_store
tap_strava.token_store.LOCK_TIMEOUT_SECONDS = 1.0
from tap_strava.tap import main
sys.argv = ["tap-strava", "--config", sys.argv[1]]
main()
"""


def test_a_locked_token_store_stops_with_one_line_and_is_left_as_it_was(simulator, tmp_path):
    config = tap_config_for(simulator, tmp_path)
    run_tap(config, streams=["athlete"])  # a valid chain in the store
    store = Path(config["token_store_path"])
    before = store.read_bytes()
    grants = len(simulator.token_grants)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, f"{store}.lock"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        proc = subprocess.run(
            [sys.executable, "-c", TAP_WITH_SHORT_LOCK_WAIT, str(config_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1
    last = _last_line(proc)
    assert last.startswith("tap-strava: error: Another process has held the token store lock")
    assert f"{store}.lock" in last
    assert "let it finish or stop it" in last
    assert "Traceback" not in proc.stderr
    assert store.read_bytes() == before, "nothing was overwritten"
    assert len(simulator.token_grants) == grants, "no refresh behind the lock's back"
