"""The deletion duty: ``strava-forget-athlete`` run as docs/events.md writes it.

An athlete is loaded through the real pipeline (the README's cron line: simulator, spool,
CSV, PostgreSQL, per-run logs, Meltano's state, the project's token store) with the
settings in the project's ``.env`` as a user keeps them, and the receiver's queue holds
their events. After the documented command, nothing of the athlete is left anywhere the
project wrote, and their tokens are revoked at Strava.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from strava_events.events import Event
from strava_events.queue import PostgresStore, StoredEvent
from tests.pipeline import PROJECT_ROOT
from tests.test_notify_e2e import CronProject
from tests.test_notify_helpers import WebhookServer

pytestmark = pytest.mark.e2e


def documented_forget_command() -> str:
    """The forget command of docs/events.md, with ``<id>`` as written there."""
    text = (PROJECT_ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    (command,) = re.findall(
        r"^(cd /srv/tap-strava && .*strava-forget-athlete .*--apply)$", text, re.M
    )
    return command


def _documented_env(deployed: CronProject) -> dict[str, str]:
    """The test's environment without what the project itself says (.env, meltano.yml)."""
    env = deployed.meltano.env()
    for name in (
        "TARGET_POSTGRES_SQLALCHEMY_URL",  # in .env
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA",
        "TAP_STRAVA_TOKEN_STORE_PATH",  # meltano.yml's .secrets/strava-tokens.json
        "TARGET_CSV_OUTPUT_PATH",  # meltano.yml's output/...
        "TARGET_CSV_REPLAY_OUTPUT_PATH",
        "STRAVA_SPOOL_DIR",  # spool/prod
    ):
        env.pop(name)
    return env


def _holds(text: str, athlete_id: int) -> bool:
    return re.search(rf"(?<!\d){athlete_id}(?!\d)", text) is not None


# Among the slowest end-to-end tests (over a minute each): in the extras, which CI also runs,
# to keep `make test` well under its 15 minutes.
@pytest.mark.extras
def test_forget_leaves_nothing_of_the_athlete(meltano_project, simulator, tmp_path):
    athlete = simulator.athlete_id
    events_schema = "strava_events_" + uuid.uuid4().hex[:10]
    with WebhookServer() as hook:
        deployed = CronProject(meltano_project, hook, tmp_path / "srv")
        root = deployed.root
        # The settings where a user keeps them: the project's .env, not the environment.
        with (root / ".env").open("a") as env_file:
            env_file.write(
                f"TARGET_POSTGRES_SQLALCHEMY_URL={meltano_project.postgres_url}\n"
                f"TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA={meltano_project.schema}\n"
                f"STRAVA_EVENTS_POSTGRES_SCHEMA={events_schema}\n"
            )
        run = subprocess.run(
            ["/bin/sh", "-c", deployed.command], env=_documented_env(deployed), timeout=400
        )
        assert run.returncode == 0, (root / "logs" / "cron.log").read_text()[-3000:]
    assert len(meltano_project.rows("activities")) == len(simulator.activities)
    assert (root / ".secrets" / "strava-tokens.json").exists()
    # The receiver's queue: events of the athlete not yet read.
    store = PostgresStore(meltano_project.postgres_url.replace("+psycopg", ""), events_schema)
    store.setup()
    store.insert(
        [
            StoredEvent(Event("activity", 1, "create", athlete, 1, int(time.time()), {}), 1.0),
            StoredEvent(Event("activity", 2, "update", athlete, 1, int(time.time()), {}), 2.0),
        ]
    )
    store.close()

    env = _documented_env(deployed)
    command = documented_forget_command().replace("/srv/tap-strava", str(root))
    command = command.replace("<id>", str(athlete))
    forgot = subprocess.run(
        ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=300
    )
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    print(forgot.stdout)
    assert "PostgreSQL: removed" in forgot.stdout, forgot.stdout

    # No row of the athlete in any table of the schemas the project writes.
    from devtools.postgres import connect

    with connect(meltano_project.postgres_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema IN (%s, %s) AND column_name IN ('athlete_id', 'owner_id')",
            (meltano_project.schema, events_schema),
        )
        owners = cur.fetchall()
        assert {table for _, table, _ in owners} >= {"activities", "athlete", "events"}
        for schema, table, column in owners:
            cur.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" = %s', (athlete,)
            )
            assert cur.fetchone()[0] == 0, (schema, table)
        cur.execute(f'DROP SCHEMA "{events_schema}" CASCADE')
    # No line of any file the project wrote (output, spools, logs, caches, token store).
    leftovers = [
        str(path)
        for path in root.rglob("*")
        if path.is_file()
        and ".venv" not in path.parts
        and path.suffix != ".lock"
        and _holds(path.read_text(encoding="utf-8", errors="replace"), athlete)
    ]
    assert leftovers == []
    # Every row of the output was the athlete's: header lines are all that is left.
    for path in (root / "output").rglob("*.csv"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 1, path
    # Meltano's states: bookmarks and digests of their activities gone.
    for state_id in deployed.meltano.meltano("state", "list").stdout.split():
        state = deployed.meltano.meltano("state", "get", state_id).stdout
        assert not _holds(state, athlete), state_id
    # Nor in Meltano's system database (states, runs) or its run folder.
    import sqlite3

    with sqlite3.connect(deployed.meltano.workdir / "meltano.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                assert not _holds(" ".join(map(str, row)), athlete), table
    run_folder = deployed.meltano.workdir / "meltano-sys" / "run"
    for path in run_folder.rglob("*") if run_folder.is_dir() else []:
        if path.is_file() and not path.is_symlink():
            assert not _holds(path.read_text(errors="replace"), athlete), path
    # Revoked at Strava (oauth/revoke): their token works no more.
    assert simulator.refresh_token is None


def test_file_places_lose_exactly_the_athletes_lines(tmp_path):
    """JSON Lines, XML, a Singer spool with its STATE, a log: the athlete's lines only."""
    from strava_data import places, rows

    out = tmp_path / "output" / "20261206T061500Z"
    out.mkdir(parents=True)
    (out / "activities.jsonl").write_text(
        '{"id": 1, "athlete_id": 7}\n{"id": 2, "athlete_id": 8}\n', encoding="utf-8"
    )
    (out / "activities.xml").write_text(
        '<?xml version="1.0"?>\n<records xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<record><id>1</id><athlete_id>7</athlete_id><name>Mine</name></record>"
        '<record><id>2</id><athlete_id>8</athlete_id><name xsi:nil="true"/></record></records>\n',
        encoding="utf-8",
    )
    spool = tmp_path / "spool" / "prod"
    spool.mkdir(parents=True)
    partitions = [{"context": {"athlete_id": a}, "digests": {"1": ["x"]}} for a in (7, 8)]
    state = {"bookmarks": {"activities": {"partitions": partitions}}}
    (spool / "000001-s.jsonl").write_text(
        json.dumps({"type": "RECORD", "stream": "activities", "record": {"id": 1, "athlete_id": 7}})
        + "\n"
        + json.dumps(
            {"type": "RECORD", "stream": "activities", "record": {"id": 2, "athlete_id": 8}}
        )
        + "\n"
        + json.dumps({"type": "STATE", "value": state})
        + "\n",
        encoding="utf-8",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "cron.log").write_text('a "Mine" was read\nathlete 7 synced\nall fine 77\n')

    assert [f.rows for f in rows.jsonl_rows(tmp_path / "output", 7, apply=True)] == [1]
    assert [f.rows for f in rows.xml_rows(tmp_path / "output", 7, apply=True)] == [1]
    assert [f.rows for f in places.spool_lines([spool], 7, apply=True)] == [2]
    assert [f.rows for f in places.log_lines(logs, 7, {"1", "Mine"}, apply=True)] == [2]

    assert (out / "activities.jsonl").read_text() == '{"id": 2, "athlete_id": 8}\n'
    xml = (out / "activities.xml").read_text()
    assert "<athlete_id>8</athlete_id>" in xml
    assert "Mine" not in xml
    assert "xsi:nil" in xml
    lines = [json.loads(line) for line in (spool / "000001-s.jsonl").read_text().splitlines()]
    assert [m.get("record", {}).get("athlete_id") for m in lines] == [8, None]
    kept = lines[1]["value"]["bookmarks"]["activities"]["partitions"]
    assert [p["context"]["athlete_id"] for p in kept] == [8]
    assert (logs / "cron.log").read_text() == "all fine 77\n"


def test_the_receivers_sqlite_queue_and_spool_lose_the_athletes_events(tmp_path):
    from strava_data import places
    from strava_events.queue import SQLiteStore
    from strava_events.spool import Spool

    def stored(owner: int, object_id: int) -> StoredEvent:
        event = Event("activity", object_id, "create", owner, 1, 1_700_000_000, {})
        return StoredEvent(event, object_id)

    store = SQLiteStore(tmp_path / "events.sqlite3")
    store.setup()
    store.insert([stored(7, 1), stored(8, 2)])
    store.close()
    spool = Spool(tmp_path / "spool", 10)
    spool.append(stored(7, 3))
    spool.append(stored(8, 4))

    found = places.receiver_files(tmp_path / "events.sqlite3", tmp_path / "spool", 7, apply=True)
    assert [f.rows for f in found] == [1, 1]
    store = SQLiteStore(tmp_path / "events.sqlite3")
    assert [e.event.owner_id for e in store.pending(10)] == [8]
    store.close()
    assert len(list((tmp_path / "spool").glob("*.json"))) == 1


def test_forget_refuses_when_a_place_cannot_be_reached_or_a_job_runs(tmp_path):
    """One line, exit 1, nothing removed: PostgreSQL down, or a job holding the lock."""
    import filelock

    from tests.test_notify_helpers import closed_port

    shutil.copy(PROJECT_ROOT / "meltano.yml", tmp_path / "meltano.yml")
    store = tmp_path / "tokens.json"
    store.write_text(json.dumps({"version": 1, "tokens": {"f": {"athlete_id": 7}}}))
    output = tmp_path / "output" / "20261206T061500Z"
    output.mkdir(parents=True)
    (output / "activities.csv").write_text("id,athlete_id\n1,7\n")
    (tmp_path / ".env").write_text(
        f"TARGET_POSTGRES_SQLALCHEMY_URL=postgresql+psycopg://u@127.0.0.1:{closed_port()}/db\n"
        f"TAP_STRAVA_TOKEN_STORE_PATH={store}\n"
        f"TARGET_CSV_REPLAY_OUTPUT_PATH={tmp_path / 'output'}\n"
        f"TARGET_DUCKDB_FILEPATH={tmp_path / 'strava.duckdb'}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARGET_", "MELTANO_", "TAP_"))}
    command = [str(Path(sys.executable).with_name("strava-forget-athlete")), "--athlete", "7"]

    def forget() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "--apply", "--no-revoke"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    down = forget()
    assert down.returncode == 1
    assert down.stderr.startswith("strava-forget-athlete: error: PostgreSQL cannot be reached")
    assert down.stderr.count("\n") == 1
    with filelock.FileLock(str(tmp_path / ".meltano" / "run" / "strava-job.lock")):
        locked = forget()
    assert locked.returncode == 1
    assert "a job of the project is running" in locked.stderr
    assert (output / "activities.csv").read_text() == "id,athlete_id\n1,7\n"
    assert json.loads(store.read_text())["tokens"]
