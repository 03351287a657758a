"""Rate limits, injected faults, the ``/_sim/`` control endpoints and the ``strava-sim`` CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from strava_simulator import StravaSimulator

REPO = Path(__file__).resolve().parents[1]
#: The real sleep, taken at import: a conftest may stub ``time.sleep`` during tests.
sleep = time.sleep
TIMEOUT = 10
T0 = 1_780_000_000.0  # a multiple of 900 and of 10: the start of a window


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def small(clock: FakeClock):
    """A simulator with tiny quotas and a 10-second '15-minute' window on a fake clock."""
    with StravaSimulator(
        seed=4,
        activity_count=40,
        clock=clock,
        read_limit_15min=3,
        read_limit_daily=7,
        overall_limit_15min=5,
        overall_limit_daily=9,
        window_seconds=10,
        day_seconds=100,
    ) as sim:
        yield sim


@pytest.fixture
def sim():
    with StravaSimulator(seed=5, activity_count=40) as simulator:
        yield simulator


def auth(sim: StravaSimulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.issue_access_token()}"}


def athlete(sim: StravaSimulator, headers: dict[str, str], **kwargs):
    return requests.get(sim.api_url + "/athlete", headers=headers, timeout=TIMEOUT, **kwargs)


# -- rate limits -------------------------------------------------------------------------
def test_read_quota_gives_429_and_resets_with_the_window(small, clock):
    headers = auth(small)
    for used in (1, 2, 3):
        response = athlete(small, headers)
        assert response.status_code == 200
        assert response.headers["X-ReadRateLimit-Usage"] == f"{used},{used}"
        assert response.headers["X-ReadRateLimit-Limit"] == "3,7"
        assert response.headers["X-RateLimit-Limit"] == "5,9"
    over = athlete(small, headers)
    assert over.status_code == 429
    assert over.json() == {
        "message": "Rate Limit Exceeded",
        "errors": [{"resource": "Application", "field": "rate limit", "code": "exceeded"}],
    }
    assert over.headers["X-ReadRateLimit-Usage"] == "4,4"  # the refused request counts
    assert "Retry-After" not in over.headers
    assert small.rate_usage == (4, 4, 4, 4)
    clock.now += 9.9
    assert athlete(small, headers).status_code == 429
    clock.now += 0.1  # next aligned window
    back = athlete(small, headers)
    assert back.status_code == 200
    assert back.headers["X-ReadRateLimit-Usage"] == "1,6"
    assert back.headers["X-RateLimit-Usage"] == "1,6"
    # The daily read quota (7) runs out although the 15-minute one has room.
    assert athlete(small, headers).status_code == 200
    assert athlete(small, headers).status_code == 429  # 8 > 7 daily
    clock.now += 100  # next "day"
    assert athlete(small, headers).status_code == 200


def test_token_calls_are_free_and_writes_count_only_overall(small):
    token_call = requests.post(
        small.token_url,
        data={
            "client_id": small.client_id,
            "client_secret": small.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": small.refresh_token,
        },
        timeout=TIMEOUT,
    )
    assert token_call.status_code == 200
    assert "X-RateLimit-Usage" not in token_call.headers
    assert small.rate_usage == (0, 0, 0, 0)
    headers = {"Authorization": f"Bearer {token_call.json()['access_token']}"}
    activity_id = small.activities[0]["id"]
    put = requests.put(
        f"{small.api_url}/activities/{activity_id}",
        headers=headers,
        params={"name": "x"},
        timeout=TIMEOUT,
    )
    assert put.status_code == 401  # no activity:write scope, but counted
    assert put.json()["errors"][0]["field"] == "activity:write_permission"
    assert put.headers["X-RateLimit-Usage"] == "1,1"
    assert put.headers["X-ReadRateLimit-Usage"] == "0,0"
    unauthorized = athlete(small, {"Authorization": "Bearer wrong"})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["X-ReadRateLimit-Usage"] == "1,1"


def test_real_short_window_resets():
    with StravaSimulator(seed=6, activity_count=5, read_limit_15min=2, window_seconds=1) as sim:
        headers = auth(sim)
        # Start right after a boundary so that the three calls share one window.
        sleep(1 - time.time() % 1 + 0.02)
        codes = [athlete(sim, headers).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        sleep(1 - time.time() % 1 + 0.02)
        assert athlete(sim, headers).status_code == 200


# -- faults ------------------------------------------------------------------------------
def test_status_fault_uses_strava_bodies_and_is_consumed(sim):
    headers = auth(sim)
    sim.inject_fault(r"/athlete$", "status", count=2, status=503)
    first = athlete(sim, headers)
    assert first.status_code == 503
    assert first.json() == {"message": "error"}
    assert "X-RateLimit-Usage" in first.headers
    assert athlete(sim, headers).status_code == 503
    assert athlete(sim, headers).status_code == 200
    sim.inject_fault(r"/athlete$", "status", status=404)
    assert athlete(sim, headers).json()["message"] == "Record Not Found"
    # Only matching paths are hit.
    sim.inject_fault(r"/athlete/activities", "status")
    assert athlete(sim, headers).status_code == 200
    assert sim.faults
    sim.clear_faults()
    assert not sim.faults
    records = sim.requests
    assert [r.fault for r in records[:2]] == ["status", "status"]


def test_html_malformed_and_truncated_answers(sim):
    headers = auth(sim)
    sim.inject_fault(r"/athlete/activities", "html")
    html = requests.get(sim.api_url + "/athlete/activities", headers=headers, timeout=TIMEOUT)
    assert html.status_code == 504
    assert html.headers["Content-Type"].startswith("text/html")
    assert "<html>" in html.text
    with pytest.raises(ValueError):
        html.json()

    sim.inject_fault(r"/athlete/activities", "malformed_json")
    malformed = requests.get(sim.api_url + "/athlete/activities", headers=headers, timeout=TIMEOUT)
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()

    sim.inject_fault(r"/athlete/activities", "truncated_json")
    truncated = requests.get(sim.api_url + "/athlete/activities", headers=headers, timeout=TIMEOUT)
    assert truncated.status_code == 200
    assert truncated.text.startswith('[{"resource_state":2')
    with pytest.raises(ValueError):
        truncated.json()
    assert requests.get(
        sim.api_url + "/athlete/activities", headers=headers, timeout=TIMEOUT
    ).json()


def test_slow_and_reset(sim):
    headers = auth(sim)
    sim.inject_fault(r"/athlete$", "slow", delay=0.6)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(sim.api_url + "/athlete", headers=headers, timeout=0.2)
    sim.inject_fault(r"/athlete$", "slow", delay=0.3)
    started = time.perf_counter()
    assert athlete(sim, headers).status_code == 200
    assert time.perf_counter() - started >= 0.3

    sim.inject_fault(r"/athlete$", "reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        athlete(sim, headers)
    assert athlete(sim, headers).status_code == 200
    reset_record = next(r for r in sim.requests if r.fault == "reset")
    assert reset_record.status is None


def test_rate_limit_fault_spends_the_shared_quota(small, clock):
    headers = auth(small)
    assert athlete(small, headers).status_code == 200
    small.inject_fault(r"/athlete/activities", "rate_limit")
    limited = requests.get(small.api_url + "/athlete/activities", headers=headers, timeout=TIMEOUT)
    assert limited.status_code == 429
    assert limited.json()["message"] == "Rate Limit Exceeded"
    assert limited.headers["X-ReadRateLimit-Usage"].startswith("4,")
    assert athlete(small, headers).status_code == 429  # the quota is gone for everyone
    clock.now += 10
    assert athlete(small, headers).status_code == 200


def test_token_endpoint_faults(sim):
    sim.inject_fault(r"^/oauth/token$", "status", status=502)
    response = requests.post(sim.token_url, data={}, timeout=TIMEOUT)
    assert response.status_code == 502
    assert "X-RateLimit-Usage" not in response.headers
    with pytest.raises(ValueError, match="unknown fault kind"):
        sim.inject_fault("x", "explode")


# -- control endpoints -------------------------------------------------------------------
def test_control_endpoints(sim):
    base = sim.base_url + "/_sim"
    info = requests.get(base + "/info", timeout=TIMEOUT).json()
    assert info["api_url"] == sim.api_url
    assert info["token_url"] == sim.token_url
    assert info["client_id"] == sim.client_id
    assert info["client_secret"] == sim.client_secret
    assert info["refresh_token"] == sim.refresh_token
    assert info["athlete_id"] == sim.athlete_id
    assert info["activity_count"] == 40

    listed = requests.get(base + "/activities", timeout=TIMEOUT).json()
    assert listed == sim.activities
    created = requests.post(
        base + "/activities",
        json={"name": "Late one", "start_date": "2021-06-01T06:00:00Z", "sport_type": "Ride"},
        timeout=TIMEOUT,
    )
    assert created.status_code == 201
    new = created.json()
    assert new["id"] > max(a["id"] for a in listed)
    assert new["type"] == "Ride"
    patched = requests.patch(
        f"{base}/activities/{new['id']}", json={"visibility": "only_me"}, timeout=TIMEOUT
    ).json()
    assert patched["private"] is True
    assert requests.delete(f"{base}/activities/{new['id']}", timeout=TIMEOUT).ok
    assert requests.get(f"{base}/activities/{new['id']}", timeout=TIMEOUT).status_code == 404
    assert requests.post(base + "/activities", data="not json", timeout=TIMEOUT).status_code == 400

    headers = auth(sim)
    scoped = requests.post(base + "/scope", json={"scope": "read"}, timeout=TIMEOUT)
    assert scoped.json() == {"scope": "read"}
    assert (
        requests.get(
            sim.api_url + "/athlete/activities", headers=headers, timeout=TIMEOUT
        ).status_code
        == 401
    )
    requests.post(base + "/scope", json={"scope": "read,activity:read_all"}, timeout=TIMEOUT)

    fault = requests.post(
        base + "/faults",
        json={"path_pattern": "/athlete$", "kind": "status", "status": 500},
        timeout=TIMEOUT,
    )
    assert fault.status_code == 201
    assert athlete(sim, headers).status_code == 500
    requests.post(
        base + "/faults", json={"path_pattern": "/athlete$", "kind": "html"}, timeout=TIMEOUT
    )
    assert requests.delete(base + "/faults", timeout=TIMEOUT).ok
    assert athlete(sim, headers).status_code == 200

    usage_before = requests.get(base + "/rate_usage", timeout=TIMEOUT).json()
    for _ in range(3):
        requests.get(base + "/info", timeout=TIMEOUT)
    assert requests.get(base + "/rate_usage", timeout=TIMEOUT).json() == usage_before
    records = requests.get(base + "/requests", timeout=TIMEOUT).json()
    assert records
    assert all(not r["path"].startswith("/_sim") for r in records)

    assert requests.post(base + "/revoke", timeout=TIMEOUT).ok
    assert athlete(sim, headers).status_code == 401
    assert requests.get(base + "/info", timeout=TIMEOUT).json()["refresh_token"] is None
    assert requests.get(base + "/nothing", timeout=TIMEOUT).status_code == 404


# -- CLI ---------------------------------------------------------------------------------
def test_cli_serves_writes_info_and_stops_cleanly(tmp_path):
    info_file = tmp_path / "sim.json"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "strava_simulator",
            "--port",
            "0",
            "--info-file",
            str(info_file),
            "--activities",
            "25",
            "--seed",
            "11",
            "--window-seconds",
            "60",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 15
        while not info_file.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the info file never appeared"
            sleep(0.05)
        info = json.loads(info_file.read_text(encoding="utf-8"))
        assert info["activity_count"] == 25
        assert requests.get(info["base_url"] + "/_sim/info", timeout=TIMEOUT).json() == info
        token = requests.post(
            info["token_url"],
            data={
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
                "grant_type": "refresh_token",
                "refresh_token": info["refresh_token"],
            },
            timeout=TIMEOUT,
        ).json()
        listed = requests.get(
            info["api_url"] + "/athlete/activities",
            params={"access_token": token["access_token"]},
            timeout=TIMEOUT,
        )
        assert listed.status_code == 200
        assert len(listed.json()) == 25
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    assert "GET /api/v3/athlete/activities" in stderr
    assert "POST /oauth/token 200" in stderr
    assert token["access_token"] not in stderr
    assert token["refresh_token"] not in stderr
    assert info["refresh_token"] not in stderr


def test_every_endpoint_costs_one_read_and_athletes_share_the_apps_quota():
    """Strava charges one read per GET whatever the endpoint; the quota is the app's."""
    from tests.test_simulator import refresh

    with StravaSimulator(seed=5, activity_count=5) as sim:
        bob = sim.add_athlete(seed=6, activity_count=5)
        headers = auth(sim)
        activity = sim.activities[0]["id"]
        gear = next(iter(sim.gear))
        paths = [
            "/athlete",
            f"/athletes/{sim.athlete_id}/stats",
            "/athlete/activities?per_page=200",
            f"/activities/{activity}",
            f"/activities/{activity}/laps",
            f"/activities/{activity}/zones",
            f"/activities/{activity}/streams?keys=time,latlng&key_by_type=true",
            f"/gear/{gear}",
        ]
        for used, path in enumerate(paths, start=1):
            response = requests.get(sim.api_url + path, headers=headers, timeout=TIMEOUT)
            assert response.status_code == 200, path
            assert response.headers["X-ReadRateLimit-Usage"] == f"{used},{used}", path

        # Bob's calls answer with his data and count toward the same app quota.
        token = refresh(sim, bob.refresh_token)
        assert "X-ReadRateLimit-Usage" not in token.headers  # token calls are free
        bob_headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        his = requests.get(sim.api_url + "/athlete", headers=bob_headers, timeout=TIMEOUT)
        assert his.json()["id"] == bob.athlete_id
        assert his.headers["X-ReadRateLimit-Usage"] == f"{len(paths) + 1},{len(paths) + 1}"
        # Another athlete's activity is not found with bob's token.
        foreign = requests.get(
            sim.api_url + f"/activities/{activity}", headers=bob_headers, timeout=TIMEOUT
        )
        assert foreign.status_code == 404
