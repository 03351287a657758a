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
import contextlib
import json
import os
import re
import signal
import subprocess
import time
import typing as t
from pathlib import Path

import psycopg
import pytest

from devtools.postgres import scratch_database
from strava_simulator import StravaSimulator
from strava_simulator import details as sim_details
from tap_strava import backends
from tap_strava.token_keys import KEYS_ENV, new_key
from tap_strava.token_store import StoredTokens
from tests.conftest import tap_config_for
from tests.test_club_dagster import CLUB_BIN, SERVER, club_env

pytestmark = pytest.mark.extras

DEADLINE_SECONDS = 240
#: The per-activity calls of the simulator's log (details, laps, zones, streams).
DETAIL_CALL = re.compile(r"^/api/v3/activities/\d+(/.*)?$")


@pytest.fixture
def club_database() -> t.Iterator[str]:
    """A database of this test's own: Dagster's storage, the shared store, the rows."""
    with scratch_database(SERVER, "wt_backfill") as url:
        yield url


@contextlib.contextmanager
def daemon(env: dict[str, str], tmp_path: Path) -> t.Iterator[subprocess.Popen[bytes]]:
    """``dagster-daemon run`` on the club's definitions, stopped (its group) at the end."""
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
        with daemon(env, tmp_path) as process:
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
    # Each athlete's details under a state of their own, beside the daily poll's.
    for key in keys:
        details_state = json.loads(
            (tmp_path / "club-state" / f"athlete-{key}-details.json").read_text()
        )
        poll_state = json.loads((tmp_path / "club-state" / f"athlete-{key}.json").read_text())
        assert {"activity_details", "laps"} <= set(details_state["bookmarks"])
        assert "activity_details" not in poll_state["bookmarks"]
