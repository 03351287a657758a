"""The simulator's bulk export archives, checked the way an importer's author would.

The archive of a simulated athlete must look like Strava's (the real 101-column header with
its five duplicated names, RFC-4180 quoting, ``activities/`` originals in six formats, the
quirks of real exports) and must agree with the simulator's own API, fetched here over HTTP:
every row with ``/activities/{id}`` and the list, every decoded track file with
``/activities/{id}/streams``, point by point. The files are decoded with readers the writer
does not use (fitdecode, gpxpy's parser, tcxreader), within the precision the manifest states.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fitdecode
import gpxpy
import pytest
import requests
from tcxreader.tcxreader import TCXReader

from strava_simulator import StravaSimulator
from strava_simulator.archive import QUIRKY_DESCRIPTION, ArchiveManifest, write_archive
from strava_simulator.cli import main as sim_main

TIMEOUT = 10
NOW = 1_790_000_000.0  # a fixed "now": the same seed then gives the same activities
TRACK_SECONDS = 900
#: The header of a current English export, as ../shared/docs/strava-export-and-events.md 1.2
#: lists it (written out again here, independently of the simulator's table).
DOC_HEADER_TEXT = (
    "Activity ID|Activity Date|Activity Name|Activity Type|Activity Description|Elapsed Time|"
    "Distance|Max Heart Rate|Relative Effort|Commute|Activity Private Note|Activity Gear|"
    "Filename|Athlete Weight|Bike Weight|Elapsed Time|Moving Time|Distance|Max Speed|"
    "Average Speed|Elevation Gain|Elevation Loss|Elevation Low|Elevation High|Max Grade|"
    "Average Grade|Average Positive Grade|Average Negative Grade|Max Cadence|Average Cadence|"
    "Max Heart Rate|Average Heart Rate|Max Watts|Average Watts|Calories|Max Temperature|"
    "Average Temperature|Relative Effort|Total Work|Number of Runs|Uphill Time|Downhill Time|"
    "Other Time|Perceived Exertion|Type|Start Time|Weighted Average Power|Power Count|"
    "Prefer Perceived Exertion|Perceived Relative Effort|Commute|Total Weight Lifted|"
    "From Upload|Grade Adjusted Distance|Weather Observation Time|Weather Condition|"
    "Weather Temperature|Apparent Temperature|Dewpoint|Humidity|Weather Pressure|Wind Speed|"
    "Wind Gust|Wind Bearing|Precipitation Intensity|Sunrise Time|Sunset Time|Moon Phase|Bike|"
    "Gear|Precipitation Probability|Precipitation Type|Cloud Cover|Weather Visibility|UV Index|"
    "Weather Ozone|Jump Count|Total Grit|Average Flow|Flagged|Average Elapsed Speed|"
    "Dirt Distance|Newly Explored Distance|Newly Explored Dirt Distance|Activity Count|"
    "Total Steps|Carbon Saved|Pool Length|Training Load|Intensity|Average Grade Adjusted Pace|"
    "Timer Time|Total Cycles|Recovery|With Pet|Competition|Long Run|For a Cause|With Kid|"
    "Downhill Distance|Media"
)
DOC_HEADER = DOC_HEADER_TEXT.split("|")
#: ``Activity Type`` display values of the simulator's sport types.
TYPE_LABELS = {
    "Run": "Run",
    "TrailRun": "Trail Run",
    "Ride": "Ride",
    "GravelRide": "Gravel Ride",
    "VirtualRide": "Virtual Ride",
    "Swim": "Swim",
    "Walk": "Walk",
    "Hike": "Hike",
    "WeightTraining": "Weight Training",
    "Yoga": "Yoga",
    "Padel": "Padel",
    "Workout": "Workout",
}
STREAM_KEYS = "time,latlng,altitude,distance,heartrate,cadence,watts,temp"


def _simulator(seed: int, count: int) -> StravaSimulator:
    big = 10**7
    return StravaSimulator(
        seed=seed,
        activity_count=count,
        now=NOW,
        read_limit_15min=big,
        read_limit_daily=big,
        overall_limit_15min=big,
        overall_limit_daily=big,
    )


class Api:
    """The running simulator's API, over HTTP, as a client sees it."""

    def __init__(self, sim: StravaSimulator) -> None:
        self.sim = sim
        self.headers = {"Authorization": f"Bearer {sim.issue_access_token()}"}

    def get(self, path: str, **params: Any) -> Any:
        answer = requests.get(
            self.sim.api_url + path, headers=self.headers, params=params, timeout=TIMEOUT
        )
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:200])
        return answer.json()

    def streams(self, activity_id: int) -> dict[str, list[Any]]:
        found = self.get(f"/activities/{activity_id}/streams", keys=STREAM_KEYS, key_by_type="true")
        return {key: value["data"] for key, value in found.items()}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory):
    """A quirky English archive of 40 activities with 15-minute one-second tracks."""
    folder = tmp_path_factory.mktemp("archive")
    with _simulator(seed=11, count=40) as sim:
        manifest = write_archive(sim, folder, track_seconds=TRACK_SECONDS)
        yield sim, manifest, Api(sim)


def _rows(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows, skipping ``#`` lines as geo-activity-playground does."""
    records = list(csv.reader(io.StringIO(text, newline="")))
    rows = [r for r in records[1:] if r and not r[0].startswith("#")]
    return records[0], rows


def _member(manifest: ArchiveManifest, name: str) -> bytes:
    if manifest.zipped:
        with zipfile.ZipFile(manifest.path) as archive:
            return archive.read(name)
    return (manifest.path / name).read_bytes()


def _csv(manifest: ArchiveManifest) -> tuple[list[str], list[list[str]]]:
    return _rows(_member(manifest, "activities.csv").decode("utf-8"))


def _utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


# -- activities.csv ------------------------------------------------------------------------
def test_the_header_is_strava_s_current_english_header(archive):
    _, manifest, _ = archive
    header, rows = _csv(manifest)
    assert header == DOC_HEADER
    assert len(header) == 101
    duplicated = {name: [i for i, h in enumerate(header) if h == name] for name in set(header)}
    assert {name: at for name, at in duplicated.items() if len(at) > 1} == {
        "Elapsed Time": [5, 15],
        "Distance": [6, 17],
        "Max Heart Rate": [7, 30],
        "Relative Effort": [8, 37],
        "Commute": [9, 50],
    }
    assert (header.index("Filename"), header.index("Activity Gear"), header[-1]) == (
        12,
        11,
        "Media",
    )
    assert all(len(row) == 101 for row in rows)
    assert zipfile.ZipFile(manifest.path).namelist()[0] == "activities.csv"
    assert manifest.path.name == f"export_{manifest.athlete_id}.zip"


def test_every_row_agrees_with_the_api(archive):
    _, manifest, api = archive
    _, rows = _csv(manifest)
    listed = api.get("/athlete/activities", per_page=200)
    assert sorted(int(r[0]) for r in rows) == sorted(a["id"] for a in listed)
    names = {a["id"]: a["name"] for a in listed}
    for row in rows:
        activity_id = int(row[0])
        detail = api.get(f"/activities/{activity_id}")
        assert row[2] == detail["name"] == names[activity_id]
        assert row[3] == TYPE_LABELS[detail["sport_type"]]
        assert row[4] == (detail["description"] or "")
        when = datetime.strptime(row[1], "%b %d, %Y, %I:%M:%S %p").replace(tzinfo=timezone.utc)
        assert when == _utc(detail["start_date"])
        assert int(row[5]) == detail["elapsed_time"] == float(row[15])
        assert float(row[16]) == detail["moving_time"]
        assert row[6] == f"{detail['distance'] / 1000:.2f}"
        assert math.isclose(float(row[17]), detail["distance"], rel_tol=1e-6, abs_tol=1e-3)
        assert math.isclose(float(row[18]), detail["max_speed"], rel_tol=1e-6, abs_tol=1e-6)
        assert math.isclose(float(row[19]), detail["average_speed"], rel_tol=1e-6, abs_tol=1e-6)
        gain = detail["total_elevation_gain"]
        assert math.isclose(float(row[20]), gain, rel_tol=1e-6, abs_tol=1e-6)
        assert row[9] == ("true" if detail["commute"] else "false")
        assert row[50] == ("1.0" if detail["commute"] else "0.0")
        assert row[11] == (detail["gear"]["name"] if detail.get("gear") else "")
        assert row[12] == (manifest.entries[activity_id].filename or "")
        assert row[100] == ""
        if detail["manual"]:
            assert row[12] == ""
        streams = api.streams(activity_id)
        if "cadence" in streams:  # what Strava computes from the recording
            assert float(row[28]) == max(streams["cadence"])
        if "altitude" in streams:
            altitude = streams["altitude"]
            drops = [altitude[i] - altitude[i + 1] for i in range(len(altitude) - 1)]
            loss = sum(d for d in drops if d > 0)
            assert math.isclose(float(row[21]), loss, rel_tol=1e-6, abs_tol=1e-3)


def test_empty_text_is_quoted_and_a_description_keeps_its_lines(archive):
    _, manifest, api = archive
    text = _member(manifest, "activities.csv").decode("utf-8")
    assert ',"",' in text  # an empty private note, as Strava writes it
    (described,) = manifest.quirks["multiline_description"]
    row = next(r for r in _csv(manifest)[1] if int(r[0]) == described)
    assert row[4] == QUIRKY_DESCRIPTION == api.get(f"/activities/{described}")["description"]
    for needle in ("\n", '"', ",", "\\", "\u00fc"):
        assert needle in row[4]
    lines = text.split("\n")
    assert [i for i, line in enumerate(lines) if line.startswith("#")] == manifest.error_lines
    assert lines[manifest.error_lines[0]] == "#error#"


# -- original files ------------------------------------------------------------------------
def _unpacked(manifest: ArchiveManifest, filename: str) -> bytes:
    data = _member(manifest, filename)
    return gzip.decompress(data) if filename.endswith(".gz") else data


def _fit_sessions(data: bytes) -> list[dict[str, list[Any]]]:
    """Per session, the records' series in API stream names (semicircles made degrees)."""
    messages = []
    with fitdecode.FitReader(io.BytesIO(data)) as reader:
        for frame in reader:
            if isinstance(frame, fitdecode.FitDataMessage):
                messages.append((frame.name, {f.name: f.value for f in frame.fields}))
    sessions = [fields for name, fields in messages if name == "session"]
    records = [fields for name, fields in messages if name == "record"]
    result = []
    for session in sessions:
        start, end = session["start_time"], session["timestamp"]
        mine = [r for r in records if start <= r["timestamp"] <= end]
        series: dict[str, list[Any]] = {
            "time": [int((r["timestamp"] - start).total_seconds()) for r in mine],
            "start": [start],
        }
        if "position_lat" in mine[0]:
            scale = 180 / 2**31
            series["latlng"] = [
                [r["position_lat"] * scale, r["position_long"] * scale] for r in mine
            ]
        for fit_name, api_name in (
            ("altitude", "altitude"),
            ("distance", "distance"),
            ("heart_rate", "heartrate"),
            ("cadence", "cadence"),
            ("power", "watts"),
            ("temperature", "temp"),
        ):
            if fit_name in mine[0]:
                series[api_name] = [r[fit_name] for r in mine]
        result.append(series)
    return result


def _gpx_series(data: bytes) -> dict[str, list[Any]]:
    parsed = gpxpy.parse(data.lstrip().decode("utf-8"))
    points = [p for track in parsed.tracks for seg in track.segments for p in seg.points]
    series: dict[str, list[Any]] = {"latlng": [[p.latitude, p.longitude] for p in points]}
    if points[0].time is not None:
        series["start"] = [points[0].time]
        series["time"] = [int((p.time - points[0].time).total_seconds()) for p in points]
    if points[0].elevation is not None:
        series["altitude"] = [p.elevation for p in points]
    extras: dict[str, list[Any]] = {}
    for point in points:
        for ext in point.extensions:
            if ext.tag.endswith("power"):
                extras.setdefault("watts", []).append(int(ext.text))
            for child in ext:
                tag = child.tag.rsplit("}", 1)[-1]
                name = {"hr": "heartrate", "cad": "cadence"}.get(tag)
                if name:
                    extras.setdefault(name, []).append(int(child.text))
    series.update(extras)
    return series


def _tcx_series(data: bytes, tmp_path: Path) -> dict[str, list[Any]]:
    path = tmp_path / "activity.tcx"
    path.write_bytes(data.lstrip())  # tcxreader reads paths only; strip the whitespace quirk
    exercise = TCXReader().read(str(path), only_gps=False)
    points = exercise.trackpoints
    first = points[0].time
    series: dict[str, list[Any]] = {
        "time": [int((p.time - first).total_seconds()) for p in points],
        "start": [first if first.tzinfo else first.replace(tzinfo=timezone.utc)],
    }
    if points[0].latitude is not None:
        series["latlng"] = [[p.latitude, p.longitude] for p in points]
    for attr, name in (
        ("elevation", "altitude"),
        ("distance", "distance"),
        ("hr_value", "heartrate"),
        ("cadence", "cadence"),
    ):
        if getattr(points[0], attr) is not None:
            series[name] = [getattr(p, attr) for p in points]
    if points[0].tpx_ext and "Watts" in points[0].tpx_ext:
        series["watts"] = [int(p.tpx_ext["Watts"]) for p in points]
    return series


def _decode(manifest: ArchiveManifest, filename: str, tmp_path: Path) -> list[dict[str, list]]:
    data = _unpacked(manifest, filename)
    fmt = manifest.by_filename(filename)[0].format
    if fmt == "fit":
        return _fit_sessions(data)
    if fmt == "gpx":
        return [_gpx_series(data)]
    return [_tcx_series(data, tmp_path)]


def _assert_equal_series(decoded: dict, streams: dict, entry, precision: dict) -> None:
    assert set(entry.series) <= set(streams), (entry, sorted(streams))
    assert set(decoded) - {"start"} == set(entry.series), (entry.filename, sorted(decoded))
    for name in entry.series:
        tolerance = precision.get(name, 0.0)
        got, want = decoded[name], streams[name]
        assert len(got) == len(want) == entry.points, (entry.filename, name)
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            pairs = zip(a, b, strict=True) if name == "latlng" else [(a, b)]
            for x, y in pairs:
                assert abs(x - y) <= tolerance + 1e-9, (entry.filename, name, i, x, y)


def test_each_file_decodes_to_the_api_streams(archive, tmp_path):
    _, manifest, api = archive
    checked: dict[str, int] = {}
    for entry in manifest.entries.values():
        if entry.outcome != "ok":
            continue
        sessions = _decode(manifest, entry.filename, tmp_path)
        decoded = sessions[entry.index_in_file]
        streams = api.streams(entry.activity_id)
        detail = api.get(f"/activities/{entry.activity_id}")
        assert decoded["start"][0] == _utc(detail["start_date"])
        assert streams["time"] == list(range(TRACK_SECONDS + 1))  # one-second tracks
        _assert_equal_series(decoded, streams, entry, manifest.precision[entry.format])
        checked[entry.format] = checked.get(entry.format, 0) + 1
    assert set(checked) == {"fit", "gpx", "tcx"}, checked


def test_a_mix_of_formats_names_and_manual_activities(archive):
    _, manifest, _ = archive
    suffixes = {
        e.filename.split(".", 1)[1] for e in manifest.entries.values() if e.filename is not None
    }
    assert suffixes == {"fit", "fit.gz", "gpx", "gpx.gz", "tcx", "tcx.gz"}
    named_by = {e.named_by for e in manifest.entries.values()}
    assert {"activity_id", "upload_id", "other_activity"} <= named_by
    manual = [e for e in manifest.entries.values() if e.outcome == "manual"]
    assert manual
    assert all(e.filename is None for e in manual)
    for entry in manifest.entries.values():
        if entry.named_by == "upload_id":
            assert str(entry.activity_id) not in entry.filename


def test_one_fit_file_holds_two_activities_listed_by_two_rows(archive, tmp_path):
    _, manifest, api = archive
    first, second = manifest.quirks["multi_activity_fit"]
    filename = manifest.entries[first].filename
    assert manifest.entries[second].filename == filename
    rows = [r for r in _csv(manifest)[1] if r[12] == filename]
    assert sorted(int(r[0]) for r in rows) == sorted([first, second])
    sessions = _decode(manifest, filename, tmp_path)
    assert len(sessions) == 2
    for activity_id, session in zip((first, second), sessions, strict=True):
        # Endurain's rule: the session whose start equals the row's Activity Date.
        assert session["start"][0] == _utc(api.get(f"/activities/{activity_id}")["start_date"])


def test_the_quirks_of_real_exports_are_there(archive, tmp_path):
    _, manifest, _ = archive
    names = set(zipfile.ZipFile(manifest.path).namelist())
    for quirk in ("tcx_leading_whitespace", "gpx_leading_whitespace"):
        (activity_id,) = manifest.quirks[quirk]
        entry = manifest.entries[activity_id]
        raw = _unpacked(manifest, entry.filename)
        assert entry.leading_whitespace
        assert raw[:1].isspace()
        assert raw.lstrip().startswith(b"<?xml")
        with pytest.raises(Exception, match=r"(?i)xml (or text )?declaration"):
            gpxpy.parse(raw.decode()) if entry.format == "gpx" else _strict_tcx(raw, tmp_path)
    (missing,) = manifest.quirks["missing_file"]
    assert manifest.entries[missing].outcome == "missing"
    assert manifest.entries[missing].filename not in names
    (corrupt,) = manifest.quirks["corrupt_fit"]
    entry = manifest.entries[corrupt]
    assert (entry.outcome, entry.filename.endswith(".fit")) == ("corrupt", True)
    with pytest.raises(fitdecode.FitError):
        _fit_sessions(_unpacked(manifest, entry.filename))
    (untimed,) = manifest.quirks["gpx_no_times"]
    entry = manifest.entries[untimed]
    assert entry.outcome == "no_times"
    decoded = _gpx_series(_unpacked(manifest, entry.filename))
    assert "time" not in decoded
    assert "latlng" in decoded
    assert "time" not in entry.series
    assert b"<time>" not in _unpacked(manifest, entry.filename)


def _strict_tcx(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "strict.tcx"
    path.write_bytes(raw)
    TCXReader().read(str(path), only_gps=False)


def test_profile_bikes_and_shoes_agree_with_the_api(archive):
    _, manifest, api = archive
    athlete = api.get("/athlete")
    header, *rows = list(csv.reader(io.StringIO(_member(manifest, "profile.csv").decode())))
    assert header[0] == "Athlete ID"
    profile = dict(zip(header, rows[0], strict=True))
    assert int(profile["Athlete ID"]) == athlete["id"] == manifest.athlete_id
    assert (profile["First Name"], profile["Last Name"]) == (
        athlete["firstname"],
        athlete["lastname"],
    )
    for name, kind in (("bikes.csv", "bikes"), ("shoes.csv", "shoes")):
        header, *rows = list(csv.reader(io.StringIO(_member(manifest, name).decode())))
        assert header[0] == ("Bike Name" if kind == "bikes" else "Shoe Name")
        assert sorted(r[0] for r in rows) == sorted(g["name"] for g in athlete[kind])
    for empty in ("media.csv", "routes.csv", "clubs.csv", "logins.csv"):
        assert _member(manifest, empty).decode().count("\n") == 1


# -- variants ------------------------------------------------------------------------------
def test_a_german_export(tmp_path):
    with _simulator(seed=12, count=12) as sim:
        manifest = write_archive(sim, tmp_path / "de.zip", language="de", quirks=False)
        header, rows = _csv(manifest)
        assert (header[0], header[1], header[2], header[12], header[100]) == (
            "Aktivitäts-ID",
            "Aktivitätsdatum",
            "Name der Aktivität",
            "Dateiname",
            "Medien",
        )
        assert len(header) == 101
        assert header[6] == header[17] == "Distanz"
        for row in rows:
            summary = sim.activity(int(row[0]))
            when = datetime.strptime(row[1], "%d.%m.%Y, %H:%M:%S").replace(tzinfo=timezone.utc)
            assert when == _utc(summary["start_date"])
            assert row[6] == f"{summary['distance'] / 1000:.2f}".replace(".", ",")
            assert "," not in row[17]  # raw metres keep the decimal point
        labels = {r[3] for r in rows}
        assert labels & {"Radfahrt", "Lauf", "Spaziergang", "Wanderung"}, labels


def test_without_quirks_every_file_reads(tmp_path):
    with _simulator(seed=13, count=15) as sim:
        manifest = write_archive(sim, tmp_path / "plain.zip", quirks=False)
        outcomes = {e.outcome for e in manifest.entries.values()}
        assert outcomes <= {"ok", "manual"}
        text = _member(manifest, "activities.csv").decode()
        assert "#error#" not in text
        assert not any(e.leading_whitespace for e in manifest.entries.values())
        assert manifest.quirks.keys() == {"multi_activity_fit"}


def test_the_folder_form_holds_the_same_files(tmp_path):
    with _simulator(seed=14, count=10) as sim:
        zipped = write_archive(sim, tmp_path / "a.zip")
    with _simulator(seed=14, count=10) as sim:
        folder = write_archive(sim, tmp_path / "export", zipped=False)
    assert folder.path.is_dir()
    files = sorted(str(p.relative_to(folder.path)) for p in folder.path.rglob("*") if p.is_file())
    assert files == sorted(zipfile.ZipFile(zipped.path).namelist())
    for name in files:
        assert _member(folder, name) == _member(zipped, name), name


def test_the_same_seed_gives_the_same_bytes(tmp_path):
    paths = []
    for n in (1, 2):
        with _simulator(seed=15, count=10) as sim:
            paths.append(write_archive(sim, tmp_path / f"{n}.zip").path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with _simulator(seed=16, count=10) as sim:
        other = write_archive(sim, tmp_path / "other.zip").path
    assert other.read_bytes() != paths[0].read_bytes()


def test_the_natural_tracks_are_the_api_streams_too(tmp_path):
    """Without ``track_seconds``: the simulator's own stream lengths (up to 10,000 points)."""
    with _simulator(seed=17, count=6) as sim:
        api = Api(sim)
        manifest = write_archive(sim, tmp_path / "n.zip", quirks=False)
        entries = [e for e in manifest.entries.values() if e.outcome == "ok"]
        assert entries
        for entry in entries:
            decoded = _decode(manifest, entry.filename, tmp_path)[entry.index_in_file]
            streams = api.streams(entry.activity_id)
            _assert_equal_series(decoded, streams, entry, manifest.precision[entry.format])


def test_track_seconds_out_of_range_is_refused_with_one_clear_line(tmp_path, capsys):
    with _simulator(seed=18, count=3) as sim, pytest.raises(ValueError, match="between 1 and"):
        write_archive(sim, tmp_path / "x.zip", track_seconds=20_000)
    status = sim_main(["export-archive", "--out", str(tmp_path), "--track-seconds", "0"])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1
    assert "track_seconds" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = str(blocker / "x.zip")
    assert sim_main(["export-archive", "--out", out, "--activities", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "cannot write" in err
    assert "--out" in err


def test_the_command_writes_an_archive_and_its_manifest(tmp_path, capsys):
    manifest_path = tmp_path / "manifest.json"
    status = sim_main(
        [
            "export-archive",
            "--out",
            str(tmp_path),
            "--activities",
            "6",
            "--seed",
            "5",
            "--language",
            "de",
            "--track-seconds",
            "120",
            "--manifest",
            str(manifest_path),
        ]
    )
    assert status == 0
    written = json.loads(manifest_path.read_text())
    archive_path = Path(written["path"])
    assert archive_path.parent == tmp_path
    assert archive_path.name == f"export_{written['athlete_id']}.zip"
    header = zipfile.ZipFile(archive_path).read("activities.csv").decode().split("\n")[0]
    assert header.startswith("Aktivitäts-ID,")
    assert written["track_seconds"] == 120
    assert str(archive_path) in capsys.readouterr().out
    folder = tmp_path / "unpacked"
    assert (
        sim_main(
            ["export-archive", "--out", str(folder), "--folder", "--no-quirks", "--activities", "4"]
        )
        == 0
    )
    assert (folder / "activities.csv").is_file()


def test_another_athlete_s_archive_holds_that_athlete_s_data(tmp_path):
    with _simulator(seed=19, count=4) as sim:
        other = sim.add_athlete(seed=91, activity_count=5)
        manifest = write_archive(sim, tmp_path, athlete_id=other.athlete_id, quirks=False)
        assert manifest.path == tmp_path / f"export_{other.athlete_id}.zip"
        _, rows = _csv(manifest)
        assert sorted(int(r[0]) for r in rows) == sorted(a["id"] for a in other.activities)
        profile = _member(manifest, "profile.csv").decode().split("\n")[1]
        assert profile.startswith(f"{other.athlete_id},")
        with pytest.raises(ValueError, match="no simulated athlete has id 1 "):
            write_archive(sim, tmp_path / "x.zip", athlete_id=1)
