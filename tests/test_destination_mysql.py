"""`meltano run tap-strava target-mysql` into the machine's MariaDB (or MySQL).

target-mysql is the project's own thin loader (loaders/target-mysql): the package
index's MySQL targets do not install here. Every row is compared with the simulator.
"""

from __future__ import annotations

import json

import pytest

from tests.pipeline import (
    AWKWARD_EDIT,
    assert_table_equals_source,
    changed_ids,
    mysql_connection,
    upload_and_edit,
)

pytestmark = pytest.mark.extras

STATE_ID = "dev:tap-strava-to-target-mysql"


@pytest.fixture
def project(destination_project):
    yield destination_project
    destination_project.drop_mysql_schema()


def test_an_account_lands_in_mysql_and_reruns_bring_exactly_the_changes(project):
    project.run("tap-strava", "target-mysql")
    first = project.mysql_rows("activities")
    assert len(first) == len(project.sim.activities)
    assert_table_equals_source(first, project.sim)
    (athlete,) = project.mysql_rows("athlete")
    assert athlete["id"] == project.sim.athlete_id
    assert len(project.mysql_rows("athlete_stats")) == 1
    _assert_utf8mb4_with_the_stream_keys_as_primary_keys(project)

    new_id, late_id, edited_id = upload_and_edit(project.sim)
    project.run("tap-strava", "target-mysql")
    second = project.mysql_rows("activities")
    assert_table_equals_source(second, project.sim)
    assert {r["id"] for r in second} - {r["id"] for r in first} == {new_id, late_id}
    assert changed_ids(first, second) == {edited_id}
    (edited,) = [r for r in second if r["id"] == edited_id]
    assert edited["name"] == AWKWARD_EDIT
    assert len(project.mysql_rows("athlete")) == 1

    project.run("tap-strava", "target-mysql")
    assert_table_equals_source(project.mysql_rows("activities"), project.sim)
    state = project.state(STATE_ID)
    assert state["singer_state"]["bookmarks"]["activities"]


def _assert_utf8mb4_with_the_stream_keys_as_primary_keys(project) -> None:
    with mysql_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name AS t, table_collation AS c FROM information_schema.tables"
            " WHERE table_schema = %s",
            (project.schema,),
        )
        collations = {row["t"]: row["c"] for row in cur.fetchall()}
        cur.execute(
            "SELECT table_name AS t, column_name AS c FROM information_schema.key_column_usage"
            " WHERE table_schema = %s AND constraint_name = 'PRIMARY'"
            " ORDER BY table_name, ordinal_position",
            (project.schema,),
        )
        keys: dict[str, list[str]] = {}
        for row in cur.fetchall():
            keys.setdefault(row["t"], []).append(row["c"])
    for table in ("activities", "athlete", "athlete_stats"):
        assert collations[table].startswith("utf8mb4"), (table, collations[table])
    assert keys["activities"] == ["id"]
    assert keys["athlete_stats"] == ["athlete_id", "snapshot_date"]
    rows = project.mysql_rows("activities")
    assert any(json.loads(r["start_latlng"]) == [] for r in rows), "empty lists stay lists"


def test_the_record_whose_key_is_0_is_kept_and_upserted(project):
    """SQLAlchemy makes a lone integer key AUTO_INCREMENT unless told otherwise, and
    MySQL then turns an inserted 0 into the next number: this loader must not."""
    singer = project.meltano("invoke", "tap-strava")
    assert singer.returncode == 0, singer.stderr[-2000:]
    lines = singer.stdout.splitlines()
    zeroed = _with_id_0(lines, 'Zéro 🚴 "first"')
    loaded = project.meltano("invoke", "target-mysql", input="\n".join(zeroed) + "\n")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    rows = {r["id"]: r for r in project.mysql_rows("activities")}
    assert rows[0]["name"] == 'Zéro 🚴 "first"'
    assert len(rows) == len(project.sim.activities)  # one replaced by 0, none lost

    again = _with_id_0(lines, "Zéro again")
    loaded = project.meltano("invoke", "target-mysql", input="\n".join(again) + "\n")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    rows = {r["id"]: r for r in project.mysql_rows("activities")}
    assert rows[0]["name"] == "Zéro again"
    assert len(rows) == len(project.sim.activities)


def _with_id_0(lines: list[str], name: str) -> list[str]:
    """The tap's output with the first activity's id (and name) replaced."""
    out, done = [], False
    for line in lines:
        message = json.loads(line)
        if not done and message.get("type") == "RECORD" and message["stream"] == "activities":
            message["record"].update(id=0, name=name)
            done = True
        out.append(json.dumps(message))
    assert done
    return out
