"""The tap reads Strava's bulk export archive (issue 16): no API, streams of their own.

Archives are written by real libraries (fit-tool, gpxpy, lxml, csv, zipfile; see
tests/export_fixtures.py) and read by the tap in-process or as a process (bad input).
"""

from __future__ import annotations

import zipfile

import pytest

from tap_strava import export_streams, track_decoding
from tap_strava.shared_facts import SharedFacts
from tap_strava.tap import TapStrava
from tests.conftest import tap_config_for
from tests.export_fixtures import (
    ENGLISH_HEADER,
    GERMAN_HEADER,
    Activity,
    english_row,
    fit_bytes,
    gpx_bytes,
    gz,
    samples,
    standard_activities,
    start_at,
    tcx_bytes,
    write_archive,
)
from tests.support import SyncResult, run_tap, run_tap_cli

STREAMS = ("export_activities", "export_tracks", "export_gear")


def config_for(archive, tmp_path, **extra):  # type: ignore[no-untyped-def]
    """An archive-only config: no client id, no secret, no token."""
    return {
        "export_archive_path": str(archive),
        "token_store_path": str(tmp_path / "store" / "tokens.json"),
        **extra,
    }


def counts(result) -> list[int]:  # type: ignore[no-untyped-def]
    return [len(result.records(stream)) for stream in STREAMS]


def test_an_archive_gives_its_own_streams_without_any_api_setting(tmp_path):
    archive = write_archive(tmp_path / "export_4242.zip", standard_activities())
    tap = TapStrava(config=config_for(archive, tmp_path), validate_config=True)
    assert sorted(tap.streams) == sorted(STREAMS)  # and no API stream
    result = run_tap(config_for(archive, tmp_path))
    activities = result.records("export_activities")
    assert sorted(a["id"] for a in activities) == [101, 102, 103, 104, 105]  # each once
    by_id = {a["id"]: a for a in activities}
    run = by_id[101]
    assert run["athlete_id"] == 4242  # from profile.csv
    assert run["start_date"] == "2024-05-01T15:53:35Z"  # the CSV's date is UTC
    assert run["distance"] == 5000.0  # metres (the second Distance column)
    assert run["distance_display"] == 5.0  # the first: the athlete's unit
    assert run["elapsed_time"] == 1800
    assert isinstance(run["elapsed_time"], int)
    assert run["moving_time"] == 1700
    assert run["max_speed"] == 4.1
    assert run["average_speed"] == 2.9
    assert run["max_heartrate"] == 171.0  # the second Max Heart Rate
    assert run["commute"] is False
    assert run["sport_type"] == "Run"
    assert run["gear_name"] == "Blue"
    assert run["filename"] == "activities/101.fit.gz"
    assert by_id[102]["description"] == 'line one\nline two, with "quotes"\n# not a comment'
    assert by_id[105]["filename"] is None  # a manual activity
    tracks = {t["activity_id"]: t for t in result.records("export_tracks")}
    assert sorted(tracks) == [101, 102, 103, 104]
    assert tracks[101]["file_format"] == "fit"
    assert tracks[101]["heartrate"][3] is None
    assert tracks[102]["file_name"] == "activities/9000000102.gpx"  # not named by the id
    assert tracks[103]["series"] == [
        "time", "latlng", "altitude", "distance", "heartrate", "cadence", "watts",
    ]  # fmt: skip
    assert tracks[104]["time"][:3] == [0, 1, 2]  # blanks before <?xml, gzipped
    gear = {g["id"]: g for g in result.records("export_gear")}
    assert gear["bike:Blue"]["brand_name"] == "Gazelle"
    assert gear["shoe:Daily"]["model_name"] == "Novablast"
    facts = SharedFacts.beside(tmp_path / "store" / "tokens.json")
    assert facts.archive_track_ids(4242) == {101, 102, 103, 104}


def test_tracks_equal_what_was_written_point_by_point(tmp_path):
    points = samples(120)
    archive = write_archive(tmp_path / "export_4242.zip", standard_activities())
    tracks = {t["activity_id"]: t for t in run_tap(config_for(archive, tmp_path)).records(
        "export_tracks"
    )}  # fmt: skip
    for activity_id in (101, 102, 103, 104):
        track = tracks[activity_id]
        assert track["time"] == [p.seconds for p in points]
        for got, point in zip(track["latlng"], points, strict=True):
            assert got == pytest.approx([point.lat, point.lng], abs=1e-6)
        for got, point in zip(track["altitude"], points, strict=True):
            assert got == pytest.approx(point.altitude, abs=0.21)  # FIT: 0.2 m steps
        assert track["cadence"] == [p.cadence for p in points]
        assert track["watts"] == [p.watts for p in points]
        if activity_id != 101:
            assert track["heartrate"] == [p.heartrate for p in points]
        if activity_id in (101, 103):
            assert track["distance"] == pytest.approx([p.distance for p in points], abs=0.01)
        else:
            assert track["computed_series"] == ["distance"]


def test_an_unpacked_folder_reads_like_the_zip(tmp_path):
    zipped = run_tap(
        config_for(write_archive(tmp_path / "a.zip", standard_activities()), tmp_path / "z")
    )
    folder = write_archive(tmp_path / "export", standard_activities(), folder=True)
    unpacked = run_tap(config_for(folder, tmp_path / "f"))
    for stream in STREAMS:
        assert unpacked.records(stream) == zipped.records(stream)


def test_an_archive_zipped_again_with_a_top_folder_is_read(tmp_path):
    archive = write_archive(
        tmp_path / "export_4242.zip", standard_activities(), prefix="Strava Export/"
    )
    assert counts(run_tap(config_for(archive, tmp_path))) == [5, 4, 2]


def test_columns_are_mapped_by_name_and_occurrence_never_by_position(tmp_path):
    activity = standard_activities()[0]
    # The first five columns moved to the end, a new one in the middle: every column
    # moves, the duplicates keep their order (the first Distance is the display one).
    order = list(range(5, len(ENGLISH_HEADER))) + list(range(5))
    header = [ENGLISH_HEADER[i] for i in order]
    row = english_row(activity)
    values = [row[i] for i in order]
    header.insert(8, "Brand New Column")
    values.insert(8, "surprise")
    archive = write_archive(tmp_path / "export_4242.zip", [activity], header=header, rows=[values])
    (record,) = run_tap(config_for(archive, tmp_path)).records("export_activities")
    assert record["id"] == 101
    assert record["start_date"] == "2024-05-01T15:53:35Z"
    assert record["distance"] == 5000.0
    assert record["distance_display"] == 5.0
    assert record["elapsed_time"] == 1800
    assert record["max_heartrate"] == 171.0
    assert record["_unknown_fields"] == {"Brand New Column": "surprise"}


def test_a_german_export_with_decimal_commas_and_a_new_column(tmp_path):
    start = start_at(9)
    rows = [
        [
            "201", "09.05.2024, 15:53:35", "Abendrunde", "Radfahrt", "Zeile 1\nZeile 2",
            "1800", "9,44", "activities/201.gpx", "1800.0", "1700.0", "9440.0", "",
            "neu",
        ]
    ]  # fmt: skip
    archive = write_archive(
        tmp_path / "export_4242.zip",
        [Activity(201, start, filename="activities/201.gpx", content=gpx_bytes(start, samples(5)))],
        header=GERMAN_HEADER,
        rows=rows,
    )
    result = run_tap(config_for(archive, tmp_path))
    (record,) = result.records("export_activities")
    assert record["start_date"] == "2024-05-09T15:53:35Z"
    assert record["name"] == "Abendrunde"
    assert record["description"] == "Zeile 1\nZeile 2"
    assert record["activity_type"] == "Radfahrt"
    assert record["sport_type"] == "Ride"
    assert record["distance"] == 9440.0
    assert record["distance_display"] == 9.44
    assert record["_unknown_fields"] == {"Eine neue Spalte": "neu"}
    assert [t["activity_id"] for t in result.records("export_tracks")] == [201]


def test_the_old_date_format_and_error_lines_are_read(tmp_path):
    row = english_row(Activity(301, start_at(1)))
    row[1] = "2018-09-12 15:02:23"
    archive = write_archive(
        tmp_path / "export_4242.zip", [], rows=[["#error#something went wrong"], row]
    )
    (record,) = run_tap(config_for(archive, tmp_path)).records("export_activities")
    assert record["id"] == 301
    assert record["start_date"] == "2018-09-12T15:02:23Z"


def test_a_multi_activity_fit_listed_twice_gives_each_activity_its_part(tmp_path):
    second = start_at(1).replace(minute=55, second=15)  # 100 s later
    points = samples(30) + [
        type(p)(**{**p.__dict__, "seconds": p.seconds + 100}) for p in samples(20, seed=1)
    ]
    data = gz(fit_bytes(start_at(1), points, sessions=[(start_at(1), 29), (second, 19)]))
    name = "activities/777.fit.gz"
    archive = write_archive(
        tmp_path / "export_4242.zip",
        [
            Activity(401, start_at(1), filename=name, content=data),
            Activity(402, second, filename=name, content=data),
        ],
    )
    tracks = {
        t["activity_id"]: t for t in run_tap(config_for(archive, tmp_path)).records("export_tracks")
    }
    assert len(tracks[401]["time"]) == 30
    assert len(tracks[402]["time"]) == 20
    assert tracks[402]["latlng"][0] == pytest.approx([52.01, 4.0], abs=1e-6)


def test_bad_files_cost_their_track_only_with_one_warning_each(tmp_path, caplog):
    good = standard_activities()[0]
    truncated = fit_bytes(start_at(6), samples(50))[:600]
    pts = samples(5)
    activities = [
        good,
        Activity(502, start_at(2), filename="activities/502.fit", content=truncated),
        Activity(503, start_at(3), filename="activities/503.gpx"),  # listed, not in the zip
        Activity(504, start_at(4), filename="activities/504.kml", content=b"<kml/>"),
        Activity(505, start_at(5), filename="activities/505.gpx", content=gpx_bytes(None, pts)),
        Activity(506, start_at(6), filename="../../evil.gpx", content=gpx_bytes(None, pts[:3])),
    ]  # fmt: skip
    archive = write_archive(tmp_path / "export_4242.zip", activities)
    with zipfile.ZipFile(archive) as check:
        assert "../../evil.gpx" in check.namelist()  # a zip-slip member, really there
    with caplog.at_level("WARNING"):
        result = run_tap(config_for(archive, tmp_path))
    assert sorted(a["id"] for a in result.records("export_activities")) == [
        101, 502, 503, 504, 505, 506,
    ]  # fmt: skip
    tracks = {t["activity_id"]: t for t in result.records("export_tracks")}
    assert sorted(tracks) == [101, 505]
    assert tracks[505]["time"] is None
    assert len(tracks[505]["latlng"]) == 5
    warnings = [r.getMessage() for r in caplog.records if "its track is skipped" in r.getMessage()]
    assert len(warnings) == 4
    for activity_id, needle in (
        (502, "not a readable FIT file"),
        (503, "listed but not in the archive"),
        (504, "unknown file type"),
        (506, "would leave the archive"),
    ):
        assert any(f"activity {activity_id}:" in w and needle in w for w in warnings), needle
    assert not (tmp_path.parent.parent / "evil.gpx").exists()
    # The same archive again: nothing emitted, no warning repeated.
    caplog.clear()
    with caplog.at_level("WARNING"):
        again = run_tap(config_for(archive, tmp_path), state=result.final_state)
    assert counts(again) == [0, 0, 0]
    assert not [r for r in caplog.records if "its track is skipped" in r.getMessage()]


def test_a_re_import_emits_nothing_and_a_newer_archive_only_what_is_new(tmp_path):
    activities = standard_activities()
    first = run_tap(config_for(write_archive(tmp_path / "a.zip", activities), tmp_path))
    assert counts(first) == [5, 4, 2]
    again = run_tap(config_for(tmp_path / "a.zip", tmp_path), state=first.final_state)
    assert counts(again) == [0, 0, 0]
    six, seven, pts = start_at(6), start_at(7), samples(9)
    newer = [
        *activities,
        Activity(106, start_at(6), filename="activities/106.gpx", content=gpx_bytes(six, pts)),
        Activity(107, start_at(7), filename="activities/107.fit", content=fit_bytes(seven, pts)),
    ]  # fmt: skip
    newer[1].name = "Renamed on strava.com"
    later = run_tap(
        config_for(write_archive(tmp_path / "b.zip", newer), tmp_path), state=again.final_state
    )
    assert sorted(a["id"] for a in later.records("export_activities")) == [102, 106, 107]
    assert sorted(t["activity_id"] for t in later.records("export_tracks")) == [106, 107]
    assert later.records("export_gear") == []


def test_a_killed_import_loses_nothing_and_repeats_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(export_streams, "CHECKPOINT_EVERY", 1)
    archive = write_archive(tmp_path / "a.zip", standard_activities())
    real = track_decoding.read_track
    calls = []

    def dies_on_the_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt  # what a kill looks like from inside
        return real(*args, **kwargs)

    monkeypatch.setattr(track_decoding, "read_track", dies_on_the_third)
    killed = _capture(config_for(archive, tmp_path), ["export_tracks"])
    # What a target would have committed: the records up to the last STATE.
    last = max(i for i, m in enumerate(killed) if m["type"] == "STATE")
    committed = SyncResult(killed[: last + 1])
    done = [t["activity_id"] for t in committed.records("export_tracks")]
    assert done == [101, 102]
    monkeypatch.setattr(track_decoding, "read_track", real)
    rerun = run_tap(
        config_for(archive, tmp_path), state=committed.final_state, streams=["export_tracks"]
    )
    assert [t["activity_id"] for t in rerun.records("export_tracks")] == [103, 104]


def _capture(config, streams):  # type: ignore[no-untyped-def]
    """The messages a run wrote before it was interrupted."""
    import contextlib
    import io
    import json

    tap = TapStrava(config=config, validate_config=True)
    for stream in tap.streams.values():
        stream.selected = stream.name in streams
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.suppress(KeyboardInterrupt):
        tap.sync_all()
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line]


def test_a_track_too_big_for_one_message_keeps_every_nth_sample(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(track_decoding, "MAX_TRACK_BYTES", 3_000)
    archive = write_archive(tmp_path / "a.zip", standard_activities()[:1])
    with caplog.at_level("WARNING"):
        (track,) = run_tap(config_for(archive, tmp_path)).records("export_tracks")
    import json

    assert len(json.dumps(track, separators=(",", ":"))) <= 3_000 + 100  # + athlete_id
    assert track["point_step"] > 1
    assert track["time"] == list(range(0, 120, track["point_step"]))
    assert len(track["latlng"]) == len(track["time"]) == len(track["heartrate"])
    assert any("above Meltano's limit" in r.getMessage() for r in caplog.records)


def test_a_short_track_of_huge_numbers_is_measured_too(tmp_path, monkeypatch):
    """Few samples, but a hostile file's heart rates of 300 digits: the line is measured,
    not estimated from the number of samples."""
    import json
    import re

    monkeypatch.setattr(track_decoding, "MAX_TRACK_BYTES", 5_000)
    data = re.sub(
        rb"<Value>\d+</Value>", b"<Value>1e300</Value>", tcx_bytes(start_at(1), samples(15))
    )
    activity = Activity(1, start_at(1), filename="activities/1.tcx", content=data)
    archive = write_archive(tmp_path / "a.zip", [activity])
    (track,) = run_tap(config_for(archive, tmp_path)).records("export_tracks")
    assert len(str(track["heartrate"][0])) > 300
    assert len(json.dumps(track, separators=(",", ":"))) <= 5_000 + 100  # + athlete_id
    assert track["point_step"] > 1


# -- the run must stop: one line, exit code 1 -----------------------------------------------------


def _cli_error(config, tmp_path) -> str:  # type: ignore[no-untyped-def]
    proc = run_tap_cli(config, tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "tap-strava: error:" in line]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert '"type": "RECORD"' not in proc.stdout
    return lines[0]


def test_a_zip_without_activities_csv_is_not_an_export(tmp_path):
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("holiday.jpg", b"\xff\xd8")
    line = _cli_error(config_for(path, tmp_path), tmp_path)
    assert "no activities.csv" in line
    assert "Request your archive" in line


def test_a_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / "export.zip"
    path.write_text("not a zip")
    assert "is not a zip archive" in _cli_error(config_for(path, tmp_path), tmp_path)


def test_a_missing_path(tmp_path):
    assert "does not exist" in _cli_error(config_for(tmp_path / "nope.zip", tmp_path), tmp_path)


def test_an_activities_csv_in_another_language_names_the_missing_columns(tmp_path):
    archive = write_archive(
        tmp_path / "export_4242.zip",
        [],
        header=["ID de l'activité", "Date de l'activité", "Nom"],
        rows=[["1", "1 mai 2024", "x"]],
    )
    line = _cli_error(config_for(archive, tmp_path), tmp_path)
    assert "'Activity ID'" in line
    assert "'Aktivitäts-ID'" in line
    assert "'Activity Date'" in line


@pytest.mark.parametrize("name", ["activities/1.gpx", "activities/1.gpx.gz", "activities/1.fit.gz"])
def test_a_bomb_inside_one_track_costs_that_track_only_and_is_not_retried(
    tmp_path, caplog, monkeypatch, name
):
    from tap_strava import export_archive

    bomb = b"\0" * (64 * 2**20)  # a 64 KB member: 1,000 times its packed size
    activities = [
        *standard_activities(),
        Activity(1, start_at(9), filename=name, content=gz(bomb) if name.endswith("gz") else bomb),
    ]
    archive = write_archive(tmp_path / "export_4242.zip", activities)
    with caplog.at_level("WARNING"):
        first = run_tap(config_for(archive, tmp_path))
    assert sorted(a["id"] for a in first.records("export_activities")) == [
        1, 101, 102, 103, 104, 105,
    ]  # fmt: skip
    assert sorted(t["activity_id"] for t in first.records("export_tracks")) == [101, 102, 103, 104]
    warnings = [r.getMessage() for r in caplog.records if "its track is skipped" in r.getMessage()]
    assert len(warnings) == 1
    assert "activity 1:" in warnings[0]
    assert "activities/1." in warnings[0]
    state = first.final_state["bookmarks"]["export_tracks"]
    skipped = state["skipped"]["1"]
    assert skipped["file"] == name
    assert skipped["fingerprint"]  # the zip's CRC and size: skipped again while they hold
    needles = ("bomb", "above the bound", "not a readable FIT")  # FIT: zeros have no header
    assert any(n in skipped["reason"] for n in needles), skipped["reason"]
    # A re-run skips it before opening it: not one byte of the member is read again.
    opened = []
    real = export_archive.ExportArchive.open_member

    def watched(self, relative, cap):  # type: ignore[no-untyped-def]
        opened.append(relative)
        return real(self, relative, cap)

    monkeypatch.setattr(export_archive.ExportArchive, "open_member", watched)
    caplog.clear()
    with caplog.at_level("WARNING"):
        again = run_tap(config_for(archive, tmp_path), state=first.final_state)
    assert counts(again) == [0, 0, 0]
    assert opened == []
    assert not [r for r in caplog.records if "its track is skipped" in r.getMessage()]


def test_a_bomb_at_the_archive_level_stops_with_one_line(tmp_path):
    bomb = b"\0" * (64 * 2**20)
    archive = write_archive(
        tmp_path / "export_4242.zip",
        standard_activities(),
        extra_members={"activities.csv": b"Activity ID,Activity Date\n" + bomb},
    )
    line = _cli_error(config_for(archive, tmp_path), tmp_path)
    assert "bomb" in line
    assert "activities.csv" in line


def test_api_users_still_need_the_app_settings(tmp_path):
    proc = run_tap_cli({"token_store_path": str(tmp_path / "t.json")}, tmp_path)
    assert proc.returncode == 1
    assert "client_id" in proc.stderr
    assert "refresh_token is required" in proc.stderr


def test_activity_streams_skip_the_tracks_an_archive_loaded(tmp_path, simulator):
    config = tap_config_for(simulator, tmp_path / "one", streams_per_run=5)
    first = run_tap(config, streams=["activity_streams"])
    oldest = [r["activity_id"] for r in first.records("activity_streams")]
    assert len(oldest) == 5
    # A fresh sync whose facts file says an archive brought the three oldest tracks.
    config = tap_config_for(simulator, tmp_path / "two", streams_per_run=5)
    facts = SharedFacts.beside(tmp_path / "two" / "tokens" / "tokens.json")
    facts.add_archive_track_ids(simulator.athlete_id, set(oldest[:3]))
    # A pipeline whose target is not the archive's gets every track (issue 23).
    elsewhere = run_tap(config, streams=["activity_streams"])
    assert [r["activity_id"] for r in elsewhere.records("activity_streams")] == oldest
    # The project's details block loads where the archive loaded: it skips them.
    config["archive_tracks_in_target"] = True
    second = run_tap(config, streams=["activity_streams"])
    fetched = [r["activity_id"] for r in second.records("activity_streams")]
    assert len(fetched) == 5
    assert not set(fetched) & set(oldest[:3])
    assert fetched[:2] == oldest[3:]  # the budget went to what the archive lacks


def test_a_folder_whose_listed_file_links_outside_is_not_read(tmp_path, caplog):
    outside = tmp_path / "secret.gpx"
    outside.write_bytes(gpx_bytes(start_at(1), samples(3)))
    folder = write_archive(
        tmp_path / "export",
        [Activity(601, start_at(1), filename="activities/601.gpx")],
        folder=True,
    )
    (folder / "activities").mkdir(exist_ok=True)
    (folder / "activities" / "601.gpx").symlink_to(outside)
    with caplog.at_level("WARNING"):
        result = run_tap(config_for(folder, tmp_path))
    assert [a["id"] for a in result.records("export_activities")] == [601]
    assert result.records("export_tracks") == []
    assert any("activity 601:" in r.getMessage() for r in caplog.records)


def test_a_damaged_activities_csv_stops_with_one_line(tmp_path):
    rows = [english_row(Activity(700 + i, start_at(1 + i % 20))) for i in range(50)]
    path = tmp_path / "export_4242.zip"
    write_archive(path, [], rows=rows)
    # Rewrite activities.csv stored (not deflated) and flip a byte in its middle: the
    # zip's CRC no longer matches once the member is read to its end.
    with zipfile.ZipFile(path) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as target:
        for name, data in members.items():
            target.writestr(name, data)
    raw = bytearray(path.read_bytes())
    middle = raw.index(b"Morning Run", len(raw) // 4)
    raw[middle] ^= 0x20
    path.write_bytes(bytes(raw))
    line = _cli_error(config_for(path, tmp_path), tmp_path)
    assert "activities.csv cannot be read to its end" in line
    assert "download the archive again" in line


def test_an_archive_import_excludes_the_events_mode_and_reconcile(tmp_path):
    archive = write_archive(tmp_path / "export_4242.zip", standard_activities()[:1])
    for extra in (
        {"events_url": "http://127.0.0.1:9/tap", "events_token": "x"},
        {"reconcile": True},
    ):
        line = _cli_error(config_for(archive, tmp_path, **extra), tmp_path)
        assert "exclude each other" in line


def test_the_athlete_id_falls_back_to_the_zip_name_else_one_line(tmp_path):
    archive = write_archive(tmp_path / "export_31337.zip", standard_activities()[:1])
    with zipfile.ZipFile(archive) as source:
        members = {i.filename: source.read(i) for i in source.infolist()}
    for path in (tmp_path / "export_31337.zip", tmp_path / "mine.zip"):
        with zipfile.ZipFile(path, "w") as target:
            for name, data in members.items():
                if name != "profile.csv":
                    target.writestr(name, data)
    result = run_tap(config_for(tmp_path / "export_31337.zip", tmp_path))
    assert {a["athlete_id"] for a in result.records("export_activities")} == {31337}
    line = _cli_error(config_for(tmp_path / "mine.zip", tmp_path), tmp_path)
    assert "no readable athlete id" in line


def test_athlete_ids_binds_the_archive_to_its_athlete(tmp_path):
    """An orchestrator's run for one athlete (``athlete_ids``) imports only their archive.

    An archive naming no athlete (no profile.csv, any file name) is that athlete's; one
    naming another athlete stops the run with one line before any record.
    """
    archive = write_archive(tmp_path / "export_31337.zip", standard_activities()[:1])
    with zipfile.ZipFile(archive) as source:
        members = {i.filename: source.read(i) for i in source.infolist()}
    anonymous = tmp_path / "77.zip"
    with zipfile.ZipFile(anonymous, "w") as target:
        for name, data in members.items():
            if name != "profile.csv":
                target.writestr(name, data)
    result = run_tap(config_for(anonymous, tmp_path, athlete_ids=[77]))
    assert {a["athlete_id"] for a in result.records("export_activities")} == {77}
    assert {r["athlete_id"] for r in result.records("export_tracks")} == {77}

    own = write_archive(tmp_path / "4242.zip", standard_activities()[:1], athlete_id=4242)
    result = run_tap(config_for(own, tmp_path, athlete_ids=[4242]))
    assert {a["athlete_id"] for a in result.records("export_activities")} == {4242}

    line = _cli_error(config_for(own, tmp_path, athlete_ids=[77]), tmp_path)
    assert "is athlete 4242's archive" in line
    assert "not athlete_ids' 77: nothing imported" in line


def test_a_huge_field_is_cut_with_one_warning_and_injects_no_row(tmp_path, monkeypatch, caplog):
    import base64
    import random
    import tracemalloc

    from tap_strava import export_archive

    monkeypatch.setattr(export_archive, "FIELD_MAX_CHARS", 2**20)  # 1 Mi characters, here
    forged = "\n".join(f'{n},"May 1, 2024, 1:00:00 PM",Forged' for n in range(900, 990))
    activities = standard_activities()
    # 20 MiB, packed about 80 times (repeated random text: less than a bomb), then rows.
    block = base64.b64encode(random.Random(7).randbytes(3 * 2**10)).decode()
    activities[1].description = block * (5 * 2**10) + "\n" + forged
    archive = write_archive(tmp_path / "export_4242.zip", activities)

    # Read as a stream: memory holds the kept part of the field, never the 20 MiB line.
    tracemalloc.start()
    try:
        _, records = export_archive.read_activities(export_archive.ExportArchive(archive))
        ids = [r["id"] for r in records]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ids == [101, 102, 103, 104, 105]
    assert peak < 12 * 2**20, peak

    with caplog.at_level("WARNING"):
        first = run_tap(config_for(archive, tmp_path))
    by_id = {a["id"]: a for a in first.records("export_activities")}
    assert sorted(by_id) == [101, 102, 103, 104, 105]  # no forged row
    assert by_id[102]["description"] == (block * 256)[: 2**20]
    assert by_id[102]["name"] == "Lunch Ride"  # the rest of the row is read as it was
    assert by_id[102]["distance"] == 5000.0
    warnings = [r.getMessage() for r in caplog.records if "cut to the first" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "export_activities 102:" in warnings[0]
    assert "'Activity Description'" in warnings[0]
    assert len(warnings[0]) < 500
    # Again: nothing changed, so nothing emitted and no warning repeated.
    caplog.clear()
    with caplog.at_level("WARNING"):
        again = run_tap(config_for(archive, tmp_path), state=first.final_state)
    assert counts(again) == [0, 0, 0]
    assert not [r for r in caplog.records if "cut to the first" in r.getMessage()]
