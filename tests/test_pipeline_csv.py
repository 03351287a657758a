"""`meltano run tap-strava tally-csv target-csv`: one CSV file per stream per run, read back.

`tally-csv` (the job's CSV block) also writes values the CSV way (issue 13.7): booleans as
`true`/`false`, nested lists and objects as UTF-8 JSON text.
"""

from __future__ import annotations

import datetime
import json

import pytest

from tests.pipeline import read_csv

pytestmark = pytest.mark.e2e


def _csv_value(value) -> str:
    """How a Strava JSON value is written by target-csv with one level of flattening."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def test_csv_files_round_trip_every_activity_and_awkward_name(meltano_project):
    meltano_project.run("tap-strava", "tally-csv", "target-csv", run_stamp="run-1")
    folder = meltano_project.output_root / "run-1"
    (activities_file,) = folder.glob("activities-*.csv")
    rows = read_csv(activities_file)
    source = {a["id"]: a for a in meltano_project.sim.activities}
    ids = [int(r["id"]) for r in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(source)
    awkward = 0
    for row in rows:
        activity = source[int(row["id"])]
        assert row["name"] == (activity["name"] or "")
        if any(ch in (activity["name"] or "") for ch in "\"',\\\n"):
            awkward += 1
        # target-csv writes date-times as "2026-04-05 08:15:50+00:00" (still ISO 8601).
        assert datetime.datetime.fromisoformat(
            row["start_date"]
        ) == datetime.datetime.fromisoformat(activity["start_date"].replace("Z", "+00:00"))
        assert json.loads(row["start_latlng"]) == activity["start_latlng"]
        assert row["map__summary_polyline"] == _csv_value(activity["map"]["summary_polyline"])
        assert row["athlete__id"] == str(activity["athlete"]["id"])
        assert row["gear_id"] == _csv_value(activity.get("gear_id"))
        assert float(row["distance"]) == pytest.approx(activity["distance"])
        assert "{'" not in "".join(row.values()), "a Python repr leaked into the CSV"
        for flag in ("trainer", "commute", "private"):
            assert row[flag] == _csv_value(activity.get(flag)), (flag, row[flag])
    assert awkward, "the account has names with quotes, commas, backslashes or newlines"
    (athlete_file,) = folder.glob("athlete-*.csv")
    (athlete,) = read_csv(athlete_file)
    profile = meltano_project.sim.athlete
    assert athlete["premium"] == _csv_value(profile["premium"])
    # Nested JSON is UTF-8 like the rest of the file ("Café", not "Caf\u00e9").
    assert athlete["clubs"] == _csv_value(profile["clubs"])
    assert "Café" in athlete["clubs"]
    assert json.loads(athlete["clubs"]) == profile["clubs"]
    (stats_file,) = folder.glob("athlete_stats-*.csv")
    (stats,) = read_csv(stats_file)
    assert "all_run_totals__count" in stats


def test_a_second_run_writes_new_files_and_keeps_the_first(meltano_project):
    meltano_project.run("tap-strava", "target-csv", run_stamp="run-1")
    first_files = {p: p.read_bytes() for p in (meltano_project.output_root / "run-1").iterdir()}
    new = meltano_project.sim.add_activity()
    meltano_project.run("tap-strava", "target-csv", run_stamp="run-2")
    for path, content in first_files.items():
        assert path.read_bytes() == content, f"{path.name} was rewritten"
    (second,) = (meltano_project.output_root / "run-2").glob("activities-*.csv")
    ids = {int(r["id"]) for r in read_csv(second)}
    assert new["id"] in ids
    assert len(ids) < len(meltano_project.sim.activities), "the second run is incremental"
