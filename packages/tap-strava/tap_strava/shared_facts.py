"""The shared facts file: what every run needs that is not Meltano state.

Meltano keeps a state per state id (one per block and plugin), saves it only when a target
prints a STATE and loses it with a failed load. Some facts belong to the athlete or the
app rather than to a block, and every run of every block needs them:

* when the profile and the stats snapshot were last loaded (at most once per UTC day: the
  stats are a daily history already, the profile hardly changes), the gear ids of the
  profile and when each gear item was last fetched (again only after ``gear_max_age_days``);
* the last quota reading (usage, limits, the server's time), so that a run that starts while
  the quota is known to be spent waits or stops before its first request instead of
  provoking a 429;
* the ids of the activities whose track an export archive import loaded
  (``archive_track_ids``), so that ``activity_streams`` spends no request on them.

They live in one small JSON file beside the token store (``facts.json``), mode 0600,
changed under an inter-process lock and written atomically. Losing it costs a few
requests, never data: everything in it is a cache of what Strava says.
"""

from __future__ import annotations

import contextlib
import json
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
        """Apply ``change`` to the document under the lock and write it atomically."""
        with self._locked():
            document = self.read()
            document["version"] = FACTS_VERSION
            change(document)
            write_atomically(self.path, json.dumps(document, indent=1, sort_keys=True))

    def update_athlete(self, athlete_id: int, **facts: t.Any) -> None:
        """Merge ``facts`` into one athlete's entry."""

        def change(document: dict[str, t.Any]) -> None:
            athletes = document.get("athletes")
            if not isinstance(athletes, dict):
                athletes = document["athletes"] = {}
            entry = athletes.get(str(athlete_id))
            if not isinstance(entry, dict):
                entry = athletes[str(athlete_id)] = {}
            entry.update(facts)

        self.update(change)

    def archive_track_ids(self, athlete_id: int) -> set[int]:
        """Ids of the athlete's activities whose track came from an export archive."""
        ids = self.athlete(athlete_id).get(ARCHIVE_TRACKS_KEY)
        return {int(i) for i in ids if isinstance(i, int)} if isinstance(ids, list) else set()

    def add_archive_track_ids(self, athlete_id: int, ids: set[int]) -> None:
        """Add to the athlete's archive track ids (one write; none if nothing is new)."""
        known = self.archive_track_ids(athlete_id)
        if ids <= known:
            return
        self.update_athlete(athlete_id, **{ARCHIVE_TRACKS_KEY: sorted(known | ids)})

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
