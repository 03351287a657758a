"""The subscription id that ``subscription create`` got, recorded for ``serve``.

Strava runs the validation GET while the create call waits, so the receiver runs before
the id exists. Recording the id in the receiver's state folder lets a running receiver
accept events from the first one on, with no restart and no event refused in between.
``STRAVA_EVENTS_SUBSCRIPTION_ID``, when set, wins over the file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from strava_events.private import private_folder

#: How often a running receiver looks at the file again.
RECHECK_SECONDS = 2.0


def record(path: Path, subscription_id: int) -> None:
    """Write the id atomically (a temporary file, fsynced, renamed), mode 0600."""
    private_folder(path.parent)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps({"subscription_id": subscription_id}).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    temporary.replace(path)


def forget(path: Path, subscription_id: int) -> None:
    """Remove the record if it names this (deleted) subscription."""
    if read(path) == subscription_id:
        path.unlink(missing_ok=True)


def read(path: Path) -> int | None:
    """The recorded id, or None (no file, or not one of ours)."""
    try:
        document = json.loads(path.read_bytes()[:1024].decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    value = document.get("subscription_id") if isinstance(document, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


class SubscriptionId:
    """The id the receiver checks events against: the setting, else the recorded one."""

    def __init__(self, configured: int | None, path: Path) -> None:
        self._configured = configured
        self._path = path
        self._recorded: int | None = None
        self._checked = float("-inf")

    def current(self) -> int | None:
        """The id now (the file is read at most every :data:`RECHECK_SECONDS`)."""
        if self._configured is not None:
            return self._configured
        now = time.monotonic()
        if now - self._checked >= RECHECK_SECONDS:
            self._checked = now
            self._recorded = read(self._path)
        return self._recorded
