"""Record digests never change: states written by any earlier version stay comparable.

The digest of every activity of the look-back window is kept in the state, and the tally
mapper classifies the next run's records against it. Issue 27 made computing it cheaper;
these tests hold the new code to the original formula (kept here as it was), on real
emitted records and on values chosen to find a difference in the canonical form.

Issue 25 sends ``start_date_local`` without Strava's false ``Z`` (a local wall time is not
UTC); the digest is still taken over the form earlier versions emitted, with the ``Z``, so
a state written before the change classifies the same records as unchanged.
"""

from __future__ import annotations

import datetime
import decimal
import gzip
import hashlib
import json
import typing as t
from pathlib import Path

from tap_strava.digest import classify, record_digest

GOLDEN = Path(__file__).parent / "fixtures" / "golden_output.jsonl.gz"


def original_digest(record: t.Mapping[str, t.Any], properties: t.Iterable[str]) -> str:
    """``record_digest`` as every version before issue 27 computed it, verbatim."""
    canonical = {name: record.get(name) for name in sorted(properties) if name != "athlete_id"}
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def as_previously_emitted(record: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The record as versions before issue 25 emitted it: the wall time with a ``Z``."""
    local = record.get("start_date_local")
    return {**record, "start_date_local": f"{local}Z" if local else local}


def _golden_activities() -> tuple[list[dict[str, t.Any]], list[str]]:
    lines = gzip.decompress(GOLDEN.read_bytes()).decode().splitlines()
    messages = [json.loads(line) for line in lines if line.startswith("{")]
    records = [
        m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == "activities"
    ]
    schema = next(m for m in messages if m["type"] == "SCHEMA" and m["stream"] == "activities")
    return records, list(schema["schema"]["properties"])


def test_every_emitted_activity_has_the_digest_of_the_original_formula():
    records, properties = _golden_activities()
    assert len(records) > 100
    for record in records:
        assert len(record["start_date_local"]) == len("2026-12-04T18:13:34")  # no zone label
        before = original_digest(as_previously_emitted(record), properties)
        assert record_digest(record, properties) == before
        assert record_digest(record, tuple(properties)) == before


def test_awkward_values_digest_as_before():
    properties = ["id", "name", "map", "athlete_id", "distance", "laps", "when", "extra", "id"]
    awkward: list[dict[str, t.Any]] = [
        {},
        {"id": 1, "athlete_id": 5},
        {"id": 3, "not_in_the_schema": 1, "name": "x"},
        {"id": 2**70, "name": 'Z\u00fcrich \u231a\U0001f6b4 \ud800 \x00\n\t"\\', "extra": None},
        {"map": {"z": 1, "a": {"y": [1, {"b": 2, "a": 1}], "x": None}}, "laps": [{"b": 1, "a": 2}]},
        {"distance": float("nan"), "laps": [float("inf"), -0.0, 1e16, 1e-7, 474287.0]},
        {"distance": decimal.Decimal("12.50"), "when": datetime.datetime(2026, 1, 2, 3, 4, 5)},
        {"name": True, "distance": False, "extra": {"1": 1, "10": 10, "2": 2}},
    ]
    for record in awkward:
        assert record_digest(record, properties) == original_digest(record, properties), record


def test_a_digest_ignores_the_athlete_id_and_field_order_but_not_a_value():
    properties = ["id", "name", "athlete_id"]
    digest = record_digest({"id": 1, "name": "Run", "athlete_id": 7}, properties)
    assert record_digest({"name": "Run", "id": 1, "athlete_id": 8}, properties) == digest
    assert record_digest({"id": 1, "name": "Run"}, list(reversed(properties))) == digest
    assert record_digest({"id": 1, "name": "Ride", "athlete_id": 7}, properties) != digest


def test_classify_against_a_state_of_the_previous_version():
    emitted, properties = _golden_activities()
    records = list({r["id"]: r for r in emitted}.values())  # each activity as last emitted
    previous = {
        str(r["id"]): [r["start_date"], original_digest(as_previously_emitted(r), properties)]
        for r in records
    }
    assert {classify(r, properties, previous) for r in records} == {"unchanged"}
    renamed = {**records[0], "name": "Renamed"}
    assert classify(renamed, properties, previous) == "updated"
    assert classify({**records[0], "id": 1}, properties, previous) == "new"
