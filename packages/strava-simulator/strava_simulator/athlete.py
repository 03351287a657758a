"""One athlete of the simulated application: generated data, activity store, token chain.

Strava's quota belongs to the application, while data and tokens belong to each athlete
who authorized it (a coach's app may serve up to 10 on the standard tier). The simulator
therefore has one rate limiter and one or more :class:`SimulatedAthlete`: a refresh token
or an access token selects the athlete, and every API call answers with that athlete's
data only.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

from strava_simulator.api import StravaApi
from strava_simulator.data import generate
from strava_simulator.oauth import TokenAuthority
from strava_simulator.store import ActivityStore, apply_fields

JSONDict = dict[str, Any]
#: A watch whose clock is years ahead, and a GPS week rollover (1024 weeks back).
HOSTILE_FUTURE = "2031-03-14T07:00:00Z"
HOSTILE_ROLLOVER = "1999-08-22T06:30:00Z"
#: Strings no UTF-8 target can store, as Strava's JSON may carry them (``\u0000``, and a
#: lone surrogate ``\ud83d``: an emoji cut in half). On the newest ordinary activity: the
#: name and the description; on the oldest: the name, a value inside ``map`` and a key.
HOSTILE_NUL_NAME = "Lunch\x00run"
HOSTILE_NUL_DESCRIPTION = "Legs \x00heavy \ud83d, then fine"
HOSTILE_SURROGATE_NAME = "Tempo \ud83d run"
HOSTILE_NESTED_VALUE = "gra\x00vel"
HOSTILE_KEY = "note\udc00"


class SimulatedAthlete:
    """An athlete's data and token chain; edits are what the athlete does on Strava."""

    def __init__(
        self,
        *,
        seed: int,
        activity_count: int,
        now: float,
        clock: Callable[[], float],
        tokens: TokenAuthority,
        hostile: bool = False,
        taken_ids: set[int] | None = None,
    ) -> None:
        self.seed = seed
        self._clock = clock
        # ``taken_ids``: every activity id of the simulator's athletes (unique, as Strava's).
        self.dataset = generate(seed, activity_count, now, taken_ids)
        self.store = ActivityStore(self.dataset.activities, hostile=hostile)
        self.tokens = tokens
        self.api = StravaApi(self.store, self.tokens, self.dataset)
        self._edit_lock = threading.Lock()  # the generator's random state is not thread-safe
        if hostile:
            self._make_hostile()

    # -- Strava's worst days ---------------------------------------------------------------
    def _make_hostile(self) -> None:
        """Data shaped like real accounts at their worst (``hostile=True``).

        A watch whose clock is years ahead (an activity in 2031), a GPS week rollover (an
        activity dated 1999, uploaded now), keys no schema declares (top level, inside
        ``map`` and inside ``athlete``) on every activity, and an upload landing while a
        client pages through the list (so an item comes twice). The store adds unsorted
        answers to ``after`` and short pages that are not the last. Two activities carry
        strings no UTF-8 target can store (NUL, lone surrogates: ``HOSTILE_*`` above).
        """
        self.add_activity(start_date=HOSTILE_FUTURE, name="Wrong clock \u231a run")
        self.add_activity(start_date=HOSTILE_ROLLOVER, name="GPS rollover ride", sport_type="Ride")
        for activity in self.store.all():
            summary = copy.deepcopy(activity.summary)
            summary["brand_new_metric"] = round(activity.start_ts % 97 / 7, 3)
            summary["map"] = {**(summary.get("map") or {}), "surface_type": "gravel"}
            summary["athlete"] = {**summary["athlete"], "badge_type_id": 1}
            activity.summary = summary
        ordinary = [
            a
            for a in self.store.all()
            if a.summary["start_date"] not in (HOSTILE_FUTURE, HOSTILE_ROLLOVER)
        ]
        newest, oldest = ordinary[0], ordinary[-1]
        newest.summary["name"] = HOSTILE_NUL_NAME
        newest.extra["description"] = HOSTILE_NUL_DESCRIPTION
        oldest.summary["name"] = HOSTILE_SURROGATE_NAME
        oldest.summary["map"]["surface_type"] = HOSTILE_NESTED_VALUE
        oldest.summary[HOSTILE_KEY] = 1
        self.api.after_list_page = self._upload_during_listing
        self._uploads_during_listing = 2

    def _upload_during_listing(self) -> None:
        """After a list page: a new upload (twice per athlete), shifting later pages."""
        if self._uploads_during_listing <= 0:
            return
        self._uploads_during_listing -= 1
        self.add_activity(name="Uploaded while listing")

    # -- identity and tokens -------------------------------------------------------------
    @property
    def athlete_id(self) -> int:
        """The athlete's id."""
        return int(self.dataset.athlete["id"])

    @property
    def refresh_token(self) -> str | None:
        """The refresh token that works now (None after :meth:`revoke_tokens`)."""
        return self.tokens.refresh_token

    @property
    def scope(self) -> str:
        """The granted scope, comma-separated."""
        return ",".join(self.tokens.scope)

    def set_scope(self, scope: str) -> None:
        """Set the scope of current and future tokens (e.g. ``"read,activity:read"``)."""
        self.tokens.set_scope(scope)

    def revoke_tokens(self) -> None:
        """The athlete deauthorizes the app: every access and refresh token stops working."""
        self.tokens.revoke()

    def issue_refresh_token(self) -> str:
        """The athlete authorizes the app again: a new chain; the old refresh token dies."""
        return self.tokens.reauthorize(self._clock())

    # -- activities ----------------------------------------------------------------------
    @property
    def activities(self) -> list[JSONDict]:
        """Copies of every summary, newest first, as served to an ``activity:read_all`` token."""
        return self.store.summaries()

    def activity(self, activity_id: int) -> JSONDict:
        """A copy of one summary; KeyError if unknown."""
        found = self.store.get(int(activity_id))
        if found is None:
            raise KeyError(activity_id)
        return copy.deepcopy(found.summary)

    def add_activity(self, **fields: Any) -> JSONDict:
        """Upload a new activity now (new highest id); ``fields`` override generated values.

        ``start_date="2020-01-01T10:00:00Z"`` makes it a late upload of an old activity;
        ``sport_type``, ``name``, ``private``/``visibility``, ``manual``, ``timezone`` and any
        other summary field may be given. Returns a copy of the stored summary.
        """
        with self._edit_lock:
            return self._add_activity(fields)

    def _add_activity(self, fields: dict[str, Any]) -> JSONDict:
        factory = self.dataset.factory
        now = int(self._clock())
        sport_type = fields.get("sport_type") or fields.get("type")
        sport = factory.sport_for(str(sport_type)) if sport_type else factory.random_sport()
        provisional = now - 6 * 3600
        activity = factory.build(
            sport,
            provisional,
            self.dataset.home,
            manual=bool(fields.get("manual", False)),
            name=fields.get("name"),
        )
        if "start_date" not in fields and "start_date_local" not in fields:
            elapsed = int(activity.summary["elapsed_time"])
            start = now - elapsed - factory.rng.randint(60, 1800)
            fields = {
                "start_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                **fields,
            }
        factory.assign_id(activity)
        activity.upload_ts = now
        summary = copy.deepcopy(activity.summary)
        apply_fields(activity, summary, fields, self.dataset.home)
        activity.summary = summary
        self.store.add(activity)
        return copy.deepcopy(summary)

    def update_activity(self, activity_id: int, **fields: Any) -> JSONDict:
        """Edit an activity (name, sport_type, private/visibility, gear_id, start_date, ...)."""
        return self.store.update(int(activity_id), fields, self.dataset.home)

    def delete_activity(self, activity_id: int) -> None:
        """Delete an activity; KeyError if unknown."""
        self.store.delete(int(activity_id))
