"""The club on Dagster, for real: the daemon, its run queue, sensors and run retries.

``execute_in_process`` and ``materialize()`` skip the daemon, the queue, the sensors and
the retries, so the club's day below starts ``dagster-daemon run`` with a temporary
DAGSTER_HOME whose storage is the real PostgreSQL server (a database of its own, which
also holds the club's shared store and tables), the real receiver (its Connect page and
its queue of push events) and the simulator over HTTP, and checks what a club's organiser
would: every athlete's rows exact and equal to a one-at-a-time run, the app's quota never
overrun, the revoked athlete reported and not retried, a killed tap retried by Dagster to
the same rows, no rotated refresh token presented again, the athletes who connect through
the page picked up as partitions, the day's push events applied.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import typing as t
from pathlib import Path

import httpx
import psycopg
import pytest

from strava_events import server
from strava_events.settings import load_settings
from strava_simulator import StravaSimulator
from strava_simulator.oauth import token_fingerprint
from strava_simulator.push import FIRST_SUBSCRIPTION_ID
from tap_strava import backends
from tap_strava.token_keys import KEYS_ENV, new_key
from tap_strava.token_store import StoredTokens, TokenStore
from tests.conftest import tap_config_for
from tests.support import load_into_postgres, run_tap
from tests.test_events_connect import shared_store_env
from tests.test_events_support import TAP_TOKEN, VERIFY_TOKEN, Served
from tests.test_notify_helpers import WebhookServer

pytestmark = pytest.mark.extras

ROOT = Path(__file__).resolve().parents[1]
CLUB_BIN = ROOT / ".venv-club" / "bin"
TAP = ROOT / ".venv" / "bin" / "tap-strava"
TARGET = ROOT / ".meltano" / "loaders" / "target-postgres" / "venv" / "bin" / "target-postgres"
APPLY_DELETIONS = ROOT / ".venv" / "bin" / "strava-apply-deletions"
DEADLINE_SECONDS = 600
#: The simulated app's quota: READ_LIMIT reads per WINDOW seconds (Strava's 15 minutes,
#: shortened; the tap's ledger uses the same window).
WINDOW = 20
READ_LIMIT = 60
#: Compared between Dagster's tables and the one-at-a-time run's.
COLUMNS = "id, athlete_id, name, distance, moving_time, start_date, sport_type"

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
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
      - key: strava/job
        value: events
        limit: 1
  pools:
    default_limit: 4
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


def connect_athletes(config: dict[str, t.Any], athletes: t.Iterable[t.Any]) -> None:
    """What tap-strava-auth leaves for each athlete who connects: their tokens and id."""
    for athlete in athletes:
        store = TokenStore(
            Path(config["token_store_path"]),
            client_id=str(config["client_id"]),
            configured_refresh_token=athlete.refresh_token,
        )
        store.save(StoredTokens(refresh_token=athlete.refresh_token, athlete_id=athlete.athlete_id))


def club_env(
    config: dict[str, t.Any], database: str, tmp_path: Path, **extra: str
) -> dict[str, str]:
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
        **extra,
    }
    env.pop("VIRTUAL_ENV", None)
    return env


@contextlib.contextmanager
def dagster_daemon(env: dict[str, str], tmp_path: Path) -> t.Iterator[subprocess.Popen[bytes]]:
    """``dagster-daemon run`` on the club's definitions, stopped (its group) at the end.

    Its output goes to ``daemon.log`` in ``tmp_path``. The daemon runs schedules, sensors,
    the run queue and retries: what ``execute_in_process`` skips.
    """
    log = (tmp_path / "daemon.log").open("w")
    process = subprocess.Popen(
        [str(CLUB_BIN / "dagster-daemon"), "run", "-m", "strava_club.definitions"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


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


def kill_first_tap(sim: StravaSimulator, athlete: t.Any, killed: list[int]) -> None:
    """SIGKILL the athlete's first tap once it is into its pages (the step fails).

    Once Strava has answered its token refresh (the rotated token is committed before the
    tap uses it) and its first, slow, page is on the way: a tap killed inside the refresh
    itself would lose the rotated token, which is another test's matter.
    """
    first = token_fingerprint(athlete.refresh_token)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not killed and time.monotonic() < deadline:
        refreshed = any(g.presented == first and g.accepted for g in sim.token_grants)
        pids = tap_processes(athlete.athlete_id) if refreshed else []
        for pid in pids:
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


def rows(url: str, schema: str) -> dict[int, set[tuple[t.Any, ...]]]:
    """Each athlete's live activity rows (deleted ones flagged are left out)."""
    deleted = "_sdc_deleted_at IS NULL" if schema == "strava" else "true"
    with psycopg.connect(url) as connection:
        found = connection.execute(
            f"SELECT {COLUMNS} FROM {schema}.activities WHERE {deleted}"
        ).fetchall()
    grouped: dict[int, set[tuple[t.Any, ...]]] = collections.defaultdict(set)
    for row in found:
        grouped[int(row[1])].add(tuple(row))
    return dict(grouped)


def events_runs(url: str) -> list[str]:
    """The statuses of the events runs, oldest first (Dagster's runs table)."""
    with psycopg.connect(url) as connection:
        found = connection.execute(
            "SELECT status FROM runs WHERE pipeline_name = 'events_run' ORDER BY id"
        ).fetchall()
    return [row[0] for row in found]


def receipts(url: str) -> collections.Counter[str]:
    """The outcomes of the events the events runs handled (event_receipts)."""
    with psycopg.connect(url) as connection:
        exists = connection.execute("SELECT to_regclass('strava.event_receipts')").fetchone()
        if not exists or exists[0] is None:
            return collections.Counter()
        found = connection.execute("SELECT outcome FROM strava.event_receipts").fetchall()
    return collections.Counter(row[0] for row in found)


def pending(tap_url: str) -> int:
    answer = httpx.get(
        f"{tap_url}/tap/events/pending",
        params={"limit": 1000},
        headers={"Authorization": f"Bearer {TAP_TOKEN}"},
        timeout=10,
    )
    return len(answer.json()["events"])


def a_day(athletes: list[t.Any]) -> int:
    """The club's day: each athlete uploads one, renames two and deletes one activity."""
    changes = 0
    for athlete in athletes:
        listed = sorted(athlete.activities, key=lambda a: a["start_date"])
        athlete.add_activity(name=f"Club day ride of {athlete.athlete_id}")
        athlete.update_activity(int(listed[0]["id"]), name='Renamed: "old", ünïcode\\')
        athlete.update_activity(int(listed[5]["id"]), name="Renamed, recent")
        athlete.delete_activity(int(listed[-1]["id"]))
        changes += 4
    return changes


@contextlib.contextmanager
def receiver_for(sim: StravaSimulator, project: Path, shared_url: str) -> t.Iterator[Served]:
    """The real receiver: the app's push subscription and the Connect page.

    Whose events it accepts is the shared store's athletes (no list, no token file), and
    the Connect page stores there: what a club's receiver does on any machine.
    """
    public = server.listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{public.getsockname()[1]}"
    (project / ".env").write_text("# the club's project\n")
    env = shared_store_env(sim, project, url, shared_url)
    env["STRAVA_EVENTS_SUBSCRIPTION_ID"] = str(FIRST_SUBSCRIPTION_ID)
    settings = load_settings(env)
    with Served(settings, public) as receiver:
        created = httpx.post(
            f"{sim.api_url}/push_subscriptions",
            data={
                "client_id": sim.client_id,
                "client_secret": sim.client_secret,
                "callback_url": receiver.callback,
                "verify_token": VERIFY_TOKEN,
            },
            timeout=10,
        )
        assert created.status_code == 201, created.text
        assert created.json()["id"] == FIRST_SUBSCRIPTION_ID
        yield receiver


def test_a_club_day_on_the_daemon(club_database, tmp_path, monkeypatch):
    started = time.monotonic()
    monkeypatch.setenv(KEYS_ENV, new_key())
    shared_url = club_database.replace("postgresql://", "postgresql+psycopg://")
    # The receiver (in this process) stores the Connect page's athletes in the shared store.
    monkeypatch.setenv("TAP_STRAVA_SHARED_DATABASE_URL", shared_url)
    with StravaSimulator(
        seed=21,
        activity_count=40,
        read_limit_15min=READ_LIMIT,
        overall_limit_15min=READ_LIMIT * 2,
        read_limit_daily=30_000,
        overall_limit_daily=60_000,
        window_seconds=WINDOW,
        # Shorter than the hour within which Strava answers a refresh with the same token:
        # every refresh rotates, and the old token dies.
        access_token_lifetime=1800,
        push_retry_delay=0.5,
    ) as sim:
        for seed in range(22, 35):
            sim.add_athlete(seed=seed, activity_count=40)
        club, joining = sim.athletes[:12], sim.athletes[12:]
        bob, cid = club[1:3]
        first_tokens = [a.refresh_token for a in sim.athletes]
        # The app's credentials only: the athletes are the shared store's.
        config = tap_config_for(
            sim,
            tmp_path,
            shared_database_url=shared_url,
            rate_limit_window_seconds=WINDOW,
            max_rate_limit_wait_seconds=WINDOW * 3,
        )
        del config["refresh_token"]
        for athlete in club:  # what tap-strava-auth leaves: the chain and the id
            store = backends.token_store(
                config, client_id=sim.client_id, configured_refresh_token=athlete.refresh_token
            )
            store.save(
                StoredTokens(refresh_token=athlete.refresh_token, athlete_id=athlete.athlete_id)
            )
            store.close()
        bob.revoke_tokens()  # bob left before the day (no event: no subscription yet)
        # Slow list pages, so that cid's tap can be caught and killed mid-run.
        sim.inject_fault("/athlete/activities", "slow", count=-1, delay=1.0)
        project = tmp_path / "project"
        project.mkdir()
        with WebhookServer() as hook, receiver_for(sim, project, shared_url) as receiver:
            events_config = tmp_path / "events.json"
            events_config.write_text(
                json.dumps({"events_url": f"{receiver.tap_url}/tap", "events_token": TAP_TOKEN})
            )
            events_config.chmod(0o600)
            deletions = [str(APPLY_DELETIONS), "--dsn", club_database, "--schema", "strava"]
            env = club_env(
                config,
                club_database,
                tmp_path,
                STRAVA_CLUB_EVENTS_CONFIG=str(events_config),
                STRAVA_CLUB_EVENTS_SENSOR_SECONDS="5",
                STRAVA_CLUB_CYCLE_COMMANDS=json.dumps([deletions]),
                # The club's message goes through the project's own notifier.
                STRAVA_CLUB_NOTIFY_COMMAND=json.dumps([str(ROOT / ".venv/bin/strava-notify")]),
                STRAVA_NOTIFY_URLS=hook.url(),
            )
            killed: list[int] = []
            killer = threading.Thread(target=kill_first_tap, args=(sim, cid, killed))
            killer.daemon = True
            killer.start()
            deadline = time.monotonic() + DEADLINE_SECONDS

            def wait(what: str, done: t.Callable[[], t.Any]) -> t.Any:
                while not (value := done()):
                    assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                    assert time.monotonic() < deadline, (
                        f"{what}: pending {pending(receiver.tap_url)}, receipts "
                        f"{dict(receipts(club_database))}, events runs "
                        f"{events_runs(club_database)}; {json.dumps(report(env))[-2000:]}"
                    )
                    time.sleep(5)  # each look starts a Python with Dagster: seconds of CPU
                return value

            with dagster_daemon(env, tmp_path) as daemon:
                # The sensor finds the twelve athletes of the store; then two more connect
                # through the receiver's page, each in their own browser.
                wait("the first partitions", lambda: len(report(env)["partitions"]) == 12)
                for athlete in joining:
                    sim.set_consenting_athlete(athlete)
                    with httpx.Client(follow_redirects=True, timeout=10) as browser:
                        page = browser.get(f"{receiver.url}/connect")
                    assert page.status_code == 200, page.text
                    assert f"Connected athlete {athlete.athlete_id}" in page.text

                def settled() -> dict[str, t.Any] | None:
                    state = report(env)
                    last = {run["partition"]: run for run in state["runs"]}
                    done = len(last) == 14 and all(
                        run["status"] in ("SUCCESS", "FAILURE") and run["will_retry"] != "true"
                        for run in last.values()
                    )
                    return state if done and state["failures"] and killed else None

                polled = wait("every athlete's first poll", settled)
                polls_done = time.monotonic() - started
                message = subprocess.run(
                    [str(CLUB_BIN / "strava-club-report"), "--notify"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=True,
                ).stdout.splitlines()

                # The day: forty changes pushed to the receiver; the events sensor starts
                # the events runs. Bob's entry leaves the store: his partition goes.
                sim.clear_faults()
                live = [a for a in club if a is not bob][:10]
                changes = a_day(live)
                assert sim.push.wait_idle(30)
                assert backends.forget_athlete(config, bob.athlete_id) == 1
                wait(
                    "the day's events applied",
                    lambda: (
                        sum(receipts(club_database).values()) >= changes
                        and pending(receiver.tap_url) == 0
                        and str(bob.athlete_id) not in report(env)["partitions"]
                    ),
                )
                wait(
                    "the events runs to end",
                    lambda: (
                        events_runs(club_database)
                        and all(s in ("SUCCESS", "FAILURE") for s in events_runs(club_database))
                    ),
                )
                final = report(env)
                # The daily message as the schedule starts it: a run of club_message,
                # queued and run by the daemon.
                subprocess.run(
                    [
                        *(str(CLUB_BIN / "dagster"), "job", "launch"),
                        *("-m", "strava_club.definitions", "-j", "club_message"),
                    ],
                    env=env,
                    cwd=tmp_path,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=True,
                )
                wait("the club's daily message", lambda: len(hook.requests) == 2)
        daemon_wall = time.monotonic() - started

        # The same club, one athlete after the other: tap and target directly, in a
        # schema of its own (no Dagster, no state), from the same store and the same app.
        reference = run_tap(config, streams=["activities"])
        load_into_postgres(
            reference.messages,
            shared_url,
            "reference",
            tmp_path,
        )
        grants = sim.token_grants
        reads = [
            r
            for r in sim.requests
            if r.method == "GET" and not r.path.startswith(("/_sim", "/oauth"))
        ]
        limited = [r for r in sim.requests if r.status == 429]
        expected = {
            a.athlete_id: {int(activity["id"]) for activity in a.activities}
            for a in sim.athletes
            if a is not bob
        }
        secrets = [
            sim.client_secret,
            TAP_TOKEN,
            *first_tokens,
            *(a.refresh_token for a in sim.athletes if a.refresh_token),
        ]
    wall = time.monotonic() - started
    windows = collections.Counter(int(r.time // WINDOW) for r in reads)
    print(
        f"club day on the daemon: first polls settled after {polls_done:.0f} s, the day's "
        f"events after {daemon_wall:.0f} s, {wall:.0f} s in all; {len(reads)} reads, busiest "
        f"{WINDOW}-second window {max(windows.values())}/{READ_LIMIT}; events runs "
        f"{events_runs(club_database)}; receipts {dict(receipts(club_database))}"
    )

    # Dagster's own cost per poll run: the run's wall time (its worker's start to its end)
    # against the tap and target's pipe inside it (the op's ``strava/sync-seconds``).
    timed = [r for r in polled["runs"] if r["status"] == "SUCCESS" and r["sync_seconds"]]
    overheads = sorted(r["end"] - r["start"] - r["sync_seconds"] for r in timed)
    syncs = sorted(r["sync_seconds"] for r in timed)
    print(
        f"poll runs: {len(timed)}; pipe wall median {syncs[len(syncs) // 2]:.1f} s; "
        f"Dagster's part (run wall less the pipe) median {overheads[len(overheads) // 2]:.1f} "
        f"s, min {overheads[0]:.1f} s, max {overheads[-1]:.1f} s"
    )
    assert all(o >= 0 for o in overheads)

    ids = {str(a.athlete_id) for a in sim.athletes}
    # Every athlete a partition, added by the sensor from the shared store: the twelve
    # who were there, the two who connected through the page; bob's gone once he left.
    assert set(polled["partitions"]) == ids
    assert set(final["partitions"]) == ids - {str(bob.athlete_id)}

    runs_of: dict[int, list[dict[str, t.Any]]] = collections.defaultdict(list)
    for run in polled["runs"]:
        runs_of[int(run["partition"])].append(run)
    # The club's message: how many synced, who failed and why; posted to the webhook as
    # printed (strava-club-report --notify), then by the daemon's club_message run.
    assert message[0] == "14 athletes; 13 synced; 1 failed", message
    assert message[1].startswith(f"  athlete {bob.athlete_id}: Strava rejected the refresh token")
    assert len(message) == 2
    posted = [json.loads(request["raw"]) for request in hook.requests]
    assert posted[0] == {
        "title": "Strava club: warning",
        "body": "\n".join(message),
        "type": "warning",
    }
    assert posted[1] == {
        "title": "Strava club: success",
        "body": "13 athletes; 13 synced; 0 failed",
        "type": "success",
    }, "after bob left: his partition went, the others synced"
    # The revoked athlete: one run, failed, not retried, reported with its reason.
    assert [r["status"] for r in runs_of[bob.athlete_id]] == ["FAILURE"]
    assert runs_of[bob.athlete_id][0]["will_retry"] == "false"
    reported = [f for f in polled["failures"] if f["athlete_id"] == str(bob.athlete_id)]
    assert len(reported) == 1
    assert "Strava rejected the refresh token" in reported[0]["reason"]
    # The killed tap: its run failed and Dagster retried it to success.
    assert killed
    assert [r["status"] for r in runs_of[cid.athlete_id]] == ["FAILURE", "SUCCESS"]
    assert runs_of[cid.athlete_id][1]["parent_run_id"] == runs_of[cid.athlete_id][0]["run_id"]
    # The others, the two who joined through the page among them: one successful run each.
    for athlete in sim.athletes:
        if athlete not in (bob, cid):
            assert [r["status"] for r in runs_of[athlete.athlete_id]] == ["SUCCESS"]
    # Several runs at once, never more than four (the queue). How many ran together at
    # the busiest moment depends on how fast the daemon dequeues against how short the
    # runs are: 4 on most runs of this test, 3 on one.
    assert 2 <= overlap(polled["runs"]) <= 4

    # Every athlete's rows: exactly their activities of the day's end (uploads, renames
    # and deletions applied by the events runs), and equal to the one-at-a-time run's.
    dagster_rows = rows(club_database, "strava")
    reference_rows = rows(club_database, "reference")
    assert {k: {r[0] for r in v} for k, v in dagster_rows.items()} == expected
    assert dagster_rows == reference_rows
    # The day's events: about forty, each applied once (deletions confirmed by a 404).
    outcome = receipts(club_database)
    assert outcome == {"applied": 30, "deleted": 10}, outcome
    assert "SUCCESS" in events_runs(club_database)
    # The app's quota: no window above its read limit, and no 429 at all.
    assert max(windows.values()) <= READ_LIMIT, windows
    assert limited == []
    # No rotated refresh token presented again (the simulator's token grants).
    rotated_away = {g.presented for g in grants if g.accepted and g.rotated}
    assert len(rotated_away) >= 10, "the first runs refreshed and Strava rotated"
    for index, grant in enumerate(grants):
        later = [g.presented for g in grants[index + 1 :]]
        if grant.accepted and grant.rotated:
            assert grant.presented not in later, "a rotated refresh token was presented again"
    # No secret in what Dagster stores in clear (run tags, config, event logs).
    with psycopg.connect(club_database) as connection:
        stored = " ".join(
            str(row)
            for table in ("runs", "run_tags", "event_logs")
            for row in connection.execute(f"SELECT * FROM {table}")
        )
    assert stored
    assert not [s for s in secrets if s in stored]
    # Every run's Singer state is a row of the shared database (any worker can run any
    # athlete); none is a file of the daemon's machine.
    with psycopg.connect(club_database) as connection:
        state_ids = {
            row[0] for row in connection.execute("SELECT state_id FROM strava_club.singer_states")
        }
    others = {f"athlete-{a.athlete_id}" for a in sim.athletes if a is not bob}
    assert others | {"events"} <= state_ids <= others | {"events", f"athlete-{bob.athlete_id}"}
    assert not list((tmp_path / "club-state").glob("**/*.json"))
    assert not (project / "tokens.json").exists(), "the Connect page stored in the shared store"


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


def test_the_reports_job_names_are_the_definitions():
    """The report reads runs by job name (strava_club.names), without the definitions."""
    check = (
        "import strava_club.definitions as d, strava_club.names as n\n"
        "assert [j.name for j in (d.daily_poll, d.events_run, d.details_backfill, "
        "d.archive_import)] == [n.DAILY_POLL, n.EVENTS_RUN, n.DETAILS_BACKFILL, "
        "n.ARCHIVE_IMPORT]\n"
        "assert d.ATHLETES.name == n.ATHLETES"
    )
    proc = subprocess.run(
        [str(CLUB_BIN / "python"), "-c", check],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


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
