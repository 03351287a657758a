"""`meltano run tap-strava target-duckdb` into a DuckDB file, schema `strava`.

target-duckdb 0.8.0 (jwills) was reported dropping the record whose key is 0: the
pinned loader and DuckDB are checked here with such a record, inserted and updated.
"""

from __future__ import annotations

import json

import pytest

from tests.pipeline import (
    AWKWARD_EDIT,
    assert_table_equals_source,
    changed_ids,
    upload_and_edit,
)

pytestmark = pytest.mark.extras


def test_an_account_lands_in_duckdb_and_reruns_bring_exactly_the_changes(destination_project):
    project = destination_project
    project.run("tap-strava", "target-duckdb")
    first = project.duckdb_rows("activities")
    assert len(first) == len(project.sim.activities)
    assert_table_equals_source(first, project.sim)
    (athlete,) = project.duckdb_rows("athlete")
    assert athlete["id"] == project.sim.athlete_id
    assert len(project.duckdb_rows("athlete_stats")) == 1

    new_id, late_id, edited_id = upload_and_edit(project.sim)
    project.run("tap-strava", "target-duckdb")
    second = project.duckdb_rows("activities")
    assert_table_equals_source(second, project.sim)
    assert {r["id"] for r in second} - {r["id"] for r in first} == {new_id, late_id}
    assert changed_ids(first, second) == {edited_id}
    (edited,) = [r for r in second if r["id"] == edited_id]
    assert edited["name"] == AWKWARD_EDIT


def test_the_record_whose_key_is_0_is_kept_and_upserted(destination_project):
    project = destination_project
    singer = project.meltano("invoke", "tap-strava")
    assert singer.returncode == 0, singer.stderr[-2000:]
    lines = singer.stdout.splitlines()
    for name in ('Zéro 🚴 "first"', "Zéro again"):
        loaded = project.meltano("invoke", "target-duckdb", input=_with_id_0(lines, name))
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        rows = {r["id"]: r for r in project.duckdb_rows("activities")}
        assert rows[0]["name"] == name
        assert len(rows) == len(project.sim.activities)  # one replaced by 0, none lost


def _with_id_0(lines: list[str], name: str) -> str:
    """The tap's output with the first activity's id (and name) replaced."""
    out, done = [], False
    for line in lines:
        message = json.loads(line)
        if not done and message.get("type") == "RECORD" and message["stream"] == "activities":
            message["record"].update(id=0, name=name)
            done = True
        out.append(json.dumps(message))
    assert done
    return "\n".join(out) + "\n"
