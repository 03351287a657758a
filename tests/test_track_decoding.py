"""The archive's tracks decoded by worker processes (``export_workers``).

The workers are real processes (spawned interpreters): the records and states must be
those of a run that decodes in the tap's own process, in the same order; a file that
cannot be read, or a gzip bomb inside one, still costs only its track.
"""

from __future__ import annotations

import json
import typing as t

from tap_strava import track_decoding
from tap_strava.export_archive import ExportArchive
from tests.export_fixtures import (
    Activity,
    fit_bytes,
    gpx_bytes,
    gz,
    samples,
    start_at,
    tcx_bytes,
    write_archive,
)
from tests.support import run_tap, run_tap_cli

#: More files than POOL_MIN_JOBS, so that two workers are really started.
FILES = 34


def many_activities() -> list[Activity]:
    """FIT, GPX and TCX (some gzipped) with one corrupt FIT and one file listed but missing."""
    activities = []
    for index in range(FILES):
        day = 1 + index % 28
        start = start_at(day, hour=6 + index // 28)
        points = samples(200 + index, seed=index)
        kind = index % 3
        if kind == 0:
            filename, content = f"activities/{500 + index}.fit.gz", gz(fit_bytes(start, points))
        elif kind == 1:
            filename, content = f"activities/{500 + index}.gpx", gpx_bytes(start, points)
        else:
            filename, content = f"activities/{500 + index}.tcx.gz", gz(tcx_bytes(start, points))
        activities.append(Activity(500 + index, start, filename=filename, content=content))
    activities[6].content = gz(b".FIT" + bytes(range(256)) * 4)  # corrupt: not a FIT file
    activities[11].content = None  # listed in activities.csv, not in the archive
    return activities


def config(archive: t.Any, tmp_path: t.Any, workers: int) -> dict[str, t.Any]:
    return {
        "export_archive_path": str(archive),
        "token_store_path": str(tmp_path / f"store-{workers}" / "tokens.json"),
        "export_workers": workers,
    }


def comparable(messages: list[dict[str, t.Any]]) -> list[t.Any]:
    """The messages without the extraction times, which differ from run to run."""
    out = []
    for message in messages:
        if message["type"] == "RECORD":
            record = {k: v for k, v in message["record"].items() if k != "_sdc_extracted_at"}
            out.append(("RECORD", message["stream"], record))
        elif message["type"] == "STATE":
            out.append(("STATE", message["value"]))
        else:
            out.append((message["type"], message.get("stream")))
    return out


def test_workers_emit_exactly_what_one_process_emits(tmp_path, monkeypatch, caplog):
    archive = write_archive(tmp_path / "export_4242.zip", many_activities())
    with caplog.at_level("WARNING"):
        alone = run_tap(config(archive, tmp_path, 1))
    alone_warnings = sorted(r.getMessage() for r in caplog.records if "export_tracks" in r.name)

    def not_here(*args: t.Any, **kwargs: t.Any) -> t.Any:
        raise AssertionError("decoded in the tap's process, not in a worker")

    # Decoding in the tap's own process would now fail: the tracks come from the workers.
    monkeypatch.setattr(track_decoding, "read_track", not_here)
    caplog.clear()
    with caplog.at_level("WARNING"):
        pooled = run_tap(config(archive, tmp_path, 2))
    pooled_warnings = sorted(r.getMessage() for r in caplog.records if "export_tracks" in r.name)

    tracks = pooled.records("export_tracks")
    assert len(tracks) == FILES - 2
    assert [t["activity_id"] for t in tracks] == [
        a.id for a in many_activities() if a.id not in (506, 511)
    ]
    assert [len(t["time"]) for t in tracks][:3] == [200, 201, 202]
    assert comparable(pooled.messages) == comparable(alone.messages)
    assert len(pooled_warnings) == 2
    assert pooled_warnings == alone_warnings
    assert any("506" in w and "not a readable FIT file" in w for w in pooled_warnings)


def test_a_gzip_bomb_found_by_a_worker_costs_its_track_only(tmp_path):
    activities = many_activities()
    activities[9].filename = "activities/bomb.gpx.gz"
    activities[9].content = gz(b"\0" * (64 * 2**20))
    archive = write_archive(tmp_path / "export_4242.zip", activities)
    proc = run_tap_cli(config(archive, tmp_path, 2), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    skipped = [line for line in proc.stderr.splitlines() if "its track is skipped" in line]
    assert len(skipped) == 3, skipped  # the bomb, the corrupt FIT, the missing file
    assert any("activity 509:" in line and "gzip bomb" in line for line in skipped)
    tracks = [
        json.loads(line)["record"]["activity_id"]
        for line in proc.stdout.splitlines()
        if '"stream":"export_tracks"' in line.replace(" ", "") and '"RECORD"' in line
    ]
    assert len(tracks) == FILES - 3
    assert 509 not in tracks


def test_the_jobs_in_flight_hold_to_the_runs_memory_budget(tmp_path, monkeypatch):
    archive = write_archive(tmp_path / "export_4242.zip", many_activities())
    free = run_tap(config(archive, tmp_path, 2))
    decoders: list[track_decoding.TrackDecoder] = []
    real = track_decoding.TrackDecoder.__init__

    def kept(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        real(self, *args, **kwargs)
        decoders.append(self)

    monkeypatch.setattr(track_decoding.TrackDecoder, "__init__", kept)
    # Room for the largest job alone: never two at once, and the same output.
    opened = ExportArchive(archive)
    largest = max(
        track_decoding.memory_cost(
            a.filename, track_decoding.unpacked_size(opened, a.filename) or 0
        )
        for a in many_activities()
    )
    monkeypatch.setattr(track_decoding, "MEMORY_BUDGET", largest)
    tight = run_tap(config(archive, tmp_path / "tight", 2))
    assert comparable(tight.messages) == comparable(free.messages)
    assert decoders
    assert 0 < decoders[-1].peak_reserved <= largest
    assert decoders[-1].reserved == 0  # every reservation given back


def test_default_workers_is_the_cpus_at_most_four():
    assert 1 <= track_decoding.default_workers() <= track_decoding.MAX_DEFAULT_WORKERS


def test_a_worker_that_dies_stops_the_run_with_one_line(tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import time

    import psutil

    content = gpx_bytes(start_at(1), samples(6000))  # gpxpy takes a while on each
    activities = [
        Activity(
            900 + i, start_at(1 + i % 28), filename=f"activities/{900 + i}.gpx", content=content
        )
        for i in range(40)
    ]
    archive = write_archive(tmp_path / "export_4242.zip", activities)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(archive, tmp_path, 2)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tap_strava.tap", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        killed = False
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            for child in psutil.Process(proc.pid).children():
                try:
                    if any("spawn_main" in arg for arg in child.cmdline()):
                        child.send_signal(signal.SIGKILL)  # what the kernel's OOM killer does
                        killed = True
                        break
                except psutil.Error:
                    continue
            time.sleep(0.01)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert killed, "no worker was seen"
    assert proc.returncode == 1, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if "tap-strava: error:" in line]
    assert len(errors) == 1, stderr[-2000:]
    assert "ended abruptly" in errors[0]
    assert "export_workers to 1" in errors[0]
    assert "Traceback" not in stderr


def test_the_runs_bound_on_decompressed_bytes_holds_with_workers(tmp_path, monkeypatch):
    from tap_strava import export_archive

    archive = write_archive(tmp_path / "export_4242.zip", many_activities())
    small = 2**20  # the run's bound, for this test: 1 MiB, where the files take more
    real = export_archive.ReadBudget
    monkeypatch.setattr(export_archive, "ReadBudget", lambda: real(left=small))
    # The tracks alone: export_activities reads the files too (their local start time,
    # on the same bound), which would spend this small bound before any track.
    result = run_tap(config(archive, tmp_path, 2), allow_failure=True, streams=["export_tracks"])
    assert isinstance(result.error, export_archive.ArchiveBombError)
    assert "past" in str(result.error)
    # Some tracks came before the bound was reached: the workers shared it, not each 1 MiB.
    assert 0 < len(result.records("export_tracks")) < FILES - 2
