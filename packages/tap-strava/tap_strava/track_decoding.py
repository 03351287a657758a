"""The archive's tracks decoded in worker processes, in order, a bounded number at a time.

Decoding is most of an archive import (FIT, GPX and TCX are decoded in pure Python by
their libraries), and it is one file after another with nothing shared: the one part of
the import that runs on several cores. :class:`TrackDecoder` hands each file to a pool
of ``export_workers`` processes and gives the results back in the order of the jobs, so
the output (and the state's checkpoints, which follow the records) is the same whatever
the number of workers. With one worker, or fewer than :data:`POOL_MIN_JOBS` files to
decode, nothing is started and the files are decoded in the tap's own process.

What stays in the tap's process: reading each member from the archive (its decompression
budget covers the whole run, see :class:`~tap_strava.export_archive.ReadBudget`), the
records, the state and the logging. A worker receives the file's bytes and returns the
finished ``export_tracks`` record (or the one line saying why the file has no track),
thinned below Meltano's limit for one message where needed. At most
``2 * workers + 2`` files are in flight, so memory does not grow with the archive.

Workers are started with ``spawn``, not ``fork``: the tap has threads (stdout is written
from one, see :mod:`tap_strava.message_writer`), and a forked child can inherit a lock
that one of them held. A gzip bomb found in a worker stops the run, as it would in the
tap's process.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import json
import multiprocessing
import os
import typing as t

from tap_strava.track_files import Track, TrackError, read_track

if t.TYPE_CHECKING:
    import datetime
    from collections.abc import Iterable, Iterator

#: Largest serialized track record: Meltano stops at 50 MiB per message line; the
#: envelope and a margin stay below it. A bigger track keeps every n-th sample.
MAX_TRACK_BYTES = 40 * 2**20
Tag = t.TypeVar("Tag")

#: The default number of workers is the number of CPUs, at most this.
MAX_DEFAULT_WORKERS = 4
#: Fewer files than this are decoded in the tap's process: starting a worker (a new
#: interpreter importing the readers) costs about as much as decoding a dozen files.
POOL_MIN_JOBS = 16


@dataclasses.dataclass(frozen=True)
class TrackJob:
    """One original file to decode for one activity (one file may serve several)."""

    activity_id: int
    filename: str
    data: bytes
    start: datetime.datetime | None  # picks the activity in a multi-activity file
    start_date: str | None  # the activity's start, as emitted


@dataclasses.dataclass(frozen=True)
class TrackResult:
    """The ``export_tracks`` record, or the reason there is none; plus what to log."""

    record: dict[str, t.Any] | None
    error: str | None = None
    thinned_step: int | None = None  # set when the record was thinned to fit a message


def default_workers() -> int:
    """The CPUs this process may use, at most :data:`MAX_DEFAULT_WORKERS`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cpus))


def decode(job: TrackJob) -> TrackResult:
    """The track record of one file (runs in a worker): decoded, then bounded in size."""
    try:
        track = read_track(job.filename, job.data, start=job.start)
    except TrackError as exc:
        return TrackResult(None, error=str(exc))
    record = track_record(track, job.activity_id, job.start_date, job.filename)
    step = within_message_limit(record, track)
    return TrackResult(record, thinned_step=step)


def track_record(
    track: Track, activity_id: int, start_date: str | None, filename: str
) -> dict[str, t.Any]:
    """The ``export_tracks`` row of one track."""
    return {
        "activity_id": activity_id,
        "activity_start_date": start_date,
        "file_name": filename,
        "file_format": track.file_format,
        "series": track.present,
        "computed_series": track.computed or None,
        "original_size": track.original_size,
        "point_step": track.point_step,
        **track.series,
    }


def within_message_limit(record: dict[str, t.Any], track: Track) -> int | None:
    """Thin the record in place to every n-th sample if its line would pass the limit.

    Returns the step taken (None when the record was small enough). Measured exactly
    (the JSON of the record) only when a cheap upper bound says it might be too big:
    no value of a series takes more than 30 characters.
    """
    samples = max((len(values) for values in track.series.values() if values), default=0)
    if samples * 30 * len(track.series) < MAX_TRACK_BYTES:
        return None
    size = len(json.dumps(record, separators=(",", ":")))
    if size <= MAX_TRACK_BYTES:
        return None
    full = {name: record[name] for name in track.series if isinstance(record.get(name), list)}
    step = 1
    while size > MAX_TRACK_BYTES:
        step = max(step + 1, int(step * size / MAX_TRACK_BYTES))
        for name, values in full.items():
            record[name] = values[::step]
        record["point_step"] = track.point_step * step
        size = len(json.dumps(record, separators=(",", ":")))
    return t.cast("int", record["point_step"])


class TrackDecoder:
    """Decodes jobs with ``workers`` processes (1: in this process), results in job order."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def __enter__(self) -> TrackDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (what is still queued is dropped: the run is over or failed)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def results(
        self, jobs: Iterable[tuple[TrackJob, Tag]]
    ) -> Iterator[tuple[TrackJob, Tag, TrackResult]]:
        """Each job, the tag that came with it and its result, in the jobs' order.

        Exceptions other than a file's own failure (a gzip bomb) are raised here.
        """
        pending = iter(jobs)
        head = list(itertools.islice(pending, POOL_MIN_JOBS))
        if self.workers == 1 or len(head) < POOL_MIN_JOBS:
            for job, tag in itertools.chain(head, pending):
                yield job, tag, decode(job)
            return
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        window: collections.deque[tuple[TrackJob, Tag, concurrent.futures.Future[TrackResult]]]
        window = collections.deque()
        limit = 2 * self.workers + 2
        for job, tag in itertools.chain(head, pending):
            window.append((job, tag, self._pool.submit(decode, job)))
            if len(window) >= limit:
                done, done_tag, future = window.popleft()
                yield done, done_tag, future.result()
        while window:
            done, done_tag, future = window.popleft()
            yield done, done_tag, future.result()
