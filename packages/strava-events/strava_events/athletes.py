"""Whose events are accepted: the configured athlete ids and those of the tap's token store.

An event names its owner, and anyone who knows the callback URL can send one, so an event
of an athlete this project does not sync is answered (Strava must not retry it) but never
queued. The token store is read again at most every :data:`REFRESH_SECONDS`, so that an
athlete who authorizes the app later is accepted without a restart.

The token store is the tap's: the shared PostgreSQL store when
``TAP_STRAVA_SHARED_DATABASE_URL`` is set (a club: athletes who connected through any
machine's Connect page, or ``tap-strava-auth``, are there), else the file. From the shared
store only the athlete ids are read, in clear: the receiver never holds the token keys.
"""

from __future__ import annotations

import logging
import time
import typing as t

if t.TYPE_CHECKING:
    from pathlib import Path

    from tap_strava.shared_database import SharedDatabase

log = logging.getLogger("strava_events.athletes")
REFRESH_SECONDS = 30.0


class KnownAthletes:
    """The set of athlete ids whose events the receiver queues."""

    def __init__(
        self,
        configured: frozenset[int],
        token_store: Path | None,
        shared_database_url: str | None = None,
    ) -> None:
        self._configured = configured
        self._token_store = token_store
        self._shared: SharedDatabase | None = None
        if shared_database_url is not None:
            from tap_strava.shared_database import SharedDatabase

            self._shared = SharedDatabase(shared_database_url)
        self._from_store: frozenset[int] = frozenset()
        self._read_at = float("-inf")
        if self.reads_a_store:
            # Fails at start (one line) when the tap is not installed alongside.
            from tap_strava import token_store as _module  # noqa: F401

            self._refresh(time.monotonic())

    @property
    def reads_a_store(self) -> bool:
        """Whether athletes come from a token store (the shared one or the file)."""
        return self._shared is not None or self._token_store is not None

    def _stored_ids(self) -> frozenset[int]:
        """The athlete ids of the shared store, else of the file store."""
        if self._shared is not None:
            from tap_strava.token_store_postgres import stored_athlete_ids

            return frozenset(stored_athlete_ids(self._shared))
        from tap_strava.token_store import TokenStore

        assert self._token_store is not None
        store = TokenStore(self._token_store, client_id="", configured_refresh_token="")
        return frozenset(store.athlete_ids())

    def _refresh(self, now: float) -> None:
        from tap_strava.errors import StravaConfigError

        self._read_at = now
        try:
            self._from_store = self._stored_ids()
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
        if not self.reads_a_store:
            return False
        now = time.monotonic()
        if now - self._read_at > REFRESH_SECONDS:
            self._refresh(now)
        return athlete_id in self._from_store

    def __len__(self) -> int:
        """How many athletes are known now."""
        return len(self._configured | self._from_store)
