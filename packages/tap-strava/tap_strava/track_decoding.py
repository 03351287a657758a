"""The archive's tracks decoded in worker processes, in order, a bounded number at a time.

Decoding is most of an archive import (FIT, GPX and TCX are decoded in pure Python by
their libraries), and it is one file after another with nothing shared: the one part of
the import that runs on several cores. :class:`TrackDecoder` hands each file to a pool
of ``export_workers`` processes and gives the results back in the order of the jobs, so
the output (and the state's checkpoints, which follow the records) is the same whatever
the number of workers. With one worker, or fewer than :data:`POOL_MIN_JOBS` files to
decode, nothing is started and the files are decoded in the tap's own process.

A job is small (the member's name, the activity's start and the most bytes its content
may unpack to): each worker opens the archive itself, read-only, and decodes the member
as a stream with the same bounds as the tap's process; the run's budget of decompressed
bytes is shared out among the workers (see :class:`~tap_strava.export_archive.ReadBudget`),
and a pipe never fills with jobs. A worker returns the finished ``export_tracks`` record
(or the one line saying why the file has no track), thinned below Meltano's limit for one
message where needed. At most ``2 * workers + 2`` files are in flight, and together they
hold to one memory budget for the run (:data:`MEMORY_BUDGET`): the tap reserves each
job's worst case before sending it, from the member's unpacked size (the zip's directory,
or a gzip's trailer, which the worker then holds the file to).

Workers are started with ``spawn``, not ``fork``: the tap has threads (stdout is written
from one, see :mod:`tap_strava.message_writer`), and a forked child can inherit a lock
that one of them held. A bomb inside one file costs that file's track, as it would in the
tap's process; a worker that dies stops the run with one line (:class:`WorkerError`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import multiprocessing
import os
import signal
import typing as t
import zipfile
import zlib
from pathlib import Path

from tap_strava.errors import StravaUserError
from tap_strava.export_archive import ExportArchive, MemberError, ReadBudget
from tap_strava.track_files import (
    MAX_BYTES,
    Track,
    TrackError,
    file_format,
    memory_cost,
    read_track,
)

if t.TYPE_CHECKING:
    import datetime
    import multiprocessing.process
    from collections.abc import Iterable, Iterator
    from multiprocessing.connection import Connection

#: Largest serialized track record: Meltano stops at 50 MiB per message line; the
#: envelope and a margin stay below it. A bigger track keeps every n-th sample.
MAX_TRACK_BYTES = 40 * 2**20
Tag = t.TypeVar("Tag")

#: The run's memory for files being decoded (in the workers and their records in the tap),
#: shared by every job in flight: the tap reserves each job's worst case
#: (:func:`~tap_strava.track_files.memory_cost`) before sending it, and a job larger than
#: what is free waits until the jobs before it are done (alone, it always runs).
MEMORY_BUDGET = 320 * 2**20
#: Errors of reading a member from the zip (a bad CRC, a truncated entry, an encrypted one).
ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError)

#: The default number of workers is the number of CPUs, at most this.
MAX_DEFAULT_WORKERS = 4
#: Fewer files than this are decoded in the tap's process: starting a worker (a new
#: interpreter, which imports the tap) takes about 0.5 s, the decoding of some 25 files
#: of a quarter of an hour.
POOL_MIN_JOBS = 32


class WorkerError(StravaUserError):
    """A decoding worker died: the run stops with one line (see :meth:`TrackDecoder._receive`)."""


@dataclasses.dataclass(frozen=True)
class TrackJob:
    """One original file to decode for one activity (one file may serve several)."""

    activity_id: int
    filename: str  # the member, relative to the archive's root (Filename in the CSV)
    start: datetime.datetime | None  # picks the activity in a multi-activity file
    start_date: str | None  # the activity's start, as emitted
    limit: int | None = None  # most bytes its content may unpack to (set by the tap)


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


def decode(job: TrackJob, archive: ExportArchive) -> TrackResult:
    """The track record of one file: read as it is decoded, then bounded in size.

    A file that is missing, unreadable, not a track or beyond a bound (a gzip bomb inside
    it, too large, too many samples) is the result's ``error``: it costs that file only.
    The run's own bound (:class:`~tap_strava.export_archive.ArchiveBombError`) is raised.
    """
    kind, _ = file_format(job.filename)
    try:
        if kind is None:
            track = read_track(job.filename, b"")  # the one line about the unknown type
        else:
            with archive.open_member(job.filename, cap=MAX_BYTES[kind]) as handle:
                track = read_track(job.filename, handle, start=job.start, limit=job.limit)
    except (MemberError, TrackError) as exc:
        return TrackResult(None, error=str(exc))
    except ZIP_ERRORS as exc:
        return TrackResult(None, error=f"{job.filename} cannot be read from the archive ({exc})")
    record = track_record(track, job.activity_id, job.start_date, job.filename)
    step = within_message_limit(record, track)
    return TrackResult(record, thinned_step=step)


def unpacked_size(archive: ExportArchive, filename: str) -> int | None:
    """What ``filename`` unpacks to, as claimed: the zip's directory, or a gzip's trailer.

    The trailer is read here (packed bytes only, a fraction of decoding); the worker holds
    the file to the size (:class:`TrackJob`'s ``limit``): a gzip whose content passes its
    trailer is refused. None: not readable (the worker will say why, at no cost).
    """
    kind, gzipped = file_format(filename)
    sizes = archive.member_size(filename)
    if kind is None or sizes is None:
        return None
    if not gzipped:
        return sizes[1]
    tail = b""
    try:
        with archive.open_member(filename, cap=MAX_BYTES[kind]) as handle:
            while chunk := handle.read(2**16):
                tail = (tail + chunk)[-4:]
    except (MemberError, *ZIP_ERRORS):
        return None
    return int.from_bytes(tail, "little") if len(tail) == 4 else None


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

    Returns the step taken (None when the record was small enough). Always measured on
    the record's JSON: a value's length has no bound (an integer series from a text file
    can hold a number of hundreds of digits), so no estimate can stand in for it.
    """
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


def _worker_main(connection: Connection, path: str, budget: int) -> None:
    """A worker process: open the archive once, then decode each job it is sent, in order.

    Each answer is ``("ok", TrackResult)`` or ``("raise", exception)`` (a bomb, or a bug:
    raised again in the tap's process); ``None`` ends the worker.
    """
    # Ctrl-C reaches the whole process group: the tap handles it and ends its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    archive = ExportArchive(Path(path))
    archive.budget = ReadBudget(left=budget)  # this worker's share of the run's bound
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):  # the tap is gone
            return
        if job is None:
            return
        try:
            answer: tuple[str, t.Any] = ("ok", decode(job, archive))
        except Exception as exc:  # handed to the tap, which raises it
            answer = ("raise", exc)
        try:
            connection.send(answer)
        except OSError:  # the tap is gone
            return
        except Exception as exc:  # an exception that cannot be pickled: its text, then
            connection.send(("raise", RuntimeError(f"{type(exc).__name__}: {exc}")))


class TrackDecoder:
    """Decodes jobs with ``workers`` processes (1: in this process), results in job order.

    Job *n* goes to worker *n* mod ``workers``; a worker answers its jobs in the order it
    got them, so reading job *n*'s answer from that worker keeps the jobs' order with no
    bookkeeping. A pipe per worker, written and read only by the tap's main thread: no
    feeder thread, no manager thread. (``concurrent.futures.ProcessPoolExecutor`` was
    tried first: when a worker was killed it could hang the tap for good, joining a new
    worker it had just started on CPython 3.11.) A worker that dies ends its pipe, and
    the read raises :class:`WorkerError` at once.
    """

    def __init__(self, archive: ExportArchive, workers: int) -> None:
        self.archive = archive
        self.workers = max(1, workers)
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._connections: list[Connection] = []
        self._drained = True  # no answer left unread (see close)
        self.reserved = 0  # bytes of MEMORY_BUDGET held by the jobs in flight
        self.peak_reserved = 0

    def __enter__(self) -> TrackDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers: asked to end when every answer was read, else killed.

        A worker with an answer nobody will read is blocked writing it: after a failure
        (or an interrupted run) waiting for it would only delay the one error line.
        """
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.send(None)
        for process in self._processes:
            if self._drained:
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for connection in self._connections:
            connection.close()
        self._processes, self._connections = [], []

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        # Half of what is left of the run's bound goes to the workers, shared out, half
        # stays for this process (activities.csv is still being read): 64 GiB in all.
        shared = self.archive.budget.left // 2
        self.archive.budget.left -= shared
        budget = shared // self.workers
        for index in range(self.workers):
            ours, theirs = context.Pipe(duplex=True)
            process = context.Process(
                target=_worker_main,
                args=(theirs, str(self.archive.path), budget),
                name=f"tap-strava-decoder-{index}",
                daemon=True,  # never outlives the tap
            )
            process.start()
            theirs.close()
            self._processes.append(process)
            self._connections.append(ours)

    def results(
        self, jobs: Iterable[tuple[TrackJob, Tag]]
    ) -> Iterator[tuple[TrackJob, Tag, TrackResult]]:
        """Each job, the tag that came with it and its result, in the jobs' order.

        Exceptions other than a file's own failure (a bomb, a worker that died) are
        raised here.
        """
        pending = iter(jobs)
        head = list(itertools.islice(pending, POOL_MIN_JOBS))
        if self.workers == 1 or len(head) < POOL_MIN_JOBS:
            for job, tag in itertools.chain(head, pending):
                yield job, tag, decode(job, self.archive)
            return
        if not self._processes:
            self._start()
        window: collections.deque[tuple[int, TrackJob, Tag, int]] = collections.deque()
        limit = 2 * self.workers + 2
        self._drained = False
        for number, (planned, tag) in enumerate(itertools.chain(head, pending)):
            # A member the tap cannot size (missing, unreadable) gets no room: the worker
            # says why at no cost, and holds it to 0 bytes should it read after all.
            size = unpacked_size(self.archive, planned.filename) or 0
            job = dataclasses.replace(planned, limit=size)
            cost = memory_cost(job.filename, size)
            # The oldest answers first, until this job's worst case fits in the budget.
            while window and (len(window) >= limit or self.reserved + cost > MEMORY_BUDGET):
                worker, done, done_tag, done_cost = window.popleft()
                yield done, done_tag, self._receive(worker, done)
                self.reserved -= done_cost  # the record is out of the tap's hands
            self._send(number % self.workers, job)
            self.reserved += cost
            self.peak_reserved = max(self.peak_reserved, self.reserved)
            window.append((number % self.workers, job, tag, cost))
        while window:
            worker, done, done_tag, done_cost = window.popleft()
            yield done, done_tag, self._receive(worker, done)
            self.reserved -= done_cost
        self._drained = True

    def _send(self, worker: int, job: TrackJob) -> None:
        try:
            self._connections[worker].send(job)
        except OSError:
            raise _worker_died(job) from None

    def _receive(self, worker: int, job: TrackJob) -> TrackResult:
        try:
            kind, value = self._connections[worker].recv()
        except (EOFError, OSError):
            raise _worker_died(job) from None
        if kind == "raise":
            raise value
        return t.cast("TrackResult", value)


def _worker_died(job: TrackJob) -> WorkerError:
    return WorkerError(
        f"a worker decoding the archive's tracks ended abruptly (killed, or out of memory) "
        f"on {job.filename} or a file decoded beside it: nothing is lost, the next run "
        "resumes from the last state; if it happens again, set export_workers to 1 "
        "(decoding in the tap's own process) or give the run more memory"
    )
