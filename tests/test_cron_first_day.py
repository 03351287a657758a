"""The first real day (issue 13): quota waits in the logs as they happen, Ctrl-C and SIGTERM.

The project is deployed like the README's ``/srv/tap-strava`` (see ``test_notify_e2e``) and
``strava-job`` runs the real Meltano against the simulator. Another user of the app has
spent the 15-minute quota when the run starts (a 429 on the first request), so the tap
waits for the next window; the simulator's clock is set so that the wait is about as long
as its (short) window.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import typing as t
from pathlib import Path

import pytest

from devtools import demo
from strava_simulator import StravaSimulator
from tap_strava.ratelimit import WAIT_MARKER
from tests.test_notify_e2e import CronProject, deployed  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e

WINDOW = 20  # the simulator's and the tap's 15-minute window, shortened


@pytest.fixture
def simulator() -> t.Iterator[StravaSimulator]:
    """A small account whose quota windows are WINDOW seconds long."""
    with StravaSimulator(seed=7, activity_count=20, window_seconds=WINDOW) as sim:
        yield sim


def start_job(project: CronProject, sim: StravaSimulator) -> subprocess.Popen[str]:
    """The cron line's command, in its own process group (a terminal's foreground job)."""
    sim.advance_clock((-sim.now()) % WINDOW + 0.5)  # a window starts now
    sim.inject_fault(r"^/api/v3/athlete$", "rate_limit", count=1)
    env = project.meltano.env(
        STRAVA_NOTIFY_TRIES="1",
        TAP_STRAVA_RATE_LIMIT_WINDOW_SECONDS=str(WINDOW),
        TAP_STRAVA_MAX_RATE_LIMIT_WAIT_SECONDS=str(3 * WINDOW),
    )
    env.pop("TARGET_CSV_OUTPUT_PATH")
    cron_log = (project.root / "logs" / "cron.log").open("a")
    return subprocess.Popen(
        [str(project.root / ".venv" / "bin" / "strava-job"), "--environment", "prod"],
        cwd=project.root,
        env=env,
        stdout=cron_log,
        stderr=cron_log,
        text=True,
        start_new_session=True,
    )


def run_log(project: CronProject) -> str:
    return "\n".join(p.read_text() for p in (project.root / "logs").glob("strava-daily-*.log"))


def success_markers(project: CronProject) -> list[Path]:
    """Every ``_SUCCESS`` of the project's CSV output, wherever its folders are."""
    roots = {project.root / "output", project.meltano.output_root}
    return sorted(marker for root in roots if root.is_dir() for marker in root.rglob("_SUCCESS"))


def wait_is_the_last_line(project: CronProject) -> bool:
    """The per-run log ends with the wait line, complete: nothing is held in a buffer."""
    text = run_log(project)
    lines = text.splitlines()
    return text.endswith("\n") and bool(lines) and WAIT_MARKER in lines[-1]


def wait_for(condition: t.Callable[[], bool], proc: subprocess.Popen[str], seconds: float) -> bool:
    """Poll ``condition`` while ``proc`` runs; True if it held before ``proc`` ended."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_quota_wait_is_in_both_logs_while_it_lasts(deployed, capsys, monkeypatch):  # noqa: F811
    """13.2: cron.log and the per-run log (buffered until the end) were silent.

    The same run also serves the demo's report (13.8), instead of a run of its own.
    """
    simulator = deployed.meltano.sim
    cron_log = deployed.root / "logs" / "cron.log"
    proc = start_job(deployed, simulator)
    try:
        in_cron_log = wait_for(lambda: WAIT_MARKER in cron_log.read_text(), proc, 3 * WINDOW)
        # Everything Meltano printed so far is in the file, up to the wait line itself.
        in_run_log = wait_for(lambda: wait_is_the_last_line(deployed), proc, 2)
        assert proc.wait(timeout=300) == 0, cron_log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert in_cron_log, "cron's log showed the wait while it lasted"
    assert in_run_log, "the per-run log showed the wait while it lasted"
    relayed = [line for line in cron_log.read_text().splitlines() if WAIT_MARKER in line]
    assert relayed[0].split(" strava-job WARNING ")[1].startswith("tap-strava: " + WAIT_MARKER)
    (message,) = [post["json"] for post in deployed.hook.posts]
    assert message["type"] == "success"
    # 13.8: streams that are off (budget 0) are not listed as "0 read".
    assert "activity_details" not in message["body"]
    assert "laps" not in message["body"]
    # 13.7: every finished CSV folder has its marker with the counts.
    (marker,) = success_markers(deployed)
    assert f'"activities": {len(simulator.activities)}' in marker.read_text()

    # 13.8: `make demo`'s report: UTC beside the UTC bookmark, gear, how to look later.
    capsys.readouterr()
    project = deployed.meltano
    demo.report(project.postgres_url, marker.parent, project.env(), schema=project.schema)
    monkeypatch.setattr(demo, "configured_url", lambda: None)  # the embedded server's case
    demo.keep_or_explain("postgresql+psycopg://postgres@/postgres?host=/x", keep=False)
    out = capsys.readouterr().out
    assert re.search(rf"{project.schema}\.gear +\d+ rows", out), out
    newest = max(simulator.activities, key=lambda a: a["start_date"])
    assert newest["start_date"][:16].replace("T", " ") + " UTC (local " in out, out
    (bookmark,) = re.findall(r"Bookmark \(.*UTC\): (\S+)", out)
    assert bookmark == newest["start_date"]
    assert "--keep" in out
    assert "psql" in out


@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_ctrl_c_or_sigterm_ends_in_one_interrupted_message(deployed, how):  # noqa: F811
    """13.5: Ctrl-C gave a KeyboardInterrupt traceback, exit 130 and no message."""
    simulator = deployed.meltano.sim
    cron_log = deployed.root / "logs" / "cron.log"
    proc = start_job(deployed, simulator)
    try:
        assert wait_for(lambda: WAIT_MARKER in run_log(deployed), proc, 3 * WINDOW)
        if how == "ctrl_c":
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends its foreground job
        else:
            proc.send_signal(signal.SIGTERM)  # `kill PID`, a shutdown, systemd
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = cron_log.read_text()
    assert code == 3, text[-3000:]
    assert "Traceback" not in text
    (message,) = [post["json"] for post in deployed.hook.posts]
    assert message["type"] == "warning"
    assert message["title"] == "Strava sync (prod) interrupted"
    name = "SIGINT" if how == "ctrl_c" else "SIGTERM"
    assert f"({name}) before the job finished" in message["body"]
    assert "the next run resumes from there" in message["body"]
    assert text.count("Outcome interrupted") == 1
    assert not success_markers(deployed)


def test_malformed_settings_are_one_line_naming_each_setting(deployed):  # noqa: F811
    """13.6: `seven` gave 60 lines of Meltano traceback; 13/01/2024 was read as a date."""
    broken = '[{"name": "ann", "refresh_token": "tok-secret-4711"'  # JSON cut short
    proc = deployed.cron(
        TAP_STRAVA_LOOKBACK_DAYS="seven",
        TAP_STRAVA_START_DATE="13/01/2024",
        TAP_STRAVA_ATHLETES=broken,
    )
    assert proc.returncode == 1
    (message,) = [post["json"] for post in deployed.hook.posts]
    assert message["title"] == "Strava sync (prod) FAILED: tap (tap-strava)"
    (cause,) = [line for line in message["body"].splitlines() if line.startswith("Cause: ")]
    assert cause.startswith("Cause: tap-strava: error: invalid configuration: ")
    assert "lookback_days (TAP_STRAVA_LOOKBACK_DAYS) must be a whole number" in cause
    assert "start_date '13/01/2024' is not an ISO 8601 date-time" in cause
    assert "athletes (TAP_STRAVA_ATHLETES) must be a JSON list" in cause
    assert "tok-secret-4711" not in message["body"] + run_log(deployed)
    log = run_log(deployed)
    assert "invalid literal for int()" not in log
    assert "FileNotFoundError" not in log
    assert not success_markers(deployed), "a failed run has no marker"
