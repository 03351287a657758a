"""target-xml's writer in process: awkward values round-trip and validate, documents close.

In the `extras` group: lxml and loaders/target-xml are installed into the project's
environment by `make setup-extras`, not by `make setup`.
"""

from __future__ import annotations

import datetime
import decimal
import io
import json
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

pytestmark = pytest.mark.extras

etree = pytest.importorskip("lxml.etree")
target_xml = pytest.importorskip("target_xml")

from target_xml import reader, values, xsd  # noqa: E402
from target_xml.documents import DocumentSet  # noqa: E402
from target_xml.schema import is_plain_name, plan  # noqa: E402
from target_xml.target import TargetXML  # noqa: E402
from target_xml.writer import RecordMismatchError, record_element  # noqa: E402

D = decimal.Decimal
UTC = datetime.timezone.utc

#: Every character XML 1.0 cannot carry that a Python string can hold, and the escape.
UNCARRIABLE = [chr(c) for c in range(0x20) if c not in (0x9, 0xA, 0xD)] + [
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\ufffe",
    "\uffff",
    "\u241b",
]
AWKWARD_STRINGS = [
    "",
    " ",
    "CR\ronly",
    "CRLF\r\nand LF\n and tab\t",
    "\r",
    "quotes \" ' & ampersand <angle> ]]> brackets",
    "unicode: Zürich 東京 🚴\u200d♀️ رکض",
    "the escape itself: \u241b and \u241b0007 as text",
    "lone surrogates \ud83d and \ude00 apart, then \ud83d\ude00 as two code points",
    "".join(UNCARRIABLE),
    "NUL\x00in the middle",
    "\x85 NEL and \x7f DEL are legal",
]
INVALID_KEYS = ["1st", "a b", "xml_reserved", "XMLish", "_", "ns:colon", "", "-dash", "tab\tkey"]
INVALID_KEYS += ["CR\rkey", "bell\x07key", "\ud800", "\u241b", "quote\"'<&>"]

SCHEMA: dict[str, t.Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "distance": {"type": ["number", "null"]},
        "count": {"type": ["integer", "null"]},
        "flag": {"type": ["boolean", "null"]},
        "start_date": {"type": ["string", "null"], "format": "date-time"},
        "day": {"type": ["string", "null"], "format": "date"},
        "clock": {"type": ["string", "null"], "format": "time"},
        "latlng": {"type": ["array", "null"], "items": {"type": "number"}},
        "tags": {"type": ["array", "null"], "items": {"type": ["string", "null"]}},
        "grid": {
            "type": ["array", "null"],
            "items": {"type": "array", "items": {"type": "integer"}},
        },
        "map": {
            "type": ["object", "null"],
            "properties": {
                "id": {"type": ["string", "null"]},
                "when": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "closed": {
            "type": ["object", "null"],
            "properties": {"a": {"type": "integer"}},
            "additionalProperties": False,
        },
        "either": {"type": ["integer", "string", "null"]},
        "anything": {},
        "_unknown_fields": {"type": ["object", "null"]},
        "a b": {"type": ["integer", "null"]},
    },
    "required": ["id"],
}
NODE = plan(SCHEMA, top=True)
XSD = etree.XMLSchema(etree.fromstring(xsd.generate("things", SCHEMA, NODE)))


def write_and_read(records: list[dict[str, t.Any]], tmp_path: Path) -> list[dict[str, t.Any]]:
    """Through a real document (file, XSD), validated, and read back."""
    documents = DocumentSet(
        tmp_path, "{stream_name}-{timestamp}", _logger(), datetime.datetime.now(UTC)
    )
    document = documents.open("things", SCHEMA, NODE)
    for record in records:
        document.write(record_element(record, NODE))
    documents.finish_all()
    (path,) = tmp_path.glob("things-*.xml")
    reader.validate(path)
    XSD.assertValid(etree.parse(str(path)))
    return list(reader.read_records(path))


def _logger() -> t.Any:
    import logging

    return logging.getLogger("test-target-xml")


def test_escape_round_trips_and_leaves_ordinary_text_alone():
    for text in AWKWARD_STRINGS:
        escaped = values.escape(text)
        assert values.unescape(escaped) == text
        assert not any(ch in escaped for ch in UNCARRIABLE[:-1])
    assert values.escape("Café, C:\\Users\\run & <b>") == "Café, C:\\Users\\run & <b>"
    assert values.escape("\x07") == "\u241b0007"
    assert values.escape("\u241b") == "\u241b241B"
    assert values.escape("\ud800") == "\u241bD800"
    # Text that looks like an escape is not one: its escape character is escaped.
    assert values.unescape(values.escape("\u241b0041")) == "\u241b0041"


@pytest.mark.parametrize("text", AWKWARD_STRINGS)
def test_awkward_strings_round_trip_as_values_keys_and_loose_values(text, tmp_path):
    record = {
        "id": 1,
        "name": text,
        "tags": [text, None, ""],
        "either": text,
        "anything": {"k": text},
        "_unknown_fields": {text: text, "plain": [text]},
    }
    (read,) = write_and_read([record], tmp_path)
    assert read == record


def test_cr_is_written_as_a_character_reference(tmp_path):
    write_and_read([{"id": 1, "name": "a\rb\r\nc"}], tmp_path)
    text = next(tmp_path.glob("*.xml")).read_bytes()
    assert b"a&#13;b&#13;\nc" in text
    assert b"\r" not in text


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_keys_that_are_no_xml_names_are_carried_in_an_attribute(key, tmp_path):
    assert not is_plain_name(key)
    record = {"id": 1, "_unknown_fields": {key: 1}, key: "top level, undeclared"}
    (read,) = write_and_read([record], tmp_path)
    assert read == record
    document = etree.parse(str(next(tmp_path.glob("*.xml"))))
    entries = document.findall("record/_")
    assert [values.unescape(e.get("key")) for e in entries] == [key]


def test_valid_names_stay_element_names():
    for key in ("id", "map.brand_new", "é", "東京", "a-b", "_sdc_extracted_at"):
        assert is_plain_name(key), key


def test_null_empty_string_empty_array_empty_object_and_absent_are_distinct(tmp_path):
    records = [
        {"id": 1, "name": None, "tags": None, "map": None, "_unknown_fields": None},
        {"id": 2, "name": "", "tags": [], "map": {}, "_unknown_fields": {}},
        {"id": 3, "tags": [None, ""], "anything": None, "either": None},
        {"id": 4, "anything": [], "_unknown_fields": {"e": [], "o": {}, "n": None, "s": ""}},
        {"id": 5},
    ]
    assert write_and_read(records, tmp_path) == records


def test_numbers_in_xml_schema_lexical_forms(tmp_path):
    assert values.decimal_text(D("1E-7")) == "0.0000001"
    assert values.decimal_text(D("1E+3")) == "1000"
    assert values.decimal_text(D("-0.0")) == "-0.0"
    assert values.decimal_text(1e-7) == "0.0000001"
    assert values.decimal_text(12) == "12"
    assert values.integer_text(D("72.0")) == "72"
    assert values.integer_text(D("7.2E+1")) == "72"
    with pytest.raises(values.ValueMismatchError):
        values.integer_text(D("72.5"))
    with pytest.raises(values.ValueMismatchError):
        values.decimal_text(D("NaN"))
    with pytest.raises(values.ValueMismatchError):
        values.integer_text(True)
    numbers = [D("1E-7"), D("123456789012345678901234567890.000000000000000001"), D("-0"), 0]
    records = [{"id": i, "distance": n, "count": i * 10**18} for i, n in enumerate(numbers)]
    records.append({"id": 99, "count": D("42.0"), "_unknown_fields": {"x": D("1E-7")}})
    read = write_and_read(records, tmp_path)
    assert [r.get("distance") for r in read[:-1]] == numbers
    assert read[-1] == {"id": 99, "count": 42, "_unknown_fields": {"x": D("1E-7")}}
    text = next(tmp_path.glob("*.xml")).read_text()
    assert "E-7" not in text
    assert "<distance>0.0000001</distance>" in text


def test_datetimes_dates_and_times(tmp_path):
    assert values.datetime_text(datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        "2024-01-02T03:04:05Z"
    )
    assert values.datetime_text("2024-01-02T03:04:05Z") == "2024-01-02T03:04:05Z"
    assert values.datetime_text(datetime.datetime(2024, 1, 2, 3, 4, 5, 120000)) == (
        "2024-01-02T03:04:05.120000"
    )
    odd = datetime.timezone(datetime.timedelta(hours=5, minutes=30, seconds=15))
    assert values.datetime_text(datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=odd)) == (
        "2024-01-01T21:33:50Z"
    )
    with pytest.raises(values.ValueMismatchError):
        values.datetime_text("yesterday")
    with pytest.raises(values.ValueMismatchError):
        values.date_text(datetime.datetime(2024, 1, 2, 3, 4))
    ist = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    records = [
        {
            "id": 1,
            "start_date": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "day": datetime.date(999, 12, 31),
            "clock": datetime.time(23, 59, 59, 999999),
            "map": {"when": "2024-06-30T23:59:59+05:30"},
        },
        {"id": 2, "start_date": datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=ist)},
        {
            "id": 3,
            "start_date": datetime.datetime(1, 1, 1),
            "clock": datetime.time(0, 0, tzinfo=UTC),
        },
        {"id": 4, "_unknown_fields": {"d": datetime.date(2020, 2, 29)}},
    ]
    read = write_and_read(records, tmp_path)
    expected = [dict(r) for r in records]
    expected[0]["map"] = {"when": datetime.datetime(2024, 6, 30, 23, 59, 59, tzinfo=ist)}
    assert read == expected


def test_arrays_are_wrapped_repeated_items(tmp_path):
    records = [{"id": 1, "latlng": [D("51.5"), D("-0.1")], "grid": [[1, 2], [], [3]]}]
    assert write_and_read(records, tmp_path) == records
    text = next(tmp_path.glob("*.xml")).read_text()
    assert "<latlng><item>51.5</item><item>-0.1</item></latlng>" in text
    assert "<grid><item><item>1</item><item>2</item></item><item/><item><item>3" in text


def test_records_that_do_not_fit_their_schema_are_refused_not_dropped():
    bad = [
        {"name": "no id"},
        {"id": None},
        {"id": "1"},
        {"id": 1, "flag": 1},
        {"id": 1, "latlng": "51.5,0.1"},
        {"id": 1, "map": ["not", "an", "object"]},
        {"id": 1, "closed": {"a": 1, "b": 2}},
        {"id": 1, "start_date": "not a date"},
        {"id": 1, "_unknown_fields": {"x": object()}},
    ]
    for record in bad:
        with pytest.raises(RecordMismatchError):
            record_element(record, NODE)


def test_generated_xsd_of_every_tap_stream_compiles_and_keeps_the_singer_schema(tmp_path):
    from tap_strava.tap import TapStrava

    tap = TapStrava(config={"client_id": "x", "client_secret": "y", "refresh_token": "z"})
    for stream in tap.streams.values():
        node = plan(stream.schema, top=True)
        document = etree.fromstring(xsd.generate(stream.name, stream.schema, node))
        etree.XMLSchema(document)  # raises on a non-deterministic content model
        path = tmp_path / f"{stream.name}.xsd"
        path.write_bytes(etree.tostring(document))
        assert reader.singer_schema(path) == json.loads(json.dumps(stream.schema))
        if "_unknown_fields" in stream.schema["properties"]:
            (decl,) = document.iterfind(f".//{{{xsd.XS}}}element[@name='_unknown_fields']")
            assert decl.get("type") == xsd.CATCHALL_TYPE
    catchall = document.find(f"{{{xsd.XS}}}complexType[@name='{xsd.CATCHALL_TYPE}']")
    assert catchall.find(f".//{{{xsd.XS}}}any") is not None


# -- the target: STATE after flushing, retired sinks, failed runs -------------------------


def _messages(*messages: dict[str, t.Any]) -> str:
    return "".join(json.dumps(m) + "\n" for m in messages)


def _schema_message(schema: dict[str, t.Any] = SCHEMA) -> dict[str, t.Any]:
    return {"type": "SCHEMA", "stream": "things", "schema": schema, "key_properties": ["id"]}


def _record(i: int) -> dict[str, t.Any]:
    return {"type": "RECORD", "stream": "things", "record": {"id": i, "name": f"n{i}"}}


def test_records_are_on_disk_before_the_state_goes_out(tmp_path, monkeypatch, capsys):
    """The SDK writes STATE at its drains; every record before it must be on the disk."""
    seen: list[int] = []

    def on_disk(_self: t.Any, state: dict) -> None:
        (document,) = tmp_path.glob("*.xml*")  # .xml.part, or .xml at the end
        seen.append(document.read_bytes().count(b"<record "))

    from singer_sdk import Target

    monkeypatch.setattr(Target, "_write_state_message", on_disk)
    monkeypatch.setattr(TargetXML, "_MAX_RECORD_AGE_IN_MINUTES", -1.0)  # drain every record
    target = TargetXML(config={"output_path": str(tmp_path)})
    lines = [_schema_message()]
    for i in range(5):
        lines += [_record(i), {"type": "STATE", "value": {"n": i}}]
    target.process_lines(io.StringIO(_messages(*lines)))
    # A drain after each record; the first has no STATE to pass on yet.
    assert seen == [2, 3, 4, 5], seen
    target.process_endofpipe()
    assert seen == [2, 3, 4, 5, 5], seen


def test_a_sink_the_sdk_retires_mid_run_has_its_document_finished(tmp_path, monkeypatch):
    """A schema change retires the sink; a drain in between means no clean_up() for it."""
    monkeypatch.setattr(TargetXML, "_MAX_RECORD_AGE_IN_MINUTES", -1.0)
    target = TargetXML(config={"output_path": str(tmp_path)})
    changed = json.loads(json.dumps(SCHEMA))
    changed["properties"]["added"] = {"type": ["string", "null"]}
    target.process_lines(io.StringIO(_messages(_schema_message(), _record(1), _record(2))))
    target.process_lines(io.StringIO(_messages(_schema_message(changed), _record(3))))
    (first,) = tmp_path.glob("things-*Z.xml")
    assert sorted(r["id"] for r in reader.read_records(first)) == [1, 2]
    target.process_lines(io.StringIO(_messages(_record(4))))
    target.process_endofpipe()
    assert not list(tmp_path.glob("*.part"))
    (second,) = tmp_path.glob("things-*Z-2.xml")
    reader.validate(first)
    reader.validate(second)
    assert [r["id"] for r in reader.read_records(second)] == [3, 4]
    assert "added" in reader.singer_schema(second.with_suffix(".xsd"))["properties"]


def test_a_failed_run_leaves_a_well_formed_part_file_and_never_overwrites(tmp_path):
    lines = [_schema_message(), _record(1), _record(2)]
    bad = {"type": "RECORD", "stream": "things", "record": {"id": "three"}}
    config = tmp_path / "config.json"
    out = tmp_path / "out"
    config.write_text(json.dumps({"output_path": str(out), "validate_records": False}))
    for run in range(2):
        proc = subprocess.run(
            [sys.executable, "-m", "target_xml.target", "--config", str(config)],
            input=_messages(*lines, bad),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode != 0
        assert "three" in proc.stderr
        parts = sorted(out.glob("*.xml.part"))
        assert len(parts) == run + 1, "a second run in the same second took a new name"
    for part in parts:
        etree.parse(str(part))  # closed: well-formed
        reader.validate(part, part.with_name(part.name.replace(".xml.part", ".xsd")))
    assert not list(out.glob("*.xml"))


def test_record_metadata_columns_validate_and_read_back(tmp_path):
    """add_record_metadata: the SDK's _sdc_* columns (date-times as strings, integers)."""
    target = TargetXML(config={"output_path": str(tmp_path), "add_record_metadata": True})
    record = _record(1) | {"time_extracted": "2026-12-01T06:00:00.123456+00:00"}
    target.process_lines(io.StringIO(_messages(_schema_message(), record)))
    target.process_endofpipe()
    (path,) = tmp_path.glob("things-*.xml")
    reader.validate(path)
    (read,) = reader.read_records(path)
    assert read["_sdc_extracted_at"] == datetime.datetime(2026, 12, 1, 6, 0, 0, 123456, UTC)
    assert isinstance(read["_sdc_received_at"], datetime.datetime)
    assert isinstance(read["_sdc_sequence"], int)


def test_sigterm_finishes_the_documents_then_passes_the_state_on(tmp_path):
    """The SDK drains and exits 0 on SIGTERM: the documents must be finished first."""
    import signal
    import time

    config = tmp_path / "config.json"
    out = tmp_path / "out"
    config.write_text(json.dumps({"output_path": str(out)}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "target_xml.target", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None
    lines = [_schema_message(), _record(1), _record(2), {"type": "STATE", "value": {"n": 2}}]
    proc.stdin.write(_messages(*lines))
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not list(out.glob("*.xml.part")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the records after the SCHEMA are read too
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert json.loads(stdout.splitlines()[-1]) == {"n": 2}
    assert not list(out.glob("*.part"))
    (path,) = out.glob("things-*.xml")
    reader.validate(path)
    assert [r["id"] for r in reader.read_records(path)] == [1, 2]


def test_a_taken_name_gets_a_number_and_nothing_is_overwritten(tmp_path):
    """Without {timestamp} every run wants the same name: none may replace another."""
    for run in range(3):
        target = TargetXML(config={"output_path": str(tmp_path), "file_naming_scheme": "x"})
        target.process_lines(io.StringIO(_messages(_schema_message(), _record(run))))
        target.process_endofpipe()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["x-2.xml", "x-2.xsd", "x-3.xml", "x-3.xsd", "x.xml", "x.xsd"]
    ids = {p.name: [r["id"] for r in reader.read_records(p)] for p in tmp_path.glob("*.xml")}
    assert ids == {"x.xml": [0], "x-2.xml": [1], "x-3.xml": [2]}
    bad = TargetXML(config={"output_path": str(tmp_path), "file_naming_scheme": "{date}"})
    with pytest.raises(ValueError, match="file_naming_scheme"):
        bad.process_lines(io.StringIO(_messages(_schema_message(), _record(9))))
