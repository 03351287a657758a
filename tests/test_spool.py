"""The spool target and the replay tap, in-process (no Meltano): durability, order, pruning.

The end-to-end behaviour (one extraction for CSV and Postgres, a failed load caught up
by the next run, the upgrade) is in ``tests/test_spool_e2e.py`` and ``test_notify_e2e.py``.
"""

from __future__ import annotations

import datetime
import io
import json
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from strava_notify.tally import RunTally
from strava_spool import status
from strava_spool.cli import UsageError
from strava_spool.folder import SpoolFolder
from strava_spool.replay import Replay
from strava_spool.spool import spool_messages

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def line(message: dict[str, t.Any]) -> bytes:
    return (json.dumps(message) + "\n").encode()


def run_messages(run: int, ids: t.Sequence[int]) -> list[bytes]:
    """One tap run: its input state first, a schema, records, the final state."""
    state_in = {"bookmarks": {"activities": {"run": run - 1}}}
    state_out = {"bookmarks": {"activities": {"run": run}}}
    schema = {"properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
    return [
        line({"type": "STATE", "value": state_in}),
        line(
            {"type": "SCHEMA", "stream": "activities", "schema": schema, "key_properties": ["id"]}
        ),
        *(
            line({"type": "RECORD", "stream": "activities", "record": {"id": i, "name": f"r{run}"}})
            for i in ids
        ),
        line({"type": "STATE", "value": state_out}),
    ]


class WatchedOutput(io.BytesIO):
    """stdout of the spool target: records whether the spool was durable at each write."""

    def __init__(self, folder: SpoolFolder) -> None:
        super().__init__()
        self.folder = folder
        self.committed_at_write: list[bool] = []

    def write(self, data: t.Any) -> int:
        parts = list(self.folder.path.glob("*.part"))
        self.committed_at_write.append(bool(self.folder.spools()) and not parts)
        return super().write(data)


def replay(folder: SpoolFolder, consumer: str, state: dict[str, t.Any], **kw: t.Any) -> list[dict]:
    out = io.BytesIO()
    Replay(folder, consumer, ["csv", "postgres"], state, **kw).run(out)
    return [json.loads(x) for x in out.getvalue().splitlines()]


def last_state(messages: list[dict]) -> dict[str, t.Any]:
    return [m["value"] for m in messages if m["type"] == "STATE"][-1]


def test_the_state_is_passed_on_only_after_the_spool_is_renamed_and_lines_are_verbatim(tmp_path):
    folder = SpoolFolder(tmp_path / "spool")
    lines = run_messages(1, [1, 2, 3])
    # Odd spacing and a float a re-serialization would change: kept byte for byte.
    lines.insert(
        2, b'{"type":  "RECORD", "stream": "activities", "record": {"id": 4, "x": 1.10}}\n'
    )
    out = WatchedOutput(folder)
    spool = spool_messages(iter(lines), folder, "20261201T061500Z", out)
    assert spool is not None
    assert spool.name == "000001-20261201T061500Z.jsonl"
    assert spool.read_bytes() == b"".join(lines)
    # The last STATE's value, once (what a Singer target prints and Meltano keeps).
    assert json.loads(out.getvalue()) == json.loads(lines[-1])["value"]
    assert out.getvalue().count(b"\n") == 1
    assert out.committed_at_write == [True]


def test_a_cut_off_last_line_is_dropped_and_a_broken_middle_line_commits_nothing(tmp_path):
    folder = SpoolFolder(tmp_path / "spool")
    lines = run_messages(1, [1, 2])
    spool = spool_messages(iter([*lines, b'{"type": "REC']), folder, "a", io.BytesIO())
    assert spool is not None
    assert spool.read_bytes() == b"".join(lines)
    out = io.BytesIO()
    with pytest.raises(UsageError, match="line 3 is not a JSON Singer message"):
        spool_messages(iter([lines[0], lines[1], b"oops\n", lines[-1]]), folder, "b", out)
    assert out.getvalue() == b"", "no state is passed on"
    assert [s.label for s in folder.spools()] == ["a"]
    assert not list(folder.path.glob("*.part"))
    assert spool_messages(iter([]), folder, "c", io.BytesIO()) is None


def test_replay_applies_pending_spools_in_order_and_resumes_after_the_committed_one(tmp_path):
    folder = SpoolFolder(tmp_path / "spool")
    for run in (1, 2, 3):
        spool_messages(iter(run_messages(run, [run, 10])), folder, f"R{run}", io.BytesIO())
    first = replay(folder, "postgres", {})
    names = [m["record"]["name"] for m in first if m["type"] == "RECORD"]
    assert names == ["r1", "r1", "r2", "r2", "r3", "r3"]
    final = last_state(first)
    assert final["bookmarks"] == {"activities": {"run": 3}}  # the tap's own state, on top
    assert final["strava_replay"]["spool"] == "000003-R3.jsonl"
    assert final["strava_replay"]["complete"] is True
    # A target that committed only spool 1 (its STATE mid-way) gets spools 2 and 3 again.
    mid = next(
        m["value"]
        for m in first
        if m["type"] == "STATE" and m["value"]["strava_replay"]["spool"] == "000002-R2.jsonl"
    )
    assert mid["strava_replay"]["complete"] is False
    again = replay(folder, "postgres", mid)
    assert [m["record"]["name"] for m in again if m["type"] == "RECORD"] == ["r2"] * 2 + ["r3"] * 2
    # Everything applied: nothing but the state again.
    done = replay(folder, "postgres", final)
    assert [m["type"] for m in done] == ["STATE"]


def test_csv_folders_name_each_spools_streams_so_a_replay_rewrites_its_own_files(tmp_path):
    folder = SpoolFolder(tmp_path / "spool")
    spool_messages(iter(run_messages(1, [1])), folder, "R1", io.BytesIO())
    messages = replay(folder, "csv", {}, csv_folders=True)
    streams = {m["stream"] for m in messages if m["type"] in ("SCHEMA", "RECORD")}
    assert streams == {"R1/activities-R1"}  # target-csv-replay: output/R1/activities-R1.csv
    assert replay(folder, "csv", {}, csv_folders=True) == messages  # the same names again
    tally = RunTally("CSV")
    for message in messages:
        {"SCHEMA": tally.on_schema, "RECORD": tally.on_record, "STATE": tally.on_state}[
            message["type"]
        ](message)
    summary = tally.as_dict()
    assert summary["streams"]["activities"]["records"] == 1
    assert summary["folders"] == {"R1": {"activities": 1}}


def test_spools_are_pruned_only_once_every_consumer_has_applied_them(tmp_path):
    folder = SpoolFolder(tmp_path / "spool")
    for run in (1, 2):
        spool_messages(iter(run_messages(run, [run])), folder, f"R{run}", io.BytesIO())
    csv_done = last_state(replay(folder, "csv", {}))
    assert len(folder.spools()) == 2, "postgres has recorded nothing yet"
    pg_done = last_state(replay(folder, "postgres", {}))
    assert len(folder.spools()) == 2, "positions are recorded from the committed input state"
    spool_messages(iter(run_messages(3, [3])), folder, "R3", io.BytesIO())
    replay(folder, "csv", csv_done)
    assert [s.label for s in folder.spools()] == ["R1", "R2", "R3"]
    replay(folder, "postgres", pg_done)
    assert [s.label for s in folder.spools()] == ["R3"]
    # A consumer that never ran (no recorded position) keeps every spool.
    alone = SpoolFolder(tmp_path / "alone")
    spool_messages(iter(run_messages(1, [1])), alone, "R1", io.BytesIO())
    replay(alone, "csv", last_state(replay(alone, "csv", {})))
    assert [s.label for s in alone.spools()] == ["R1"]
    # The numbers go on after every old file is gone: the next spool is 4, never 1 again.
    spool_messages(iter(run_messages(4, [4])), folder, "R4", io.BytesIO())
    assert [s.seq for s in folder.spools()] == [3, 4]


def test_a_spool_folder_created_anew_is_replayed_whole(tmp_path):
    folder = SpoolFolder(tmp_path / "spool")
    spool_messages(iter(run_messages(1, [1])), folder, "R1", io.BytesIO())
    done = last_state(replay(folder, "postgres", {}))
    for path in sorted(folder.path.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    spool_messages(iter(run_messages(2, [2])), folder, "R2", io.BytesIO())
    assert folder.spools()[0].seq == 1  # the same number as the spool the state names
    again = replay(folder, "postgres", done)
    assert [m["record"]["id"] for m in again if m["type"] == "RECORD"] == [2]


def test_behind_names_the_target_whose_replay_did_not_complete(tmp_path):
    folder = SpoolFolder(tmp_path / "spool")
    spool_messages(iter(run_messages(1, [1])), folder, "R1", io.BytesIO())
    replay(folder, "csv", {})
    replay(folder, "postgres", {})
    consumers = ["csv", "postgres"]
    done = {"tap-strava", "target-strava-spool", "tap-strava-replay-csv", "target-csv-replay"}
    (text,) = status.behind_lines(folder, consumers, done)
    assert text.startswith("Postgres is behind: 1 extraction not loaded yet")
    assert "000001-R1.jsonl" in text
    assert "without asking Strava again" in text
    assert (
        status.behind_lines(folder, consumers, {"tap-strava-replay-csv", "tap-strava-replay"}) == []
    )
    # The events job has no CSV block: CSV is never behind in it.
    assert status.job_consumers(ROOT, "strava-events") == ["postgres"]
    assert status.job_consumers(ROOT, "strava-daily") == ["csv", "postgres"]
    assert status.job_consumers(ROOT, "strava-details") == []


OLD_START = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)


def _held(postgres: t.Iterable[int], csv: t.Iterable[int]) -> t.Callable[[], status.Holdings]:
    return lambda: status.Holdings(dict.fromkeys(postgres, OLD_START), set(csv))


class FakeMeltano:
    """``meltano state ...`` as the upgrade calls it: the listed ids, every call kept."""

    def __init__(self, *ids: str) -> None:
        self.ids = ids
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        listed = "".join(f"{i}\n" for i in self.ids)
        return subprocess.CompletedProcess(args, 0, listed if args[1] == "list" else "", "")


def test_the_upgrade_copies_the_old_postgres_state_once_when_both_targets_hold_it(tmp_path):
    folder = SpoolFolder(tmp_path / "spool")
    meltano = FakeMeltano("prod:tap-strava-to-target-csv", "prod:tap-strava-to-target-postgres")
    done = status.migrate_daily_state(meltano, "prod", folder, _held([1, 2], [1, 2, 3]))
    assert done is not None
    assert "prod:tap-strava-to-target-postgres was copied" in done
    assert meltano.calls == [
        ["state", "list"],
        [
            "state",
            "copy",
            "--force",
            "prod:tap-strava-to-target-postgres",
            "prod:tap-strava-to-target-strava-spool",
        ],
    ]
    assert status.migrate_daily_state(meltano, "prod", folder, _held([], [])) is None
    assert len(meltano.calls) == 2, "once per environment"


def test_the_users_own_postgres_run_is_not_taken_for_an_upgrade(tmp_path):
    """Issue 23: after `meltano run tap-strava target-postgres` the CSV got 6 activities."""
    folder = SpoolFolder(tmp_path / "spool")
    meltano = FakeMeltano("dev:tap-strava-to-target-postgres")
    done = status.migrate_daily_state(meltano, "dev", folder, _held([1, 2, 3], []))
    assert done == (
        "The bookmark of dev:tap-strava-to-target-postgres was not copied to "
        "dev:tap-strava-to-target-strava-spool: CSV lacks 3 of the 3 activities Postgres "
        "holds; this run reads the whole history once for both (Postgres updates the rows "
        "it has)."
    )
    assert meltano.calls == [["state", "list"]], "nothing copied"


def test_an_install_upgraded_without_the_check_is_repaired_once(tmp_path):
    folder = SpoolFolder(tmp_path / "spool")
    folder.ensure()
    marker = folder.path / status.MIGRATED_MARKER
    marker.write_text("Upgraded the daily job to one extraction: ...\n")
    recent = datetime.datetime.now(datetime.timezone.utc)
    # Settled activities CSV holds, and one an event loaded into Postgres only yesterday.
    fine = lambda: status.Holdings({1: OLD_START, 2: recent}, {1})  # noqa: E731
    meltano = FakeMeltano()
    assert status.migrate_daily_state(meltano, "dev", SpoolFolder(folder.path), fine) is None
    assert meltano.calls == []
    (folder.path / status.CHECKED_MARKER).unlink()
    done = status.migrate_daily_state(meltano, "dev", folder, _held([1, 2, 3], [3]))
    assert done is not None
    assert done.startswith("Repaired the upgrade to one extraction: CSV lacked 2 of the 3")
    assert meltano.calls == [["state", "clear", "--force", "dev:tap-strava-to-target-strava-spool"]]
    assert status.migrate_daily_state(meltano, "dev", folder, _held([1, 2, 3], [3])) is None
    assert len(meltano.calls) == 1, "once"


def test_errors_are_one_line_with_the_fix(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "000001-R1.jsonl").write_text('{"type": "RECORD"\n')
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"spool_dir": str(spool), "consumer": "postgres"}))
    proc = subprocess.run(
        [str(BIN / "tap-strava-replay"), "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    (err,) = proc.stderr.strip().splitlines()[-1:]
    assert err.startswith("tap-strava-replay: error: spool ")
    assert "move it out of" in err
    assert "Traceback" not in proc.stderr
    config.write_text(json.dumps({"spool_dir": str(spool), "consumer": "Bad Name"}))
    proc = subprocess.run(
        [str(BIN / "tap-strava-replay"), "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "tap-strava-replay: error: consumer 'Bad Name' is not a plain name: "
        "set consumer, e.g. postgres"
    )
