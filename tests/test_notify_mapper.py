"""mapper-strava-tally: every message through unchanged, and a correct tally of the run."""

from __future__ import annotations

import datetime
import io
import json
import subprocess
import typing as t
from pathlib import Path

from strava_notify.mapper import PassThroughReader, TallyMapper
from tap_strava.digest import record_digest
from tests.test_notify_helpers import BIN

PROPERTIES = ["id", "name", "start_date", "start_date_local", "distance", "moving_time"]


def run_mapper(lines: t.Sequence[str], config: dict[str, t.Any]) -> tuple[str, TallyMapper]:
    output = io.StringIO()
    mapper = TallyMapper(config=config, message_reader=PassThroughReader(output))
    mapper.listen(io.StringIO("".join(lines)))
    return output.getvalue(), mapper


def activity(activity_id: int, **fields: t.Any) -> dict[str, t.Any]:
    record = {
        "id": activity_id,
        "name": f"Activity {activity_id}",
        "start_date": f"2026-11-{activity_id:02d}T06:00:00Z",
        "start_date_local": f"2026-11-{activity_id:02d}T07:00:00Z",
        "distance": 10210.4,
        "moving_time": 3133,
        "sport_type": "Run",
    }
    record.update(fields)
    return record


def line(message: dict[str, t.Any]) -> str:
    return json.dumps(message, separators=(",", ":")) + "\n"


SCHEMA = line(
    {
        "type": "SCHEMA",
        "stream": "activities",
        "schema": {"properties": {name: {} for name in PROPERTIES}},
        "key_properties": ["id"],
    }
)


def state(digests_by_partition: list[dict[str, t.Any]], **extra: t.Any) -> str:
    partitions = [
        {"context": {"athlete_id": n}, "digests": digests, **extra}
        for n, digests in enumerate(digests_by_partition)
    ]
    return line(
        {"type": "STATE", "value": {"bookmarks": {"activities": {"partitions": partitions}}}}
    )


def digest_entry(record: dict[str, t.Any]) -> list[str]:
    return [record["start_date"], record_digest(record, PROPERTIES)]


def record(rec: dict[str, t.Any]) -> str:
    return line({"type": "RECORD", "stream": "activities", "record": rec})


def test_every_message_type_passes_through_byte_for_byte(tmp_path):
    lines = [
        '{"type":"STATE","value":{}}\n',
        SCHEMA,
        # Key order, float spelling, escapes and non-ASCII as a tap may write them.
        '{"record":{"name":"Caf\\u00e9, \\"quoted\\"\\nline","id":1,"distance":1.10,'
        '"moving_time":1e3},"type":"RECORD","stream":"activities",'
        '"time_extracted":"2026-11-28T06:00:00.123456+00:00"}\n',
        '{"type":"RECORD","stream":"activities","record":{"id":2,"name":"Løb 🏃"}}\n',
        '{"type":"ACTIVATE_VERSION","stream":"athlete","version":1732770000000}\n',
        '{"type":"BATCH","stream":"activities","encoding":{"format":"jsonl"},"manifest":[]}\n',
        '{"type":"SOMETHING_NEW","x":1}\n',
        '{"type":"STATE","value":{"bookmarks":{}}}',  # no final newline either
    ]
    output, mapper = run_mapper(lines, {"tally_path": str(tmp_path / "t.json")})
    assert output == "".join(lines)
    assert mapper.tally.streams["activities"].records == 2


def test_new_updated_and_unchanged_against_the_first_state(tmp_path):
    kept, edited, other_partition = activity(1), activity(2), activity(3)
    before = state(
        [{"1": digest_entry(kept), "2": digest_entry(edited)}, {"3": digest_entry(other_partition)}]
    )
    lines = [
        before,
        SCHEMA,
        record(kept),  # a look-back re-read: neither new nor updated
        record({**edited, "name": "Renamed"}),
        record(other_partition),
        record(activity(4)),
        record(activity(4)),  # the same activity twice is one activity
        line({"type": "RECORD", "stream": "athlete", "record": {"athlete_id": 1}}),
        state([{}]),
    ]
    path = tmp_path / "csv.json"
    run_mapper(lines, {"tally_path": str(path), "target_label": "CSV"})
    tally = json.loads(path.read_text())
    assert tally["target_label"] == "CSV"
    assert tally["streams"]["activities"] == {
        "records": 5,
        "new": 1,
        "updated": 1,
        "unchanged": 2,
    }
    assert tally["streams"]["athlete"]["records"] == 1
    assert tally["ended_after_state"] is True
    assert tally["partial"] is None
    assert [fact["id"] for fact in tally["new_activities"]] == [4]


def test_no_input_state_means_everything_is_new(tmp_path):
    path = tmp_path / "t.json"
    run_mapper([SCHEMA, record(activity(1)), record(activity(2))], {"tally_path": str(path)})
    tally = json.loads(path.read_text())
    assert tally["streams"]["activities"]["new"] == 2
    # A tap that crashed may end the input early: the tally says no STATE came.
    assert tally["ended_after_state"] is False


def test_new_activities_are_described_briefly_up_to_the_cap(tmp_path):
    path = tmp_path / "t.json"
    records = [record(activity(n)) for n in range(1, 6)]
    run_mapper([state([]), SCHEMA, *records], {"tally_path": str(path), "new_activities_cap": 2})
    tally = json.loads(path.read_text())
    assert tally["new_activities"] == [
        {
            "id": 1,
            "date": "2026-11-01",
            "name": "Activity 1",
            "sport_type": "Run",
            "distance_km": 10.21,
            "moving_time": 3133,
        },
        {
            "id": 2,
            "date": "2026-11-02",
            "name": "Activity 2",
            "sport_type": "Run",
            "distance_km": 10.21,
            "moving_time": 3133,
        },
    ]
    assert tally["new_activities_more"] == 3


def test_a_quota_stop_in_the_last_state_makes_the_run_partial(tmp_path):
    path = tmp_path / "t.json"
    stopped = state([{}], quota_stop="daily read quota spent (1000/1000)")
    run_mapper([state([]), SCHEMA, record(activity(1)), stopped], {"tally_path": str(path)})
    assert json.loads(path.read_text())["partial"]["reason"] == (
        "daily read quota spent (1000/1000)"
    )

    # Stopped once, then completed in the same input: the last STATE decides.
    run_mapper([stopped, record(activity(1)), state([{}])], {"tally_path": str(path)})
    assert json.loads(path.read_text())["partial"] is None

    stream_level = line(
        {"type": "STATE", "value": {"bookmarks": {"athlete": {"quota_stop": "15-minute"}}}}
    )
    run_mapper([stream_level], {"tally_path": str(path)})
    assert json.loads(path.read_text())["partial"]["stops"] == [
        {"stream": "athlete", "reason": "15-minute"}
    ]


def test_without_a_tally_folder_nothing_is_written_and_nothing_fails(tmp_path, monkeypatch):
    # An unset $STRAVA_TALLY_DIR expands to "" -> "/csv.json"; a missing folder likewise.
    for tally_path in ("/csv-never-written.json", str(tmp_path / "missing" / "t.json"), ""):
        output, _ = run_mapper([SCHEMA], {"tally_path": tally_path})
        assert output == SCHEMA
    assert not (tmp_path / "missing").exists()
    # A relative path is relative to the working directory (and written).
    monkeypatch.chdir(tmp_path)
    run_mapper([SCHEMA], {"tally_path": "relative.json"})
    assert (tmp_path / "relative.json").exists()
    assert not Path("/csv-never-written.json").exists()


def _iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_real_tap_runs_in_a_plain_pipe(simulator, tap_config, tmp_path):
    """tap-strava | mapper-strava-tally: unchanged lines, then new/updated/unchanged."""
    config = tmp_path / "tap.json"
    config.write_text(json.dumps(tap_config))

    def run(number: int, state_file: str | None) -> tuple[dict[str, t.Any], str]:
        mapper_config = tmp_path / f"mapper{number}.json"
        tally_path = tmp_path / f"tally{number}.json"
        mapper_config.write_text(json.dumps({"tally_path": str(tally_path)}))
        state_arg = f" --state {state_file}" if state_file else ""
        proc = subprocess.run(
            f"{BIN}/tap-strava --config {config}{state_arg} | tee {tmp_path}/tap{number}.out"
            f" | {BIN}/mapper-strava-tally --config {mapper_config} > {tmp_path}/out{number}",
            shell=True,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        tap_bytes = (tmp_path / f"tap{number}.out").read_bytes()
        assert (tmp_path / f"out{number}").read_bytes() == tap_bytes
        last_state = [ln for ln in tap_bytes.decode().splitlines() if '"type":"STATE"' in ln][-1]
        state_path = tmp_path / f"state{number}.json"
        state_path.write_text(json.dumps(json.loads(last_state)["value"]))
        return json.loads(tally_path.read_text()), str(state_path)

    first, state1 = run(1, None)
    total = len(simulator.activities)
    assert first["streams"]["activities"]["new"] == total

    second, state2 = run(2, state1)
    counts = second["streams"]["activities"]
    assert counts["new"] == 0
    assert counts["updated"] == 0
    assert counts["unchanged"] == counts["records"] > 0  # the look-back window re-read

    newest = max(simulator.activities, key=lambda a: a["start_date"])
    mark = datetime.datetime.strptime(newest["start_date"], "%Y-%m-%dT%H:%M:%SZ")
    simulator.update_activity(newest["id"], name="Renamed after the run")
    simulator.add_activity(start_date=_iso(mark + datetime.timedelta(hours=1)))
    simulator.add_activity(start_date=_iso(mark - datetime.timedelta(days=2)))  # late upload
    third, _ = run(3, state2)
    counts = third["streams"]["activities"]
    assert (counts["new"], counts["updated"]) == (2, 1)
    assert len(third["new_activities"]) == 2


def test_skipped_athletes_make_the_run_partial_with_their_reasons(tmp_path):
    path = tmp_path / "t.json"
    skipped = line(
        {
            "type": "STATE",
            "value": {
                "bookmarks": {
                    "activities": {
                        "partitions": [{"context": {"athlete_id": 1}}],
                        "skipped_athletes": {"bob": "Strava rejected the refresh token"},
                    }
                }
            },
        }
    )
    run_mapper([state([]), SCHEMA, record(activity(1)), skipped], {"tally_path": str(path)})
    assert json.loads(path.read_text())["partial"]["stops"] == [
        {"stream": "activities", "athlete": "bob", "reason": "Strava rejected the refresh token"}
    ]
