"""The tap on the simulator's export archives (strava_simulator.archive.write_archive).

The simulator writes an athlete's archive with real FIT/GPX/TCX writers and a manifest of
what each activity's file holds; its API answers ``/activities/{id}/streams`` for the same
activities. The tap reads the archive (no API) and every track must equal the API's
streams point by point, within each format's precision the manifest states.
"""

from __future__ import annotations

import typing as t

import pytest
import requests

from strava_simulator import StravaSimulator
from strava_simulator.archive import write_archive
from tests.support import run_tap

TRACK_SECONDS = 900
BIG = 10**7
KEYS = "time,latlng,altitude,distance,heartrate,cadence,watts,temp"


def _simulator(seed: int, count: int) -> StravaSimulator:
    return StravaSimulator(
        seed=seed,
        activity_count=count,
        now=1_790_000_000.0,
        read_limit_15min=BIG,
        read_limit_daily=BIG,
        overall_limit_15min=BIG,
        overall_limit_daily=BIG,
    )


def _streams(sim: StravaSimulator, activity_id: int) -> dict[str, list[t.Any]]:
    answer = requests.get(
        f"{sim.api_url}/activities/{activity_id}/streams",
        headers={"Authorization": f"Bearer {sim.issue_access_token()}"},
        params={"keys": KEYS, "key_by_type": "true"},
        timeout=10,
    )
    assert answer.status_code == 200
    return {key: value["data"] for key, value in answer.json().items()}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("sim-archive")
    with _simulator(seed=11, count=40) as sim:
        manifest = write_archive(sim, folder, track_seconds=TRACK_SECONDS)
        config = {
            "export_archive_path": str(manifest.path),
            "token_store_path": str(folder / "store" / "tokens.json"),
        }
        yield sim, manifest, config, run_tap(config)


def test_every_activity_arrives_exactly_once(imported):  # type: ignore[no-untyped-def]
    _, manifest, _, result = imported
    ids = [a["id"] for a in result.records("export_activities")]
    assert sorted(ids) == sorted(manifest.entries)
    assert len(ids) == len(set(ids))
    assert {a["athlete_id"] for a in result.records("export_activities")} == {manifest.athlete_id}


def test_tracks_equal_the_api_streams_point_by_point(imported):  # type: ignore[no-untyped-def]
    sim, manifest, _, result = imported
    tracks = {t["activity_id"]: t for t in result.records("export_tracks")}
    checked: dict[str, int] = {}
    for entry in manifest.entries.values():
        if entry.outcome != "ok":
            continue
        track = tracks[entry.activity_id]
        streams = _streams(sim, entry.activity_id)
        precision = manifest.precision[entry.format]
        for name in entry.series:
            got, want = track[name], streams[name]
            assert len(got) == len(want) == entry.points, (entry.filename, name)
            tolerance = precision.get(name, 0.0) + 1e-6
            for index, (a, b) in enumerate(zip(got, want, strict=True)):
                pairs = zip(a, b, strict=True) if name == "latlng" else [(a, b)]
                for x, y in pairs:
                    assert abs(x - y) <= tolerance, (entry.filename, name, index, x, y)
        assert set(entry.series) <= set(track["series"]), (entry.filename, track["series"])
        checked[entry.format] = checked.get(entry.format, 0) + 1
    assert set(checked) == {"fit", "gpx", "tcx"}, checked


def test_the_quirk_cases_behave_as_stated(imported):  # type: ignore[no-untyped-def]
    _, manifest, _, result = imported
    tracks = {t["activity_id"]: t for t in result.records("export_tracks")}
    rows = {a["id"]: a for a in result.records("export_activities")}
    outcomes = {e.outcome for e in manifest.entries.values()}
    assert {"ok", "manual", "missing", "corrupt", "no_times"} <= outcomes, outcomes
    for entry in manifest.entries.values():
        assert entry.activity_id in rows  # the row arrives whatever the file
        if entry.outcome in ("manual", "missing", "corrupt"):
            assert entry.activity_id not in tracks, entry
        elif entry.outcome == "no_times":
            track = tracks[entry.activity_id]
            assert track["time"] is None
            assert len(track["latlng"]) == entry.points
    (described,) = manifest.quirks["multiline_description"]
    assert "\n" in rows[described]["description"]
    multi = [e for e in manifest.entries.values() if e.index_in_file > 0]
    assert multi, "the archive has a multi-activity FIT file"
    for entry in multi:
        assert len(tracks[entry.activity_id]["time"]) == entry.points


def test_a_re_import_of_the_simulated_archive_emits_nothing(imported):  # type: ignore[no-untyped-def]
    _, _, config, result = imported
    again = run_tap(config, state=result.final_state)
    assert [m for m in again.messages if m["type"] == "RECORD"] == []


def test_a_german_simulated_archive(tmp_path):  # type: ignore[no-untyped-def]
    with _simulator(seed=5, count=15) as sim:
        manifest = write_archive(sim, tmp_path / "de.zip", language="de", quirks=False)
        result = run_tap(
            {"export_archive_path": str(manifest.path), "token_store_path": str(tmp_path / "t")}
        )
        rows = result.records("export_activities")
        assert sorted(r["id"] for r in rows) == sorted(manifest.entries)
        for row in rows:
            detail = requests.get(
                f"{sim.api_url}/activities/{row['id']}",
                headers={"Authorization": f"Bearer {sim.issue_access_token()}"},
                timeout=10,
            ).json()
            assert row["start_date"] == detail["start_date"]
            assert row["name"] == detail["name"]
            assert row["distance"] == pytest.approx(detail["distance"], abs=0.1)
        recorded = [e for e in manifest.entries.values() if e.outcome == "ok"]
        assert len(result.records("export_tracks")) == len(recorded)


def test_local_start_times_agree_with_the_api(imported):  # type: ignore[no-untyped-def]
    """The archive's ``start_date_local`` against the API's, by the rule that gave it.

    The simulator writes FIT files with the activity's ``local_timestamp`` (its
    ``utc_offset``): those must equal the API's wall time to the second. The other rules
    are counted, and every row has one or says none applied.
    """
    sim, manifest, _, result = imported
    token = sim.issue_access_token()
    rules: dict[str | None, int] = {}
    for row in result.records("export_activities"):
        rule = row["start_date_local_rule"]
        rules[rule] = rules.get(rule, 0) + 1
        assert (row["start_date_local"] is None) == (rule is None), row["id"]
        if rule != "fit_local_timestamp":
            continue
        answer = requests.get(
            f"{sim.api_url}/activities/{row['id']}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        assert row["start_date_local"] + "Z" == answer["start_date_local"], row["id"]
    fit_files = sum(1 for e in manifest.entries.values() if e.format == "fit" and e.outcome == "ok")
    assert rules.get("fit_local_timestamp", 0) >= fit_files > 0, rules


def test_archive_numbers_equal_the_apis_exactly(imported):  # type: ignore[no-untyped-def]
    """The CSV's widened float32s (``3322.949951171875``) arrive as the API's own numbers."""
    sim, _, _, result = imported
    token = sim.issue_access_token()
    fields = ("distance", "max_speed", "average_speed", "total_elevation_gain", "moving_time")
    compared = 0
    for row in result.records("export_activities"):
        answer = requests.get(
            f"{sim.api_url}/activities/{row['id']}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        for name in fields:
            assert row[name] == answer[name], (row["id"], name, row[name], answer[name])
            compared += row[name] is not None and row[name] != int(row[name] or 0)
    assert compared > 50  # fractional values, the ones a widening shows
