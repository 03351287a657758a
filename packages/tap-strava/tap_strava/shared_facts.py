"""The shared facts file: a cache of Strava's answers and the quota, shared by pipelines.

Meltano keeps a state per state id (one per pipeline: extractor and loader), saves it only
when its target prints a STATE after committing, and loses it with a failed load. Whether
a record was *delivered* belongs there, to the pipeline that delivered it: the athlete,
stats and gear streams keep their delivery markers in their own partition state. What
every pipeline of one token store may share lives here, beside the token store:

* a **cache of Strava's answers**: the profile, the stats snapshot and each gear item,
  each with the time Strava answered (``fetched_at``, epoch seconds). A pipeline that has
  not delivered today's profile yet emits it from here without a request, so every
  destination gets every stream from its first run while reads stay at one per day
  across all pipelines of the token store. Strava's API agreement lets an app cache its
  data for at most 7 days: an entry older than that is never used and is dropped at the
  next write (``strava-forget-athlete`` purges an athlete's entry at once);
* the last quota reading (usage, limits, the server's time), so that a run that starts
  while the quota is known to be spent waits or stops before its first request instead
  of provoking a 429;
* the ids of the activities whose track an export archive import loaded
  (``archive_track_ids``): ``activity_streams`` skips them only in a pipeline that says
  its target holds the archive's tracks (``archive_tracks_in_target``).

One small JSON file (``facts.json``), mode 0600, changed under an inter-process lock and
written atomically. Losing it costs a few requests, never data.
"""

from __future__ import annotations

import contextlib
import json
import time
import typing as t
from pathlib import Path

from filelock import FileLock, Timeout

from tap_strava.errors import StravaConfigError
from tap_strava.files import write_atomically

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

FACTS_VERSION = 1
FACTS_FILE = "facts.json"
ARCHIVE_TRACKS_KEY = "archive_track_ids"
#: Strava's API agreement: its data may be cached for at most seven days.
CACHE_MAX_AGE = 7 * 86400
#: The cached answers of one athlete: ``{"fetched_at": epoch, "body": {...}}`` each
#: (gear: one such entry per gear id).
PROFILE, STATS, GEAR = "profile", "stats", "gear_cache"
#: Keys of the first facts files (delivery markers and bare fetch times): dropped.
_RETIRED = ("profile_on", "stats_on", "gear", "gear_ids")


class Cached(t.NamedTuple):
    """One answer of Strava: its body and when Strava gave it (epoch seconds)."""

    body: dict[str, t.Any]
    fetched_at: int


def _fresh(entry: t.Any, now: float) -> Cached | None:
    """A cache entry that is well formed and within Strava's 7-day rule, else None."""
    if not isinstance(entry, dict):
        return None
    body, fetched_at = entry.get("body"), entry.get("fetched_at")
    if not isinstance(body, dict) or not isinstance(fetched_at, int):
        return None
    if now - fetched_at >= CACHE_MAX_AGE:
        return None
    return Cached(body, fetched_at)


class SharedFacts:
    """Read and change the facts file (see the module docstring)."""

    def __init__(self, path: Path, *, lock_timeout: float = 60.0) -> None:
        self.path = Path(path).expanduser()
        self._lock = FileLock(str(self.path) + ".lock", timeout=lock_timeout)

    @classmethod
    def beside(cls, token_store_path: Path) -> SharedFacts:
        """The facts file in the token store's folder."""
        return cls(Path(token_store_path).expanduser().with_name(FACTS_FILE))

    def read(self) -> dict[str, t.Any]:
        """The whole document; an unreadable or foreign file reads as empty (a cache)."""
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(document, dict) or document.get("version") != FACTS_VERSION:
            return {}
        return document

    def athlete(self, athlete_id: int) -> dict[str, t.Any]:
        """The facts of one athlete (a copy; empty if none)."""
        athletes = self.read().get("athletes")
        entry = athletes.get(str(athlete_id)) if isinstance(athletes, dict) else None
        return dict(entry) if isinstance(entry, dict) else {}

    def quota(self) -> dict[str, t.Any]:
        """The last quota reading the app's runs saw (empty if none)."""
        quota = self.read().get("quota")
        return dict(quota) if isinstance(quota, dict) else {}

    def update(self, change: Callable[[dict[str, t.Any]], None]) -> None:
        """Apply ``change`` to the document under the lock and write it atomically.

        Every write also drops what Strava's 7-day caching rule no longer allows.
        """
        with self._locked():
            document = self.read()
            document["version"] = FACTS_VERSION
            change(document)
            _expire(document, time.time())
            write_atomically(self.path, json.dumps(document, indent=1, sort_keys=True))

    def _change_athlete(self, athlete_id: int, change: Callable[[dict[str, t.Any]], None]) -> None:
        def apply(document: dict[str, t.Any]) -> None:
            athletes = document.get("athletes")
            if not isinstance(athletes, dict):
                athletes = document["athletes"] = {}
            entry = athletes.get(str(athlete_id))
            if not isinstance(entry, dict):
                entry = athletes[str(athlete_id)] = {}
            change(entry)

        self.update(apply)

    # -- the cache of Strava's answers ------------------------------------------------------
    def cached(self, athlete_id: int, kind: str, *, now: float | None = None) -> Cached | None:
        """The athlete's cached profile or stats (``PROFILE``, ``STATS``), if still fresh."""
        return _fresh(self.athlete(athlete_id).get(kind), time.time() if now is None else now)

    def cache(self, athlete_id: int, kind: str, body: dict[str, t.Any], fetched_at: int) -> None:
        """Keep Strava's answer (profile or stats) and when it was given."""

        def change(entry: dict[str, t.Any]) -> None:
            entry[kind] = {"body": body, "fetched_at": int(fetched_at)}

        self._change_athlete(athlete_id, change)

    def cached_gear(self, athlete_id: int, *, now: float | None = None) -> dict[str, Cached]:
        """The athlete's cached gear items that are still fresh, by gear id."""
        moment = time.time() if now is None else now
        items = self.athlete(athlete_id).get(GEAR)
        found = {}
        for gear_id, entry in items.items() if isinstance(items, dict) else ():
            fresh = _fresh(entry, moment)
            if fresh is not None:
                found[str(gear_id)] = fresh
        return found

    def cache_gear(
        self, athlete_id: int, gear_id: str, body: dict[str, t.Any], fetched_at: int
    ) -> None:
        """Keep one gear item as Strava gave it."""

        def change(entry: dict[str, t.Any]) -> None:
            items = entry.get(GEAR)
            if not isinstance(items, dict):
                items = entry[GEAR] = {}
            items[str(gear_id)] = {"body": body, "fetched_at": int(fetched_at)}

        self._change_athlete(athlete_id, change)

    def forget_athlete(self, athlete_id: int) -> bool:
        """Remove everything kept about one athlete; whether there was anything."""
        if not self.athlete(athlete_id):
            return False

        def change(document: dict[str, t.Any]) -> None:
            athletes = document.get("athletes")
            if isinstance(athletes, dict):
                athletes.pop(str(athlete_id), None)

        self.update(change)
        return True

    # -- archive tracks -------------------------------------------------------------------
    def archive_track_ids(self, athlete_id: int) -> set[int]:
        """Ids of the athlete's activities whose track came from an export archive."""
        ids = self.athlete(athlete_id).get(ARCHIVE_TRACKS_KEY)
        return {int(i) for i in ids if isinstance(i, int)} if isinstance(ids, list) else set()

    def add_archive_track_ids(self, athlete_id: int, ids: set[int]) -> None:
        """Add to the athlete's archive track ids (one write; none if nothing is new)."""
        known = self.archive_track_ids(athlete_id)
        if ids <= known:
            return

        def change(entry: dict[str, t.Any]) -> None:
            entry[ARCHIVE_TRACKS_KEY] = sorted(known | ids)

        self._change_athlete(athlete_id, change)

    def save_quota(self, reading: dict[str, t.Any]) -> None:
        """Replace the last quota reading."""

        def change(document: dict[str, t.Any]) -> None:
            document["quota"] = reading

        self.update(change)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
            with self._lock:
                yield
        except Timeout as exc:
            msg = (
                f"Another tap-strava run has held {self.path}.lock for "
                f"{self._lock.timeout:.0f} s: wait for it to finish"
            )
            raise StravaConfigError(msg) from exc
        except OSError as exc:
            msg = (
                f"Cannot write the shared facts file {self.path} ({exc.strerror}): "
                "set token_store_path to a writable folder (the file lives beside it)"
            )
            raise StravaConfigError(msg) from exc


def _expire(document: dict[str, t.Any], now: float) -> None:
    """Drop cached answers older than Strava allows, and the first files' retired keys."""
    athletes = document.get("athletes")
    if not isinstance(athletes, dict):
        return
    for entry in athletes.values():
        if not isinstance(entry, dict):
            continue
        for key in _RETIRED:
            entry.pop(key, None)
        for kind in (PROFILE, STATS):
            if kind in entry and _fresh(entry[kind], now) is None:
                del entry[kind]
        items = entry.get(GEAR)
        if isinstance(items, dict):
            for gear_id in [g for g, item in items.items() if _fresh(item, now) is None]:
                del items[gear_id]
