"""Local store of Strava OAuth tokens, so that a rotated refresh token is never lost.

Strava rotates refresh tokens: once it hands out a new one, the old one is invalid at
once. A pipeline that keeps using the configured token therefore breaks after the first
rotation. This store keeps the newest refresh token (and the still-valid access token,
so that runs within its 6-hour life don't refresh at all) in a JSON file:

* mode 0600 in a 0700 folder, written atomically (temp file + rename);
* entries keyed by a fingerprint of ``client_id`` and the *configured* refresh token,
  so that configuring a new refresh token takes over from an older stored chain, and
  several athletes (several configured tokens) can share one file;
* guarded by an inter-process lock (``filelock``) that the authenticator holds for the
  whole read-refresh-write cycle, so two concurrent runs cannot race on a rotation.

Token values are never logged; only fingerprints are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import typing as t
from pathlib import Path

from filelock import FileLock, Timeout

from tap_strava.errors import StravaConfigError
from tap_strava.files import write_atomically

if t.TYPE_CHECKING:
    from collections.abc import Iterator

STORE_VERSION = 1
#: How long a run waits for another run's refresh before giving up (a refresh takes
#: seconds; only a hung process holds the lock this long). Read at each store's creation.
LOCK_TIMEOUT_SECONDS = 120.0


def default_token_store_path() -> Path:
    """Where tokens live when ``token_store_path`` is not set (XDG state folder)."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "tap-strava" / "tokens.json"


def fingerprint(*parts: str) -> str:
    """A short, non-reversible identifier for secrets (safe to log and to use as a key)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:16]


@dataclasses.dataclass
class StoredTokens:
    """The newest tokens of one authorization chain."""

    refresh_token: str
    access_token: str | None = None
    expires_at: int | None = None  # epoch seconds, as Strava sends it
    athlete_id: int | None = None
    updated_at: int | None = None
    # The scope Strava granted with this chain (from the authorize redirect), if known.
    # Refresh answers do not repeat it; a reconcile needs to know activity:read_all.
    scope: str | None = None


class TokenStore:
    """One chain of tokens (one client id + configured refresh token) in a shared file."""

    def __init__(
        self,
        path: Path,
        *,
        client_id: str,
        configured_refresh_token: str,
        lock_timeout: float | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.key = fingerprint(client_id, configured_refresh_token)
        timeout = LOCK_TIMEOUT_SECONDS if lock_timeout is None else lock_timeout
        self._lock = FileLock(str(self.path) + ".lock", timeout=timeout)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the inter-process lock (re-entrant within a process).

        The lock is an OS lock on ``<store>.lock`` (``flock``): the OS releases it when
        its holder ends, even by a crash, so a lock file left behind is harmless and
        removing it does not help. Only a live process can block a run.
        """
        self._ensure_folder()
        try:
            self._lock.acquire()
        except Timeout as exc:
            msg = (
                f"Another process has held the token store lock {self.path}.lock for "
                f"{self._lock.timeout:.0f} s (a tap-strava run still refreshing, or hung): "
                "let it finish or stop it, then run again; the store was not changed"
            )
            raise StravaConfigError(msg) from exc
        except OSError as exc:
            msg = (
                f"Cannot lock the token store: {self.path}.lock ({exc.strerror}) must be a "
                "file the tap can create and write; fix it or set token_store_path"
            )
            raise StravaConfigError(msg) from exc
        try:
            yield
        finally:
            self._lock.release()

    def load(self) -> StoredTokens | None:
        """The stored tokens of this chain, or None if there are none yet."""
        entry = self._read_all().get(self.key)
        if not isinstance(entry, dict) or not entry.get("refresh_token"):
            return None
        fields = {f.name for f in dataclasses.fields(StoredTokens)}
        return StoredTokens(**{k: v for k, v in entry.items() if k in fields})

    def save(self, tokens: StoredTokens) -> None:
        """Write this chain's tokens, keeping the other chains of the file."""
        entries = self._read_all()
        entries[self.key] = dataclasses.asdict(tokens)
        payload = json.dumps({"version": STORE_VERSION, "tokens": entries}, indent=2)
        self._ensure_folder()
        write_atomically(self.path, payload)

    def close(self) -> None:
        """Release what the store holds open (nothing for a file; see the shared database's)."""

    def forget_access_token(self) -> None:
        """Drop a cached access token that Strava no longer accepts."""
        tokens = self.load()
        if tokens and tokens.access_token:
            tokens.access_token = None
            tokens.expires_at = None
            self.save(tokens)

    def remember_athlete(self, athlete_id: int) -> None:
        """Record whose chain this is, once the profile says (hand-configured tokens too)."""
        with self.locked():
            tokens = self.load()
            if tokens is not None and tokens.athlete_id != athlete_id:
                tokens.athlete_id = athlete_id
                self.save(tokens)

    def athlete_ids(self) -> set[int]:
        """The athlete ids of every chain in the file (this one's and the others').

        A reconcile flags every row of the table that it did not read: an athlete whose
        tokens are here but who is no longer configured may still have rows there.
        """
        return {
            int(entry["athlete_id"])
            for entry in self._read_all().values()
            if isinstance(entry, dict) and isinstance(entry.get("athlete_id"), int)
        }

    def _ensure_folder(self) -> None:
        folder = self.path.parent
        if folder.exists() and not folder.is_dir():
            msg = (
                f"The token store folder {folder} is a file, not a folder: move that file "
                "away or set token_store_path to a file in a writable folder"
            )
            raise StravaConfigError(msg)
        try:
            if not folder.exists():
                folder.mkdir(parents=True, mode=0o700, exist_ok=True)
        except OSError as exc:
            msg = (
                f"Cannot create the token store folder {folder} ({exc.strerror}): "
                "set token_store_path to a writable location"
            )
            raise StravaConfigError(msg) from exc

    def _read_all(self) -> dict[str, t.Any]:
        """Every chain in the file; a file that is not a token store is an error.

        Never treat an unreadable or foreign file as empty: the next :meth:`save` would
        replace it, and with it the only valid refresh token (or someone's other file).
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            if isinstance(exc, NotADirectoryError):
                self._ensure_folder()  # its own line: the folder is a file
            msg = (
                f"Cannot read the token store {self.path} ({exc.strerror}): it must be a "
                "file readable and writable by the user running the tap; fix it or set "
                "token_store_path"
            )
            raise StravaConfigError(msg) from exc
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            msg = (
                f"The token store {self.path} is not valid JSON: move it away and run again "
                "(the configured refresh_token is then used, so it must still be valid)"
            )
            raise StravaConfigError(msg) from exc
        tokens = document.get("tokens") if isinstance(document, dict) else None
        if not isinstance(tokens, dict):
            msg = (
                f'{self.path} is not a tap-strava token store (no "tokens" object): set '
                "token_store_path to another file, or move this one away and run again"
            )
            raise StravaConfigError(msg)
        return dict(tokens)


def forget_athlete(path: Path, athlete_id: int) -> int:
    """Remove every chain of one athlete from the store file; the number removed.

    For an athlete who left (or revoked the app): their tokens are of no further use,
    and a reconcile refuses while they are here (see ``Athletes.check_reconcile_coverage``).
    """
    store = TokenStore(path, client_id="", configured_refresh_token="")
    with store.locked():
        entries = store._read_all()
        kept = {
            key: entry
            for key, entry in entries.items()
            if not (isinstance(entry, dict) and entry.get("athlete_id") == athlete_id)
        }
        if len(kept) != len(entries):
            payload = json.dumps({"version": STORE_VERSION, "tokens": kept}, indent=2)
            write_atomically(store.path, payload)
    return len(entries) - len(kept)
