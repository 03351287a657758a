"""The tap's output, message for message, against a capture made before issue 27.

Issue 27 made the per-record work cheaper (digest, serialization, the reading of a
look-back that reaches the present). None of that may change what a target or the tally
mapper receives: this test runs a first sync and a daily run with edits and uploads on a
fixed simulated account and compares every RECORD and SCHEMA line, byte for byte, and the
final STATE of each run (digests included) with ``fixtures/golden_output.jsonl.gz``,
which the code before the change wrote (commit ``43d423e``).

Only what depends on the wall clock is normalized: ``time_extracted``, the table version
(the run's start), the stats snapshot's date and time, and when Strava answered
(``fetched_at`` and the state's ``delivered``). The capture was rewritten once by the
code just before issue 27's changes were merged, with the other changes of that day
(``fetched_at``, delivery markers, schema descriptions) in it. The intermediate STATE
messages of the daily run are not compared: reading the look-back as one window instead
of two removed one checkpoint, which is the point.

``GOLDEN_WRITE=1`` rewrites the fixture (only when the simulator's data change on purpose).
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import io
import json
import os
import re
import typing as t
from pathlib import Path

from strava_notify.tally import RunTally
from strava_simulator import StravaSimulator
from tap_strava.tap import TapStrava
from tests.conftest import tap_config_for
from tests.support import SyncResult, run_tap

GOLDEN = Path(__file__).parent / "fixtures" / "golden_output.jsonl.gz"
DAILY = ("activities", "athlete", "athlete_stats", "gear")
#: The simulated account ends here (about two months before the test was written).
ACCOUNT_END = datetime.datetime(2026, 10, 15, tzinfo=datetime.timezone.utc).timestamp()


_WALL_CLOCK = re.compile(
    r'"(?P<key>time_extracted|snapshot_date|fetched_at|replication_key_signpost)":"[^"]*"'
    r'|"(?P<number>version|delivered)":(?:[0-9]+|\{[^{}]*\})'
)


def _normalized(line: str) -> str:
    """One Singer line, byte for byte, with the wall-clock values replaced.

    ``delivered`` (a pipeline's marker of the cached answer it delivered: when Strava
    answered, one value or one per gear id) is a wall-clock time too.
    """
    json.loads(line)  # a whole JSON line
    return _WALL_CLOCK.sub(lambda m: f'"{m["key"] or m["number"]}":"<clock>"', line)


def _lines(result: SyncResult, *, every_state: bool) -> list[str]:
    """RECORD and SCHEMA lines of a run, its STATE lines (all, or only the last)."""
    kept = [m for m in result.lines if '"type":"STATE"' not in m[:40] or every_state]
    if not every_state and result.lines:
        states = [m for m in result.lines if '"type":"STATE"' in m[:40]]
        kept.append(states[-1])
    return [_normalized(line) for line in kept]


def _account() -> StravaSimulator:
    return StravaSimulator(seed=31, activity_count=260, now=ACCOUNT_END)


def _edits_before_the_first_sync(sim: StravaSimulator, newest: list[dict[str, t.Any]]) -> None:
    """Values that test a canonical form, and a watch whose clock is years ahead.

    Non-ASCII and control characters, an integral float where an integer is declared,
    keys no schema declares; the wrong-clock activity is listed by every run and emitted
    only when its digest changed.
    """
    sim.update_activity(newest[0]["id"], name='Zürich "loop" \u231a\t\u00e9\U0001f6b4')
    sim.update_activity(newest[1]["id"], moving_time=3600.0, brand_new_metric=1.5)
    sim.update_activity(newest[2]["id"], name="", description="a\nb\\c")
    sim.update_activity(newest[3]["id"], map={"id": "x", "summary_polyline": "", "odd": 1})
    sim.add_activity(start_date="2031-01-01T08:00:00Z", name="Wrong clock")


def _edits_after_the_first_sync(sim: StravaSimulator, newest: list[dict[str, t.Any]]) -> None:
    """Two edits within the look-back, a late upload and a new activity."""
    sim.update_activity(newest[1]["id"], name="Renamed after upload")
    sim.update_activity(newest[3]["id"], sport_type="Ride")
    sim.add_activity(start_date="2026-10-14T06:00:00Z", name="Late upload, before the end")
    sim.add_activity(start_date="2026-10-20T07:30:00Z", name="Brand new")


def _scenario(tmp_path: Path) -> list[str]:
    """A first sync of awkward data, then a daily run with two edits and two uploads."""
    output: list[str] = []
    with _account() as sim:
        newest = sim.activities[:4]
        _edits_before_the_first_sync(sim, newest)
        config = tap_config_for(sim, tmp_path)
        first = run_tap(config, streams=DAILY)
        output += ["# first sync", *_lines(first, every_state=True)]

        _edits_after_the_first_sync(sim, newest)
        second = run_tap(config, state=first.final_state, streams=DAILY)
        output += ["# daily run", *_lines(second, every_state=False)]
    return output


def test_every_record_and_state_is_what_the_code_before_issue_27_emitted(tmp_path: Path) -> None:
    output = _scenario(tmp_path)
    if os.environ.get("GOLDEN_WRITE") == "1":
        GOLDEN.write_bytes(gzip.compress(("\n".join(output) + "\n").encode(), mtime=0))
    golden = gzip.decompress(GOLDEN.read_bytes()).decode().splitlines()
    assert len(output) == len(golden), "a different number of messages"
    for index, (ours, theirs) in enumerate(zip(output, golden, strict=True)):
        assert ours == theirs, f"line {index} differs:\n ours: {ours[:600]}\n then: {theirs[:600]}"


def test_a_property_deselected_in_the_catalog_is_still_left_out(simulator, tap_config):
    """Records skip the SDK's selection walk only when nothing is deselected."""
    tap = TapStrava(config=tap_config, state={}, validate_config=True)
    activities = tap.streams["activities"]
    activities.metadata[("properties", "kudos_count")].selected = False
    activities.metadata[("properties", "map", "properties", "summary_polyline")].selected = False
    for stream in tap.streams.values():
        stream.selected = stream.name == "activities"  # the selection is resolved here
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tap.sync_all()
    records = [
        json.loads(line)["record"]
        for line in buffer.getvalue().splitlines()
        if line.startswith('{"type":"RECORD"')
    ]
    assert len(records) == len(simulator.activities)
    assert not [r for r in records if "kudos_count" in r]
    assert not [r for r in records if "summary_polyline" in (r.get("map") or {})]
    assert all("name" in r and "id" in (r.get("map") or {"id": 0}) for r in records)


def _golden_section(name: str) -> list[str]:
    lines = gzip.decompress(GOLDEN.read_bytes()).decode().splitlines()
    start = lines.index(f"# {name}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("# ")), len(lines))
    return lines[start:end]


def test_an_upgrade_from_the_previous_versions_state_emits_nothing_extra(tmp_path: Path) -> None:
    """The daily run, from the state the code before issue 27 wrote (in the capture).

    The same activity records as that code emitted (the wrong-clock activity, whose digest
    decides, is not among them), and the tally mapper, reading the old state's digests,
    counts 2 new and 2 updated, the rest unchanged, as it did.
    """
    first_sync = _golden_section("first sync")
    old_state = json.loads(next(x for x in reversed(first_sync) if '"type":"STATE"' in x[:40]))
    with _account() as sim:
        newest = sim.activities[:4]
        _edits_before_the_first_sync(sim, newest)  # the capture's account, as it was
        _edits_after_the_first_sync(sim, newest)
        result = run_tap(tap_config_for(sim, tmp_path), state=old_state["value"])

    def activities(lines: list[str]) -> list[str]:
        return [
            _normalized(x) for x in lines if x.startswith('{"type":"RECORD","stream":"activities"')
        ]

    assert activities(result.lines) == activities(_golden_section("daily run"))
    tally = RunTally()
    for message in result.messages:
        handler = {"SCHEMA": tally.on_schema, "RECORD": tally.on_record, "STATE": tally.on_state}
        if message["type"] in handler:
            handler[message["type"]](message)
    counts = tally.streams["activities"]
    assert (counts.new, counts.updated) == (2, 2)
    assert counts.unchanged == counts.records - 4 > 0
