"""The `strava-events` console script as an operator runs it: serve, pending, bad settings."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.test_events_support import (
    ATHLETE,
    CALLBACK_PATH,
    SUBSCRIPTION_ID,
    TAP_TOKEN,
    VERIFY_TOKEN,
    event,
    wait_for,
)

SCRIPT = Path(sys.executable).with_name("strava-events")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRAVA_EVENTS_", "TARGET_"))}
    env.update(
        {
            "STRAVA_EVENTS_VERIFY_TOKEN": VERIFY_TOKEN,
            "STRAVA_EVENTS_CALLBACK_PATH": CALLBACK_PATH,
            "STRAVA_EVENTS_TAP_TOKEN": TAP_TOKEN,
            "STRAVA_EVENTS_SUBSCRIPTION_ID": str(SUBSCRIPTION_ID),
            "STRAVA_EVENTS_ATHLETE_IDS": str(ATHLETE),
            "STRAVA_EVENTS_PORT": str(port),
            "MELTANO_PROJECT_ROOT": str(tmp_path),
        }
    )
    return env


def test_serve_then_pending(tmp_path):
    port = free_port()
    env = environment(tmp_path, port)
    # The secrets in the project's .env (docs/events.md), read from the project folder.
    secrets = ("VERIFY_TOKEN", "CALLBACK_PATH", "TAP_TOKEN", "ATHLETE_IDS")
    (tmp_path / ".env").write_text(
        "".join(f"STRAVA_EVENTS_{name}={env.pop('STRAVA_EVENTS_' + name)}\n" for name in secrets)
    )
    del env["MELTANO_PROJECT_ROOT"]
    process = subprocess.Popen(
        [str(SCRIPT), "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, what="strava-events serve")
        query = {"hub.mode": "subscribe", "hub.challenge": "abc", "hub.verify_token": VERIFY_TOKEN}
        assert httpx.get(f"{base}/{CALLBACK_PATH}", params=query).json() == {"hub.challenge": "abc"}
        assert httpx.post(f"{base}/{CALLBACK_PATH}", json=event()).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
    # The default store is a SQLite file in the project; the log never names the secret path.
    assert (tmp_path / ".strava-events" / "events.sqlite3").exists()
    assert CALLBACK_PATH not in output
    assert VERIFY_TOKEN not in output

    listed = subprocess.run(
        [str(SCRIPT), "pending"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    [line] = listed.stdout.splitlines()
    assert json.loads(line)["event"]["object_id"] == event()["object_id"]


def test_a_missing_setting_is_one_line_and_exit_2(tmp_path):
    env = environment(tmp_path, free_port())
    del env["STRAVA_EVENTS_TAP_TOKEN"]
    started = time.monotonic()
    result = subprocess.run([str(SCRIPT), "serve"], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"strava-events: STRAVA_EVENTS_TAP_TOKEN is not set in the environment or {tmp_path}/.env"
    )
    assert result.stderr.count("\n") == 1
    assert time.monotonic() - started < 30


def test_subscription_commands_read_the_project_env(tmp_path, simulator):
    """The app's credentials where `tap-strava-auth` wrote them: the project's .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRAVA_EVENTS_", "TAP_"))}
    (tmp_path / ".env").write_text(
        f"TAP_STRAVA_CLIENT_ID={simulator.client_id}\n"
        f"TAP_STRAVA_CLIENT_SECRET={simulator.client_secret}\n"
        f"STRAVA_EVENTS_API_BASE={simulator.api_url}\n"
    )
    shown = subprocess.run(
        [str(SCRIPT), "subscription", "show"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "no push subscription\n"
