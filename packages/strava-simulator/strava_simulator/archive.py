"""Bulk export archives ("Download your account") for a simulated athlete.

:func:`write_archive` writes what Strava sends an athlete who requests their archive:
``activities.csv`` (one row per activity, the 101-column header), the original upload of each
recorded activity under ``activities/`` (FIT, GPX or TCX, often gzipped), ``profile.csv``,
``bikes.csv``, ``shoes.csv`` and the other small CSVs, all at the top level of
``export_<athleteId>.zip`` (or of a folder). Every value agrees with the simulator's own API
for the same activity: the rows come from the same detailed activity ``/activities/{id}``
answers, the files from the same series ``/activities/{id}/streams`` answers. The returned
:class:`ArchiveManifest` says, per activity, which file it has, what series that file keeps,
how precisely, and what reading it should give (``ok``, ``manual``, ``missing``, ``corrupt``,
``no_times``), so a test can judge an importer without recomputing anything with it.

Strava's real quirks are on by default (``quirks=True``; ``../shared/docs/
strava-export-and-events.md`` Part 1): whitespace before ``<?xml`` in a TCX and a GPX, a file
listed but absent, a truncated FIT, a GPX without times, a multi-line description full of
quotes, commas, unicode and a backslash, and a ``#error#`` line in ``activities.csv``. Always
(quirks or not): a mix of formats, manual activities with an empty Filename, files named by
the upload id rather than the activity id, and one FIT file holding two activities.

The archive is streamed: one zip member at a time, one activity's track in memory at a time.
Writing can edit the simulator (the quirky description, ``track_seconds``) through the
athlete's public edit method, so that the API keeps answering what the archive says.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import random
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from strava_simulator import archive_csv, details
from strava_simulator.activity_factory import StoredActivity
from strava_simulator.athlete import SimulatedAthlete
from strava_simulator.simulator import StravaSimulator
from strava_simulator.track_files import (
    FORMAT_SERIES,
    PRECISION,
    Track,
    carried_series,
    fit_bytes,
    gpx_bytes,
    tcx_bytes,
    truncated,
)

JSONDict = dict[str, Any]
#: File suffixes by format, with how often each occurs among recorded activities.
SUFFIX_WEIGHTS: tuple[tuple[str, float], ...] = (
    (".fit.gz", 45),
    (".fit", 5),
    (".gpx", 15),
    (".gpx.gz", 10),
    (".tcx.gz", 15),
    (".tcx", 10),
)
#: Share of files named by the upload id instead of the activity id.
UPLOAD_ID_NAME_SHARE = 0.2
LEADING_WHITESPACE = b"\n     \n  "
QUIRKY_DESCRIPTION = (
    'Intervals, 6\u00d7800 m "hard", 90 s rest\n'
    "Z\u00fcrich \u2192 \u00dcetliberg \u2615\ufe0f, then home\n"
    "notes in C:\\Users\\run\\plan.txt"
)
ERROR_LINE = "#error#"
#: The API's streams stop being one point per second beyond this many seconds.
MAX_TRACK_SECONDS = details.MAX_STREAM_POINTS - 1
LANGUAGES = ("en", "de")


@dataclass(frozen=True)
class ArchiveEntry:
    """What the archive holds for one activity, and what reading it should give.

    ``outcome``: ``ok`` (the file decodes to the API's streams, within
    :attr:`ArchiveManifest.precision`), ``manual`` (no file, empty Filename), ``missing``
    (listed but absent from the archive), ``corrupt`` (truncated, does not decode),
    ``no_times`` (a GPX whose points have no ``<time>``: positions but no timing).
    ``series`` are the API stream names the file carries; ``index_in_file`` is the
    activity's session in a multi-activity FIT (0 otherwise); ``points`` is the number of
    track points of this activity in the file.
    """

    activity_id: int
    filename: str | None
    format: str | None
    gzipped: bool
    outcome: str
    series: tuple[str, ...] = ()
    points: int = 0
    index_in_file: int = 0
    leading_whitespace: bool = False
    named_by: str | None = None  # "activity_id" | "upload_id" | None
    start_date: str = ""


@dataclass
class ArchiveManifest:
    """The archive's contents, for tests (never part of the archive itself)."""

    path: Path
    athlete_id: int
    language: str
    zipped: bool
    entries: dict[int, ArchiveEntry] = field(default_factory=dict)
    #: Quirk name -> the activity id (or ids) it was applied to.
    quirks: dict[str, list[int]] = field(default_factory=dict)
    #: Format -> series -> largest absolute difference from the API's stream values.
    precision: dict[str, dict[str, float]] = field(default_factory=dict)
    format_series: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Lines of ``activities.csv`` that start with ``#`` (0-based physical line numbers).
    error_lines: list[int] = field(default_factory=list)
    track_seconds: int | None = None
    distance_display_unit: str = "km"
    members: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def by_filename(self, filename: str) -> list[ArchiveEntry]:
        """Entries listing ``filename`` (two for the multi-activity FIT file)."""
        return [e for e in self.entries.values() if e.filename == filename]

    def to_json(self) -> str:
        """The manifest as JSON (``strava-sim export-archive --manifest``)."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["entries"] = {str(k): v for k, v in data["entries"].items()}
        return json.dumps(data, indent=2, ensure_ascii=False)


@dataclass
class _Planned:
    """One file to write: the activities it holds and how to damage it."""

    filename: str
    fmt: str
    gzipped: bool
    activities: list[StoredActivity]
    with_times: bool = True
    leading_whitespace: bool = False
    corrupt: bool = False
    missing: bool = False


# -- choosing the athlete and the tracks ---------------------------------------------------
def _athlete(sim: StravaSimulator, athlete_id: int | None) -> SimulatedAthlete:
    if athlete_id is None:
        return sim.primary
    for athlete in sim.athletes:
        if athlete.athlete_id == athlete_id:
            return athlete
    known = ", ".join(str(a.athlete_id) for a in sim.athletes)
    msg = f"no simulated athlete has id {athlete_id} (known: {known})"
    raise ValueError(msg)


def set_track_seconds(athlete: SimulatedAthlete, seconds: int) -> list[int]:
    """Make every recorded activity last ``seconds``: one-second streams of that length.

    The API derives streams from ``elapsed_time`` (one point per second up to
    :data:`MAX_TRACK_SECONDS`), so this edits each non-manual activity's elapsed and moving
    time and average speed through the athlete's public edit method; the API and the archive
    then agree. Returns the ids edited.
    """
    if not 1 <= seconds <= MAX_TRACK_SECONDS:
        msg = (
            f"track_seconds must be between 1 and {MAX_TRACK_SECONDS} (the API's streams are "
            f"one point per second only up to that), got {seconds}"
        )
        raise ValueError(msg)
    edited = []
    for activity in athlete.store.all():
        s = activity.summary
        if s.get("manual"):
            continue
        elapsed = int(s["elapsed_time"])
        moving = max(1, round(seconds * int(s["moving_time"]) / max(elapsed, 1)))
        fields: JSONDict = {"elapsed_time": seconds, "moving_time": moving}
        distance = float(s["distance"])
        if distance > 0:
            fields["average_speed"] = round(distance / moving, 3)
            fields["max_speed"] = max(float(s.get("max_speed") or 0.0), fields["average_speed"])
        athlete.update_activity(activity.id, **fields)
        edited.append(activity.id)
    return edited


def track_of(activity: StoredActivity) -> Track:
    """The activity's track: exactly the series ``GET /activities/{id}/streams`` answers."""
    streams = details.streams(activity, list(details.STREAM_TYPES))
    data = {key: value["data"] for key, value in streams.items()}
    s = activity.summary
    return Track(
        start_ts=activity.start_ts,
        utc_offset=float(s.get("utc_offset") or 0.0),
        sport_type=str(s.get("sport_type") or "Workout"),
        name=str(s.get("name") or ""),
        time=data["time"],
        latlng=data.get("latlng"),
        altitude=data.get("altitude"),
        distance=data.get("distance"),
        heartrate=data.get("heartrate"),
        cadence=data.get("cadence"),
        watts=data.get("watts"),
        temp=data.get("temp"),
    )


def _has_gps(activity: StoredActivity) -> bool:
    return bool(activity.summary["map"].get("summary_polyline"))


# -- planning ------------------------------------------------------------------------------
class _Planner:
    """Decides, deterministically from the athlete's seed, each activity's file and quirks."""

    def __init__(self, athlete: SimulatedAthlete, activities: list[StoredActivity]) -> None:
        self.athlete = athlete
        self.activities = activities
        self.rng = random.Random(f"strava-sim-archive:{athlete.seed}")  # noqa: S311 - test data
        self.used_names: set[str] = set()
        self.files: dict[int, _Planned] = {}  # activity id -> its file
        self.quirks: dict[str, list[int]] = {}

    def recorded(self) -> list[StoredActivity]:
        return [a for a in self.activities if not a.summary.get("manual")]

    def _name(self, activity: StoredActivity, suffix: str, *, by_upload: bool) -> tuple[str, str]:
        upload_id = activity.summary.get("upload_id")
        options = [("upload_id", upload_id)] if by_upload and upload_id else []
        options.append(("activity_id", activity.id))
        for named_by, number in options:
            name = f"activities/{number}{suffix}"
            if name not in self.used_names:
                self.used_names.add(name)
                return name, named_by
        msg = f"two files would be named activities/{activity.id}{suffix}"
        raise RuntimeError(msg)

    def plan(self, quirks: bool) -> None:
        recorded = self.recorded()
        free = list(recorded)
        self._multi_activity_fit(free)
        if quirks:
            self._quirks(free)
        for activity in free:
            self._ordinary(activity)

    def _take(self, free: list[StoredActivity], *, gps: bool) -> StoredActivity | None:
        candidates = [a for a in free if _has_gps(a) or not gps]
        if not candidates:
            return None
        chosen = self.rng.choice(candidates)
        free.remove(chosen)
        return chosen

    def _add(self, planned: _Planned, quirk: str | None = None) -> None:
        for activity in planned.activities:
            self.files[activity.id] = planned
            if quirk is not None:
                self.quirks.setdefault(quirk, []).append(activity.id)

    def _multi_activity_fit(self, free: list[StoredActivity]) -> None:
        """Two activities, one after the other, recorded into one FIT file (two sessions)."""
        by_start = sorted(free, key=lambda a: (a.start_ts, a.tie))
        pairs = [
            (a, b)
            for a, b in itertools.pairwise(by_start)
            if a.start_ts + int(a.summary["elapsed_time"]) < b.start_ts
        ]
        if not pairs:
            return
        first, second = self.rng.choice(pairs)
        free.remove(first)
        free.remove(second)
        name, _ = self._name(first, ".fit.gz", by_upload=False)
        self._add(_Planned(name, "fit", True, [first, second]), "multi_activity_fit")

    def _quirks(self, free: list[StoredActivity]) -> None:
        specs: list[tuple[str, bool, str, dict[str, bool]]] = [
            ("tcx_leading_whitespace", False, ".tcx.gz", {"leading_whitespace": True}),
            ("gpx_leading_whitespace", True, ".gpx", {"leading_whitespace": True}),
            ("missing_file", False, ".fit.gz", {"missing": True}),
            ("corrupt_fit", False, ".fit", {"corrupt": True}),
            ("gpx_no_times", True, ".gpx.gz", {"with_times": False}),
        ]
        for quirk, gps, suffix, flags in specs:
            activity = self._take(free, gps=gps)
            if activity is None:
                continue
            name, _ = self._name(activity, suffix, by_upload=False)
            fmt = suffix.split(".")[1]
            planned = _Planned(name, fmt, suffix.endswith(".gz"), [activity])
            for flag, value in flags.items():
                setattr(planned, flag, value)
            self._add(planned, quirk)

    def _ordinary(self, activity: StoredActivity) -> None:
        rng = random.Random(f"strava-sim-archive:{self.athlete.seed}:{activity.id}")  # noqa: S311
        choices = [
            (suffix, weight)
            for suffix, weight in SUFFIX_WEIGHTS
            if _has_gps(activity) or not suffix.startswith(".gpx")
        ]
        suffix = rng.choices([c[0] for c in choices], weights=[c[1] for c in choices])[0]
        by_upload = rng.random() < UPLOAD_ID_NAME_SHARE
        name, _ = self._name(activity, suffix, by_upload=by_upload)
        self._add(_Planned(name, suffix.split(".")[1], suffix.endswith(".gz"), [activity]))


# -- output: a zip or a folder -------------------------------------------------------------
class _Sink:
    """Where members go: a zip written one member at a time, or a folder."""

    def __init__(self, path: Path, *, zipped: bool, date_time: tuple[int, ...]) -> None:
        self.path = path
        self.zipped = zipped
        self.date_time = date_time
        self.members: list[str] = []
        self._zip: zipfile.ZipFile | None = None
        if zipped:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._zip = zipfile.ZipFile(path, "w", allowZip64=True)
        else:
            path.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """A binary stream for member ``name`` (written when the block ends)."""
        self.members.append(name)
        if self._zip is not None:
            info = zipfile.ZipInfo(name, date_time=self.date_time)  # type: ignore[arg-type]
            info.compress_type = (
                zipfile.ZIP_STORED if name.endswith(".gz") else zipfile.ZIP_DEFLATED
            )
            info.external_attr = 0o644 << 16
            with self._zip.open(info, "w") as stream:
                yield stream
            return
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as stream:
            yield stream

    def write(self, name: str, data: bytes) -> None:
        with self.open(name) as stream:
            stream.write(data)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _output_path(path: Path, athlete_id: int, *, zipped: bool) -> Path:
    """A directory gets ``export_<id>.zip`` (or ``export_<id>/``) inside it; else ``path``."""
    if path.is_dir() and (zipped or any(path.iterdir())):
        return path / (f"export_{athlete_id}.zip" if zipped else f"export_{athlete_id}")
    return path


# -- the archive -------------------------------------------------------------------------
def write_archive(
    sim: StravaSimulator,
    path: str | Path,
    *,
    athlete_id: int | None = None,
    quirks: bool = True,
    language: str = "en",
    zipped: bool = True,
    track_seconds: int | None = None,
) -> ArchiveManifest:
    """Write the bulk export archive of one simulated athlete (the primary one by default).

    ``path``: the zip file (or, ``zipped=False``, the folder) to write; an existing folder
    receives ``export_<athleteId>.zip`` (or a non-empty one ``export_<athleteId>/``).
    ``language``: ``en`` or ``de`` (header, dates, decimal commas, activity types).
    ``track_seconds``: first make every recorded activity a one-second track of that many
    seconds, in the simulator too (see :func:`set_track_seconds`).
    """
    if language not in LANGUAGES:
        msg = f"language must be one of {', '.join(LANGUAGES)}, got {language!r}"
        raise ValueError(msg)
    started = time.monotonic()
    athlete = _athlete(sim, athlete_id)
    if track_seconds is not None:
        set_track_seconds(athlete, track_seconds)
    activities = sorted(athlete.store.all(), key=lambda a: a.id)
    planner = _Planner(athlete, activities)
    planner.plan(quirks)
    if quirks and activities:
        described = planner.rng.choice(activities)
        athlete.update_activity(described.id, description=QUIRKY_DESCRIPTION)
        planner.quirks["multiline_description"] = [described.id]
    newest = max((a.upload_ts for a in activities), default=int(sim.now()))
    date_time = tuple(time.gmtime(max(newest, 315_532_800))[:6])  # zip dates start in 1980
    target = _output_path(Path(path), athlete.athlete_id, zipped=zipped)
    manifest = ArchiveManifest(
        path=target,
        athlete_id=athlete.athlete_id,
        language=language,
        zipped=zipped,
        quirks=planner.quirks,
        precision={k: dict(v) for k, v in PRECISION.items()},
        format_series=dict(FORMAT_SERIES),
        track_seconds=track_seconds,
    )
    sink = _Sink(target, zipped=zipped, date_time=date_time)
    try:
        _write_activities_csv(sink, athlete, activities, planner, manifest, quirks=quirks)
        _write_small_csvs(sink, athlete)
        for activity in activities:
            planned = planner.files.get(activity.id)
            if planned is None:
                manifest.entries[activity.id] = ArchiveEntry(
                    activity.id,
                    None,
                    None,
                    False,
                    "manual",
                    start_date=str(activity.summary["start_date"]),
                )
            elif planned.activities[0] is activity:
                _write_file(sink, planned, manifest)
    finally:
        sink.close()
    manifest.members = sink.members
    manifest.seconds = round(time.monotonic() - started, 3)
    return manifest


def _write_activities_csv(
    sink: _Sink,
    athlete: SimulatedAthlete,
    activities: Sequence[StoredActivity],
    planner: _Planner,
    manifest: ArchiveManifest,
    *,
    quirks: bool,
) -> None:
    gear = athlete.dataset.gear
    profile = athlete.dataset.athlete
    error_after = len(activities) // 3 if quirks and activities else -1
    with sink.open("activities.csv") as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        out.write(archive_csv.csv_line(archive_csv.HEADERS[manifest.language]))
        line = 1
        for index, activity in enumerate(activities):
            planned = planner.files.get(activity.id)
            detail = details.detailed(activity, gear)
            streams = details.streams(activity, ["cadence", "temp", "altitude"])
            row = archive_csv.activity_row(
                detail,
                gear=gear,
                athlete=profile,
                filename=None if planned is None else planned.filename,
                language=manifest.language,
                streams={key: value["data"] for key, value in streams.items()},
            )
            text = archive_csv.csv_line(row)
            out.write(text)
            line += text.count("\n")
            if index == error_after:
                out.write(ERROR_LINE + "\n")
                manifest.error_lines.append(line)
                planner.quirks["error_line"] = [activity.id]
                line += 1
        out.flush()
        out.detach()


def _write_small_csvs(sink: _Sink, athlete: SimulatedAthlete) -> None:
    profile = athlete.dataset.athlete
    gear = athlete.dataset.gear
    line = archive_csv.csv_line
    sink.write(
        "profile.csv",
        (line(archive_csv.PROFILE_HEADER) + line(archive_csv.profile_row(profile))).encode(),
    )
    gear_files: tuple[tuple[str, tuple[str, ...], str], ...] = (
        ("bikes.csv", archive_csv.BIKES_HEADER, "b"),
        ("shoes.csv", archive_csv.SHOES_HEADER, "g"),
    )
    for name, header, kind in gear_files:
        rows = "".join(line(row) for row in archive_csv.gear_rows(gear, kind))
        sink.write(name, (line(header) + rows).encode())
    for name, first_line in archive_csv.SMALL_CSV_HEADERS.items():
        sink.write(name, (first_line + "\n").encode())


def _write_file(sink: _Sink, planned: _Planned, manifest: ArchiveManifest) -> None:
    """Encode one planned file (one track in memory at a time) and record its entries."""
    tracks = [track_of(activity) for activity in planned.activities]
    if planned.fmt == "fit":
        data = fit_bytes(tracks)
    elif planned.fmt == "gpx":
        data = gpx_bytes(tracks[0], with_times=planned.with_times)
    else:
        data = tcx_bytes(tracks[0])
    if planned.leading_whitespace:
        data = LEADING_WHITESPACE + data
    if planned.corrupt:
        data = truncated(data)
    if planned.gzipped:
        data = gzip.compress(data, compresslevel=6, mtime=planned.activities[0].upload_ts)
    if not planned.missing:
        sink.write(planned.filename, data)
    for index, (activity, track) in enumerate(zip(planned.activities, tracks, strict=True)):
        series: tuple[str, ...] = ()
        if planned.missing:
            outcome = "missing"
        elif planned.corrupt:
            outcome = "corrupt"
        elif not planned.with_times:
            outcome = "no_times"
            series = carried_series(track, planned.fmt, with_times=False)
        else:
            outcome, series = "ok", carried_series(track, planned.fmt)
        number = planned.filename.split("/")[-1].split(".")[0]
        if number == str(activity.id):
            named_by = "activity_id"
        elif number == str(activity.summary.get("upload_id")):
            named_by = "upload_id"
        else:
            named_by = "other_activity"  # the second activity of a multi-activity FIT
        manifest.entries[activity.id] = ArchiveEntry(
            activity_id=activity.id,
            filename=planned.filename,
            format=planned.fmt,
            gzipped=planned.gzipped,
            outcome=outcome,
            series=series,
            points=len(track.time),
            index_in_file=index,
            leading_whitespace=planned.leading_whitespace,
            named_by=named_by,
            start_date=str(activity.summary["start_date"]),
        )
