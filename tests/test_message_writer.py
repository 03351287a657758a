"""stdout from a thread: the tap goes on while the target is busy, and loses nothing.

Real pipes throughout: an unread pipe is what a target draining a batch looks like.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import typing as t

import pytest
from singer_sdk.singerlib import RecordMessage

from tap_strava import message_writer
from tap_strava.message_writer import BackgroundWriter
from tests.export_fixtures import Activity, gz, samples, start_at, tcx_bytes, write_archive

PIPE_BYTES = 65536  # what Linux holds in a pipe nobody reads


def record(index: int, size: int) -> RecordMessage:
    return RecordMessage(stream="s", record={"i": index, "pad": 'é\\"\n' * (size // 4)})


@pytest.fixture
def pipe() -> t.Iterator[tuple[t.TextIO, io.FileIO]]:
    """The two ends of a real pipe: (text writer, raw reader)."""
    read_fd, write_fd = os.pipe()
    writer = io.TextIOWrapper(io.BufferedWriter(io.FileIO(write_fd, "w")), encoding="utf-8")
    reader = io.FileIO(read_fd, "r")
    yield writer, reader
    reader.close()
    with contextlib.suppress(OSError):  # a broken pipe, in the test that breaks it
        writer.close()


def accepted_within(writer: BackgroundWriter, count: int, size: int, seconds: float) -> int:
    """How many of ``count`` messages the writer takes in ``seconds`` (from a thread)."""
    taken: list[int] = []

    def write_all() -> None:
        for index in range(count):
            writer.write_message(record(index, size))
            taken.append(index)

    thread = threading.Thread(target=write_all, daemon=True)
    thread.start()
    thread.join(seconds)
    return len(taken)


def read_lines(reader: io.FileIO, count: int) -> list[dict[str, t.Any]]:
    data = b""
    while data.count(b"\n") < count:
        chunk = reader.read(1 << 20)
        assert chunk, "the pipe closed before every line came"
        data += chunk
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def test_the_tap_goes_on_while_nobody_reads_and_every_line_comes_in_order(pipe):
    output, reader = pipe
    writer = BackgroundWriter(max_queued_bytes=2 * 2**20, output=output)
    # 60 lines of 12 kB while nobody reads: the pipe alone would take five.
    assert accepted_within(writer, 60, 4_000, seconds=2.0) == 60
    # Past the bound the caller waits (memory stays bounded) ...
    assert accepted_within(writer, 200, 4_000, seconds=1.0) < 200
    # ... and once the reader comes back, everything arrives, in order, unchanged.
    lines = read_lines(reader, 260)
    assert [m["record"]["i"] for m in lines] == list(range(60)) + list(range(200))
    assert lines[0]["record"]["pad"] == 'é\\"\n' * 1000, "the line was changed"
    writer.close()


def test_a_reader_that_is_gone_fails_the_next_message(pipe):
    output, reader = pipe
    writer = BackgroundWriter(max_queued_bytes=2**20, output=output)
    writer.write_message(record(0, 100))
    assert read_lines(reader, 1)[0]["record"]["i"] == 0
    reader.close()  # the target died

    def write_more() -> None:
        for index in range(1, 1000):
            writer.write_message(record(index, 10_000))
            time.sleep(0.001)
        writer.close()

    with pytest.raises(BrokenPipeError):
        write_more()
    with pytest.raises(BrokenPipeError):  # and every message after it
        writer.write_message(record(2000, 10))


def tracks_done(log: str) -> bool:
    """Whether the tap logged the end of export_tracks (the stream synced last)."""
    return any(
        '"record_count"' in line and '"stream":"export_tracks"' in line for line in log.splitlines()
    )


def archive_config(
    tmp_path: t.Any, activities: list[Activity] | None = None
) -> tuple[t.Any, list[Activity]]:
    """The config of a CLI run over 12 TCX tracks (about 1 MB of output, 16 pipes' worth)."""
    activities = activities or [
        Activity(
            700 + day,
            start_at(day),
            filename=f"activities/{700 + day}.tcx.gz",
            content=gz(tcx_bytes(start_at(day), samples(1500, seed=day))),
        )
        for day in range(1, 13)
    ]
    archive = write_archive(tmp_path / "export_4242.zip", activities)
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "export_archive_path": str(archive),
                "token_store_path": str(tmp_path / "store" / "tokens.json"),
                "export_workers": 1,
            }
        )
    )
    return config, activities


def start_tap(config: t.Any, err: t.IO[bytes]) -> subprocess.Popen[bytes]:
    """The tap's command with its stdout on a pipe this test reads only when it wants."""
    return subprocess.Popen(
        [sys.executable, "-m", "tap_strava.tap", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=err,
    )


def wait_for_tracks(proc: subprocess.Popen[bytes], log: t.Any) -> None:
    deadline = time.monotonic() + 30
    while not tracks_done(log.read_text(encoding="utf-8")):
        assert proc.poll() is None, log.read_text(encoding="utf-8")[-2000:]
        assert time.monotonic() < deadline, "the tap stopped at the unread pipe"
        time.sleep(0.05)


def test_the_command_decodes_every_track_while_the_target_is_not_reading(tmp_path):
    """The tap finishes the whole archive with its stdout unread (the target's batch),
    where a direct write would stop it at the pipe's 64 KiB."""
    config, activities = archive_config(tmp_path)
    log = tmp_path / "tap.log"
    with log.open("wb") as err:
        proc = start_tap(config, err)
        try:
            wait_for_tracks(proc, log)
            out, _ = proc.communicate(timeout=60)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    messages = [json.loads(line) for line in out.splitlines()]
    tracks = [m["record"] for m in messages if m.get("stream") == "export_tracks" and "record" in m]
    assert len(out) > 10 * PIPE_BYTES
    assert [t["activity_id"] for t in tracks] == [a.id for a in activities]
    assert all(len(t["time"]) == 1500 for t in tracks)
    assert messages[-1]["type"] == "STATE"


def test_a_stopped_run_ends_although_the_target_does_not_read(tmp_path):
    """SIGTERM while the tap waits on a target that reads nothing: the run ends (the
    SDK's graceful exit) after waiting a bounded time for the target, not forever."""
    content = gz(tcx_bytes(start_at(1), samples(1500)))
    activities = [
        Activity(800 + i, start_at(1 + i % 28), filename=f"activities/{800 + i}.tcx.gz",
                 content=content)
        for i in range(240)
    ]  # fmt: skip
    config, _ = archive_config(tmp_path, activities)  # about 22 MB: more than the queue
    log = tmp_path / "tap.log"
    with log.open("wb") as err:
        proc = start_tap(config, err)
        try:
            deadline = time.monotonic() + 30
            while "Beginning sync of 'export_tracks'" not in log.read_text(encoding="utf-8"):
                assert proc.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(1.0)  # the pipe and then the queue fill: the tap waits
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            proc.wait(timeout=60)
            waited = time.monotonic() - started
            out = proc.stdout.read() if proc.stdout else b""
        finally:
            proc.kill()
            proc.wait()
    text = log.read_text(encoding="utf-8")
    assert waited < 30, text[-2000:]
    assert "Gracefully shutting down" in text
    assert proc.returncode == 0
    lines = out.decode("utf-8").split("\n")
    complete = [json.loads(line) for line in lines[:-1]]  # the last one may be cut short
    records = [m for m in complete if m["type"] == "RECORD"]
    done = [m["record"]["id"] for m in records if m["stream"] == "export_activities"]
    assert done == [a.id for a in activities][: len(done)]  # in order, nothing doubled


def test_each_line_is_byte_for_byte_the_sdks_line():
    """The writer's own (faster) serializer writes exactly what the SDK's would."""
    import datetime
    import decimal

    from singer_sdk.singerlib import SchemaMessage, StateMessage
    from singer_sdk.singerlib.encoding.simple import SimpleSingerWriter

    when = datetime.datetime(2026, 12, 6, 18, 0, 1, 250, tzinfo=datetime.timezone.utc)
    awkward = {
        "id": 2**70,
        "name": 'Z\u00fcrich \u231a\U0001f6b4 \ud800 \x00\x1f\n\t"\\/\u2028',
        "floats": [0.1, -0.0, 1e16, 1e-7, 474287.0, 1.7976931348623157e308],
        "nested": {"b": [{"z": None, "a": True}], "a": False},
        "empty": [{}, [], ""],
    }
    messages = [
        RecordMessage(stream="activities", record=awkward, version=17, time_extracted=when),
        RecordMessage(stream="s", record={"nan": float("nan"), "inf": float("-inf")}),
        RecordMessage(stream="s", record={"amount": decimal.Decimal("12.50")}),
        RecordMessage(stream="s", record={"tags": {"a"}, "when": datetime.date(2026, 1, 2)}),
        SchemaMessage(stream="s", schema={"type": "object", "properties": {}}, key_properties=[]),
        StateMessage(value={"bookmarks": {"s": {"digests": {"1": ["2026-01-01T00:00Z", "a"]}}}}),
    ]
    ours, sdks = BackgroundWriter(), SimpleSingerWriter()
    for message in messages:
        assert ours.format_message(message) == sdks.format_message(message)
    # The JSON types and time_extracted take the fast path; the rest falls back.
    assert message_writer._FAST_JSON(messages[0].to_dict())
    with pytest.raises(ValueError):
        message_writer._FAST_JSON(messages[1].to_dict())
