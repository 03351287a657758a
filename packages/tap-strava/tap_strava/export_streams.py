"""The export archive's streams: ``export_activities``, ``export_tracks``, ``export_gear``.

They read Strava's bulk export (``export_archive_path``) with no request and no API app
(see :mod:`tap_strava.export_archive` and :mod:`tap_strava.track_files`), as streams of
their own: an archive row upserted over an API row would blank every API column the CSV
lacks (target-postgres writes NULL for a missing key).

Re-importing changes nothing: each stream keeps, in its state, a short digest per row it
emitted (``digests``: ``{"<id>": "<digest>"}``) and emits a row only when it is new or its
digest changed; tracks are digested on the file's identity (zip CRC and size, or size and
mtime) before any decoding, so an unchanged archive decodes nothing. The state is
checkpointed every :data:`CHECKPOINT_EVERY` rows, after the rows it covers: a run killed
midway emits again at most those rows, which the targets upsert on the key (nothing lost,
nothing doubled).
"""

from __future__ import annotations

import datetime
import typing as t
from functools import cached_property
from pathlib import Path

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_strava.archive_local_time import (
    FACTS_KEY,
    StartFacts,
    athlete_zone,
    local_start,
    read_start_facts,
)
from tap_strava.conform import conform_to_schema
from tap_strava.digest import DIGESTS_KEY, record_digest
from tap_strava.export_archive import (
    CUT_KEY,
    ArchiveError,
    ExportArchive,
    MemberError,
    read_activities,
    read_gear,
)
from tap_strava.schemas.export_archive import (
    EXPORT_ACTIVITIES_SCHEMA,
    EXPORT_GEAR_SCHEMA,
    EXPORT_TRACKS_SCHEMA,
)
from tap_strava.sdk_adapter import mark_state_changed, write_state_now
from tap_strava.track_decoding import (
    MAX_TRACK_BYTES,
    ZIP_ERRORS,
    TrackDecoder,
    TrackJob,
    default_workers,
)
from tap_strava.track_files import MAX_BYTES, TrackError, file_format

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_strava.shared_facts import SharedFacts

#: Rows between two checkpoints (the state holds every row's digest: writing it after
#: each row would print the whole map thousands of times).
CHECKPOINT_EVERY = 100
#: Bumped when the track readers change what they produce: every track is read again.
TRACK_READER_VERSION = "1"
FAILED = "!"  # digest prefix of a track that could not be read (no warning again)
#: State key of the tracks skipped: ``{"<activity id>": {"file", "fingerprint" (the zip's
#: CRC and size, or a file's size and mtime), "reason"}}``, until the file changes.
SKIPPED_KEY = "skipped"


class ArchiveSource:
    """The archive of this run, opened on first use (discovery never opens it)."""

    def __init__(
        self,
        path: str | Path,
        facts: SharedFacts,
        workers: int,
        athlete_timezone: str | None = None,
        athlete_ids: Iterable[int] = (),
    ) -> None:
        self.path = Path(path).expanduser()
        self.facts = facts
        self.workers = workers  # processes decoding the tracks (see track_decoding)
        self.athlete_timezone = athlete_timezone  # the last rule of the local start
        self.athlete_ids = tuple(int(i) for i in athlete_ids)  # whose archive it must be

    @cached_property
    def archive(self) -> ExportArchive:
        """The opened archive (an :class:`ArchiveError` line if it is not an export).

        Whose archive it is is settled here too, before any record: an archive of
        another athlete than ``athlete_ids`` names must stop the run with nothing emitted.
        """
        archive = ExportArchive(self.path)
        read_activities(archive)  # the header's one clear error comes before any record
        self.athlete_id = self._bound_athlete(archive)
        return archive

    @cached_property
    def athlete_id(self) -> int:
        """The athlete whose archive this is (profile.csv, the zip's name or athlete_ids)."""
        return self._bound_athlete(self.archive)

    def _bound_athlete(self, archive: ExportArchive) -> int:
        """The archive's athlete, checked against ``athlete_ids`` when the run names some.

        An orchestrator importing one athlete's archive under that athlete's state
        (``athlete_ids: [id]``) knows whose archive it is even when the archive does not
        say (no profile.csv, a zip not named ``export_<id>.zip``); when the archive names
        another athlete, importing it would file someone's history under the wrong
        athlete, so the run stops with one line instead.
        """
        if not self.athlete_ids:
            return archive.athlete_id()
        named = archive.named_athlete_id()
        if named is None and len(self.athlete_ids) == 1:
            return self.athlete_ids[0]
        if named is None:
            return archive.athlete_id()  # its one line: no id, and athlete_ids names several
        if named not in self.athlete_ids:
            wanted = ", ".join(str(i) for i in self.athlete_ids)
            msg = (
                f"export_archive_path {self.path} is athlete {named}'s archive (its "
                f"profile.csv or name), not athlete_ids' {wanted}: nothing imported; give "
                "each athlete's archive to that athlete's run"
            )
            raise ArchiveError(msg)
        return named


class ExportStream(Stream):
    """Base of the archive's streams: digests in the state, checkpoints, conformance."""

    replication_key = None
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # conformed here, unknowns kept
    STATE_MSG_FREQUENCY = 2**62  # the stream checkpoints itself (see CHECKPOINT_EVERY)

    def __init__(self, tap: Tap, source: ArchiveSource) -> None:
        super().__init__(tap)
        self.source = source
        self._pending = 0

    @property
    def digests(self) -> dict[str, str]:
        """The digest map in this stream's state (changed in place)."""
        state = self.get_context_state(None)
        digests = state.get(DIGESTS_KEY)
        if not isinstance(digests, dict):
            digests = state[DIGESTS_KEY] = {}
        return t.cast("dict[str, str]", digests)

    def remember(self, key: str, digest: str) -> None:
        """Record a row as emitted (after its RECORD went out); checkpoint now and then."""
        self.digests[key] = digest
        mark_state_changed(self)
        self._pending += 1
        if self._pending >= CHECKPOINT_EVERY:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write the state now (it covers every row emitted so far)."""
        self._pending = 0
        write_state_now(self)

    def conform(self, record: dict[str, t.Any], label: str) -> dict[str, t.Any]:
        """The record with its declared types (unknown keys in ``_unknown_fields``)."""
        record["athlete_id"] = self.source.athlete_id
        return conform_to_schema(record, self.schema, logger=self.logger, label=label)

    def emit_changed(
        self, rows: Iterable[dict[str, t.Any]], key: str
    ) -> Iterable[dict[str, t.Any]]:
        """The rows whose digest is new or changed; each remembered once it is out."""
        properties = list(self.schema["properties"])
        for row in rows:
            note = row.pop(CUT_KEY, None)
            record = self.conform(row, f"{self.name} {row.get(key)}")
            digest = record_digest(record, properties)[:12]
            row_key = str(record[key])
            if self.digests.get(row_key) == digest:
                continue
            if note:  # warned when the cut row is emitted: once, not on every re-import
                self.logger.warning(
                    "%s %s: %s; the rest of the row is loaded (docs/export-archive.md, Limits)",
                    self.name,
                    row_key[:80],
                    note,
                )
            yield record
            self.remember(row_key, digest)
        self.checkpoint()


class ExportActivitiesStream(ExportStream):
    """One row per ``activities.csv`` row (key ``id``, the API's activity id)."""

    name = "export_activities"
    primary_keys = ("id",)
    schema = EXPORT_ACTIVITIES_SCHEMA

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Every new or changed activity of the archive."""
        del context
        _, rows = read_activities(self.source.archive)
        yield from self.emit_changed(self._with_local_start(rows), "id")

    def _with_local_start(self, rows: Iterable[dict[str, t.Any]]) -> Iterator[dict[str, t.Any]]:
        """Each row with ``start_date_local`` and its rule (:mod:`~tap_strava.archive_local_time`).

        What a file tells is kept in the state with the file's identity, so that only a
        new or changed file is opened; entries of rows no longer in the archive go.
        """
        fallback = athlete_zone(self.source.athlete_timezone)
        state = self.get_context_state(None)
        known = state.get(FACTS_KEY)
        if not isinstance(known, dict):
            known = state[FACTS_KEY] = {}
        seen: set[str] = set()
        for row in rows:
            facts = self._facts(row, known, seen)
            local, rule = local_start(row.get("start_date"), facts, fallback)
            row["start_date_local"] = local
            row["start_date_local_rule"] = rule
            yield row
        for key in [key for key in known if key not in seen]:
            del known[key]

    def _facts(
        self, row: dict[str, t.Any], known: dict[str, t.Any], seen: set[str]
    ) -> StartFacts | None:
        """The facts of the row's file: remembered, else read (None without a file)."""
        filename = row.get("filename")
        if not filename or row.get("id") is None:
            return None
        key = str(row["id"])
        seen.add(key)
        archive = self.source.archive
        identity = record_digest(
            {"identity": f"{filename}|{archive.fingerprint(filename)}|{row.get('start_date')}"},
            ["identity"],
        )[:12]
        facts = StartFacts.from_state(known.get(key), identity)
        if facts is None:
            facts = self._read_facts(str(filename), _moment(row.get("start_date")))
            known[key] = facts.as_state(identity)
        return facts

    def _read_facts(self, filename: str, start: datetime.datetime | None) -> StartFacts:
        """What one file tells; nothing if it cannot be read (export_tracks says why)."""
        kind, _ = file_format(filename)
        if kind is None:
            return StartFacts()
        try:
            with self.source.archive.open_member(filename, cap=MAX_BYTES[kind]) as handle:
                return read_start_facts(filename, handle, start)
        except (MemberError, TrackError, *ZIP_ERRORS):
            return StartFacts()


class ExportGearStream(ExportStream):
    """The bikes and shoes of ``bikes.csv`` and ``shoes.csv`` (key ``kind:name``)."""

    name = "export_gear"
    primary_keys = ("id",)
    schema = EXPORT_GEAR_SCHEMA

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Every new or changed bike or shoe."""
        del context
        yield from self.emit_changed(read_gear(self.source.archive), "id")


class ExportTracksStream(ExportStream):
    """One row per activity with an original file: its series as arrays (key ``activity_id``).

    A file that is missing, corrupt, truncated or of an unknown type costs that activity's
    track only: one warning naming it (once: the failure is remembered until the file
    changes); its ``export_activities`` row arrives all the same.
    """

    name = "export_tracks"
    primary_keys = ("activity_id",)
    schema = EXPORT_TRACKS_SCHEMA

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Every track whose file is new or changed, decoded by the workers in order."""
        del context
        archive = self.source.archive
        _, rows = read_activities(archive)
        with_track: set[int] = set()
        jobs = self._jobs(archive, rows, with_track)
        with TrackDecoder(archive, self.source.workers) as decoder:
            for job, digest, result in decoder.results(jobs):
                if result.record is None:
                    self._skip(job, str(result.error), digest)
                    continue
                self.get_context_state(None).get(SKIPPED_KEY, {}).pop(str(job.activity_id), None)
                if result.thinned_step is not None:
                    self.logger.warning(
                        "export_tracks: activity %s: its track is above Meltano's limit for "
                        "one message (%d MiB): every %d-th sample is kept (point_step)",
                        job.activity_id,
                        MAX_TRACK_BYTES // 2**20,
                        result.thinned_step,
                    )
                yield self.conform(result.record, f"{self.name} {job.activity_id}")
                self.remember(str(job.activity_id), digest)
                with_track.add(job.activity_id)
        self.checkpoint()
        self.source.facts.add_archive_track_ids(self.source.athlete_id, with_track)

    def _skip(self, job: TrackJob, reason: str, digest: str) -> None:
        """One warning for a file without a track; remembered, so it is not repeated.

        The digest (marked :data:`FAILED`) makes the next run skip the file before opening
        it while its name, size and CRC stay the same; :data:`SKIPPED_KEY` keeps why, for
        whoever reads the state.
        """
        self.logger.warning(
            "export_tracks: activity %s: %s; its track is skipped (the activity row is loaded)",
            job.activity_id,
            reason,
        )
        skipped = self.get_context_state(None).setdefault(SKIPPED_KEY, {})
        skipped[str(job.activity_id)] = {
            "file": job.filename[:200],
            "fingerprint": self.source.archive.fingerprint(job.filename),
            "reason": reason[:300],
        }
        self.remember(str(job.activity_id), FAILED + digest)

    def _jobs(
        self, archive: ExportArchive, rows: Iterable[dict[str, t.Any]], with_track: set[int]
    ) -> Iterator[tuple[TrackJob, str]]:
        """The files to decode, with their identity digest; unchanged ones are skipped."""
        for row in rows:
            filename = row.get("filename")
            if not filename:
                continue  # a manual activity: no file
            activity_id = int(row["id"])
            key = str(activity_id)
            fingerprint = archive.fingerprint(filename)
            identity = f"{TRACK_READER_VERSION}|{filename}|{fingerprint}|{row.get('start_date')}"
            digest = record_digest({"identity": identity}, ["identity"])[:12]
            previous = self.digests.get(key, "")
            if previous.lstrip(FAILED) == digest:
                if not previous.startswith(FAILED):
                    with_track.add(activity_id)
                continue
            start_date = row.get("start_date")
            yield TrackJob(activity_id, filename, _moment(start_date), start_date), digest


def _moment(value: t.Any) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def export_streams(
    tap: Tap,
    path: str | Path,
    facts: SharedFacts,
    workers: int | None = None,
    athlete_timezone: str | None = None,
    athlete_ids: Iterable[int] = (),
) -> list[Stream]:
    """The streams of an archive import (activities first: a bad header stops there).

    ``workers``: processes decoding the tracks (None: one per CPU, see
    :func:`~tap_strava.track_decoding.default_workers`; 1: in the tap's process).
    ``athlete_timezone``: the zone of activities whose file tells no local time.
    ``athlete_ids``: whose archive it must be (the athlete when the archive names none).
    """
    workers = default_workers() if workers is None else workers
    source = ArchiveSource(path, facts, workers, athlete_timezone, athlete_ids)
    return [
        ExportActivitiesStream(tap, source),
        ExportTracksStream(tap, source),
        ExportGearStream(tap, source),
    ]
