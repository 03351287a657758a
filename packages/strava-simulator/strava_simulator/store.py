"""The athlete's activities and the listing rules of ``GET /athlete/activities``.

Strava's list endpoint has semantics that clients get wrong, so they live here, in one place:

* ``after`` and ``before`` are epoch seconds and both *exclusive*;
* without ``after`` the list is newest first; with ``after`` alone it is oldest first; with
  ``after`` and ``before`` it is newest first again;
* activities that start at the same second come in a stable order that is *not* the id order;
* a token without ``activity:read_all`` does not see "Only You" activities;
* pages are numbered from 1; there is no total and no Link header; the end is an empty page.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from strava_simulator import timeutil
from strava_simulator.activity_factory import StoredActivity
from strava_simulator.catalog import PLACES, SPORTS, Place

JSONDict = dict[str, Any]
#: Told of every change: (``create``/``update``/``delete``, summary before, summary after).
ChangeObserver = Callable[[str, "JSONDict | None", "JSONDict | None"], None]

#: Fields only the detailed representation (``GET /activities/{id}``) has.
DETAIL_ONLY_FIELDS = frozenset({"description", "calories", "perceived_exertion"})


class ActivityStore:
    """Thread-safe set of activities with Strava's list ordering."""

    def __init__(self, activities: Iterable[StoredActivity], *, hostile: bool = False) -> None:
        # Strava's worst days (see :meth:`page`): unsorted answers, short pages mid-list.
        self.hostile = hostile
        self._lock = threading.RLock()
        self._by_id: dict[int, StoredActivity] = {a.id: a for a in activities}
        self._asc: list[StoredActivity] | None = None
        self._asc_ts: list[int] = []
        #: Called with the lock held, in change order (the simulator queues push events);
        #: it gets the summaries themselves, which are replaced on edit, never mutated.
        self.observer: ChangeObserver | None = None

    def _notify(self, aspect: str, before: JSONDict | None, after: JSONDict | None) -> None:
        if self.observer is not None:
            self.observer(aspect, before, after)

    def _sorted(self) -> list[StoredActivity]:
        """Activities by (start, tie) ascending; rebuilt lazily after a change."""
        if self._asc is None:
            self._asc = sorted(self._by_id.values(), key=lambda a: (a.start_ts, a.tie))
            self._asc_ts = [a.start_ts for a in self._asc]
        return self._asc

    def _changed(self) -> None:
        self._asc = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)

    def get(self, activity_id: int) -> StoredActivity | None:
        """Return the stored activity (not a copy) or None."""
        with self._lock:
            return self._by_id.get(activity_id)

    def all(self) -> list[StoredActivity]:
        """All activities, newest first (the default list order)."""
        with self._lock:
            return list(reversed(self._sorted()))

    def summaries(self) -> list[JSONDict]:
        """Deep copies of every summary, newest first."""
        with self._lock:
            summaries = [a.summary for a in reversed(self._sorted())]
        # A JSON round trip copies much faster than deepcopy (the data are JSON anyway).
        copied: list[JSONDict] = json.loads(json.dumps(summaries))
        return copied

    def page(
        self,
        *,
        after: int | None,
        before: int | None,
        include_only_me: bool,
        page: int,
        per_page: int,
    ) -> list[JSONDict]:
        """One page of ``GET /athlete/activities`` (the summaries themselves, not copies).

        The caller serializes the result while still holding no reference past the request;
        summaries are replaced, never mutated in place, by :meth:`update`.
        """
        with self._lock:
            asc = self._sorted()
            lo = bisect.bisect_right(self._asc_ts, after) if after is not None else 0
            hi = bisect.bisect_left(self._asc_ts, before) if before is not None else len(asc)
            window = asc[lo:hi] if lo < hi else []
            if not include_only_me:
                window = [a for a in window if a.visibility != "only_me"]
            if after is None or before is not None:
                window.reverse()
            if not self.hostile:
                start = (page - 1) * per_page
                return [a.summary for a in window[start : start + per_page]]
            if after is not None:
                window.sort(key=_shuffled)
            start, size = _hostile_page(page, per_page)
            return [a.summary for a in window[start : start + size]]

    def add(self, activity: StoredActivity) -> None:
        """Store a new activity (its id must be new)."""
        with self._lock:
            if activity.id in self._by_id:
                msg = f"duplicate activity id {activity.id}"
                raise ValueError(msg)
            self._by_id[activity.id] = activity
            self._changed()
            self._notify("create", None, activity.summary)

    def update(self, activity_id: int, fields: JSONDict, home: Place) -> JSONDict:
        """Apply an edit and return a copy of the new summary; KeyError if unknown."""
        with self._lock:
            activity = self._by_id[activity_id]
            before = activity.summary
            new = copy.deepcopy(before)
            apply_fields(activity, new, fields, home)
            activity.summary = new
            self._changed()
            self._notify("update", before, new)
            return copy.deepcopy(new)

    def delete(self, activity_id: int) -> None:
        """Delete an activity; KeyError if unknown."""
        with self._lock:
            gone = self._by_id.pop(activity_id)
            self._changed()
            self._notify("delete", gone.summary, None)


def _shuffled(activity: StoredActivity) -> str:
    """A stable order that is neither by start nor by id (hostile answers to ``after``).

    Strava documents no order for queries with ``after``; a client that relies on the
    widely reported ascending order breaks the day it changes.
    """
    return hashlib.sha256(str(activity.id).encode()).hexdigest()


def _hostile_page(page: int, per_page: int) -> tuple[int, int]:
    """Offset and size of a page whose size varies: some pages are short but not the last.

    Strava filters a page after cutting it (hidden and processing uploads), so only an
    empty page proves the end. Every third page here is short; nothing is skipped.
    """

    def size(number: int) -> int:
        return max(1, per_page - 1 - number % 5) if number % 3 == 2 else per_page

    return sum(size(number) for number in range(1, page)), size(page)


def _place_for_label(label: str, current: Place, home: Place) -> Place:
    parsed = timeutil.parse_timezone_label(label)
    if parsed is None:
        msg = f"timezone must look like '(GMT+01:00) Europe/Amsterdam', got {label!r}"
        raise ValueError(msg)
    name, std = parsed
    for place in (current, home, *PLACES):
        if place.tz_name == name:
            return place
    return Place(name, std, "", "", "", current.lat, current.lng)


def _flag(value: Any) -> bool:
    """A boolean field given as a bool or as text (``"false"`` is False, not truthy)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def apply_fields(
    activity: StoredActivity, summary: JSONDict, fields: JSONDict, home: Place
) -> None:
    """Apply ``fields`` to ``summary`` (a copy of activity.summary) keeping Strava's couplings.

    ``start_date``/``start_date_local``/``utc_offset``/``timezone`` stay consistent, ``type``
    follows ``sport_type`` (and the reverse), ``private`` follows ``visibility`` (and the
    reverse). Detail-only fields go to ``activity.extra``. Other fields are set as given.
    """
    fields = dict(fields)
    fields.pop("id", None)
    for key in DETAIL_ONLY_FIELDS & fields.keys():
        activity.extra[key] = fields.pop(key)

    place = activity.place
    if "timezone" in fields:
        place = _place_for_label(str(fields.pop("timezone")), place, home)
        activity.place = place
    explicit_offset = fields.pop("utc_offset", None)
    if "start_date" in fields:
        activity.start_ts = timeutil.parse_iso(str(fields.pop("start_date")))
        fields.pop("start_date_local", None)
    elif "start_date_local" in fields:
        local = str(fields.pop("start_date_local"))
        wall = timeutil.parse_iso(local)  # read the false Z as the wall clock
        offset = (
            float(explicit_offset)
            if explicit_offset is not None
            else timeutil.utc_offset_at(place.tz_name, place.std_offset, wall)
        )
        activity.start_ts = int(wall - offset)
    offset = (
        float(explicit_offset)
        if explicit_offset is not None
        else timeutil.utc_offset_at(place.tz_name, place.std_offset, activity.start_ts)
    )
    summary["start_date"] = timeutil.iso_utc(activity.start_ts)
    summary["start_date_local"] = timeutil.iso_local(activity.start_ts, offset)
    summary["timezone"] = timeutil.timezone_label(place.tz_name, place.std_offset)
    summary["utc_offset"] = offset

    if "sport_type" in fields and "type" not in fields:
        sport = SPORTS.get(str(fields["sport_type"]))
        fields["type"] = sport.legacy_type if sport else "Workout"
    elif "type" in fields and "sport_type" not in fields:
        fields["sport_type"] = fields["type"]

    if "visibility" in fields:
        visibility = str(fields["visibility"])
        if visibility not in ("everyone", "followers_only", "only_me"):
            msg = f"visibility must be everyone, followers_only or only_me, got {visibility!r}"
            raise ValueError(msg)
        fields["private"] = visibility == "only_me"
    elif "private" in fields:
        fields["private"] = _flag(fields["private"])
        fields["visibility"] = "only_me" if fields["private"] else "everyone"

    for key, value in fields.items():
        summary[key] = value
