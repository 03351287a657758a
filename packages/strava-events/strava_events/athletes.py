"""Whose events are accepted: the configured athlete ids and those of the tap's token store.

An event names its owner, and anyone who knows the callback URL can send one, so an event
of an athlete this project does not sync is answered (Strava must not retry it) but never
queued. The token store is read again at most every :data:`REFRESH_SECONDS`, so that an
athlete who authorizes the app later is accepted without a restart.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger("strava_events.athletes")
REFRESH_SECONDS = 30.0


class KnownAthletes:
    """The set of athlete ids whose events the receiver queues."""

    def __init__(self, configured: frozenset[int], token_store: Path | None) -> None:
        self._configured = configured
        self._token_store = token_store
        self._from_store: frozenset[int] = frozenset()
        self._read_at = float("-inf")
        if token_store is not None:
            # Fails at start (one line) when the tap is not installed alongside.
            from tap_strava import token_store as _module  # noqa: F401

            self._refresh(time.monotonic())

    def _refresh(self, now: float) -> None:
        from tap_strava.errors import StravaConfigError
        from tap_strava.token_store import TokenStore

        self._read_at = now
        assert self._token_store is not None
        try:
            store = TokenStore(self._token_store, client_id="", configured_refresh_token="")
            self._from_store = frozenset(store.athlete_ids())
        except StravaConfigError as exc:
            # Keep the last good set: a token store being rewritten is no reason to drop
            # every event; the line says what to fix.
            log.error(
                "token store not read, keeping %d known athletes: %s", len(self._from_store), exc
            )

    def learn(self, athlete_id: int) -> None:
        """Accept this athlete's events from now on (one who connected through the page)."""
        self._from_store = self._from_store | {athlete_id}

    def __contains__(self, athlete_id: object) -> bool:
        """Whether events of this athlete are queued."""
        if athlete_id in self._configured:
            return True
        if self._token_store is None:
            return False
        now = time.monotonic()
        if now - self._read_at > REFRESH_SECONDS:
            self._refresh(now)
        return athlete_id in self._from_store

    def __len__(self) -> int:
        """How many athletes are known now."""
        return len(self._configured | self._from_store)
