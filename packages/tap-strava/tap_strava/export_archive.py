"""Strava's bulk export archive, read in place and bounded: ``activities.csv`` and friends.

Strava's "Download or delete your account" archive is a zip (or the folder it unpacks to)
with ``activities.csv`` (one row per activity, keyed by the API's activity id), the
original uploads under ``activities/``, ``profile.csv`` (the athlete id), ``bikes.csv`` and
``shoes.csv``. Everything here is untrusted input:

* nothing is ever extracted: members are read into memory through bounded readers, so no
  member name (``../../etc/cron.d/x``, ``/abs``) can write anywhere (zip-slip); a name that
  would leave the archive's root is refused before it is opened;
* decompression is bounded per member, in total and by compression ratio, counted on the
  bytes actually read, not on the sizes the central directory claims: a bomb in one track
  file costs that track (:class:`MemberBombError`), a bomb in a CSV or past the run's
  total ends the run with one line (:class:`ArchiveBombError`);
* the CSVs are parsed in chunks by a bounded tokenizer (:mod:`tap_strava.bounded_csv`):
  a field or row past its bound is cut, never read whole, and no row comes out of a cut;
* the CSV is mapped by header name *and occurrence* (five names appear twice), in English or
  German, never by position; columns Strava adds later are kept, never an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import re
import typing as t
import unicodedata
import zipfile
from pathlib import Path, PurePosixPath

from tap_strava.bounded_csv import BoundedReader, Row
from tap_strava.errors import StravaUserError
from tap_strava.float32 import unwiden

if t.TYPE_CHECKING:
    from collections.abc import Iterator

#: Largest member read (decompressed). Real originals are a few MB; activities.csv of
#: 10,000 activities about 10 MB.
MEMBER_MAX_BYTES = 512 * 2**20
#: Largest total read in one run (decompressed), over every member and inner gzip.
TOTAL_MAX_BYTES = 64 * 2**30
#: Largest decompressed/compressed ratio of a member or inner gzip above RATIO_FLOOR_BYTES:
#: FIT and GPX compress 3-20 times; a bomb a thousand times.
MAX_RATIO = 200
RATIO_FLOOR_BYTES = 2**20
#: Longest field kept from a CSV (characters; the rest is cut with a warning). Strava
#: publishes no limit; the longest texts an athlete types (a race report as description or
#: private note) are some tens of KB, and Media lists a few dozen file names: 1 Mi
#: characters is some 40 times the longest of them (docs/export-archive.md, Limits).
FIELD_MAX_CHARS = 2**20
#: Most characters kept of one CSV row over all its fields: its record stays far below
#: Meltano's 50 MiB per message even when every character is escaped as ``\\u0000``.
ROW_MAX_CHARS = 4 * 2**20
#: Most fields kept of one CSV row (activities.csv has about 100 columns in 2026).
ROW_MAX_FIELDS = 1024

REQUEST_HINT = (
    "request the archive on strava.com: Settings > My Account > Download or Delete Your "
    "Account > Request your archive, and set export_archive_path to the zip Strava mails "
    "(or the folder it unpacks to)"
)


class ArchiveError(StravaUserError):
    """The archive cannot be read as a Strava export: the run stops with this one line."""


class ArchiveBombError(ArchiveError):
    """A member decompresses beyond the bounds: a zip bomb or a damaged archive."""


class MemberError(Exception):
    """One member cannot be read (missing, unsafe name, corrupt): costs that file only."""


class MemberBombError(MemberError):
    """One track member passes its bounds (a bomb inside one member): that file only."""


@dataclasses.dataclass
class ReadBudget:
    """The decompressed bytes left for this run (shared by every read of one archive)."""

    left: int = TOTAL_MAX_BYTES

    def spend(self, count: int, what: str) -> None:
        """Take ``count`` bytes read from ``what``; past the total, the run stops."""
        self.left -= count
        if self.left < 0:
            msg = (
                f"reading {what} took the export archive past {TOTAL_MAX_BYTES // 2**30} GiB "
                "decompressed: a zip bomb or a damaged archive; download it again from Strava"
            )
            raise ArchiveBombError(msg)


class BoundedStream(io.RawIOBase):
    """A binary stream that raises :class:`ArchiveBombError` once it passes the bounds."""

    def __init__(
        self,
        handle: t.IO[bytes],
        what: str,
        budget: ReadBudget,
        compressed_size: int | None,
        *,
        cap: int = MEMBER_MAX_BYTES,
        error: type[Exception] = ArchiveBombError,
    ) -> None:
        super().__init__()
        self._handle = handle
        self._what = what
        self._budget = budget
        self._compressed = compressed_size
        self._cap = cap
        self._error = error  # raised for this member's own bounds (the run's: always a bomb)
        self._total = 0

    def readable(self) -> bool:
        """Always: a reader."""
        return True

    def readinto(self, buffer: t.Any) -> int:
        """Read into ``buffer``, counting against the bounds."""
        data = self._handle.read(min(len(buffer), 2**20))
        count = len(data)
        buffer[:count] = data
        self._total += count
        check_bounds(
            self._total,
            count,
            what=self._what,
            budget=self._budget,
            compressed_size=self._compressed,
            cap=self._cap,
            error=self._error,
        )
        return count


def check_bounds(
    total: int,
    count: int,
    *,
    what: str,
    budget: ReadBudget,
    compressed_size: int | None,
    cap: int,
    error: type[Exception] = ArchiveBombError,
) -> None:
    """Raise ``error`` past a bound of the member, :class:`ArchiveBombError` past the run's.

    ``total``: the member's bytes read so far; ``count``: the bytes of this read.
    """
    budget.spend(count, what)
    if total > cap:
        msg = (
            f"{what} decompresses to more than {cap // 2**20} MiB: a zip bomb or a "
            "damaged archive; download it again from Strava"
        )
        raise error(msg)
    if compressed_size and total > RATIO_FLOOR_BYTES and total > MAX_RATIO * compressed_size:
        msg = (
            f"{what} decompresses more than {MAX_RATIO} times its packed size "
            f"({compressed_size} bytes): a zip bomb; download the archive again from Strava"
        )
        raise error(msg)


def read_bounded(
    handle: t.IO[bytes],
    *,
    what: str,
    budget: ReadBudget,
    compressed_size: int | None,
    cap: int = MEMBER_MAX_BYTES,
) -> bytes:
    """All of ``handle``, or :class:`ArchiveBombError` once it passes a bound.

    The bounds are checked on the bytes as they come, chunk by chunk, so a member that
    lies about its size in the zip directory is stopped as early as an honest one.
    """
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = handle.read(2**20)
        if not chunk:
            break
        total += len(chunk)
        check_bounds(
            total, len(chunk), what=what, budget=budget, compressed_size=compressed_size, cap=cap
        )
        chunks.append(chunk)
    return b"".join(chunks)


def safe_member_name(name: str) -> str | None:
    """``name`` as a relative POSIX path inside the archive, or None if it would leave it.

    Refused: absolute paths, drive letters, ``..`` parts, NUL bytes. Backslashes are read
    as separators (archives made on Windows).
    """
    if not name or "\0" in name:
        return None
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        return None
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


class ExportArchive:
    """A Strava export, zip or folder, opened read-only (see the module docstring).

    ``root`` is the folder inside it that holds ``activities.csv``: the top level, or one
    folder below it (an archive unpacked and zipped again, ``Strava Export/...``).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()
        self.budget = ReadBudget()
        self._zip: zipfile.ZipFile | None = None
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self.root = ""
        if not self.path.exists():
            msg = f"export_archive_path {self.path} does not exist: {REQUEST_HINT}"
            raise ArchiveError(msg)
        if self.path.is_dir():
            self._find_root_in_folder()
        else:
            self._open_zip()

    # -- opening ---------------------------------------------------------------------------

    def _open_zip(self) -> None:
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            msg = (
                f"export_archive_path {self.path} is not a zip archive nor a folder ({exc}): "
                f"{REQUEST_HINT}"
            )
            raise ArchiveError(msg) from None
        for info in self._zip.infolist():
            name = safe_member_name(info.filename)
            if name is not None and not info.is_dir():
                self._infos.setdefault(name, info)
        candidates = sorted(
            (n for n in self._infos if PurePosixPath(n).name == "activities.csv"),
            key=lambda n: n.count("/"),
        )
        if not candidates or candidates[0].count("/") > 1:
            self.close()
            msg = (
                f"{self.path} is not a Strava export archive: it has no activities.csv at its "
                f"top level; {REQUEST_HINT}"
            )
            raise ArchiveError(msg)
        self.root = str(PurePosixPath(candidates[0]).parent).removeprefix(".")

    def _find_root_in_folder(self) -> None:
        if (self.path / "activities.csv").is_file():
            return
        inner = [p for p in self.path.iterdir() if (p / "activities.csv").is_file()]
        if len(inner) == 1:
            self.root = inner[0].name
            return
        msg = (
            f"{self.path} is not an unpacked Strava export: it has no activities.csv; "
            f"{REQUEST_HINT}"
        )
        raise ArchiveError(msg)

    def close(self) -> None:
        """Close the zip (a folder has nothing open)."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> ExportArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- members ---------------------------------------------------------------------------

    def _name(self, relative: str) -> str:
        safe = safe_member_name(relative)
        if safe is None:
            msg = f"{relative!r} would leave the archive (unsafe path); not read"
            raise MemberError(msg)
        return f"{self.root}/{safe}" if self.root else safe

    def has(self, relative: str) -> bool:
        """Whether the archive holds ``relative`` (a path from its root)."""
        try:
            name = self._name(relative)
        except MemberError:
            return False
        if self._zip is not None:
            return name in self._infos
        return self._folder_file(name) is not None

    def _folder_file(self, name: str) -> Path | None:
        path = self.path / name
        try:
            resolved = path.resolve(strict=True)
            inside = resolved.is_relative_to(self.path.resolve())
        except (OSError, RuntimeError):
            return None
        return resolved if inside and resolved.is_file() else None

    def fingerprint(self, relative: str) -> str | None:
        """A cheap identity of a member's content: zip CRC and size, or file size and mtime."""
        try:
            name = self._name(relative)
        except MemberError:
            return None
        if self._zip is not None:
            info = self._infos.get(name)
            return f"{info.CRC:08x}:{info.file_size}" if info else None
        path = self._folder_file(name)
        if path is None:
            return None
        stat = path.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def read(self, relative: str) -> bytes:
        """The bytes of one member (bounded), or :class:`MemberError` naming why not."""
        name = self._name(relative)
        what = f"{self.path.name}:{name}"
        if self._zip is not None:
            info = self._infos.get(name)
            if info is None:
                msg = f"{relative} is listed but not in the archive"
                raise MemberError(msg)
            if info.file_size > MEMBER_MAX_BYTES:
                msg = (
                    f"{what} claims {info.file_size} bytes decompressed, above "
                    f"{MEMBER_MAX_BYTES // 2**20} MiB: a zip bomb or a damaged archive; "
                    "download it again from Strava"
                )
                raise ArchiveBombError(msg)
            try:
                with self._zip.open(info) as handle:
                    return read_bounded(
                        handle, what=what, budget=self.budget, compressed_size=info.compress_size
                    )
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                ValueError,
                NotImplementedError,
                RuntimeError,  # an encrypted member
            ) as exc:
                msg = f"{relative} cannot be read from the zip ({exc})"
                raise MemberError(msg) from None
        path = self._folder_file(name)
        if path is None:
            msg = f"{relative} is listed but not in the folder (or leaves it)"
            raise MemberError(msg)
        try:
            with path.open("rb") as handle:
                return read_bounded(handle, what=what, budget=self.budget, compressed_size=None)
        except OSError as exc:
            msg = f"{relative} cannot be read ({exc.strerror})"
            raise MemberError(msg) from None

    @contextlib.contextmanager
    def _open_stream(
        self,
        relative: str,
        *,
        cap: int = MEMBER_MAX_BYTES,
        error: type[Exception] = ArchiveBombError,
    ) -> Iterator[BoundedStream]:
        """One member as a bounded binary stream (for the CSVs: read as they are parsed)."""
        name = self._name(relative)
        what = f"{self.path.name}:{name}"
        if self._zip is not None:
            info = self._infos.get(name)
            if info is None:
                msg = f"{relative} is not in the archive"
                raise MemberError(msg)
            try:
                handle = self._zip.open(info)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError) as exc:
                msg = f"{relative} cannot be read from the zip ({exc})"  # encrypted, say
                raise MemberError(msg) from None
            with handle:
                yield BoundedStream(
                    handle, what, self.budget, info.compress_size, cap=cap, error=error
                )
            return
        path = self._folder_file(name)
        if path is None:
            msg = f"{relative} is not in the folder (or leaves it)"
            raise MemberError(msg)
        try:
            stream = path.open("rb")
        except OSError as exc:
            msg = f"{relative} cannot be read ({exc.strerror})"
            raise MemberError(msg) from None
        with stream as handle:
            yield BoundedStream(handle, what, self.budget, None, cap=cap, error=error)

    def member_size(self, relative: str) -> tuple[int, int] | None:
        """(packed, unpacked) bytes of a member as the zip's directory claims them.

        A file in a folder: its size twice; None if it is not there.
        """
        try:
            name = self._name(relative)
        except MemberError:
            return None
        if self._zip is not None:
            info = self._infos.get(name)
            return (info.compress_size, info.file_size) if info else None
        path = self._folder_file(name)
        if path is None:
            return None
        size = path.stat().st_size
        return size, size

    @contextlib.contextmanager
    def open_member(self, relative: str, cap: int) -> Iterator[t.IO[bytes]]:
        """One track member as a bounded binary stream, read as it is decoded.

        Its own bounds (``cap``, the ratio) raise :class:`MemberBombError`: a bomb inside
        one member costs that file only; the run's total stays an :class:`ArchiveBombError`.
        A member whose directory entry claims more than ``cap`` is not opened.
        """
        self._name(relative)  # an unsafe name: its own MemberError, before any look-up
        sizes = self.member_size(relative)
        if sizes is None:
            msg = f"{relative} is listed but not in the archive"
            raise MemberError(msg)
        if sizes[1] > cap:
            msg = (
                f"{relative} is {sizes[1]} bytes ({sizes[1] // 2**20} MiB) unpacked, above the "
                f"bound of {cap // 2**20} MiB for a track file"
            )
            raise MemberBombError(msg)
        with self._open_stream(relative, cap=cap, error=MemberBombError) as raw:
            yield t.cast("t.IO[bytes]", io.BufferedReader(raw, buffer_size=2**16))

    def text_rows(self, relative: str) -> Iterator[Row]:
        """The CSV rows of one member, streamed (quoted newlines kept; ``#...`` lines skipped).

        A line Strava wrote as ``#error#...`` is skipped as a whole record, as
        geo-activity-playground does; a description line starting with ``#`` inside quotes
        is part of its record and kept (no activity id starts with ``#``). Memory stays
        flat and bounded: rows are parsed in chunks as the member is decompressed, and a
        field or row beyond :data:`FIELD_MAX_CHARS` / :data:`ROW_MAX_CHARS` /
        :data:`ROW_MAX_FIELDS` is cut (the row says so: :class:`~tap_strava.bounded_csv.Row`).
        """
        with self._open_stream(relative) as raw:
            text = io.TextIOWrapper(
                io.BufferedReader(raw), encoding="utf-8-sig", errors="replace", newline=""
            )
            reader = BoundedReader(
                text, field_max=FIELD_MAX_CHARS, row_max=ROW_MAX_CHARS, fields_max=ROW_MAX_FIELDS
            )
            try:
                for row in reader:
                    if not row or row[0].lstrip().startswith("#"):
                        continue
                    yield row
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                msg = f"{relative} cannot be read to its end ({exc})"
                raise MemberError(msg) from None

    def athlete_id(self) -> int:
        """The athlete's id: ``profile.csv``'s first id column, or the zip's name.

        Strava names the zip ``export_<athlete id>.zip``; the name is the fallback for an
        archive whose ``profile.csv`` is missing or unreadable.
        """
        named = self.named_athlete_id()
        if named is not None:
            return named
        msg = (
            f"{self.path} has no readable athlete id (profile.csv's Athlete ID, or a zip "
            f"named export_<athlete id>.zip): {REQUEST_HINT}"
        )
        raise ArchiveError(msg)

    def named_athlete_id(self) -> int | None:
        """The athlete id the archive itself names (profile.csv, else the zip's name), or None.

        None lets a caller that knows whose archive this is (``athlete_ids``) supply it.
        """
        with contextlib.suppress(MemberError):
            rows = self.text_rows("profile.csv")
            header: list[str] = next(rows, [])
            values: list[str] = next(rows, [])
            names = [normalize_header(h) for h in header]
            for wanted in ("Athlete ID", "Athleten-ID", "ID des Athleten"):
                if wanted in names and names.index(wanted) < len(values):
                    text = values[names.index(wanted)].strip()
                    if text.isdigit():
                        return int(text)
            for name, value in zip(names, values, strict=False):
                if name.lower().endswith("id") and value.strip().isdigit():
                    return int(value.strip())
        match = re.fullmatch(r"export_(\d+)(\.zip)?", self.path.name)
        if match:
            return int(match.group(1))
        return None


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252: Strava's CSVs and some GPX files."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def normalize_header(name: str) -> str:
    """A header cell as compared: NFC, BOM and surrounding blanks removed."""
    return unicodedata.normalize("NFC", name.replace("\ufeff", "")).strip()


# -- activities.csv -------------------------------------------------------------------------


def snake(name: str) -> str:
    """``Average Grade Adjusted Pace`` -> ``average_grade_adjusted_pace``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^0-9a-z]+", "_", ascii_name.lower()).strip("_") or "column"


def parse_number(text: str) -> float | None:
    """``3322.95``, ``9,44`` (German display columns) or ``1.234,5``; None if not a number."""
    value = text.strip()
    if not value:
        return None
    if "," in value:
        value = (
            value.replace(".", "").replace(",", ".") if "." in value else value.replace(",", ".")
        )
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


_DATE_FORMATS = (
    "%b %d, %Y, %I:%M:%S %p",  # English since mid-2019: May 29, 2022, 3:53:35 PM
    "%Y-%m-%d %H:%M:%S",  # English before mid-2019: 2018-09-12 15:02:23
    "%d.%m.%Y, %H:%M:%S",  # German: 09.12.2022, 15:24:49
    "%d.%m.%Y %H:%M:%S",
)


def parse_export_date(text: str) -> str | None:
    """An Activity Date as ISO 8601 UTC with a ``Z`` (the export's dates are UTC), or None."""
    value = " ".join(text.split())
    if not value:
        return None
    for pattern in _DATE_FORMATS:
        try:
            moment = datetime.datetime.strptime(value, pattern)
        except ValueError:
            continue
        return moment.replace(tzinfo=datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    return None


# (English header, occurrence) -> (column, kind). Kinds: int, number, text, bool, date,
# list ("|"-separated). The API's names where the meaning is the API's; snake_case of the
# header otherwise, with _display for the athlete's-unit duplicates.
ENGLISH_COLUMNS: dict[tuple[str, int], tuple[str, str]] = {
    ("Activity ID", 0): ("id", "int"),
    ("Activity Date", 0): ("start_date", "date"),
    ("Activity Name", 0): ("name", "text"),
    ("Activity Type", 0): ("activity_type", "text"),
    ("Activity Description", 0): ("description", "text"),
    ("Elapsed Time", 0): ("elapsed_time_display", "number"),
    ("Distance", 0): ("distance_display", "number"),
    ("Max Heart Rate", 0): ("max_heartrate_display", "number"),
    ("Relative Effort", 0): ("suffer_score", "number"),
    ("Commute", 0): ("commute", "bool"),
    ("Activity Private Note", 0): ("private_note", "text"),
    ("Activity Gear", 0): ("gear_name", "text"),
    ("Filename", 0): ("filename", "text"),
    ("Athlete Weight", 0): ("athlete_weight", "number"),
    ("Bike Weight", 0): ("bike_weight", "number"),
    ("Elapsed Time", 1): ("elapsed_time", "int"),
    ("Moving Time", 0): ("moving_time", "int"),
    ("Distance", 1): ("distance", "number"),
    ("Max Speed", 0): ("max_speed", "number"),
    ("Average Speed", 0): ("average_speed", "number"),
    ("Elevation Gain", 0): ("total_elevation_gain", "number"),
    ("Elevation Loss", 0): ("elevation_loss", "number"),
    ("Elevation Low", 0): ("elev_low", "number"),
    ("Elevation High", 0): ("elev_high", "number"),
    ("Max Grade", 0): ("max_grade", "number"),
    ("Average Grade", 0): ("average_grade", "number"),
    ("Average Positive Grade", 0): ("average_positive_grade", "number"),
    ("Average Negative Grade", 0): ("average_negative_grade", "number"),
    ("Max Cadence", 0): ("max_cadence", "number"),
    ("Average Cadence", 0): ("average_cadence", "number"),
    ("Max Heart Rate", 1): ("max_heartrate", "number"),
    ("Average Heart Rate", 0): ("average_heartrate", "number"),
    ("Max Watts", 0): ("max_watts", "number"),
    ("Average Watts", 0): ("average_watts", "number"),
    ("Calories", 0): ("calories", "number"),
    ("Max Temperature", 0): ("max_temp", "number"),
    ("Average Temperature", 0): ("average_temp", "number"),
    ("Relative Effort", 1): ("relative_effort", "number"),
    ("Total Work", 0): ("total_work", "number"),
    ("Number of Runs", 0): ("number_of_runs", "number"),
    ("Uphill Time", 0): ("uphill_time", "number"),
    ("Downhill Time", 0): ("downhill_time", "number"),
    ("Other Time", 0): ("other_time", "number"),
    ("Perceived Exertion", 0): ("perceived_exertion", "number"),
    ("Type", 0): ("type_code", "text"),
    ("Start Time", 0): ("start_time", "text"),
    ("Weighted Average Power", 0): ("weighted_average_watts", "number"),
    ("Power Count", 0): ("power_count", "number"),
    ("Prefer Perceived Exertion", 0): ("prefer_perceived_exertion", "bool"),
    ("Perceived Relative Effort", 0): ("perceived_relative_effort", "number"),
    ("Commute", 1): ("commute_flag", "bool"),
    ("Total Weight Lifted", 0): ("total_weight_lifted", "number"),
    ("From Upload", 0): ("from_upload", "bool"),
    ("Grade Adjusted Distance", 0): ("grade_adjusted_distance", "number"),
    ("Weather Observation Time", 0): ("weather_observation_time", "number"),
    ("Weather Condition", 0): ("weather_condition", "text"),
    ("Weather Temperature", 0): ("weather_temperature", "number"),
    ("Apparent Temperature", 0): ("apparent_temperature", "number"),
    ("Dewpoint", 0): ("dewpoint", "number"),
    ("Humidity", 0): ("humidity", "number"),
    ("Weather Pressure", 0): ("weather_pressure", "number"),
    ("Wind Speed", 0): ("wind_speed", "number"),
    ("Wind Gust", 0): ("wind_gust", "number"),
    ("Wind Bearing", 0): ("wind_bearing", "number"),
    ("Precipitation Intensity", 0): ("precipitation_intensity", "number"),
    ("Sunrise Time", 0): ("sunrise_time", "number"),
    ("Sunset Time", 0): ("sunset_time", "number"),
    ("Moon Phase", 0): ("moon_phase", "number"),
    ("Bike", 0): ("bike", "text"),
    ("Gear", 0): ("gear", "text"),
    ("Precipitation Probability", 0): ("precipitation_probability", "number"),
    ("Precipitation Type", 0): ("precipitation_type", "text"),
    ("Cloud Cover", 0): ("cloud_cover", "number"),
    ("Weather Visibility", 0): ("weather_visibility", "number"),
    ("UV Index", 0): ("uv_index", "number"),
    ("Weather Ozone", 0): ("weather_ozone", "number"),
    ("Jump Count", 0): ("jump_count", "number"),
    ("Total Grit", 0): ("total_grit", "number"),
    ("Average Flow", 0): ("average_flow", "number"),
    ("Flagged", 0): ("flagged", "bool"),
    ("Average Elapsed Speed", 0): ("average_elapsed_speed", "number"),
    ("Dirt Distance", 0): ("dirt_distance", "number"),
    ("Newly Explored Distance", 0): ("newly_explored_distance", "number"),
    ("Newly Explored Dirt Distance", 0): ("newly_explored_dirt_distance", "number"),
    ("Activity Count", 0): ("activity_count", "number"),
    ("Total Steps", 0): ("total_steps", "number"),
    ("Carbon Saved", 0): ("carbon_saved", "number"),
    ("Pool Length", 0): ("pool_length", "number"),
    ("Training Load", 0): ("training_load", "number"),
    ("Intensity", 0): ("intensity", "number"),
    ("Average Grade Adjusted Pace", 0): ("average_grade_adjusted_speed", "number"),
    ("Timer Time", 0): ("timer_time", "number"),
    ("Total Cycles", 0): ("total_cycles", "number"),
    ("Recovery", 0): ("recovery", "bool"),
    ("With Pet", 0): ("with_pet", "bool"),
    ("Competition", 0): ("competition", "bool"),
    ("Long Run", 0): ("long_run", "bool"),
    ("For a Cause", 0): ("for_a_cause", "bool"),
    ("With Kid", 0): ("with_kid", "bool"),
    ("Downhill Distance", 0): ("downhill_distance", "number"),
    ("Media", 0): ("media", "list"),
}

#: German headers (GAP's mapping for the verified ones: ID, date, name, file name, media;
#: the others from public importers). A German header not listed here is kept under its
#: own name in ``_unknown_fields``.
GERMAN_HEADERS: dict[str, str] = {
    "Aktivitäts-ID": "Activity ID",
    "Aktivitätsdatum": "Activity Date",
    "Name der Aktivität": "Activity Name",
    "Aktivitätsart": "Activity Type",
    "Aktivitätsbeschreibung": "Activity Description",
    "Verstrichene Zeit": "Elapsed Time",
    "Distanz": "Distance",
    "Max. Herzfrequenz": "Max Heart Rate",
    "Relativer Aufwand": "Relative Effort",
    "Pendeln": "Commute",
    "Private Notiz zur Aktivität": "Activity Private Note",
    "Aktivitätsausrüstung": "Activity Gear",
    "Dateiname": "Filename",
    "Bewegungszeit": "Moving Time",
    "Höchstgeschw.": "Max Speed",
    "Durchschnittliche Geschwindigkeit": "Average Speed",
    "Höhenzunahme": "Elevation Gain",
    "Höhenunterschied": "Elevation Loss",
    "Durchschnittliche Trittfrequenz": "Average Cadence",
    "Durchschnittliche Herzfrequenz": "Average Heart Rate",
    "Max. Watt": "Max Watts",
    "Durchschnittliche Watt": "Average Watts",
    "Kalorien": "Calories",
    "Durchschnittliche Temperatur": "Average Temperature",
    "Medien": "Media",
}

LANGUAGES = {"en": {name for name, _ in ENGLISH_COLUMNS}, "de": set(GERMAN_HEADERS)}
ESSENTIAL = ("Activity ID", "Activity Date")
ESSENTIAL_DE = {"Activity ID": "Aktivitäts-ID", "Activity Date": "Aktivitätsdatum"}

#: Activity Type (English display name) -> the API's sport_type, where they differ beyond
#: spaces and hyphens; German display names seen in exports.
SPORT_TYPES = {
    "Rock Climb": "RockClimbing",
    "Weight Training": "WeightTraining",
    "Radfahrt": "Ride",
    "Lauf": "Run",
    "Wanderung": "Hike",
    "Spaziergang": "Walk",
    "Schwimmen": "Swim",
    "Virtuelle Radfahrt": "VirtualRide",
    "Krafttraining": "WeightTraining",
}


def sport_type_of(activity_type: str | None, language: str) -> str | None:
    """The API's ``sport_type`` for an Activity Type value (None where it cannot be told).

    English values are the API's names with spaces (``Trail Run`` -> ``TrailRun``); other
    languages only for the values listed in :data:`SPORT_TYPES`.
    """
    if not activity_type:
        return None
    if activity_type in SPORT_TYPES:
        return SPORT_TYPES[activity_type]
    if language != "en":
        return None
    return re.sub(r"[^0-9A-Za-z]", "", activity_type) or None


@dataclasses.dataclass(frozen=True)
class Column:
    """One CSV column: its position this time, header, occurrence, output name and kind."""

    index: int
    header: str
    occurrence: int
    name: str | None  # None: an unknown column, kept in _unknown_fields under ``header``
    kind: str


@dataclasses.dataclass(frozen=True)
class HeaderMap:
    """The columns of one ``activities.csv``, by (English name, occurrence)."""

    language: str
    columns: tuple[Column, ...]

    @property
    def unknown(self) -> list[str]:
        """Headers this version does not know (kept in ``_unknown_fields``)."""
        return [c.header for c in self.columns if c.name is None]


def map_header(header: list[str], *, source: str = "activities.csv") -> HeaderMap:
    """Map a header row by name and occurrence, or one :class:`ArchiveError` line.

    The language is the one whose names the header has most of (English or German); a
    header with neither language's essential columns names what is missing.
    """
    cells = [normalize_header(h) for h in header]
    scores = {lang: sum(c in names for c in cells) for lang, names in LANGUAGES.items()}
    language = max(scores, key=lambda lang: scores[lang])
    english = [GERMAN_HEADERS.get(c, c) if language == "de" else c for c in cells]
    missing = [e for e in ESSENTIAL if e not in english]
    if missing:
        names = ", ".join(f"{m!r} ({ESSENTIAL_DE[m]!r} in German)" for m in missing)
        msg = (
            f"{source} lacks the column(s) {names}: not a Strava activities export in "
            f"English or German (its first columns: {', '.join(cells[:4])[:120]}); "
            "switch the Strava account's language to English and request the archive again"
        )
        raise ArchiveError(msg)
    seen: dict[str, int] = {}
    columns = []
    for index, (cell, name) in enumerate(zip(cells, english, strict=True)):
        occurrence = seen.get(name, 0)
        seen[name] = occurrence + 1
        known = ENGLISH_COLUMNS.get((name, occurrence))
        header_name = cell if occurrence == 0 else f"{cell} ({occurrence + 1})"
        columns.append(
            Column(
                index,
                header_name,
                occurrence,
                known[0] if known else None,
                known[1] if known else "",
            )
        )
    return HeaderMap(language, tuple(columns))


def _convert(text: str, kind: str) -> tuple[bool, t.Any]:
    """(ok, value) of one cell; an empty cell is null."""
    value = text.strip()
    if value == "":
        return True, None
    if kind == "text":
        return True, text
    if kind == "int":
        number = parse_number(value)
        return (number is not None), (round(number) if number is not None else None)
    if kind == "number":
        number = parse_number(value)  # widened float32s as the file meant them (float32.py)
        return (number is not None), (unwiden(number) if number is not None else None)
    if kind == "bool":
        lowered = value.lower()
        if lowered in {"true", "1", "1.0", "yes", "wahr", "ja"}:
            return True, True
        if lowered in {"false", "0", "0.0", "no", "falsch", "nein"}:
            return True, False
        return False, None
    if kind == "list":
        return True, [item.strip() for item in value.split("|") if item.strip()]
    if kind == "date":
        parsed = parse_export_date(value)
        return (parsed is not None), parsed
    return True, text


def activity_record(row: list[str], header: HeaderMap) -> dict[str, t.Any]:
    """One CSV row as a record with the API's names (see :data:`ENGLISH_COLUMNS`).

    A value that cannot be read as its column's kind (a German ``"9,44"`` reads; a text in
    a number column does not) is kept as text in ``_unknown_fields`` under its header,
    never lost; so is every column this version does not know.
    """
    record: dict[str, t.Any] = {}
    unknown: dict[str, t.Any] = {}
    for column in header.columns:
        text = row[column.index] if column.index < len(row) else ""
        if column.name is None:
            if text != "":
                unknown[column.header] = text
            continue
        ok, value = _convert(text, column.kind)
        if not ok:
            unknown[column.header] = text
        record[column.name] = value
    if "elapsed_time" not in record or record["elapsed_time"] is None:
        shown = record.get("elapsed_time_display")
        record["elapsed_time"] = round(shown) if isinstance(shown, float) else shown
    if record.get("distance") is None and not any(c.name == "distance" for c in header.columns):
        # Exports before mid-2019 have one Distance column, in metres.
        record["distance"] = record.get("distance_display")
    if record.get("commute") is None and record.get("commute_flag") is not None:
        record["commute"] = record["commute_flag"]
    record["sport_type"] = sport_type_of(record.get("activity_type"), header.language)
    record["filename"] = (record.get("filename") or "").strip() or None
    record["_unknown_fields"] = unknown or None
    return record


#: Key of a record whose row a bound cut: what it lost, in one phrase. Not a column: the
#: stream pops it to warn when it emits the record (see export_streams).
CUT_KEY = "_cut_note"


def cut_note(row: Row, headers: list[str]) -> str | None:
    """What a row lost to the bounds, in one phrase (None: nothing)."""
    if not row.cut and not row.dropped:
        return None
    names = [headers[i] if i < len(headers) else f"column {i + 1}" for i in row.cut]
    parts = []
    if names:
        parts.append(
            f"{', '.join(repr(n) for n in names[:5])} cut to the first "
            f"{FIELD_MAX_CHARS:,} characters (or {ROW_MAX_CHARS:,} for the whole row)"
        )
    if row.dropped:
        parts.append(f"{row.dropped} field(s) past the {ROW_MAX_FIELDS}th dropped")
    return "; ".join(parts)


def read_activities(archive: ExportArchive) -> tuple[HeaderMap, Iterator[dict[str, t.Any]]]:
    """The header map and the records of ``activities.csv`` (rows without an id skipped).

    Rows are parsed as the member is decompressed: memory does not grow with the number
    of activities nor with the length of a line; a row cut by a bound has :data:`CUT_KEY`.
    """
    try:
        rows = archive.text_rows("activities.csv")
        header_row = next(rows, None)
    except MemberError as exc:  # present (checked at opening) but damaged
        msg = f"{archive.path}: {exc}; download the archive again from Strava"
        raise ArchiveError(msg) from None
    if header_row is None:
        msg = f"{archive.path}: activities.csv is empty; {REQUEST_HINT}"
        raise ArchiveError(msg)
    header = map_header(header_row)

    headers = [c.header for c in header.columns]

    def records() -> Iterator[dict[str, t.Any]]:
        try:
            for row in rows:
                record = activity_record(row, header)
                note = cut_note(row, headers)
                if note:
                    record[CUT_KEY] = note
                if isinstance(record.get("id"), int):
                    yield record
        except MemberError as exc:  # damaged after its first rows: nothing more can be read
            msg = f"{archive.path}: {exc}; download the archive again from Strava"
            raise ArchiveError(msg) from None

    return header, records()


GEAR_FILES = {"bike": "bikes.csv", "shoe": "shoes.csv"}
GEAR_COLUMNS = {
    "Name": "name",
    "Brand": "brand_name",
    "Model": "model_name",
    "Default Sport Types": "default_sport_types",
}


def read_gear(archive: ExportArchive) -> Iterator[dict[str, t.Any]]:
    """The bikes and shoes of ``bikes.csv`` and ``shoes.csv`` (absent files: none).

    The export gives no gear id: the key is ``bike:<name>`` / ``shoe:<name>``, the name
    being what ``Activity Gear`` of activities.csv holds.
    """
    for kind, relative in GEAR_FILES.items():
        if not archive.has(relative):
            continue
        try:
            rows = archive.text_rows(relative)
            header = [normalize_header(h) for h in next(rows, [])]
            for row in rows:
                record: dict[str, t.Any] = {"kind": kind}
                note = cut_note(row, header)
                if note:
                    record[CUT_KEY] = note
                unknown: dict[str, t.Any] = {}
                for index, cell in enumerate(header):
                    value = row[index] if index < len(row) else ""
                    suffix = cell.split(" ", 1)[1] if " " in cell else cell
                    column = GEAR_COLUMNS.get(suffix)
                    if column:
                        record[column] = value or None
                    elif value:
                        unknown[cell] = value
                if not record.get("name"):
                    continue
                record["id"] = f"{kind}:{record['name']}"
                record["_unknown_fields"] = unknown or None
                yield record
        except MemberError:
            continue
