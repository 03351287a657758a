"""Operating the pipeline: Strava's 2027 base URL, inactive apps, `meltano config test`.

The `meltano` tests (marked e2e) run the repository's project against this test's
simulator. Each gets a private Meltano system folder (`MELTANO_SYS_DIR_ROOT`) whose plugin
folders link to the installed ones: Meltano writes the catalog and config of a run to
`.meltano/run/<plugin>/` under fixed names, so two `meltano` commands of the same project
running at once (other tests, a scheduled run) would otherwise overwrite each other's
catalog.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
import requests

from strava_simulator import StravaSimulator
from tap_strava.errors import StravaAuthError
from tap_strava.token_store import StoredTokens, TokenStore
from tests.conftest import tap_config_for
from tests.pipeline import MELTANO, PROJECT_ROOT, private_meltano_dir
from tests.support import run_tap

TIMEOUT = 10
INACTIVE = "403 Application Status Inactive"


# -- Strava's 2027 base URL ------------------------------------------------------------------


@pytest.mark.parametrize("base", ["api_url", "api_url_2027"])
def test_the_tap_runs_under_both_api_bases_with_header_tokens_only(simulator, tmp_path, base):
    api_url = getattr(simulator, base)
    config = tap_config_for(simulator, tmp_path, api_url=api_url)
    result = run_tap(config)
    assert set(result.ids()) == {a["id"] for a in simulator.activities}
    assert result.records("athlete")[0]["athlete_id"] == simulator.athlete_id
    assert result.records("athlete_stats")
    api_calls = [r for r in simulator.requests if not r.path.startswith("/oauth/")]
    assert api_calls
    prefix = api_url.removeprefix(simulator.base_url)
    assert all(r.path.startswith(prefix + "/") for r in api_calls)
    assert {r.token_in for r in api_calls} == {"header"}
    assert all("access_token" not in r.query for r in simulator.requests)


def test_the_2027_base_refuses_tokens_in_the_query(simulator):
    token = simulator.issue_access_token()
    legacy = requests.get(
        simulator.api_url + "/athlete", params={"access_token": token}, timeout=TIMEOUT
    )
    assert legacy.status_code == 200
    in_query = requests.get(
        simulator.api_url_2027 + "/athlete", params={"access_token": token}, timeout=TIMEOUT
    )
    assert in_query.status_code == 401
    in_header = requests.get(
        simulator.api_url_2027 + "/athlete",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert in_header.status_code == 200
    assert in_header.json()["id"] == simulator.athlete_id
    assert simulator.info()["api_url_2027"] == simulator.api_url_2027


# -- 403 Application Status Inactive ---------------------------------------------------------


def test_inactive_app_at_the_token_endpoint(simulator, tap_config):
    simulator.set_app_active(False)
    with pytest.raises(StravaAuthError, match=f"{INACTIVE}.*developer subscription"):
        run_tap(tap_config, streams=["athlete"])
    refused = [r for r in simulator.requests if r.path == "/oauth/token"]
    assert refused
    assert {r.status for r in refused} == {403}


@pytest.mark.parametrize("base", ["api_url", "api_url_2027"])
def test_inactive_app_on_an_api_call(simulator, tmp_path, base):
    config = tap_config_for(simulator, tmp_path, api_url=getattr(simulator, base))
    # A still-valid stored access token: the refusal comes from the API itself.
    TokenStore(
        Path(config["token_store_path"]),
        client_id=simulator.client_id,
        configured_refresh_token=config["refresh_token"],
    ).save(
        StoredTokens(
            refresh_token=config["refresh_token"],
            access_token=simulator.issue_access_token(),
            expires_at=int(time.time()) + 6 * 3600,
        )
    )
    simulator.set_app_active(False)
    with pytest.raises(StravaAuthError, match=f"{INACTIVE}.*developer subscription"):
        run_tap(config, streams=["athlete"])
    assert not [r for r in simulator.requests if r.path.startswith("/oauth/")]
    assert [r.status for r in simulator.requests] == [403]


def test_inactive_app_can_be_switched_over_the_control_api(simulator):
    base = simulator.base_url + "/_sim/app"
    assert requests.post(base, json={"active": False}, timeout=TIMEOUT).json() == {"active": False}
    answer = requests.post(simulator.token_url, data={"client_id": "x"}, timeout=TIMEOUT)
    assert answer.status_code == 403
    assert answer.json()["message"] == "Application Status Inactive"
    # The consent page still works: an inactive app only fails at the code exchange.
    consent = requests.get(
        simulator.authorize_url,
        params={
            "client_id": simulator.client_id,
            "redirect_uri": "http://127.0.0.1:9/cb",
            "response_type": "code",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert consent.status_code == 302
    requests.post(base, json={"active": True}, timeout=TIMEOUT)
    assert simulator.app_active


# -- meltano, as the user runs it ------------------------------------------------------------


def meltano_env(sim: StravaSimulator, workdir: Path, **settings: str) -> dict[str, str]:
    """The user's environment: TAP_STRAVA_* pointing at ``sim``, Meltano state in workdir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_STRAVA_", "MELTANO_"))}
    env.pop("BROWSER", None)
    env.update(
        {
            "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
            "MELTANO_SYS_DIR_ROOT": str(workdir / "meltano-sys"),
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "PYTHONUNBUFFERED": "1",
            "TAP_STRAVA_CLIENT_ID": sim.client_id,
            "TAP_STRAVA_CLIENT_SECRET": sim.client_secret,
            "TAP_STRAVA_REFRESH_TOKEN": sim.refresh_token or "",
            "TAP_STRAVA_API_URL": sim.api_url,
            "TAP_STRAVA_TOKEN_URL": sim.token_url,
            "TAP_STRAVA_TOKEN_STORE_PATH": str(workdir / "tokens.json"),
        }
    )
    env.update({f"TAP_STRAVA_{name.upper()}": value for name, value in settings.items()})
    return env


def meltano(
    sim: StravaSimulator, workdir: Path, *args: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    """Run `meltano` in the repository's project as the user would."""
    return subprocess.run(
        [MELTANO, *args],
        cwd=PROJECT_ROOT,
        env=meltano_env(sim, workdir, **settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def meltano_dir(tmp_path: Path) -> Path:
    private_meltano_dir(tmp_path)
    return tmp_path


def config_test_failure(proc: subprocess.CompletedProcess[str]) -> str:
    """The line Meltano shows after "Plugin configuration is invalid" (the tap's last)."""
    lines = proc.stderr.splitlines()
    marker = next(i for i, line in enumerate(lines) if "Plugin configuration is invalid" in line)
    return lines[marker + 1]


@pytest.mark.e2e
def test_meltano_config_test_passes_against_the_simulator(simulator, meltano_dir):
    proc = meltano(simulator, meltano_dir, "config", "test", "tap-strava")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Plugin configuration is valid" in proc.stdout + proc.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("situation", ["bad_refresh_token", "inactive_app"])
def test_meltano_config_test_shows_the_useful_line(simulator, meltano_dir, situation):
    settings: dict[str, t.Any] = {}
    if situation == "bad_refresh_token":
        settings["refresh_token"] = "revoked-long-ago"
        expected = "tap-strava: error: Strava rejected the refresh token"
    else:
        simulator.set_app_active(False)
        expected = f"tap-strava: error: Strava answered {INACTIVE}"
    proc = meltano(simulator, meltano_dir, "config", "test", "tap-strava", **settings)
    assert proc.returncode != 0
    shown = config_test_failure(proc)
    assert shown.startswith(expected), proc.stderr[-3000:]
    assert "TAP_STRAVA_REFRESH_TOKEN" in shown or "developer subscription" in shown


@pytest.mark.e2e
def test_meltano_config_test_checks_the_secret_despite_a_valid_stored_token(simulator, meltano_dir):
    """Issue 13.3: a stored access token (valid for hours) hid a wrong client secret."""
    configured = simulator.refresh_token
    store = str(meltano_dir / "tokens.json")
    run_tap(tap_config_for(simulator, meltano_dir, token_store_path=store))
    proc = meltano(
        simulator,
        meltano_dir,
        "config",
        "test",
        "tap-strava",
        client_secret="a-wrong-secret",
        refresh_token=configured,  # the chain the store holds a valid access token for
    )
    assert proc.returncode != 0, proc.stderr[-3000:]
    shown = config_test_failure(proc)
    assert shown.startswith("tap-strava: error: Strava rejected the app credentials"), shown
    assert "a-wrong-secret" not in proc.stdout + proc.stderr


@pytest.mark.e2e
def test_meltano_config_test_says_the_quota_is_spent_instead_of_waiting(simulator, meltano_dir):
    """Issue 13.2/13.3: with the app's quota spent the test sat silent for 14 minutes."""
    simulator.inject_fault(r"/api/v3/", "rate_limit", count=-1)
    try:
        proc = subprocess.run(
            [MELTANO, "config", "test", "tap-strava"],
            cwd=PROJECT_ROOT,
            env=meltano_env(simulator, meltano_dir, max_rate_limit_wait_seconds="900"),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("meltano config test waited for the next quota window")
    assert proc.returncode != 0
    shown = config_test_failure(proc)
    assert shown.startswith("tap-strava: error: Strava accepted the credentials, but"), shown
    assert "quota is spent" in shown or "429" in shown


@pytest.mark.e2e
def test_authorize_command_of_the_plugin(simulator, meltano_dir):
    """`meltano invoke tap-strava:authorize` gets its settings from the project."""
    env_file = meltano_dir / "project.env"
    proc = subprocess.Popen(
        [
            MELTANO,
            "invoke",
            "tap-strava:authorize",
            "--no-browser",
            "--port",
            "0",
            "--timeout",
            "60",
            "--env-file",
            str(env_file),
        ],
        cwd=PROJECT_ROOT,
        env=meltano_env(simulator, meltano_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            if "/oauth/authorize?" in line:
                url = line.strip()
                break
        consent = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
        assert requests.get(consent.headers["Location"], timeout=TIMEOUT).status_code == 200
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "tap-strava-auth: warning" not in err
    assert env_file.read_text() == f"TAP_STRAVA_REFRESH_TOKEN={simulator.refresh_token}\n"
    stored = json.loads((meltano_dir / "tokens.json").read_text())["tokens"]
    assert [entry["refresh_token"] for entry in stored.values()] == [simulator.refresh_token]

    # What the helper wrote is all the pipeline needs: it runs on the seeded access token.
    simulator.clear_requests()
    written = env_file.read_text().strip().split("=", 1)[1]
    check = meltano(simulator, meltano_dir, "config", "test", "tap-strava", refresh_token=written)
    assert check.returncode == 0, check.stderr[-3000:]
    # The test checks the client secret with one real token request (issue 13.3); the
    # sync after it runs on that token.
    assert len([r for r in simulator.requests if r.path.startswith("/oauth/")]) == 1


def test_unreachable_api_ends_in_one_line_naming_the_setting(
    simulator, tmp_path, monkeypatch, capsys
):
    import backoff._sync

    from tap_strava import tap

    monkeypatch.setattr(backoff._sync.time, "sleep", lambda _seconds: None)
    with socket_closed_port() as port:
        config = tap_config_for(simulator, tmp_path, api_url=f"http://127.0.0.1:{port}/api/v3")
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        monkeypatch.setattr(sys, "argv", ["tap-strava", "--config", str(config_path)])
        with pytest.raises(SystemExit) as exited:
            tap.main()
    assert exited.value.code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"tap-strava: error: cannot reach http://127.0.0.1:{port}/api/v3/")
    assert "check api_url" in last


@contextlib.contextmanager
def socket_closed_port() -> t.Iterator[int]:
    """A local port nobody listens on (bound, never listening, so it stays ours)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
