"""Strings every target can store (issue 24): NUL and lone surrogates become U+FFFD.

The rule itself (:mod:`tap_strava.storable_text`), then the tap applying it to what the
hostile simulator serves (``\\u0000`` and lone surrogate escapes in names, a description,
a value inside ``map`` and a key), with one warning per record and the same digests on
every run. The loads into PostgreSQL and through the daily job's spool and replay are in
``tests/test_pipeline_strings.py``.
"""

from __future__ import annotations

import copy
import json
import logging
import re

import pytest

from strava_simulator import StravaSimulator
from strava_simulator.athlete import (
    HOSTILE_KEY,
    HOSTILE_NESTED_VALUE,
    HOSTILE_NUL_DESCRIPTION,
    HOSTILE_NUL_NAME,
    HOSTILE_SURROGATE_NAME,
)
from tap_strava.conform import conform_to_schema
from tap_strava.digest import record_digest
from tap_strava.schemas.activity import ACTIVITY_SCHEMA
from tap_strava.storable_text import REPLACEMENT, answer_is_storable, make_storable, storable
from tests.conftest import tap_config_for
from tests.support import run_tap

R = REPLACEMENT


def _utf8_storable(value: object) -> None:
    """What a target needs: UTF-8 without NUL (json.dumps as target-postgres writes jsonb)."""
    text = json.dumps(value, ensure_ascii=False)
    assert "\x00" not in text
    assert "\\u0000" not in text
    text.encode("utf-8")  # raises on a lone surrogate


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Morning run", "Morning run"),
        ("Café ⌚ 😀", "Café ⌚ 😀"),
        ("a\x00b", f"a{R}b"),
        ("\x00\x00", R + R),
        ("half \ud83d emoji", f"half {R} emoji"),
        ("low \udc00 alone", f"low {R} alone"),
        ("reversed \ude00\ud83d pair", f"reversed {R}{R} pair"),
        ("a pair as two code points \ud83d\ude00", "a pair as two code points 😀"),
        ("é\x00", f"é{R}"),
    ],
)
def test_the_rule_replaces_nul_and_lone_surrogates_only(raw, expected):
    assert storable(raw) == expected
    assert storable(expected) == expected, "applying the rule twice changes nothing more"


def test_every_string_at_any_depth_keys_included_is_made_storable_in_place():
    inner = {"name": "seg\x00ment", "ok": "fine"}
    record = {
        "id": 7,
        "name": "Lunch\x00run",
        "map": {"summary_polyline": "abc", "note": "x\ud800"},
        "laps": [{"name": "Lap 1"}, inner],
        "tags": ["fine", "b\udfffad"],
        "latlng": [[1.0, 2.0], [3.0, 4.0]],
        "heartrate": [120, 121, None, 122],
        "k\x00ey": {"nested\ud83d": 1},
    }
    found = make_storable(record)
    assert record["name"] == f"Lunch{R}run"
    assert record["map"]["note"] == f"x{R}"
    assert record["laps"][1] is inner, "changed in place: references stay valid"
    assert inner["name"] == f"seg{R}ment"
    assert record["tags"] == ["fine", f"b{R}ad"]
    assert record[f"k{R}ey"] == {f"nested{R}": 1}
    assert list(record)[-1] == f"k{R}ey", "a renamed key keeps its place"
    assert record["latlng"] == [[1.0, 2.0], [3.0, 4.0]]
    assert record["heartrate"] == [120, 121, None, 122]
    assert sorted(found) == sorted(
        ["name", "map.note", "laps[1].name", "tags[1]", f"<k{R}ey>", f"k{R}ey.<nested{R}>"]
    )
    _utf8_storable(record)
    assert make_storable(record) == [], "a second pass finds nothing"


def test_numbers_beside_strings_in_a_list_are_still_looked_at():
    # The fast check for lists of numbers must fall back when anything else is among them.
    record = {"series": [1.5, 2, "bad\x00", 3], "pairs": [[1.0, 2.0], ["x\ud800", 1.0]]}
    assert sorted(make_storable(record)) == ["pairs[1][0]", "series[2]"]
    _utf8_storable(record)


# Strings as a JSON answer may carry them: clean ones (raw and escaped non-ASCII, a Hangul
# syllable whose UTF-8 starts with the surrogates' lead byte 0xED) and unstorable ones.
CLEAN_TEXTS = [
    "Morning run",
    "Caf\u00e9 \u2014 \u00fcber",
    "\ud55c\uac15 \u041c\u043e\u0441\u043a\u0432\u0430",
    "\U0001f600 ok",
    "back\\slash",
]
UNSTORABLE_TEXTS = ["Lunch\x00run", "Tempo \ud83d run", "end \udfff", "\udc00 first"]


def _answers(text: str) -> list[bytes]:
    """One page holding ``text``: as Strava's UTF-8 and with every non-ASCII escaped."""
    page = [{"id": 1, "name": text, "map": {"summary_polyline": "a~l~Fjk~uOwHJy@P"}}]
    return [
        json.dumps(page, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        json.dumps(page).encode(),
        json.dumps(page).encode().upper().replace(b"\\U", b"\\u"),  # hex in upper case
    ]


@pytest.mark.parametrize("text", CLEAN_TEXTS + UNSTORABLE_TEXTS)
def test_a_page_judged_storable_from_its_bytes_holds_no_unstorable_string(text):
    """The tap skips the per-record walk for pages judged storable: never wrongly."""
    for answer in _answers(text):
        unstorable = bool(make_storable(json.loads(answer)))
        if unstorable:
            assert not answer_is_storable(answer), answer
    if text in CLEAN_TEXTS:  # the usual page is judged clean (else the walk is never saved)
        assert answer_is_storable(_answers(text)[0])
        if max(map(ord, text)) < 0x10000:  # else escaped as a surrogate pair: "maybe"
            assert answer_is_storable(_answers(text)[1])
    else:
        assert all(not answer_is_storable(answer) for answer in _answers(text))


def test_a_page_in_utf16_or_with_an_escaped_backslash_is_walked_to_be_sure():
    """What the byte search cannot read counts as "maybe": the walk then decides."""
    assert not answer_is_storable(json.dumps([{"name": "x"}]).encode("utf-16"))
    assert not answer_is_storable(b'[{"name": "C:\\\\u0000"}]')  # a false alarm, on purpose
    assert not make_storable(json.loads(b'[{"name": "C:\\\\u0000"}]'))


def test_conforming_makes_strings_storable_before_the_digest_with_one_warning(caplog):
    logger = logging.getLogger("tap-strava.activities")
    raw = {"id": 42, "name": "Lunch\x00run", "map": {"id": "a42", "summary_polyline": "x\ud800"}}
    with caplog.at_level(logging.WARNING):
        first = conform_to_schema(copy.deepcopy(raw), ACTIVITY_SCHEMA, logger=logger, label="a")
        again = conform_to_schema(copy.deepcopy(raw), ACTIVITY_SCHEMA, logger=logger, label="a")
    assert first["name"] == f"Lunch{R}run"
    assert first["map"]["summary_polyline"] == f"x{R}"
    properties = list(ACTIVITY_SCHEMA["properties"])
    assert record_digest(first, properties) == record_digest(again, properties)
    warnings = [r.getMessage() for r in caplog.records if "U+FFFD" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("activities: activity 42: 2 string(s)"), warnings[0]
    assert "name" in warnings[0]
    assert "map.summary_polyline" in warnings[0]


@pytest.fixture
def hostile():
    with StravaSimulator(seed=53, activity_count=120, hostile=True, read_limit_15min=1000) as sim:
        yield sim


def test_the_hostile_simulator_serves_nul_and_lone_surrogates_as_json_escapes(hostile):
    import urllib.request

    token = hostile.issue_access_token()
    url = f"{hostile.api_url}/athlete/activities?per_page=200"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = answer.read()
    assert b'"Lunch\\u0000run"' in body
    assert b'"Tempo \\ud83d run"' in body
    listed = json.loads(body)
    names = {a["name"] for a in listed}
    assert {HOSTILE_NUL_NAME, HOSTILE_SURROGATE_NAME} <= names
    (oldest,) = [a for a in listed if a["name"] == HOSTILE_SURROGATE_NAME]
    assert oldest["map"]["surface_type"] == HOSTILE_NESTED_VALUE
    assert HOSTILE_KEY in oldest
    (newest,) = [a for a in listed if a["name"] == HOSTILE_NUL_NAME]
    assert hostile.activity(newest["id"])["name"] == HOSTILE_NUL_NAME
    detail_url = f"{hostile.api_url}/activities/{newest['id']}"
    request = urllib.request.Request(detail_url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["description"] == HOSTILE_NUL_DESCRIPTION


def test_the_tap_emits_only_storable_strings_with_one_warning_per_record(hostile, tmp_path, caplog):
    config = tap_config_for(hostile, tmp_path)
    config["activity_details_per_run"] = 1000
    with caplog.at_level(logging.WARNING):
        first = run_tap(config, streams=["activities", "activity_details"])
    for message in first.messages:
        _utf8_storable(message)
    by_name = {r["name"]: r for r in first.records("activities")}
    nul = by_name[storable(HOSTILE_NUL_NAME)]
    surrogate = by_name[storable(HOSTILE_SURROGATE_NAME)]
    assert nul["name"] == f"Lunch{R}run"
    assert surrogate["name"] == f"Tempo {R} run"
    unknown = surrogate["_unknown_fields"]
    assert unknown["map.surface_type"] == f"gra{R}vel"
    assert unknown[storable(HOSTILE_KEY)] == 1
    (detail,) = [r for r in first.records("activity_details") if r["id"] == nul["id"]]
    assert detail["description"] == f"Legs {R}heavy {R}, then fine"

    warned = [r.getMessage() for r in caplog.records if "U+FFFD" in r.getMessage()]
    assert sorted(re.sub(r": \d+ string.*", "", w) for w in warned) == sorted(
        [
            f"activities: activity {nul['id']}",
            f"activities: activity {surrogate['id']}",
            f"activity_details: activity {nul['id']}",
            f"activity_details: activity {surrogate['id']}",
        ]
    ), warned

    # A second run re-reads the look-back window: the same digests, nothing updated.
    second = run_tap(config, state=copy.deepcopy(first.final_state), streams=["activities"])
    digests = first.final_state["bookmarks"]["activities"]["partitions"][0]["digests"]
    again = second.final_state["bookmarks"]["activities"]["partitions"][0]["digests"]
    assert str(nul["id"]) in again
    assert {k: v for k, v in again.items() if k in digests} == {
        k: v for k, v in digests.items() if k in again
    }


def test_an_archive_row_with_nul_is_made_storable_with_one_warning(tmp_path, caplog):
    from tests.export_fixtures import Activity, start_at, write_archive

    activities = [
        Activity(201, start_at(1), name="Lunch\x00run", description="a\x00b"),
        Activity(202, start_at(2), name="Clean run"),
    ]
    archive = write_archive(
        tmp_path / "export_4242.zip", activities, bikes=[["Blue\x00", "Gazelle", "X", "Ride"]]
    )
    config = {
        "export_archive_path": str(archive),
        "export_workers": 1,
        "token_store_path": str(tmp_path / "store" / "tokens.json"),
    }
    with caplog.at_level(logging.WARNING):
        first = run_tap(config)
    for message in first.messages:
        _utf8_storable(message)
    rows = {r["id"]: r for r in first.records("export_activities")}
    assert rows[201]["name"] == f"Lunch{R}run"
    assert rows[201]["description"] == f"a{R}b"
    assert rows[202]["name"] == "Clean run"
    (bike,) = [g for g in first.records("export_gear") if g["kind"] == "bike"]
    assert bike["name"] == f"Blue{R}"
    warned = [r.getMessage() for r in caplog.records if "U+FFFD" in r.getMessage()]
    assert [w.split(": ")[0:2] for w in warned] == [
        ["export_activities", "activity 201"],
        ["export_gear", f"id bike:Blue{R}"],
    ], warned
    # A re-import emits nothing: the digests were taken after the replacement.
    again = run_tap(config, state=first.final_state)
    assert again.records("export_activities") == []
    assert again.records("export_gear") == []
