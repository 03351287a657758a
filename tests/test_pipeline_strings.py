"""NUL and lone surrogates from Strava land in PostgreSQL and CSV (issue 24's "done when").

The hostile simulator's answers carry ``\\u0000`` and lone surrogate escapes (names, a
description, a value inside ``map``, a key). Before the tap's rule for strings
(``tap_strava.storable_text``) target-postgres failed the whole batch on every run and
target-csv could not encode the file. Here: ``meltano run tap-strava target-postgres`` and
the daily job (spool, then CSV and Postgres from it) exit 0 with every record landed, one
warning per bad record, and a second run changes no row; a spool written before the rule
(escapes in it) is replayed too, strictly in its order.
"""

from __future__ import annotations

import io
import json
import logging
import re
import typing as t

import pytest

from strava_simulator import StravaSimulator
from strava_simulator.athlete import HOSTILE_NUL_NAME, HOSTILE_SURROGATE_NAME
from strava_spool.folder import SpoolFolder
from strava_spool.replay import Replay
from strava_spool.spool import spool_messages
from tap_strava.storable_text import REPLACEMENT, storable
from tests.conftest import tap_config_for
from tests.pipeline import MeltanoProject, read_csv
from tests.support import run_tap

R = REPLACEMENT
WARNING = re.compile(r"(\w+): activity (\d+): \d+ string\(s\) held NUL or a lone surrogate")


def _line(message: dict[str, t.Any]) -> bytes:
    """A Singer line as the SDK writes it (simplejson, ASCII: escapes for the bad strings)."""
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


def _warned(stderr: str) -> list[tuple[str, int]]:
    return sorted((stream, int(i)) for stream, i in WARNING.findall(stderr))


def _without_sdc(rows: list[dict[str, t.Any]]) -> dict[int, dict[str, t.Any]]:
    return {r["id"]: {k: v for k, v in r.items() if not k.startswith("_sdc_")} for r in rows}


def test_a_replay_rewrites_only_the_records_an_older_tap_left_unstorable(tmp_path, caplog):
    schema = {"properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
    records = [
        {"id": 1, "name": "Lunch\x00run"},
        {"id": 2, "name": "Tempo \ud83d run", "extra": {"k\x00": ["x\udc00"]}},
        {"id": 3, "name": "a backslash and u0000: \\u0000"},  # text, not NUL: kept as is
        {"id": 4, "name": "Café 😀"},
    ]
    lines = [
        _line({"type": "SCHEMA", "stream": "activities", "schema": schema, "key_properties": []}),
        *(_line({"type": "RECORD", "stream": "activities", "record": r}) for r in records),
        _line({"type": "STATE", "value": {"bookmarks": {}}}),
    ]
    folder = SpoolFolder(tmp_path / "spool")
    spool_messages(iter(lines), folder, "R0", io.BytesIO())

    replay_logger = logging.getLogger("tap-strava-replay")  # stderr, does not propagate
    replay_logger.addHandler(caplog.handler)
    try:
        outputs = {}
        for consumer in ("postgres", "csv"):
            out = io.BytesIO()
            Replay(folder, consumer, ["csv", "postgres"], {}, csv_folders=consumer == "csv").run(
                out
            )
            outputs[consumer] = out.getvalue().splitlines()
    finally:
        replay_logger.removeHandler(caplog.handler)
    for consumer, replayed in outputs.items():
        for message in map(json.loads, replayed):  # what a target writes: UTF-8, no NUL
            assert "\x00" not in json.dumps(message, ensure_ascii=False).encode().decode()
        got = [json.loads(x)["record"] for x in replayed if b'"RECORD"' in x]
        assert got == [
            {"id": 1, "name": f"Lunch{R}run"},
            {"id": 2, "name": f"Tempo {R} run", "extra": {f"k{R}": [f"x{R}"]}},
            records[2],
            records[3],
        ], consumer
    # Lines with nothing to replace stay byte for byte what the spool holds.
    assert outputs["postgres"][3] == lines[3].rstrip(b"\n")
    assert outputs["postgres"][4] == lines[4].rstrip(b"\n")
    # Each record once, however many of caplog's handlers saw it (the replay's logger
    # propagates to the root, where caplog listens too, unless a CLI run turned that off).
    unique = {id(r): r for r in caplog.records}.values()
    warned = [r.getMessage() for r in unique if "U+FFFD" in r.getMessage()]
    assert len(warned) == 4, warned  # records 1 and 2, once per replay
    assert warned[0].startswith("activities: activity 1: 1 string(s)")


@pytest.fixture
def hostile_project(postgres_url, tmp_path) -> t.Iterator[MeltanoProject]:
    with StravaSimulator(seed=61, activity_count=60, hostile=True, read_limit_15min=600) as sim:
        project = MeltanoProject(
            sim=sim, postgres_url=postgres_url, workdir=tmp_path, refresh_token=sim.refresh_token
        )
        yield project
        project.drop_schema()


def _bad_ids(sim: StravaSimulator) -> set[int]:
    names = {HOSTILE_NUL_NAME, HOSTILE_SURROGATE_NAME}
    return {a["id"] for a in sim.activities if a["name"] in names}


@pytest.mark.e2e
def test_nul_and_lone_surrogates_from_the_api_land_in_postgres_and_a_rerun_changes_nothing(
    hostile_project,
):
    project, sim = hostile_project, hostile_project.sim
    bad = _bad_ids(sim)
    first = project.run("tap-strava", "target-postgres")
    assert _warned(first.stderr) == sorted(("activities", i) for i in bad)
    rows = _without_sdc(project.rows("activities"))
    listed = {a["id"]: a for a in sim.activities}
    # Every activity but the uploads the hostile simulator makes while the run lists.
    assert len(set(listed) - set(rows)) <= 2
    assert {rows[i]["name"] for i in bad} == {f"Lunch{R}run", f"Tempo {R} run"}
    assert all(rows[i]["name"] == storable(listed[i]["name"]) for i in rows)
    surfaces = {rows[i]["_unknown_fields"]["map.surface_type"] for i in bad}
    assert surfaces == {"gravel", f"gra{R}vel"}, "inside an object, in the jsonb column"

    second = project.run("tap-strava", "target-postgres")
    again = _without_sdc(project.rows("activities"))
    assert set(again) == set(listed), "the uploads made while listing arrive"
    assert {i: again[i] for i in rows} == rows, "no column of any row changed"
    # The look-back window is read again: its bad record is warned about again, once.
    (newest,) = [i for i in bad if listed[i]["name"] == HOSTILE_NUL_NAME]
    assert _warned(second.stderr) == [("activities", newest)]


@pytest.mark.e2e
def test_the_daily_job_replays_an_old_spool_and_the_new_one_into_csv_and_postgres(
    hostile_project, tmp_path, monkeypatch
):
    project, sim = hostile_project, hostile_project.sim
    bad = _bad_ids(sim)
    # A spool the tap wrote before its rule for strings: the escapes reach the spool as is.
    monkeypatch.setattr("tap_strava.conform.make_record_storable", lambda *a, **k: [])
    monkeypatch.setattr("tap_strava.streams.make_record_storable", lambda *a, **k: [])
    config = tap_config_for(sim, tmp_path, token_store_path=str(project.workdir / "tokens.json"))
    old = run_tap(config, streams=["activities"])
    monkeypatch.undo()
    old_lines = [_line(m) for m in old.messages]
    assert any(b"\\u0000" in x for x in old_lines)
    assert any(b"\\ud83d" in x for x in old_lines)
    spool_messages(iter(old_lines), SpoolFolder(project.spool_dir), "R0", io.BytesIO())

    first = project.meltano("run", "strava-daily", run_stamp="R1", STRAVA_RUN_STAMP="R1")
    assert first.returncode == 0, first.stderr[-4000:]
    warned = _warned(first.stderr)
    # The old spool, replayed into CSV and into Postgres; the new run's tap.
    for stream_bad in (("activities", i) for i in bad):
        assert warned.count(stream_bad) == 3, warned
    rows = _without_sdc(project.rows("activities"))
    assert {rows[i]["name"] for i in bad} == {f"Lunch{R}run", f"Tempo {R} run"}
    for label in ("R0", "R1"):
        (csv_file,) = (project.output_root / label).glob("activities-*.csv")
        names = {int(r["id"]): r["name"] for r in read_csv(csv_file)}
        assert {names[i] for i in bad} == {f"Lunch{R}run", f"Tempo {R} run"}, label

    second = project.meltano("run", "strava-daily", run_stamp="R2", STRAVA_RUN_STAMP="R2")
    assert second.returncode == 0, second.stderr[-4000:]
    again = _without_sdc(project.rows("activities"))
    assert {i: again[i] for i in rows} == rows, "no column of any row changed"
