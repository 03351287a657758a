"""The code's shape: private SDK names in one adapter module only."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A private SDK name: `singer_sdk.<...>._x` imports, or `._x` attributes the SDK defines
# that the tap has used (state writing, versions, config validation, the owning tap).
PRIVATE = re.compile(
    r"singer_sdk(\.\w+)*\._\w+|\._write_state_message|\.is_flushed|"
    r"\._write_activate_version_message|\._stream_version|\._state_writer|"
    r"\._validate_config|\._tap\b|\._sync_records|\._increment_stream_state"
)


def test_private_sdk_names_live_in_the_adapter_only():
    offenders = []
    for path in sorted((ROOT / "packages" / "tap-strava" / "tap_strava").rglob("*.py")):
        if path.name == "sdk_adapter.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE.search(line.split("#", 1)[0]):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_adapter_is_where_they_are():
    text = (ROOT / "packages" / "tap-strava" / "tap_strava" / "sdk_adapter.py").read_text()
    assert PRIVATE.search(text), "the pattern still finds the private names it guards"


def test_the_import_contracts_hold():
    """No cycle, nothing imports the tap's entry module, the simulator stands alone."""
    import subprocess
    import sys

    lint_imports = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
    assert "0 broken" in proc.stdout


def test_every_strava_request_is_in_the_sdks_request_metrics(tmp_path, caplog):
    """One request path: profile, lists, stats, gear and per-activity GETs all through the SDK."""
    import json

    from strava_simulator import StravaSimulator
    from tests.conftest import tap_config_for
    from tests.support import run_tap

    budgets = {f"{n}_per_run": 5 for n in ("activity_details", "laps", "zones", "streams")}
    with StravaSimulator(seed=12, activity_count=40, read_limit_15min=1000) as sim:
        config = tap_config_for(sim, tmp_path, **budgets)
        with caplog.at_level("INFO", logger="singer_sdk.metrics"):
            run_tap(config)
        api_calls = [r for r in sim.requests if r.path.startswith("/api/v3/")]
    counted = 0
    endpoints = set()
    for record in caplog.records:
        message = record.getMessage()
        if "METRIC: " not in message:
            continue
        point = json.loads(message.split("METRIC: ", 1)[1])
        if point["metric"] == "http_request_count":
            counted += point["value"]
            endpoints.add(point["tags"]["endpoint"])
    kinds = {r.path.split("/")[3] for r in api_calls}
    assert {"athlete", "athletes", "gear", "activities"} <= kinds, "every kind of GET ran"
    assert counted == len(api_calls)
    assert {"/athlete", "/gear/{id}", "/activities/{id}/laps"} <= endpoints
