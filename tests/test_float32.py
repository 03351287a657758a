"""Archive numbers as the file holds them: widened 32-bit floats back to their shortest decimal.

The rule (tap_strava/float32.py, docs/export-archive.md "Numbers"): a value that is exactly
a 32-bit float becomes the shortest decimal that reads back as the same float32; any other
value is left alone. The float32 values here are written by real writers: fit-tool (FIT's
float32 fields, read back by fitdecode, the tap's FIT reader) and Strava's exporter (the
value of geo-activity-playground's real export, and the simulator's CSV writer).
"""

from __future__ import annotations

import io
import struct

import fitdecode
import pytest

from tap_strava.float32 import is_float32, shortest_float32, unwiden
from tests.export_fixtures import Activity, english_row, start_at, write_archive
from tests.support import run_tap


@pytest.mark.parametrize(
    ("widened", "meant"),
    [
        (3322.949951171875, 3322.95),  # a real export's Distance (docs: GAP testdata)
        (1748.199951171875, 1748.2),
        (2.461899995803833, 2.4619),
        (0.10000000149011612, 0.1),
        (1.2339999557298142e-05, 1.234e-05),
        (16777216.0, 16777216.0),
        (1428.0, 1428.0),
        (-12.300000190734863, -12.3),
    ],
)
def test_a_widened_float32_becomes_its_shortest_decimal(widened, meant):
    assert is_float32(widened)
    assert unwiden(widened) == meant
    assert struct.pack("<f", unwiden(widened)) == struct.pack("<f", widened)  # same float32


@pytest.mark.parametrize("value", [3322.95, 9.44, 0.1, 16777217.0, 1e300, 2.4619])
def test_a_value_that_never_was_a_float32_is_left_alone(value):
    assert not is_float32(value)
    assert unwiden(value) is value


def test_a_whole_number_is_left_alone_even_where_a_float32_could_not_tell():
    sunrise = 1717213184.0  # epoch seconds, a multiple of 128: exactly a float32
    assert is_float32(sunrise)
    assert shortest_float32(sunrise) == 1717213200.0  # the same float32, 16 s away
    assert unwiden(sunrise) is sunrise


def test_the_shortest_decimal_is_not_a_fixed_number_of_places():
    assert shortest_float32(0.00012339999375399202) == 0.0001234  # 7 places, not 2 or 3
    assert shortest_float32(123456.796875) == 123456.8
    assert shortest_float32(float(2**24 + 2)) == 16777218.0


def test_float32_values_fit_tool_writes_read_back_as_written():
    """FIT float32 fields (a session's grit and flow) through fit-tool and fitdecode."""
    from fit_tool.fit_file_builder import FitFileBuilder
    from fit_tool.profile.messages.file_id_message import FileIdMessage
    from fit_tool.profile.messages.session_message import SessionMessage
    from fit_tool.profile.profile_type import FileType, Manufacturer

    written = {"total_grit": 1748.2, "total_flow": 3322.95, "avg_grit": 0.37, "avg_flow": 12.3}
    builder = FitFileBuilder(auto_define=True)
    file_id = FileIdMessage()
    file_id.type = FileType.ACTIVITY
    file_id.manufacturer = Manufacturer.DEVELOPMENT.value
    file_id.time_created = 1_700_000_000_000
    builder.add(file_id)
    session = SessionMessage()
    session.start_time = 1_700_000_000_000
    session.timestamp = 1_700_000_060_000
    for name, value in written.items():
        setattr(session, name, value)
    builder.add(session)
    data = bytes(builder.build().to_bytes())
    read: dict[str, float] = {}
    with fitdecode.FitReader(io.BytesIO(data)) as reader:
        for frame in reader:
            if frame.frame_type == fitdecode.FIT_FRAME_DATA and frame.name == "session":
                read = {name: frame.get_value(name) for name in written}
    assert read["total_grit"] == 1748.199951171875  # what the file really holds, widened
    assert {name: unwiden(value) for name, value in read.items()} == written


def test_the_archive_emits_the_numbers_the_export_meant(tmp_path):
    activity = Activity(201, start_at(1))
    row = english_row(activity)
    row[17] = "3322.949951171875"  # Distance (metres), as Strava's exporter prints it
    row[18] = "4.099999904632568"  # Max Speed
    row[19] = "2.9"  # Average Speed, printed short by an older export: left alone
    archive = write_archive(tmp_path / "export_4242.zip", [activity], rows=[row])
    result = run_tap(
        {
            "export_archive_path": str(archive),
            "token_store_path": str(tmp_path / "store" / "tokens.json"),
        },
        streams=["export_activities"],
    )
    (record,) = result.records("export_activities")
    assert (record["distance"], record["max_speed"], record["average_speed"]) == (
        3322.95,
        4.1,
        2.9,
    )
