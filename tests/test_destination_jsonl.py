"""`meltano run tap-strava target-jsonl`: one JSON Lines file per stream per run."""

from __future__ import annotations

import pytest

from tap_strava.schemas import ACTIVITY_SCHEMA
from tests.pipeline import read_jsonl

pytestmark = pytest.mark.extras


def test_every_activity_is_in_the_run_file_exactly_once_with_its_values(destination_project):
    project = destination_project
    project.run("tap-strava", "target-jsonl", run_stamp="run-1")
    folder = project.output_root / "run-1"
    (activities_file,) = folder.glob("activities-*.jsonl")
    records = read_jsonl(activities_file)
    source = {a["id"]: a for a in project.sim.activities}
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), "an activity is in the file twice"
    assert set(ids) == set(source)
    awkward = 0
    for record in records:
        activity = source[record["id"]]
        for column in ACTIVITY_SCHEMA["properties"]:
            want = project.sim.athlete_id if column == "athlete_id" else activity.get(column)
            if column == "start_date_local" and want is not None:
                want = want.removesuffix("Z")  # a local wall time carries no zone (issue 25)
            assert record.get(column) == want, (record["id"], column)
        if any(ch in (activity["name"] or "") for ch in "\"',\\\n"):
            awkward += 1
    assert awkward, "the account has names with quotes, commas, backslashes or newlines"
    (athlete_file,) = folder.glob("athlete-*.jsonl")
    assert [a["id"] for a in read_jsonl(athlete_file)] == [project.sim.athlete_id]
    (stats_file,) = folder.glob("athlete_stats-*.jsonl")
    assert len(read_jsonl(stats_file)) == 1


def test_a_second_run_writes_its_own_files_and_keeps_the_first(destination_project):
    project = destination_project
    project.run("tap-strava", "target-jsonl", run_stamp="run-1")
    first = {p: p.read_bytes() for p in (project.output_root / "run-1").iterdir()}
    new = project.sim.add_activity(name='Nouveau 🏃 «run», "quoted"\nsecond line')
    project.run("tap-strava", "target-jsonl", run_stamp="run-2")
    for path, content in first.items():
        assert path.read_bytes() == content, f"{path.name} was rewritten"
    (second,) = (project.output_root / "run-2").glob("activities-*.jsonl")
    records = {r["id"]: r for r in read_jsonl(second)}
    assert records[new["id"]]["name"] == new["name"]
    assert len(records) < len(project.sim.activities), "the second run is incremental"
