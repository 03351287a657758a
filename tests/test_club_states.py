"""The club's Singer states in the shared database: any worker can run any athlete.

A run's state (what the target committed) is a row of ``strava_club.singer_states`` when
the club has a shared database, so a second machine, with an empty folder of its own,
resumes an athlete where the first one stopped instead of reading the whole history
again. The club's sync (tap-strava piped into target-postgres) is run for real against
the simulator and a real PostgreSQL; it needs no Dagster.
"""

from __future__ import annotations

import collections
import dataclasses
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packages" / "strava-club"))  # sync.py needs no Dagster

from devtools.bench_club import club_settings  # noqa: E402
from strava_club.states import FolderStates, PostgresStates, StateStoreError  # noqa: E402
from strava_club.sync import create_tables, discover, selected_catalog, sync_athlete  # noqa: E402
from strava_simulator import StravaSimulator  # noqa: E402

START_EPOCH = 946684800  # the club's start_date, 2000-01-01


def list_requests(sim: StravaSimulator, since: int) -> list[dict[str, str]]:
    """The queries of the activity-list requests from the ``since``-th request on."""
    return [r.query for r in sim.requests[since:] if r.path == "/api/v3/athlete/activities"]


def held(url: str) -> dict[int, list[int]]:
    """Each athlete's activity ids in the club's table (a list: a duplicate would show)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT athlete_id, id FROM strava.activities").fetchall()
    ids: dict[int, list[int]] = collections.defaultdict(list)
    for athlete_id, activity_id in rows:
        ids[int(athlete_id)].append(int(activity_id))
    return {athlete: sorted(values) for athlete, values in ids.items()}


def test_a_second_machine_resumes_an_athlete_from_the_shared_database(
    tmp_path, shared_database_url, token_keys
):
    with StravaSimulator(seed=61, activity_count=60) as sim:
        athlete = sim.primary
        first_machine = tmp_path / "first"
        first_machine.mkdir()
        settings = club_settings(sim, shared_database_url, first_machine, window=900)
        catalog = selected_catalog(discover(settings), settings.streams)
        create_tables(settings, catalog)
        first = sync_athlete(settings, athlete.athlete_id, catalog, lambda _line: None)
        assert first.ok, first.reason

        athlete.add_activity(name="Ridden after the first machine's run")
        second_machine = dataclasses.replace(settings, state_dir=tmp_path / "second")
        before = len(sim.requests)
        second = sync_athlete(second_machine, athlete.athlete_id, catalog, lambda _line: None)
        assert second.ok, second.reason
        resumed = list_requests(sim, before)
        expected = sorted(int(a["id"]) for a in athlete.activities)

    assert resumed, "the second machine listed the athlete's activities"
    assert all(int(query.get("after", "0")) > START_EPOCH for query in resumed), (
        "the second machine resumed from the first one's bookmark, not from the start date",
        resumed,
    )
    assert held(shared_database_url)[athlete.athlete_id] == expected, "all once, the new one too"
    assert not any(first_machine.glob("state/*.json")), "no state left on a machine's disk"
    assert not (tmp_path / "second").exists()
    with psycopg.connect(shared_database_url) as connection:
        (value,) = connection.execute(
            "SELECT value FROM strava_club.singer_states WHERE state_id = %s",
            (f"athlete-{athlete.athlete_id}",),
        ).fetchone()
    assert "activities" in value["bookmarks"]


def test_an_earlier_versions_state_file_is_read_once_then_the_row_wins(
    tmp_path, shared_database_url
):
    folder = FolderStates(tmp_path / "state")
    earlier = {"bookmarks": {"activities": {"replication_key_value": "2026-01-01T00:00:00Z"}}}
    folder.write("athlete-7", earlier)
    states = PostgresStates(shared_database_url, folder)
    assert states.read("athlete-7") == earlier, "an upgrade keeps the bookmark of the file"
    assert states.read("athlete-8") is None, "a first run"
    newer = {"bookmarks": {"activities": {"replication_key_value": "2026-02-01T00:00:00Z"}}}
    states.write("athlete-7", newer)
    another_worker = PostgresStates(shared_database_url)  # no folder: another machine
    assert another_worker.read("athlete-7") == newer
    assert folder.read("athlete-7") == earlier, "the file is left as it was"


def test_an_unreachable_or_unreadable_state_store_is_one_line(tmp_path):
    states = PostgresStates("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StateStoreError, match="cannot reach the shared database") as caught:
        states.read("athlete-1")
    assert "\n" not in str(caught.value)
    folder = FolderStates(tmp_path)
    (tmp_path / "athlete-1.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(StateStoreError, match="fix or remove it"):
        folder.read("athlete-1")
    assert folder.read("athlete-2") is None


def test_a_crashed_tap_is_reported_with_its_exception_line(
    tmp_path, shared_database_url, token_keys
):
    """A tap that ends without its one-line error crashed: the reason names the exception."""
    crashing = tmp_path / "tap-that-crashes"
    crashing.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "print('starting', file=sys.stderr)\n"
        "raise TypeError(\"Refusal.__init__() got an unexpected keyword argument 'x'\")\n"
    )
    crashing.chmod(0o755)
    with StravaSimulator(seed=62, activity_count=3) as sim:
        folder = tmp_path / "club"
        folder.mkdir()
        settings = club_settings(sim, shared_database_url, folder, window=900)
        catalog = selected_catalog(discover(settings), settings.streams)
        crashed = dataclasses.replace(settings, tap=str(crashing))
        outcome = sync_athlete(crashed, sim.primary.athlete_id, catalog, lambda _line: None)
    assert not outcome.ok
    assert outcome.retryable, "a crash may not happen again"
    assert outcome.reason == (
        "tap exited 1, target-postgres exited 0 "
        "(TypeError: Refusal.__init__() got an unexpected keyword argument 'x')"
    )
