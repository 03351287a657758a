"""The local spool: where an event goes when the store is slow or down.

The receiver answers Strava 200 only once an event is durable. When the store does not
commit it within the deadline, the event is written here instead: one small file per
event, written to a temporary name, fsynced, renamed, and the folder fsynced, so that a
crash right after the answer loses nothing. A background task drains the files into the
store in receive order (the file names sort by receive time) and deletes each only after
the store committed it. A crash between the two inserts it again, which the store's dedupe
key turns into nothing: every spooled event ends in the store exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import typing as t
from pathlib import Path

from strava_events.events import EventError, event_from_dict
from strava_events.private import private_folder
from strava_events.queue import StoredEvent

if t.TYPE_CHECKING:
    from strava_events.queue import EventStore

log = logging.getLogger("strava_events.spool")
SUFFIX = ".event.json"
#: Files drained per store transaction.
DRAIN_BATCH = 200
#: A spool file larger than this is no file of ours.
MAX_FILE_BYTES = 64 * 1024


class SpoolFull(Exception):
    """The spool holds its maximum number of events (or the disk refused the write)."""


class Spool:
    """One folder of pending event files (mode 0700)."""

    def __init__(self, folder: Path, max_events: int) -> None:
        self.folder = Path(folder)
        self.rejected = self.folder / "rejected"
        self.max_events = max_events
        self._lock = threading.Lock()
        private_folder(self.folder)
        self._count = len(self._names())

    def __len__(self) -> int:
        """Events waiting in the spool."""
        return self._count

    def _names(self) -> list[str]:
        return sorted(path.name for path in self.folder.iterdir() if path.name.endswith(SUFFIX))

    def _fsync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, stored: StoredEvent) -> None:
        """Write one event durably; raises :class:`SpoolFull` when it cannot."""
        with self._lock:
            if self._count >= self.max_events:
                msg = f"the spool holds {self._count} events, its maximum"
                raise SpoolFull(msg)
            self._count += 1
        stamp = int(stored.received_at * 1_000_000_000)
        name = f"{stamp:020d}-{stored.key}{SUFFIX}"
        final = self.folder / name
        temporary = self.folder / f".{name}.tmp"
        payload = json.dumps(
            {"received_at": stored.received_at, "event": stored.event.as_dict()},
            sort_keys=True,
        ).encode("utf-8")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            existed = final.exists()
            temporary.replace(final)
            self._fsync_folder()
        except OSError as exc:
            with self._lock:
                self._count -= 1
            with_context = f"cannot write to the spool {self.folder} ({exc.strerror})"
            raise SpoolFull(with_context) from exc
        if existed:  # the same event spooled twice in one nanosecond: one file
            with self._lock:
                self._count -= 1

    def _read(self, name: str) -> StoredEvent | None:
        path = self.folder / name
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                msg = "too large"
                raise EventError(msg)
            document = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(document, dict) or not isinstance(
                document.get("received_at"), (int, float)
            ):
                msg = "not a spooled event"
                raise EventError(msg)
            stored = StoredEvent(event_from_dict(document["event"]), float(document["received_at"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            # Not ours or damaged: set aside for a person, never retried in a loop.
            private_folder(self.rejected)
            path.replace(self.rejected / name)
            with self._lock:
                self._count -= 1
            log.error("spool file %s set aside in %s: %s", name, self.rejected, exc)
            return None
        return stored

    def drain(self, store: EventStore) -> int:
        """Move spooled events into the store, oldest first; how many files were drained.

        Raises the store's error when it is still down (the files stay).
        """
        drained = 0
        while True:
            names = self._names()[:DRAIN_BATCH]
            if not names:
                return drained
            batch: list[tuple[str, StoredEvent]] = []
            for name in names:
                stored = self._read(name)
                if stored is not None:
                    batch.append((name, stored))
            store.insert([stored for _name, stored in batch])
            for name, _stored in batch:
                (self.folder / name).unlink(missing_ok=True)
            self._fsync_folder()
            with self._lock:
                self._count = max(self._count - len(batch), 0)
            drained += len(batch)
            if len(names) < DRAIN_BATCH:
                return drained

    def oldest_age(self) -> float | None:
        """Seconds since the oldest spooled event was received, if any."""
        names = self._names()
        if not names:
            return None
        return max(time.time() - int(names[0].split("-", 1)[0]) / 1e9, 0.0)
