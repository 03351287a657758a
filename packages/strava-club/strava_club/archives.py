"""The club's archive folder: athletes' Strava export archives, one per athlete.

``STRAVA_CLUB_ARCHIVE_DIR`` holds ``<athlete id>.zip`` (Strava's ``export_<id>.zip``,
renamed) or ``<athlete id>/`` (the archive unpacked). The name binds the archive to the
athlete's partition; the tap checks it against the archive's own ``profile.csv``
(``athlete_ids`` in archive mode), so a mislabelled archive stops its run instead of
filing someone's history under the wrong athlete.

Each archive has a fingerprint: a zip's size and modification time, a folder's digest of
every file's path, size and modification time. The sensor's run key carries it, so an
archive is imported once and a new one (or one touched on purpose) again; no archive is
read to compute it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path

#: What an archive is named: the athlete id, as a zip or a folder.
ZIP_NAME = re.compile(r"([1-9][0-9]*)\.zip")
FOLDER_NAME = re.compile(r"[1-9][0-9]*")
EXPECTED = "<athlete id>.zip or a folder <athlete id>/"


@dataclasses.dataclass(frozen=True)
class DroppedArchive:
    """One athlete's archive in the folder."""

    athlete_key: str
    path: Path
    fingerprint: str
    changed_at: float  # the newest modification time of the archive (a folder's files)


@dataclasses.dataclass
class ArchiveScan:
    """The folder's archives, and one line for every entry that is not one."""

    found: list[DroppedArchive] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def zip_fingerprint(path: Path) -> tuple[str, float]:
    """A zip's size and modification time (nanoseconds): a new download differs."""
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}", stat.st_mtime


def folder_fingerprint(path: Path) -> tuple[str, float]:
    """A digest of every file's relative path, size and modification time under ``path``.

    A folder's own modification time says only that an entry was added or removed at its
    top; a changed ``activities.csv`` or track file changes this digest.
    """
    digest = hashlib.sha256()
    newest = path.stat().st_mtime
    for folder, subfolders, files in os.walk(path):
        subfolders.sort()
        for name in sorted(files):
            file = Path(folder, name)
            stat = file.stat()
            newest = max(newest, stat.st_mtime)
            line = f"{file.relative_to(path).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))
    return f"d{digest.hexdigest()[:24]}", newest


def scan_archives(folder: Path) -> ArchiveScan:
    """Every archive of the folder, by athlete; a line for each entry named otherwise.

    Names starting with a dot are passed over in silence: copy an archive in under such a
    name and rename it when it is complete (the rename is atomic).
    """
    scan = ArchiveScan()
    by_athlete: dict[str, list[DroppedArchive]] = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_file() and (match := ZIP_NAME.fullmatch(entry.name)):
                key, (fingerprint, changed) = match.group(1), zip_fingerprint(entry)
            elif entry.is_dir() and FOLDER_NAME.fullmatch(entry.name):
                key, (fingerprint, changed) = entry.name, folder_fingerprint(entry)
            else:
                scan.skipped.append(f"{entry.name}: not named {EXPECTED}, not imported")
                continue
        except OSError as exc:  # removed or unreadable meanwhile
            scan.skipped.append(f"{entry.name}: cannot be read ({exc.strerror}), not imported")
            continue
        by_athlete.setdefault(key, []).append(DroppedArchive(key, entry, fingerprint, changed))
    for key, archives in by_athlete.items():
        if len(archives) > 1:
            names = " and ".join(a.path.name for a in archives)
            scan.skipped.append(f"{names}: two archives for athlete {key}, not imported (keep one)")
            continue
        scan.found.append(archives[0])
    return scan


def archive_of(folder: Path, athlete_key: str) -> Path | None:
    """The one archive of this athlete in the folder, or None (none, or two of them)."""
    found = [p for p in (folder / f"{athlete_key}.zip",) if p.is_file()]
    found += [p for p in (folder / athlete_key,) if p.is_dir()]
    return found[0] if len(found) == 1 else None
