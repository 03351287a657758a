"""The club on Dagster, for real: the daemon, its run queue, sensors and run retries.

``execute_in_process`` and ``materialize()`` skip the daemon, the queue, the sensors and
the retries, so this test starts ``dagster-daemon run`` with a temporary DAGSTER_HOME whose
storage is the real PostgreSQL server (a database of its own), lets the sensor add the
simulator's athletes as partitions, and checks what a club's organiser would: every
athlete's rows in PostgreSQL are exactly their activities, the revoked athlete's run fails
once with its reason reported and is not retried, and a tap killed mid-run is retried by
Dagster to the same rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import typing as t
from pathlib import Path

import psycopg
import pytest

from devtools.postgres import scratch_database
from strava_simulator import StravaSimulator
from tap_strava.token_store import StoredTokens, TokenStore, forget_athlete
from tests.conftest import tap_config_for

pytestmark = pytest.mark.extras

ROOT = Path(__file__).resolve().parents[1]
CLUB_BIN = ROOT / ".venv-club" / "bin"
TAP = ROOT / ".venv" / "bin" / "tap-strava"
TARGET = ROOT / ".meltano" / "loaders" / "target-postgres" / "venv" / "bin" / "target-postgres"
SERVER = os.environ.get("STRAVA_CLUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
DEADLINE_SECONDS = 600

if not (CLUB_BIN / "dagster-daemon").exists():
    pytest.skip(
        "the club's Dagster environment .venv-club is absent: `make setup-club` (or "
        "`make test-extras`, which sets it up) installs it",
        allow_module_level=True,
    )

DAGSTER_YAML = """\
storage:
  postgres:
    postgres_url: {url}
concurrency:
  runs:
    max_concurrent_runs: 2
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: 2
run_retries:
  enabled: true
  max_retries: 2
run_monitoring:
  enabled: true
  poll_interval_seconds: 5
sensors:
  use_threads: true
  num_workers: 2
telemetry:
  enabled: false
"""


@pytest.fixture
def club_database() -> t.Iterator[str]:
    """A database of this test's own on the real server: Dagster's storage and the rows."""
    with scratch_database(SERVER, "wt_dagster") as url:
        yield url


def connect_athletes(config: dict[str, t.Any], athletes: t.Iterable[t.Any]) -> None:
    """What tap-strava-auth leaves for each athlete who connects: their tokens and id."""
    for athlete in athletes:
        store = TokenStore(
            Path(config["token_store_path"]),
            client_id=str(config["client_id"]),
            configured_refresh_token=athlete.refresh_token,
        )
        store.save(StoredTokens(refresh_token=athlete.refresh_token, athlete_id=athlete.athlete_id))


def club_env(config: dict[str, t.Any], database: str, tmp_path: Path) -> dict[str, str]:
    """The files and STRAVA_CLUB_* variables of a club (secrets in files, mode 0600)."""
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(json.dumps(config))
    tap_config.chmod(0o600)
    target_config = tmp_path / "target.json"
    target_config.write_text(
        json.dumps(
            {
                "sqlalchemy_url": database.replace("postgresql://", "postgresql+psycopg://"),
                "default_target_schema": "strava",
                "add_record_metadata": True,
                "use_copy": True,
                "validate_records": False,
            }
        )
    )
    home = tmp_path / "dagster-home"
    home.mkdir(exist_ok=True)
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; dagster-postgres has psycopg2.
    storage_url = database.replace("postgresql://", "postgresql+psycopg2://")
    (home / "dagster.yaml").write_text(DAGSTER_YAML.format(url=storage_url))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "STRAVA_CLUB_TAP": str(TAP),
        "STRAVA_CLUB_TARGET": str(TARGET),
        "STRAVA_CLUB_TAP_CONFIG": str(tap_config),
        "STRAVA_CLUB_TARGET_CONFIG": str(target_config),
        "STRAVA_CLUB_STATE_DIR": str(tmp_path / "club-state"),
        "STRAVA_CLUB_STREAMS": "activities,athlete",
        "PATH": f"{CLUB_BIN}:{os.environ['PATH']}",
    }
    env.pop("VIRTUAL_ENV", None)
    return env


def report(env: dict[str, str]) -> dict[str, t.Any]:
    """``strava-club-report --json``: partitions, every poll run, the failures reported."""
    proc = subprocess.run(
        [str(CLUB_BIN / "strava-club-report"), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return t.cast("dict[str, t.Any]", json.loads(proc.stdout))


def tap_processes(athlete_id: int) -> list[int]:
    """Pids of tap-strava processes running for one athlete (its run folder is named so)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [arg.decode(errors="replace") for arg in args]
        if any(a.endswith("tap-strava") for a in text[:2]) and any(
            f"strava-club-{athlete_id}-" in a for a in text
        ):
            found.append(int(entry.name))
    return found


def kill_first_tap(athlete_id: int, killed: list[int]) -> None:
    """SIGKILL the athlete's first tap process once it is into its pages (the step fails)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not killed and time.monotonic() < deadline:
        for pid in tap_processes(athlete_id):
            time.sleep(0.5)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.1)


def overlap(runs: list[dict[str, t.Any]]) -> int:
    """The most runs that were running at one moment (start/end times from Dagster)."""
    points = []
    for run in runs:
        if run["start"] and run["end"]:
            points += [(run["start"], 1), (run["end"], -1)]
    best = current = 0
    for _moment, step in sorted(points, key=lambda p: (p[0], p[1])):
        current += step
        best = max(best, current)
    return best


def activity_ids(url: str) -> dict[int, set[int]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT athlete_id, id FROM strava.activities").fetchall()
    grouped: dict[int, set[int]] = {}
    for athlete_id, activity_id in rows:
        grouped.setdefault(int(athlete_id), set()).add(int(activity_id))
    return grouped


def test_the_daemon_polls_each_athlete_as_a_partition(club_database, tmp_path):
    started = time.monotonic()
    with StravaSimulator(seed=21, activity_count=30, read_limit_15min=600) as sim:
        for seed, count in ((22, 20), (23, 25), (24, 15)):
            sim.add_athlete(seed=seed, activity_count=count)
        ann, bob, cid, dee = sim.athletes
        config = tap_config_for(sim, tmp_path, max_rate_limit_wait_seconds=5)
        del config["refresh_token"]
        config["athletes"] = [
            {"name": name, "refresh_token": athlete.refresh_token}
            for name, athlete in zip(("ann", "bob", "cid", "dee"), sim.athletes, strict=True)
        ]
        connect_athletes(config, sim.athletes)
        bob.revoke_tokens()  # bob left: his run fails, alone
        # Slow list pages, so that cid's tap can be caught and killed mid-run.
        sim.inject_fault("/athlete/activities", "slow", count=-1, delay=1.0)

        env = club_env(config, club_database, tmp_path)
        log = (tmp_path / "daemon.log").open("w")
        daemon = subprocess.Popen(
            [str(CLUB_BIN / "dagster-daemon"), "run", "-m", "strava_club.definitions"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        killed: list[int] = []
        killer = threading.Thread(target=kill_first_tap, args=(cid.athlete_id, killed))
        killer.daemon = True
        killer.start()
        try:
            deadline = time.monotonic() + DEADLINE_SECONDS
            while True:
                state = report(env)
                last = {run["partition"]: run for run in state["runs"]}
                settled = len(last) == 4 and all(
                    run["status"] in ("SUCCESS", "FAILURE") and run["will_retry"] != "true"
                    for run in last.values()
                )
                if settled and state["failures"] and killed:
                    break
                assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                assert time.monotonic() < deadline, json.dumps(state, indent=1)[-3000:]
                time.sleep(3)
            polls_done = time.monotonic() - started
            message = subprocess.run(
                [str(CLUB_BIN / "strava-club-report")],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            ).stdout.splitlines()
            # Bob's entry leaves the token store (he revoked): the sensor drops his partition.
            assert forget_athlete(Path(config["token_store_path"]), bob.athlete_id) == 1
            while str(bob.athlete_id) in report(env)["partitions"]:
                assert time.monotonic() < deadline, "bob's partition was never removed"
                time.sleep(3)
            after_revoke = report(env)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
            log.close()
        wall = time.monotonic() - started
        print(f"club daemon test: polls settled after {polls_done:.0f} s, {wall:.0f} s in all")

        # Every athlete a partition, added by the sensor from the token store.
        ids = {a.athlete_id for a in sim.athletes}
        assert set(state["partitions"]) == {str(i) for i in ids}

        runs_of: dict[int, list[dict[str, t.Any]]] = {}
        for run in state["runs"]:
            runs_of.setdefault(int(run["partition"]), []).append(run)
        # The club's message: how many synced, who failed and why.
        assert message[0] == "4 athletes; 3 synced; 1 failed"
        assert message[1].startswith(
            f"  athlete {bob.athlete_id}: Strava rejected the refresh token"
        )
        assert len(message) == 2
        assert set(after_revoke["partitions"]) == {str(i) for i in ids - {bob.athlete_id}}
        # The revoked athlete: one run, failed, not retried, reported with its reason.
        assert [r["status"] for r in runs_of[bob.athlete_id]] == ["FAILURE"]
        assert runs_of[bob.athlete_id][0]["will_retry"] == "false"
        reported = [f for f in state["failures"] if f["athlete_id"] == str(bob.athlete_id)]
        assert len(reported) == 1
        assert "Strava rejected the refresh token" in reported[0]["reason"]
        # The killed tap: its run failed and Dagster retried it to success.
        assert killed
        assert [r["status"] for r in runs_of[cid.athlete_id]] == ["FAILURE", "SUCCESS"]
        assert runs_of[cid.athlete_id][1]["parent_run_id"] == runs_of[cid.athlete_id][0]["run_id"]
        # The others: one successful run each.
        for athlete in (ann, dee):
            assert [r["status"] for r in runs_of[athlete.athlete_id]] == ["SUCCESS"]
        # Never more than two runs at once (the queue), and two did run side by side.
        assert overlap(state["runs"]) == 2

        # Each athlete's rows are exactly their activities; nothing of bob.
        assert activity_ids(club_database) == {
            athlete.athlete_id: {a["id"] for a in athlete.activities} for athlete in (ann, cid, dee)
        }
        with psycopg.connect(club_database) as connection:
            loaded = {row[0] for row in connection.execute("SELECT id FROM strava.athlete")}
        assert loaded == {ann.athlete_id, cid.athlete_id, dee.athlete_id}
        # No secret in what Dagster stores in clear (run tags, config, event logs).
        secrets = [config["client_secret"], *(a["refresh_token"] for a in config["athletes"])]
        with psycopg.connect(club_database) as connection:
            stored = " ".join(
                str(row)
                for table in ("runs", "run_tags", "event_logs")
                for row in connection.execute(f"SELECT * FROM {table}")
            )
        assert stored
        assert not [s for s in secrets if s in stored]


SCHEDULE_CHECK = """
import datetime, json
import dagster as dg
from strava_club.definitions import ATHLETES, daily_poll_schedule
with dg.instance_for_test() as instance:
    instance.add_dynamic_partitions(ATHLETES.name, ["101", "202"])
    when = datetime.datetime(2026, 12, 7, 5, 0, tzinfo=datetime.timezone.utc)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
    requests = daily_poll_schedule(context)
    print(json.dumps([[r.partition_key, r.run_key, sorted(r.tags)] for r in requests]))
"""


def test_the_daily_schedule_asks_for_every_athletes_poll():
    proc = subprocess.run(
        [str(CLUB_BIN / "python"), "-c", SCHEDULE_CHECK],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    requests = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [(key, run_key) for key, run_key, _tags in requests] == [
        ("101", "2026-12-07-101"),
        ("202", "2026-12-07-202"),
    ]


def test_the_report_without_dagster_home_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    proc = subprocess.run(
        [str(CLUB_BIN / "strava-club-report")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("strava-club-report: error: ")
    assert "DAGSTER_HOME" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


INTERRUPT_CHECK = """
import json, os, signal, sys, threading, time
from pathlib import Path
from strava_club.settings import club_settings
from strava_club.sync import discover, selected_catalog, sync_athlete

settings = club_settings()
catalog = selected_catalog(discover(settings), settings.streams)
taps = []
# Dagster interrupts an op the way SIGINT interrupts Python's main thread: here once the
# tap has made its first request (its stderr, a file, says so), so it is syncing.
def interrupt_when_syncing(tap):
    stderr = Path(os.readlink(f"/proc/{tap.pid}/fd/2"))
    while "http_request_count" not in stderr.read_text(errors="replace"):
        time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGINT)
def interrupt_soon(tap):
    taps.append(tap)
    threading.Thread(target=interrupt_when_syncing, args=(tap,), daemon=True).start()
try:
    sync_athlete(settings, int(sys.argv[1]), catalog, print, started=interrupt_soon)
except KeyboardInterrupt:
    print(json.dumps({"interrupted": True, "tap_exit": taps[0].returncode}))
"""


def test_an_interrupted_athlete_run_stops_the_tap_cleanly_and_keeps_its_state(
    club_database, tmp_path
):
    """The op's subprocesses end on an interruption: SIGTERM, the tap's state is kept."""
    with StravaSimulator(seed=31, activity_count=60, read_limit_15min=600) as sim:
        config = tap_config_for(sim, tmp_path, max_rate_limit_wait_seconds=5)
        connect_athletes(config, [sim.primary])
        sim.inject_fault("/athlete/activities", "slow", count=-1, delay=1.5)
        env = club_env(config, club_database, tmp_path)
        proc = subprocess.run(
            [str(CLUB_BIN / "python"), "-c", INTERRUPT_CHECK, str(sim.primary.athlete_id)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"interrupted": True, "tap_exit": 0}, proc.stdout  # SIGTERM: exit 0
    assert "state kept" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    state_file = tmp_path / "club-state" / f"athlete-{sim.primary.athlete_id}.json"
    state = json.loads(state_file.read_text())
    assert "activities" in state["bookmarks"]


CYCLE_CHECK = """
import dagster as dg
from strava_club.definitions import cycle_end
with dg.instance_for_test() as instance:
    assert cycle_end.execute_in_process(instance=instance).success
"""
STAMP = (
    "import sys, time; start = time.time(); time.sleep(4); "
    "open(sys.argv[1], 'a').write(f'{start} {time.time()}\\n')"
)


def test_the_cycle_steps_never_overlap_across_workers(club_database, tmp_path):
    """Two workers' cycle_end at once: the advisory lock runs their commands one at a time.

    The op alone (not the daemon's scheduling) is what is checked here, so each worker
    executes the job in its own process.
    """
    stamps = tmp_path / "stamps.txt"
    config = {"client_id": "1", "client_secret": "x", "token_store_path": str(tmp_path / "t")}
    env = club_env(config, club_database, tmp_path)
    env["STRAVA_CLUB_CYCLE_COMMANDS"] = json.dumps(
        [[str(CLUB_BIN / "python"), "-c", STAMP, str(stamps)]]
    )
    workers = [
        subprocess.Popen(
            [str(CLUB_BIN / "python"), "-c", CYCLE_CHECK],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        _out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-2000:]
    spans = sorted(tuple(map(float, line.split())) for line in stamps.read_text().splitlines())
    assert len(spans) == 2
    (_first_start, first_end), (second_start, _second_end) = spans
    assert second_start >= first_end
