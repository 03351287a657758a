"""The archive's local start time: which rule gives it, from files real libraries wrote.

``export_activities.start_date_local`` comes from the FIT file's ``local_timestamp``, else
the zone of the start coordinates (timezonefinder), else the ``athlete_timezone`` setting
(docs/export-archive.md, "Local time"). The FIT files are written by fit-tool, the GPX by
gpxpy, the TCX by lxml (tests/export_fixtures.py), as the other archive tests do.
"""

from __future__ import annotations

import datetime
import typing as t

import pytest

from tap_strava import export_streams
from tests.export_fixtures import (
    Activity,
    fit_bytes,
    gpx_bytes,
    gz,
    samples,
    tcx_bytes,
    write_archive,
)
from tests.support import run_tap, run_tap_cli

UTC = datetime.timezone.utc
FIT_EPOCH = 631065600  # 1989-12-31T00:00:00Z, where FIT's seconds count from
SUMMER = datetime.datetime(2024, 7, 1, 5, 30, 0, tzinfo=UTC)
WINTER = datetime.datetime(2024, 1, 15, 12, 0, 0, tzinfo=UTC)


def _moved(points: list[t.Any], lat: float, lng: float) -> list[t.Any]:
    for point in points:
        point.lat += lat - 52.0
        point.lng += lng - 4.0
    return points


def fit_with_local_time(start: datetime.datetime, offset: int, *, lat: float = 52.0) -> bytes:
    """A FIT activity whose ``activity`` message holds the device's wall clock."""
    from fit_tool.fit_file import FitFile
    from fit_tool.fit_file_builder import FitFileBuilder
    from fit_tool.profile.messages.activity_message import ActivityMessage

    base = fit_bytes(start, _moved(samples(60), lat, 4.0))
    builder = FitFileBuilder(auto_define=True)
    for record in FitFile.from_bytes(base).records:
        if not record.is_definition:
            builder.add(record.message)
    activity = ActivityMessage()
    end = int(start.timestamp()) + 59
    activity.timestamp = end * 1000
    activity.local_timestamp = end - FIT_EPOCH + offset
    activity.num_sessions = 1
    builder.add(activity)
    return bytes(builder.build().to_bytes())


def _archive(tmp_path, activities: list[Activity]):
    return write_archive(tmp_path / "export_4242.zip", activities)


def _rows(result) -> dict[int, dict[str, t.Any]]:
    return {
        m["record"]["id"]: m["record"]
        for m in result.messages
        if m["type"] == "RECORD" and m["stream"] == "export_activities"
    }


def _config(tmp_path, archive, **extra: t.Any) -> dict[str, t.Any]:
    return {
        "export_archive_path": str(archive),
        "token_store_path": str(tmp_path / "store" / "tokens.json"),
        "export_workers": 1,
        **extra,
    }


def test_each_rule_in_its_order(tmp_path):
    activities = [
        # A FIT file recorded in Amsterdam whose device said UTC+05:30: the file wins.
        Activity(1, SUMMER, filename="activities/1.fit.gz",
                 content=gz(fit_with_local_time(SUMMER, 5 * 3600 + 1800))),
        # A FIT file without an activity message (fit-tool's minimal file): its position.
        Activity(2, SUMMER, filename="activities/2.fit", content=fit_bytes(SUMMER, samples(30))),
        # GPX in Amsterdam in summer (CEST), TCX in New York in winter (EST).
        Activity(3, SUMMER, filename="activities/3.gpx", content=gpx_bytes(SUMMER, samples(30))),
        Activity(4, WINTER, filename="activities/4.tcx.gz",
                 content=gz(tcx_bytes(WINTER, _moved(samples(30), 40.7128, -74.0060)))),
        Activity(5, WINTER, name="Yoga", kind="Yoga"),  # manual: no file
        Activity(6, WINTER, filename="activities/6.fit", content=b"not a FIT file"),
    ]  # fmt: skip
    archive = _archive(tmp_path, activities)
    rows = _rows(run_tap(_config(tmp_path, archive, athlete_timezone="(GMT+01:00) Europe/Paris")))
    got = {i: (rows[i]["start_date_local"], rows[i]["start_date_local_rule"]) for i in rows}
    assert got == {
        1: ("2024-07-01T11:00:00", "fit_local_timestamp"),
        2: ("2024-07-01T07:30:00", "start_coordinates"),
        3: ("2024-07-01T07:30:00", "start_coordinates"),
        4: ("2024-01-15T07:00:00", "start_coordinates"),
        5: ("2024-01-15T13:00:00", "athlete_timezone"),
        6: ("2024-01-15T13:00:00", "athlete_timezone"),  # unreadable: as if no file
    }
    for row in rows.values():
        assert row["start_date"].endswith("Z")  # the instant stays UTC

    # Without the setting the last rule does not apply: no guess.
    rows = _rows(run_tap(_config(tmp_path, archive)))
    assert (rows[5]["start_date_local"], rows[5]["start_date_local_rule"]) == (None, None)
    assert rows[1]["start_date_local_rule"] == "fit_local_timestamp"


def test_a_re_import_opens_no_file_and_emits_nothing(tmp_path, monkeypatch):
    activities = [
        Activity(1, SUMMER, filename="activities/1.fit.gz",
                 content=gz(fit_with_local_time(SUMMER, 7200))),
        Activity(3, SUMMER, filename="activities/3.gpx", content=gpx_bytes(SUMMER, samples(30))),
    ]  # fmt: skip
    archive = _archive(tmp_path, activities)
    config = _config(tmp_path, archive)
    first = run_tap(config, streams=["export_activities"])
    assert len(_rows(first)) == 2
    opened: list[str] = []
    real = export_streams.read_start_facts

    def counting(filename: str, *args: t.Any) -> t.Any:
        opened.append(filename)
        return real(filename, *args)

    monkeypatch.setattr(export_streams, "read_start_facts", counting)
    again = run_tap(config, state=first.final_state, streams=["export_activities"])
    assert _rows(again) == {}
    assert opened == []
    # A changed file is read again, and only that one.
    activities[0].content = gz(fit_with_local_time(SUMMER, 3600))
    archive = _archive(tmp_path, activities)
    changed = run_tap(config, state=first.final_state, streams=["export_activities"])
    assert opened == ["activities/1.fit.gz"]
    assert _rows(changed)[1]["start_date_local"] == "2024-07-01T06:30:00"


def test_a_bad_athlete_timezone_is_one_clear_line(tmp_path):
    archive = _archive(tmp_path, [Activity(5, WINTER, name="Yoga", kind="Yoga")])
    proc = run_tap_cli(_config(tmp_path, archive, athlete_timezone="Mars/Olympus"), tmp_path)
    assert proc.returncode != 0
    assert "athlete_timezone 'Mars/Olympus' is not an IANA time zone" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-4 * 3600, "2024-07-01T01:30:00"), (5 * 3600 + 45 * 60, "2024-07-01T11:15:00")],
)
def test_the_fit_offset_is_the_files_whatever_the_position(tmp_path, offset, expected):
    activity = Activity(
        1, SUMMER, filename="activities/1.fit", content=fit_with_local_time(SUMMER, offset)
    )
    rows = _rows(run_tap(_config(tmp_path, _archive(tmp_path, [activity]))))
    assert (rows[1]["start_date_local"], rows[1]["start_date_local_rule"]) == (
        expected,
        "fit_local_timestamp",
    )
