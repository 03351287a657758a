"""The club's details backfill and archive import, per athlete, on the real Dagster daemon.

``execute_in_process`` skips the daemon's run queue, its pools, sensors and run retries,
so each test starts ``dagster-daemon run`` with PostgreSQL storage, as
tests/test_club_dagster.py does, and checks what the club's organiser would: each
athlete's details exactly the simulator's, a second backfill spending no detail request,
one run per athlete at a time across the jobs, an archive imported once and a new one
again, a bad or mislabelled archive failing only its athlete's run, with one line, not
retried. Archives are written by real FIT/GPX/TCX libraries (tests/export_fixtures.py).
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import time
import types
import typing as t
from pathlib import Path

import psycopg
import pytest

from strava_simulator import StravaSimulator
from strava_simulator import details as sim_details
from tap_strava import backends
from tap_strava.token_keys import KEYS_ENV, new_key
from tap_strava.token_store import StoredTokens
from tests.conftest import tap_config_for
from tests.export_fixtures import (
    Activity,
    fit_bytes,
    gpx_bytes,
    gz,
    samples,
    start_at,
    tcx_bytes,
    write_archive,
)
from tests.test_club_dagster import (
    CLUB_BIN,
    club_env,
    connect_athletes,
    dagster_daemon,
)

pytestmark = pytest.mark.extras

DEADLINE_SECONDS = 240
#: The per-activity calls of the simulator's log (details, laps, zones, streams).
DETAIL_CALL = re.compile(r"^/api/v3/activities/\d+(/.*)?$")


def runs(url: str) -> list[dict[str, t.Any]]:
    """Every run of Dagster's runs table, oldest first (no Python with Dagster started)."""
    with psycopg.connect(url) as connection:
        exists = connection.execute("SELECT to_regclass('public.runs')").fetchone()
        if not exists or exists[0] is None:
            return []
        found = connection.execute(
            "SELECT run_id, pipeline_name, partition, status, start_time, end_time FROM runs "
            "ORDER BY id"
        ).fetchall()
        tags = collections.defaultdict(dict)
        for run_id, key, value in connection.execute("SELECT run_id, key, value FROM run_tags"):
            tags[run_id][key] = value
    names = ("run_id", "job", "partition", "status", "start", "end")
    return [dict(zip(names, row, strict=True)) | {"tags": tags[row[0]]} for row in found]


def finished(found: list[dict[str, t.Any]]) -> bool:
    return all(run["status"] in ("SUCCESS", "FAILURE", "CANCELED") for run in found)


def wait_for(
    what: str,
    done: t.Callable[[], t.Any],
    process: subprocess.Popen[bytes],
    tmp_path: Path,
    deadline: float,
) -> t.Any:
    """Poll ``done`` every second until it is truthy (the daemon alive, the deadline kept)."""
    while not (value := done()):
        log = (tmp_path / "daemon.log").read_text()[-3000:]
        assert process.poll() is None, log
        assert time.monotonic() < deadline, f"{what}: {log}"
        time.sleep(1)
    return value


def launch(env: dict[str, str], job: str, keys: t.Iterable[str], tmp_path: Path) -> None:
    """Queue one run per partition through the instance's run queue (Dagster's CLI)."""
    proc = subprocess.run(
        [
            str(CLUB_BIN / "dagster"),
            "job",
            "backfill",
            "-m",
            "strava_club.definitions",
            "-j",
            job,
            "--partitions",
            ",".join(keys),
            "--noprompt",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def overlapping(found: list[dict[str, t.Any]]) -> list[tuple[str, str, str]]:
    """Pairs of runs of one partition (any job) that were running at the same moment."""
    pairs = []
    for index, first in enumerate(found):
        for second in found[index + 1 :]:
            if first["partition"] != second["partition"] or not (
                first["start"] and second["start"]
            ):
                continue
            if first["start"] < second["end"] and second["start"] < first["end"]:
                pairs.append((first["partition"], first["job"], second["job"]))
    return pairs


def test_details_backfill_per_athlete_on_the_daemon(club_database, tmp_path, monkeypatch):
    started = time.monotonic()
    monkeypatch.setenv(KEYS_ENV, new_key())
    shared_url = club_database.replace("postgresql://", "postgresql+psycopg://")
    # The Extended tier's proportions: with an overall limit below the reads', the ledger
    # counts each read as more than one and the backfill class stops at once.
    with StravaSimulator(
        seed=41,
        activity_count=5,
        read_limit_15min=600,
        overall_limit_15min=1200,
        read_limit_daily=30_000,
        overall_limit_daily=60_000,
    ) as sim:
        for seed in (42, 43):
            sim.add_athlete(seed=seed, activity_count=5)
        config = tap_config_for(
            sim,
            tmp_path,
            shared_database_url=shared_url,
            activity_details_per_run=50,
            laps_per_run=50,
            # An athlete past its fair share while others are active asks again after
            # 5 s: a club's backfill waits for that rather than stopping.
            max_rate_limit_wait_seconds=30,
        )
        del config["refresh_token"]  # the athletes are the shared store's
        for athlete in sim.athletes:
            store = backends.token_store(
                config, client_id=sim.client_id, configured_refresh_token=athlete.refresh_token
            )
            store.save(
                StoredTokens(refresh_token=athlete.refresh_token, athlete_id=athlete.athlete_id)
            )
            store.close()
        # Slow list pages: each athlete's first poll is still queued or running when its
        # backfill is queued, so the one-run-per-athlete limit has something to hold.
        sim.inject_fault("/athlete/activities", "slow", count=-1, delay=3.0)
        env = club_env(
            config, club_database, tmp_path, STRAVA_CLUB_DETAIL_STREAMS="activity_details,laps"
        )
        keys = [str(a.athlete_id) for a in sim.athletes]
        deadline = time.monotonic() + DEADLINE_SECONDS
        with dagster_daemon(env, tmp_path) as process:
            # The partition sensor adds the three athletes and queues their first polls;
            # their backfills are queued at once behind them.
            wait_for(
                "the first polls",
                lambda: len([r for r in runs(club_database) if r["job"] == "daily_poll"]) == 3,
                process,
                tmp_path,
                deadline,
            )
            launch(env, "details_backfill", keys, tmp_path)
            queued_at = time.time()
            sim.clear_faults()
            first = wait_for(
                "the first backfills",
                lambda: (
                    (found := runs(club_database)) and len(found) == 6 and finished(found) and found
                ),
                process,
                tmp_path,
                deadline,
            )
            first_requests = sim.requests
            sim.clear_requests()
            launch(env, "details_backfill", keys, tmp_path)
            second = wait_for(
                "the second backfills",
                lambda: (
                    (found := runs(club_database)) and len(found) == 9 and finished(found) and found
                ),
                process,
                tmp_path,
                deadline,
            )
        second_requests = sim.requests
        expected_details = set()
        expected_laps = set()
        for athlete in sim.athletes:
            for summary in athlete.activities:
                stored = athlete.store.get(summary["id"])
                body = sim_details.detailed(stored, athlete.dataset.gear)
                expected_details.add(
                    (body["id"], athlete.athlete_id, body["name"], body["description"])
                )
                expected_laps |= {
                    (lap["id"], athlete.athlete_id, body["id"], lap["elapsed_time"])
                    for lap in sim_details.laps(stored)
                }
    print(f"details backfill on the daemon: {time.monotonic() - started:.0f} s")

    assert [r["status"] for r in second] == ["SUCCESS"] * 9, second
    backfills = [r for r in second if r["job"] == "details_backfill"]
    assert sorted(r["partition"] for r in backfills) == sorted(keys * 2)
    # Below the polls in the run queue (the events run has 10, the polls 0).
    assert {r["tags"].get("dagster/priority") for r in backfills} == {"-10"}
    # One run per athlete at a time, across the two jobs: each backfill was queued while
    # its athlete's first poll was queued or running, and started after it ended.
    assert overlapping(second) == []
    polls = {r["partition"]: r for r in first if r["job"] == "daily_poll"}
    held = [r for r in backfills[:3] if queued_at < polls[r["partition"]]["end"]]
    assert held, "no backfill was queued while its athlete's poll ran: nothing was checked"
    for run in held:
        assert run["start"] >= polls[run["partition"]]["end"]

    # Every athlete's details and laps, exactly the simulator's, each fetched once.
    with psycopg.connect(club_database) as connection:
        details = set(
            connection.execute(
                "SELECT id, athlete_id, name, description FROM strava.activity_details"
            ).fetchall()
        )
        laps = set(
            connection.execute(
                "SELECT id, athlete_id, activity_id, elapsed_time FROM strava.laps"
            ).fetchall()
        )
    assert details == expected_details
    assert laps == expected_laps
    assert {row[1] for row in details} == {int(k) for k in keys}
    calls = collections.Counter(r.path for r in first_requests if DETAIL_CALL.match(r.path))
    assert len(calls) == 15 * 2  # details and laps of 15 activities
    assert set(calls.values()) == {1}
    # The second backfill: the list's look-back only, no per-activity request.
    assert [r.path for r in second_requests if DETAIL_CALL.match(r.path)] == []
    assert [r for r in second_requests if r.path.startswith("/api/v3/athlete/activities")]
    # Each athlete's details under a state of their own, beside the daily poll's: rows of
    # the shared database (this club has one), no file on the daemon's machine.
    with psycopg.connect(club_database) as connection:
        states = dict(connection.execute("SELECT state_id, value FROM strava_club.singer_states"))
    for key in keys:
        details_state = states[f"athlete-{key}-details"]
        poll_state = states[f"athlete-{key}"]
        assert {"activity_details", "laps"} <= set(details_state["bookmarks"])
        assert "activity_details" not in poll_state["bookmarks"]
    assert not list((tmp_path / "club-state").glob("*.json"))


ANN, BOB, CID, STRANGER = 111, 222, 333, 999
ADD_PARTITIONS = """
import sys
import dagster as dg
dg.DagsterInstance.get().add_dynamic_partitions("athletes", sys.argv[1:])
"""


def archive_activities(version: int) -> list[Activity]:
    """Ann's activities, each with an original file; version 2 renames one and adds one."""
    points = samples(60)
    found = [
        Activity(501, start_at(1), filename="activities/501.fit.gz",
                 content=gz(fit_bytes(start_at(1), points))),
        Activity(502, start_at(2), name="Lunch Ride", kind="Ride",
                 filename="activities/502.gpx", content=gpx_bytes(start_at(2), points)),
        Activity(503, start_at(3), filename="activities/503.tcx.gz",
                 content=gz(tcx_bytes(start_at(3), points))),
    ]  # fmt: skip
    if version == 2:
        found[1].name = "Lunch Ride, renamed"
        found.append(
            Activity(504, start_at(4), filename="activities/504.gpx.gz",
                     content=gz(gpx_bytes(start_at(4), points)))
        )  # fmt: skip
    return found


def drop(folder: Path, name: str, write: t.Callable[[Path], t.Any]) -> None:
    """Put an archive in the folder as an organiser should: a hidden copy, then a rename."""
    hidden = folder / f".{name}.part"
    write(hidden)
    hidden.replace(folder / name)


def sensor_looks(tmp_path: Path) -> int:
    """How many times the daemon has evaluated the archive sensor (its log says)."""
    log = (tmp_path / "daemon.log").read_text()
    return log.count("Checking for new runs for sensor: athlete_archives")


def failure_lines(url: str, run_id: str) -> list[str]:
    """The descriptions of a run's step failures (the op's one line)."""
    with psycopg.connect(url) as connection:
        found = connection.execute(
            "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = "
            "'STEP_FAILURE'",
            (run_id,),
        ).fetchall()
    lines = []
    for (event,) in found:
        data = json.loads(event)["dagster_event"]["event_specific_data"]
        lines.append(data["user_failure_data"]["description"])
    return lines


def test_archives_dropped_for_athletes_are_imported_once_on_the_daemon(club_database, tmp_path):
    started = time.monotonic()
    config = {
        "client_id": "1",
        "client_secret": "not-needed-for-an-archive",
        "token_store_path": str(tmp_path / "tokens" / "tokens.json"),
    }
    keys = [str(k) for k in (ANN, BOB, CID)]
    connect_athletes(
        config,
        [types.SimpleNamespace(athlete_id=int(k), refresh_token=f"token-{k}") for k in keys],
    )
    folder = tmp_path / "archives"
    folder.mkdir()
    env = club_env(
        config,
        club_database,
        tmp_path,
        STRAVA_CLUB_ARCHIVE_DIR=str(folder),
        STRAVA_CLUB_ARCHIVE_SENSOR_SECONDS="2",
        STRAVA_CLUB_ARCHIVE_SETTLE_SECONDS="1",
    )
    # The athletes are partitions already (the partition sensor finds them known and
    # starts no poll: this test has no Strava).
    subprocess.run(
        [str(CLUB_BIN / "python"), "-c", ADD_PARTITIONS, *keys],
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )
    drop(folder, f"{ANN}.zip", lambda p: write_archive(p, archive_activities(1), athlete_id=ANN))

    def truncated(path: Path) -> None:  # an interrupted download
        write_archive(path, archive_activities(1), athlete_id=BOB)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    drop(folder, f"{BOB}.zip", truncated)
    # Ann's archive dropped under Cid's id: refused by the tap, never filed under Cid.
    drop(folder, f"{CID}.zip", lambda p: write_archive(p, archive_activities(1), athlete_id=ANN))
    drop(folder, f"{STRANGER}.zip", lambda p: write_archive(p, [], athlete_id=STRANGER))
    (folder / "notes.txt").write_text("not an archive")
    time.sleep(1.1)  # past the settle time: the first look starts the imports

    def archive_runs(count: int) -> t.Callable[[], list[dict[str, t.Any]] | None]:
        def done() -> list[dict[str, t.Any]] | None:
            found = [r for r in runs(club_database) if r["job"] == "archive_import"]
            failed = [r for r in found if r["status"] == "FAILURE"]
            settled = all("dagster/will_retry" in r["tags"] for r in failed)
            return found if len(found) == count and finished(found) and settled else None

        return done

    deadline = time.monotonic() + DEADLINE_SECONDS
    with dagster_daemon(env, tmp_path) as process:
        first = wait_for("the first imports", archive_runs(3), process, tmp_path, deadline)
        # Nothing new in the folder: two more looks start nothing.
        looks = sensor_looks(tmp_path)
        wait_for(
            "two more looks",
            lambda: sensor_looks(tmp_path) >= looks + 2,
            process,
            tmp_path,
            deadline,
        )
        assert archive_runs(3)() is not None, runs(club_database)
        # A newer archive of Ann's (renamed, and one more activity): imported again.
        drop(
            folder, f"{ANN}.zip", lambda p: write_archive(p, archive_activities(2), athlete_id=ANN)
        )
        second = wait_for("the new archive", archive_runs(4), process, tmp_path, deadline)
    print(f"archive imports on the daemon: {time.monotonic() - started:.0f} s")

    by_partition = {r["partition"]: r for r in first}
    assert sorted(by_partition) == sorted(keys)  # none for the stranger nor the notes
    log = (tmp_path / "daemon.log").read_text()
    assert f"{STRANGER}.zip: athlete {STRANGER} is not a partition (not connected)" in log
    assert "notes.txt: not named <athlete id>.zip or a folder <athlete id>/" in log
    assert by_partition[str(ANN)]["status"] == "SUCCESS"
    assert by_partition[str(ANN)]["tags"]["dagster/priority"] == "-5"
    for key, expected in (
        (BOB, f"athlete {BOB}: export_archive_path {folder / f'{BOB}.zip'} is not a zip archive"),
        (CID, f"athlete {CID}: export_archive_path {folder / f'{CID}.zip'} is athlete {ANN}'s"),
    ):
        run = by_partition[str(key)]
        # Failed, with the tap's one line, and not retried (a new file would be).
        assert run["status"] == "FAILURE"
        assert run["tags"]["dagster/will_retry"] == "false"
        lines = failure_lines(club_database, run["run_id"])
        assert len(lines) == 1
        assert lines[0].startswith(expected), lines
        assert "\n" not in lines[0]
    assert [r["partition"] for r in second[3:]] == [str(ANN)]
    assert second[3]["status"] == "SUCCESS"
    assert second[3]["tags"]["strava/archive"] != by_partition[str(ANN)]["tags"]["strava/archive"]

    with psycopg.connect(club_database) as connection:
        activities = set(
            connection.execute("SELECT id, athlete_id, name FROM strava.export_activities")
        )
        tracks = set(connection.execute("SELECT activity_id, athlete_id FROM strava.export_tracks"))
    assert activities == {
        (501, ANN, "Morning Run"),
        (502, ANN, "Lunch Ride, renamed"),
        (503, ANN, "Morning Run"),
        (504, ANN, "Morning Run"),
    }
    assert tracks == {(501, ANN), (502, ANN), (503, ANN), (504, ANN)}
    state = json.loads((tmp_path / "club-state" / f"athlete-{ANN}-archive.json").read_text())
    assert set(state["bookmarks"]) == {"export_activities", "export_gear", "export_tracks"}
    assert not (tmp_path / "club-state" / f"athlete-{CID}-archive.json").exists()
    # The club's message names each athlete whose last import failed, with the tap's line.
    message = subprocess.run(
        [str(CLUB_BIN / "strava-club-report")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    for key in (BOB, CID):
        assert any(
            line.startswith(f"  athlete {key}, archive: export_archive_path") for line in message
        ), message
    assert not [line for line in message if line.startswith(f"  athlete {ANN}")], message


OFFLINE_CHECK = """
import datetime, json, os, sys, time
from pathlib import Path
import dagster as dg
from strava_club.definitions import ATHLETES, athlete_archives, details_backfill_schedule

folder = Path(sys.argv[1])
out = {}
with dg.instance_for_test() as instance:
    instance.add_dynamic_partitions(ATHLETES.name, ["111", "222"])
    context = dg.build_sensor_context(instance=instance)
    out["skip"] = str(athlete_archives(context).skip_message)
    (folder / "111.zip").write_bytes(b"an archive")
    past = time.time() - 120
    os.utime(folder / "111.zip", (past, past))
    result = athlete_archives(dg.build_sensor_context(instance=instance))
    out["requests"] = [[r.partition_key, r.run_key, r.tags] for r in result.run_requests]
    when = datetime.datetime(2026, 12, 7, 6, 0, tzinfo=datetime.timezone.utc)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
    out["schedule"] = [[r.partition_key, r.run_key] for r in details_backfill_schedule(context)]
    os.environ["STRAVA_CLUB_DETAIL_STREAMS"] = ""
    out["no_details"] = str(details_backfill_schedule(context).skip_message)
print(json.dumps(out))
"""


def test_the_archive_sensor_and_the_details_schedule_offline(tmp_path):
    """What the sensor skips and requests, what the schedule asks for (no daemon)."""
    folder = tmp_path / "archives"
    (folder / "222").mkdir(parents=True)
    for name in ("222.zip", "999.zip", "notes.txt", ".333.zip.part"):
        (folder / name).write_bytes(b"x")
    config = {"client_id": "1", "client_secret": "x", "token_store_path": str(tmp_path / "t")}
    env = club_env(
        config,
        "postgresql://unused",
        tmp_path,
        STRAVA_CLUB_ARCHIVE_DIR=str(folder),
        STRAVA_CLUB_DETAIL_STREAMS="activity_details",
    )
    proc = subprocess.run(
        [str(CLUB_BIN / "python"), "-c", OFFLINE_CHECK, str(folder)],
        env={k: v for k, v in env.items() if k != "DAGSTER_HOME"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["skip"].split("; ") == [
        "notes.txt: not named <athlete id>.zip or a folder <athlete id>/, not imported",
        "222 and 222.zip: two archives for athlete 222, not imported (keep one)",
        "999.zip: athlete 999 is not a partition (not connected), not imported",
    ]
    stat = (folder / "111.zip").stat()
    fingerprint = f"{stat.st_size}-{stat.st_mtime_ns}"
    assert out["requests"] == [
        ["111", f"archive-111-{fingerprint}", {"strava/archive": fingerprint}]
    ]
    assert out["schedule"] == [["111", "details-2026-12-07-111"], ["222", "details-2026-12-07-222"]]
    assert out["no_details"] == "STRAVA_CLUB_DETAIL_STREAMS is empty: no details backfill"
