"""The track readers on files written by fit-tool, gpxpy and lxml (tap_strava.track_files)."""

from __future__ import annotations

import datetime

import pytest

from tap_strava import track_files
from tap_strava.export_archive import ArchiveBombError
from tap_strava.track_files import TrackError, TrackTooLargeError, read_track
from tests.export_fixtures import fit_bytes, gpx_bytes, gz, samples, start_at, tcx_bytes

START = start_at(1)


def assert_matches(track: track_files.Track, written: list, *, alt_tol: float, dist: bool) -> None:
    series = track.series
    assert series["time"] == [p.seconds for p in written]
    for got, point in zip(series["latlng"], written, strict=True):
        assert got == pytest.approx([point.lat, point.lng], abs=1e-6)
    for got, point in zip(series["altitude"], written, strict=True):
        assert got == pytest.approx(point.altitude, abs=alt_tol)
    if dist:
        assert series["distance"] == pytest.approx([p.distance for p in written], abs=0.01)
    assert series["cadence"] == [p.cadence for p in written]
    assert series["watts"] == [p.watts for p in written]


def test_fit_gz_point_by_point_with_invalid_heart_rate_as_null() -> None:
    written = samples(60)
    track = read_track("a.fit.gz", gz(fit_bytes(START, written, invalid_hr_at={5, 6})))
    assert track.file_format == "fit"
    assert_matches(track, written, alt_tol=0.21, dist=True)  # FIT altitude: 0.2 m steps
    expected_hr = [None if p.seconds in {5, 6} else p.heartrate for p in written]
    assert track.series["heartrate"] == expected_hr
    assert track.series["temp"] == [p.temp for p in written]
    assert track.present == list(track_files.SERIES)
    assert all(type(v) is int for v in track.series["heartrate"] if v is not None)


def test_multi_activity_fit_takes_the_session_starting_at_the_row_date() -> None:
    first = samples(30)
    second_start = START + datetime.timedelta(seconds=100)
    points = first + [
        dataclass_shift(p, 100) for p in samples(20, seed=1)
    ]  # a second activity 100 s later, chained in one file
    data = fit_bytes(START, points, sessions=[(START, 29), (second_start, 19)])
    one = read_track("multi.fit", data, start=START)
    two = read_track("multi.fit", data, start=second_start)
    assert len(one.series["time"]) == 30
    assert len(two.series["time"]) == 20
    assert two.series["time"][0] == 0
    assert two.series["latlng"][0] == pytest.approx([52.01, 4.0], abs=1e-6)


def test_tcx_run_cadence_of_the_extension_wins_over_cadence() -> None:
    written = samples(10)
    data = tcx_bytes(START, written).replace(
        b"</ns3:TPX>", b"<ns3:RunCadence>91</ns3:RunCadence></ns3:TPX>"
    )
    assert data.count(b"RunCadence>91") == 10
    track = read_track("run.tcx", data)
    assert track.series["cadence"] == [91] * 10
    plain = read_track("ride.tcx", tcx_bytes(START, written))
    assert plain.series["cadence"] == [p.cadence for p in written]


def test_fit_from_before_mid_1998_keeps_its_times() -> None:
    # FIT times below 0x10000000 (1998-06) count from a device's power-on, not from
    # 1989-12-31: fitdecode leaves them as numbers. A watch with a wrong clock writes such
    # dates; the track's times (seconds from its first sample) are right all the same.
    moment = datetime.datetime(1995, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)
    written = samples(40)
    track = read_track("old.fit", fit_bytes(moment, written))
    assert track.series["time"] == [p.seconds for p in written]
    assert len(track.series["latlng"]) == 40


def dataclass_shift(point, seconds: int):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(point, seconds=point.seconds + seconds)


def test_gpx_with_extensions_and_computed_distance() -> None:
    written = samples(40)
    track = read_track("b.gpx", gpx_bytes(START, written))
    assert_matches(track, written, alt_tol=1e-6, dist=False)
    assert track.series["heartrate"] == [p.heartrate for p in written]
    assert track.series["temp"] == [p.temp for p in written]
    assert track.computed == ["distance"]
    assert track.series["distance"][0] == 0
    straight = track_files.haversine([52.0, 4.0], [written[-1].lat, written[-1].lng])
    assert track.series["distance"][-1] == pytest.approx(straight, rel=0.01)  # about 59 m


def test_tcx_gz_with_blanks_before_the_declaration() -> None:
    written = samples(40)
    data = gz(tcx_bytes(START, written, leading_whitespace=True))
    assert data
    assert gz(b"")
    assert tcx_bytes(START, written).startswith(b" ")
    track = read_track("c.tcx.gz", data)
    assert_matches(track, written, alt_tol=1e-6, dist=True)
    assert track.series["heartrate"] == [p.heartrate for p in written]
    assert track.series["temp"] is None
    assert "temp" not in track.present


def test_gpx_with_blanks_before_the_declaration_and_without_times() -> None:
    written = samples(10)
    track = read_track("d.gpx", gpx_bytes(None, written, leading_whitespace=True))
    assert track.series["time"] is None
    assert "time" not in track.present
    assert len(track.series["latlng"]) == 10


def test_gpx_not_utf8_and_float_heart_rate_conform_to_integers() -> None:
    text = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        '<gpx version="1.1" creator="StravaGPX" xmlns="http://www.topografix.com/GPX/1/1" '
        'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">'
        "<trk><name>Café Rüdesheim</name><trkseg>"
        '<trkpt lat="50.0" lon="7.9"><ele>80.5</ele><time>2024-05-01T10:00:00Z</time>'
        "<extensions><gpxtpx:TrackPointExtension><gpxtpx:hr>72.0</gpxtpx:hr>"
        "</gpxtpx:TrackPointExtension></extensions></trkpt>"
        '<trkpt lat="50.001" lon="7.9"><time>2024-05-01T10:00:01.6Z</time>'
        "<extensions><gpxtpx:TrackPointExtension><gpxtpx:hr>73.4</gpxtpx:hr>"
        "</gpxtpx:TrackPointExtension></extensions></trkpt>"
        "</trkseg></trk></gpx>"
    )
    track = read_track("e.gpx", text.encode("latin-1"))
    assert track.series["heartrate"] == [72, 73]
    assert all(type(v) is int for v in track.series["heartrate"])
    assert track.series["time"] == [0, 2]
    assert track.series["altitude"] == [80.5, None]


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("x.kml", b"<kml/>", "unknown file type"),
        ("x.fit", fit_bytes(START, samples(50))[:700], "not a readable FIT file"),
        ("x.fit", b"hello" * 20, "not a readable FIT file"),
        ("x.fit.gz", b"not gzip at all", "not a valid gzip file"),
        ("x.gpx", b"<gpx><trk><trkseg><trkpt", "not a readable GPX file"),
        ("x.tcx", b"   nothing here", "not an XML document"),
    ],
)
def test_bad_files_raise_one_track_error(name: str, data: bytes, needle: str) -> None:
    with pytest.raises(TrackError, match=needle) as caught:
        read_track(name, data)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["bomb.fit.gz", "bomb.gpx.gz", "bomb.tcx.gz"])
def test_a_gzip_bomb_is_that_files_error_read_as_a_stream(name: str) -> None:
    import io
    import tracemalloc

    bomb = gz(b"\0" * (64 * 2**20))  # 64 KB packed
    tracemalloc.start()
    try:
        # Zeros are no FIT header: fitdecode refuses it at its first bytes, read as a stream.
        needle = "not a readable FIT" if name.endswith(".fit.gz") else "gzip bomb"
        with pytest.raises(TrackError, match=needle) as caught:
            read_track(name, io.BytesIO(bomb))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not isinstance(caught.value, ArchiveBombError)  # costs this file, not the run
    assert "\n" not in str(caught.value)
    # Read as a stream: never the 13 MB the ratio would let a collecting reader hold.
    assert peak < 8 * 2**20, peak


def test_a_file_past_its_formats_bound_or_its_stated_size_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = gpx_bytes(START, samples(300))
    monkeypatch.setitem(track_files.MAX_BYTES, "gpx", len(data) - 1)
    with pytest.raises(TrackTooLargeError, match="unpacks to more than"):
        read_track("big.gpx", data)
    monkeypatch.setitem(track_files.MAX_BYTES, "gpx", len(data))
    assert len(read_track("big.gpx", data).series["time"] or []) == 300
    with pytest.raises(TrackTooLargeError, match="unpacks to more than 100 bytes"):
        read_track("big.gpx.gz", gz(data), limit=100)  # what its gzip trailer claimed


def _fit_of_zeros(records: int) -> bytes:
    """A FIT whose records are all zeros (timestamp 0): valid, and compressing 1,000:1."""
    import struct

    header = struct.pack("<BBHI4sH", 14, 0x10, 2093, 1 + 9 + 5 * records, b".FIT", 0)
    definition = bytes([0x40, 0, 0]) + struct.pack("<HB", 20, 1) + bytes([253, 4, 0x86])
    return header + definition + b"\0" * (5 * records)


def test_a_fit_bomb_is_decoded_as_a_stream_and_stopped_at_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import tracemalloc

    monkeypatch.setitem(track_files.MAX_BYTES, "fit", 2**16)
    bomb = gz(_fit_of_zeros(2**20))  # 5 MiB of records, 5 KB packed
    tracemalloc.start()
    try:
        with pytest.raises(TrackTooLargeError, match="unpacks to more than") as caught:
            read_track("bomb.fit.gz", io.BytesIO(bomb))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not isinstance(caught.value, ArchiveBombError)
    assert peak < 8 * 2**20, peak  # 13,000 samples at most, never the 5 MiB unpacked


def test_too_many_samples_is_that_files_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(track_files, "MAX_SAMPLES", 100)
    with pytest.raises(TrackTooLargeError, match="more than 100 samples"):
        read_track("many.fit", fit_bytes(START, samples(150)))


def test_long_tracks_are_thinned_evenly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(track_files, "MAX_POINTS", 64)
    track = read_track("f.gpx", gpx_bytes(START, samples(200)))
    assert track.point_step == 4
    assert track.original_size == 200
    assert track.series["time"] == list(range(0, 200, 4))
