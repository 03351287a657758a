"""strava-job's reading of Meltano's output, on what this project's real `meltano run` prints.

``test_notify_job.py`` plays scripted lines through a stand-in for meltano; these tests
run the installed Meltano on the repository's ``meltano.yml`` against the simulator,
exactly as strava-job does (``--log-format=json``, stderr merged into stdout), and feed
every line to :class:`~strava_notify.meltano_log.MeltanoLog`. A Meltano or SDK upgrade
that changes the log format fails here, not in a user's notification.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import signal
import sqlite3
import subprocess
import time
import typing as t
import uuid
from pathlib import Path

import psutil
import pytest

from strava_notify.meltano_log import MeltanoLog
from strava_simulator import StravaSimulator
from tests.pipeline import MELTANO, PROJECT_ROOT, MeltanoProject
from tests.test_notify_helpers import closed_port

pytestmark = pytest.mark.e2e

CSV_STATE = "dev:tap-strava-to-target-csv"
PG_STATE = "dev:tap-strava-to-target-postgres"
# The daily job's Postgres block replays the spool (issue 14): its own state id.
DAILY_PG_STATE = "dev:tap-strava-replay-to-target-postgres"
CSV_BLOCK = ("tap-strava", "tally-csv", "target-csv")


@dataclasses.dataclass
class Captured:
    """One real `meltano run`: its exit code, its output and what the parser made of it."""

    code: int
    output: str
    log: MeltanoLog


def meltano_run(project: MeltanoProject, *blocks: str, **env: str) -> Captured:
    """`meltano --environment=dev --log-format=json run BLOCKS`, as strava-job starts it."""
    proc = subprocess.run(
        [MELTANO, "--environment=dev", "--log-format=json", "run", *blocks],
        cwd=PROJECT_ROOT,
        env=project.env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in order, like strava-job reads it
        text=True,
        timeout=300,
        check=False,
    )
    log = MeltanoLog()
    for line in proc.stdout.splitlines(keepends=True):
        log.feed(line)
    return Captured(proc.returncode, proc.stdout, log)


def mark_running(project: MeltanoProject, state_id: str) -> None:
    """What a SIGKILLed meltano leaves behind: a fresh "running" row for the state id."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(project.workdir / "meltano.db") as db:
        db.execute(
            "INSERT INTO runs (job_name, state, started_at, payload, payload_flags, run_id,"
            ' "trigger", last_heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            (state_id, "RUNNING", now, "{}", 0, uuid.uuid4().hex, "cli", now),
        )


def kill_the_tap_mid_sync(project: MeltanoProject, *blocks: str) -> Captured:
    """Run BLOCKS and SIGKILL the tap (by its pid) while it waits for a slow list page.

    What the OOM killer or an impatient user does; the tap writes no error line.
    """
    project.sim.inject_fault(r"/athlete/activities", "slow", count=1, delay=8)
    proc = subprocess.Popen(
        [MELTANO, "--environment=dev", "--log-format=json", "run", *blocks],
        cwd=PROJECT_ROOT,
        env=project.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    killed = False
    while not killed and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if project.sim.faults:
            continue  # the tap has not asked for the slow page yet
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                command = child.cmdline()
                if Path(command[1] if len(command) > 1 else "").name == "tap-strava" or (
                    command and Path(command[0]).name == "tap-strava"
                ):
                    child.send_signal(signal.SIGKILL)
                    killed = True
    output, _ = proc.communicate(timeout=300)
    assert killed, output[-3000:]
    log = MeltanoLog()
    for line in output.splitlines(keepends=True):
        log.feed(line)
    return Captured(proc.returncode, output, log)


def _project(sim: StravaSimulator, workdir: Path, postgres_url: str = "") -> MeltanoProject:
    return MeltanoProject(
        sim=sim, postgres_url=postgres_url, workdir=workdir, refresh_token=sim.refresh_token
    )


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[dict[str, Captured]]:
    """Five real runs, two at a time (Meltano is slow to start; the machine has two cores).

    * ``success``: the CSV block, complete; then ``already_running``: a killed earlier
      run still looks "running" to Meltano, which refuses;
    * ``loader``: the daily job with PostgreSQL unreachable: the spool and CSV blocks
      commit, then target-postgres dies while the replay and the mapper still write to it;
    * ``extractor``: the athlete revoked the app: the tap's one-line error;
    * ``killed``: the tap is SIGKILLed mid-sync and leaves no error line.
    """
    root = Path(tmp_path_factory.mktemp("meltano-output"))
    sims = [StravaSimulator(seed=7, activity_count=30).start() for _ in range(4)]
    try:
        dead_postgres = f"postgresql+psycopg://strava@127.0.0.1:{closed_port()}/strava"
        csv, daily, revoked, killed = (
            _project(sims[0], root / "csv"),
            _project(sims[1], root / "daily", dead_postgres),
            _project(sims[2], root / "revoked"),
            _project(sims[3], root / "killed"),
        )
        sims[2].revoke_tokens()

        def success_then_refused() -> dict[str, Captured]:
            success = meltano_run(csv, *CSV_BLOCK)
            mark_running(csv, CSV_STATE)
            return {"success": success, "already_running": meltano_run(csv, *CSV_BLOCK)}

        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futures = {
                "csv": pool.submit(success_then_refused),
                "loader": pool.submit(meltano_run, daily, "strava-daily"),
                "extractor": pool.submit(meltano_run, revoked, *CSV_BLOCK),
                "killed": pool.submit(kill_the_tap_mid_sync, killed, *CSV_BLOCK),
            }
            runs = dict(futures.pop("csv").result())
            runs.update({name: future.result() for name, future in futures.items()})
        yield runs
    finally:
        for sim in sims:
            sim.stop()


def test_a_real_successful_run_is_read_as_complete(real_runs):
    run = real_runs["success"]
    assert run.code == 0, run.output[-3000:]
    log = run.log
    assert log.failure is None
    assert log.already_running is None
    assert log.completed == [
        {"block": 0, "plugins": ["mapper-strava-tally", "tap-strava", "target-csv"]}
    ]
    assert log.completed_loaders() == ["target-csv"]
    assert log.state_ids == {0: CSV_STATE}
    roles = {name: trail.role for (_, name), trail in log.plugins.items()}
    assert roles == {"tap-strava": "tap", "mapper-strava-tally": "mapper", "target-csv": "target"}
    assert all(trail.first_error_at is None for trail in log.plugins.values())


def test_a_real_loader_failure_blames_the_loader_not_the_broken_pipes(real_runs):
    run = real_runs["loader"]
    assert run.code == 1
    step = run.log.failed_step()
    assert (step.kind, step.plugin, step.block, step.state_id) == (
        "target",
        "target-postgres",
        2,
        DAILY_PG_STATE,
    )
    assert "OperationalError" in step.cause
    assert "Connection refused" in step.cause
    # The first blocks committed before the third failed: the notification says so.
    assert run.log.completed_loaders() == ["target-strava-spool", "target-csv-replay"]


def test_a_real_extractor_failure_is_the_taps_one_line(real_runs):
    run = real_runs["extractor"]
    assert run.code == 1, run.output[-3000:]
    step = run.log.failed_step()
    assert (step.kind, step.plugin, step.block, step.state_id) == (
        "tap",
        "tap-strava",
        0,
        CSV_STATE,
    )
    assert step.cause.startswith("tap-strava: error: Strava rejected the refresh token")
    assert run.log.failure is not None
    assert run.log.failure.err == "Extractor failed"
    assert run.log.completed_loaders() == []


def test_a_real_refusal_of_a_still_running_job_is_recognised(real_runs):
    run = real_runs["already_running"]
    assert run.code == 1
    assert run.log.already_running, run.output[-3000:]
    step = run.log.failed_step()
    assert step.kind == "already_running"
    assert CSV_STATE in step.cause
    assert step.cause == step.cause.splitlines()[0]


def test_a_real_tap_killed_without_a_word_is_named_with_how_it_ended(real_runs):
    """Its last log line is an info line: the cause is the signal, the line only context."""
    run = real_runs["killed"]
    assert run.code == 1, run.output[-3000:]
    assert run.log.failure is not None
    assert run.log.failure.exit_codes == {"extractors": -9}
    step = run.log.failed_step()
    assert (step.kind, step.plugin, step.state_id) == ("tap", "tap-strava", CSV_STATE)
    assert step.cause.startswith("tap-strava was killed by SIGKILL"), step.cause
    assert "; its last line: " in step.cause
