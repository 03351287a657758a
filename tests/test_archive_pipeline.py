"""The export archive end to end: `meltano run strava-archive`, then the API, then the view.

The simulator writes an athlete's archive (FIT, GPX, TCX originals of its own streams);
the archive job loads it into PostgreSQL and CSV with no API request at all; a later API
run loads the recent history; ``activities_merged`` shows the API's fields where it has
them and the archive's elsewhere, each activity once.
"""

from __future__ import annotations

import csv
import typing as t

import pytest

from strava_simulator import StravaSimulator
from strava_simulator.archive import write_archive
from tests.pipeline import MeltanoProject
from tests.test_export_archive_simulated import _streams

pytestmark = pytest.mark.e2e

STAMP = "20261201T120000Z"


def _close(got: t.Any, want: t.Any, tolerance: float) -> bool:
    if isinstance(want, list):
        return len(got) == len(want) and all(
            _close(a, b, tolerance) for a, b in zip(got, want, strict=True)
        )
    return abs(float(got) - float(want)) <= tolerance + 1e-6


def _view(project: MeltanoProject) -> dict[int, dict[str, t.Any]]:
    rows = project.rows("activities_merged")
    by_id = {int(r["id"]): r for r in rows}
    assert len(by_id) == len(rows), "one row per activity"
    return by_id


# Among the slowest end-to-end tests (over a minute each): in the extras, which CI also runs,
# to keep `make test` well under its 15 minutes.
@pytest.mark.extras
def test_an_archive_lands_in_postgres_and_csv_and_the_api_fills_in_over_it(postgres_url, tmp_path):
    big = 10**7
    with StravaSimulator(
        seed=51, activity_count=120, read_limit_15min=big, read_limit_daily=big
    ) as sim:
        manifest = write_archive(sim, tmp_path / "archive", track_seconds=300)
        project = MeltanoProject(
            sim=sim, postgres_url=postgres_url, workdir=tmp_path, refresh_token=sim.refresh_token
        )
        try:
            sim.clear_requests()
            no_api = {f"TAP_STRAVA_{name}": "" for name in ("CLIENT_ID", "CLIENT_SECRET")}
            no_api["TAP_STRAVA_REFRESH_TOKEN"] = ""
            archive_run = project.meltano(
                "run",
                "strava-archive",
                STRAVA_EXPORT_ARCHIVE=str(manifest.path),
                STRAVA_RUN_STAMP=STAMP,
                **no_api,
            )
            assert archive_run.returncode == 0, archive_run.stderr[-4000:]
            assert sim.requests == [], "the archive job makes no API request"

            rows = project.rows("export_activities")
            assert sorted(r["id"] for r in rows) == sorted(manifest.entries)
            tracks = {r["activity_id"]: r for r in project.rows("export_tracks")}
            decodable = [e for e in manifest.entries.values() if e.outcome == "ok"]
            assert {e.format for e in decodable} == {"fit", "gpx", "tcx"}
            for entry in decodable:
                streams = _streams(sim, entry.activity_id)
                for name in entry.series:
                    tolerance = manifest.precision[entry.format].get(name, 0.0)
                    got = tracks[entry.activity_id][name]
                    assert _close(got, streams[name], tolerance), (entry.filename, name)
            undecodable = {
                e.activity_id for e in manifest.entries.values() if e.outcome != "ok"
            } - {e.activity_id for e in manifest.entries.values() if e.outcome == "no_times"}
            assert not undecodable & set(tracks), "no track for a manual, missing or corrupt file"

            # Read once (one spool), then into each target; its folder and files are
            # named after its run stamp, booleans spelt as in the daily CSV.
            states = project.meltano("state", "list").stdout.split()
            assert "dev:tap-strava-archive-to-target-strava-spool-archive" in states
            assert not [
                s
                for s in states
                if s.startswith("dev:tap-strava-archive-to-target-")
                and not s.endswith("-spool-archive")
            ], states
            folder = project.output_root / f"archive-{STAMP}"
            names = sorted(path.name for path in folder.glob("*.csv"))
            assert "export_activities-archive-" + STAMP + ".csv" in names, names
            assert all(name.endswith(f"-archive-{STAMP}.csv") for name in names), names
            with (folder / f"export_activities-archive-{STAMP}.csv").open(
                newline="", encoding="utf-8"
            ) as handle:
                csv_rows = list(csv.DictReader(handle))
            assert sorted(int(r["id"]) for r in csv_rows) == sorted(manifest.entries), "once"
            assert {r["commute"] for r in csv_rows} <= {"true", "false", ""}
            assert "false" in {r["commute"] for r in csv_rows}

            # Re-importing the same archive changes nothing.
            again = project.meltano(
                "run", "strava-archive", STRAVA_EXPORT_ARCHIVE=str(manifest.path), **no_api
            )
            assert again.returncode == 0, again.stderr[-4000:]
            assert project.rows("export_activities") == rows

            # The API, for the recent half of the history; one activity renamed since.
            by_date = sorted(sim.activities, key=lambda a: a["start_date"])
            recent = by_date[len(by_date) // 2 :]
            renamed = recent[3]
            sim.update_activity(renamed["id"], name="Renamed on Strava after the export")
            api_run = project.meltano(
                "run",
                "tap-strava",
                "target-postgres",
                TAP_STRAVA_START_DATE=recent[0]["start_date"],
            )
            assert api_run.returncode == 0, api_run.stderr[-4000:]
            view_run = project.meltano("invoke", "strava-data:merged-view")
            assert view_run.returncode == 0, view_run.stderr[-2000:]
            view = _view(project)
            api_rows = {int(r["id"]): r for r in project.rows("activities")}
            archive_rows = {int(r["id"]): r for r in rows}
        finally:
            project.drop_schema()

    assert set(view) == set(manifest.entries), "every activity once, from either source"
    assert set(api_rows) == {a["id"] for a in recent}
    for activity_id, row in view.items():
        if activity_id in api_rows:
            assert row["source"] == "both"
            assert row["name"] == api_rows[activity_id]["name"]
            assert float(row["distance"]) == float(api_rows[activity_id]["distance"])
        else:
            assert row["source"] == "archive"
            assert row["name"] == archive_rows[activity_id]["name"]
            assert row["start_date"] is not None, "nothing blanked"
    assert view[renamed["id"]]["name"] == "Renamed on Strava after the export"
    assert archive_rows[renamed["id"]]["name"] != view[renamed["id"]]["name"]
    described = [a for a in view.values() if a["description"]]
    assert described, "the archive fills the description the API's list lacks"


@pytest.mark.parametrize("archive", ["", "missing/export_0.zip"])
def test_the_archive_job_stops_without_an_archive(destination_project, archive):
    """Unset (or misspelt: the same) or naming no file: one line, a failed run."""
    run = destination_project.meltano("run", "strava-archive", STRAVA_EXPORT_ARCHIVE=archive)
    assert run.returncode != 0
    (line,) = [ln for ln in run.stderr.splitlines() if "strava-check-archive: error:" in ln]
    assert ("is not set" if not archive else "does not exist") in line
