"""The Strava API v3 resources (everything under ``/api/v3``), after auth and rate limits.

Each handler checks scopes and answers with Strava's bodies and statuses; the surrounding
concerns (rate limiting, faults, recording, the ``Date`` header) are in ``simulator.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from strava_simulator import details, errors
from strava_simulator.activity_factory import StoredActivity
from strava_simulator.data import Dataset
from strava_simulator.messages import Request, Response, json_response
from strava_simulator.oauth import TokenAuthority
from strava_simulator.stats import athlete_stats
from strava_simulator.store import ActivityStore

JSONDict = dict[str, Any]
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 200
#: An ``after``/``before`` above this is milliseconds, not seconds (year 5138 in seconds).
MILLISECONDS_THRESHOLD = 10**11
SUMMARY_ATHLETE_FIELDS = (
    "id",
    "username",
    "resource_state",
    "firstname",
    "lastname",
    "bio",
    "city",
    "state",
    "country",
    "sex",
    "premium",
    "summit",
    "created_at",
    "updated_at",
    "badge_type_id",
    "weight",
    "profile_medium",
    "profile",
    "friend",
    "follower",
)
Handler = Callable[[Request, "re.Match[str]", float], Response]
EDITABLE_FIELDS = (
    "name",
    "type",
    "sport_type",
    "description",
    "gear_id",
    "trainer",
    "commute",
    "hide_from_home",
)


class BadParameter(Exception):
    """A query parameter Strava would reject with a 400."""

    def __init__(self, field: str, code: str = "invalid") -> None:
        super().__init__(field)
        self.field = field
        self.code = code


def _int_or_default(value: str | None, default: int) -> int:
    """Parse an int leniently, as Rails' ``to_i`` does for page and per_page."""
    if value is None:
        return default
    match = re.match(r"\s*([+-]?\d+)", value)
    return int(match.group(1)) if match else 0


def _epoch(query: dict[str, str], name: str) -> int | None:
    """Parse ``after``/``before``: epoch seconds; milliseconds and non-numbers give a 400."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(float(raw))
    except ValueError:
        raise BadParameter(name) from None
    if value > MILLISECONDS_THRESHOLD:
        raise BadParameter(name, "future" if name == "after" else "invalid")
    return value


class StravaApi:
    """Routes ``/api/v3`` paths to handlers for one athlete."""

    def __init__(self, store: ActivityStore, tokens: TokenAuthority, dataset: Dataset) -> None:
        self.store = store
        self.tokens = tokens
        self.dataset = dataset
        # Called after each list page is cut (the hostile simulator uploads there).
        self.after_list_page: Callable[[], None] | None = None
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"^/athlete/?$"), self._athlete),
            ("GET", re.compile(r"^/athlete/activities/?$"), self._list_activities),
            ("GET", re.compile(r"^/athlete/zones/?$"), self._athlete_zones),
            ("GET", re.compile(r"^/athlete/clubs/?$"), self._clubs),
            ("GET", re.compile(r"^/athletes/([^/]+)/stats/?$"), self._stats),
            ("GET", re.compile(r"^/athletes/([^/]+)/routes/?$"), self._empty_list),
            ("GET", re.compile(r"^/segments/starred/?$"), self._empty_list),
            ("GET", re.compile(r"^/activities/([^/]+)/?$"), self._activity),
            ("PUT", re.compile(r"^/activities/([^/]+)/?$"), self._update_activity),
            ("GET", re.compile(r"^/activities/([^/]+)/laps/?$"), self._laps),
            ("GET", re.compile(r"^/activities/([^/]+)/zones/?$"), self._zones),
            ("GET", re.compile(r"^/activities/([^/]+)/streams/?$"), self._streams),
            ("GET", re.compile(r"^/activities/([^/]+)/streams/([^/]+)/?$"), self._streams),
            ("GET", re.compile(r"^/gear/([^/]+)/?$"), self._gear),
        ]

    @property
    def athlete_id(self) -> int:
        """The simulated athlete's id."""
        return int(self.dataset.athlete["id"])

    def handle(self, request: Request, path: str, now: float) -> Response:
        """Answer an authenticated API request; ``path`` is relative to ``/api/v3``."""
        method = "GET" if request.method == "HEAD" else request.method
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match and route_method == method:
                try:
                    return handler(request, match, now)
                except BadParameter as exc:
                    return json_response(
                        400, errors.bad_request("Application", exc.field, exc.code)
                    )
        return json_response(404, errors.unknown_path())

    # -- helpers -------------------------------------------------------------------------
    def _can_read_activities(self) -> bool:
        return self.tokens.has_scope("activity:read") or self.tokens.has_scope("activity:read_all")

    def _readable_activity(self, raw_id: str) -> StoredActivity | Response:
        """Find an activity the token may see, or the error Strava gives."""
        if not self._can_read_activities():
            return json_response(401, errors.missing_permission("activity:read_permission"))
        try:
            activity_id = int(raw_id)
        except ValueError:
            return json_response(404, errors.record_not_found())
        activity = self.store.get(activity_id)
        if activity is None or (
            activity.visibility == "only_me" and not self.tokens.has_scope("activity:read_all")
        ):
            return json_response(404, errors.record_not_found())
        return activity

    def _summary_athlete(self) -> JSONDict:
        athlete = self.dataset.athlete
        summary = {k: athlete[k] for k in SUMMARY_ATHLETE_FIELDS if k in athlete}
        summary["resource_state"] = 2
        return summary

    def summary_athlete(self) -> JSONDict:
        """The athlete as embedded in the authorization-code token answer."""
        summary = self._summary_athlete()
        summary.pop("bio", None)
        summary.pop("weight", None)
        return summary

    # -- handlers ------------------------------------------------------------------------
    def _athlete(self, _request: Request, _match: re.Match[str], _now: float) -> Response:
        if self.tokens.has_scope("profile:read_all"):
            return json_response(200, self.dataset.athlete)
        return json_response(200, self._summary_athlete())

    def _list_activities(self, request: Request, _match: re.Match[str], _now: float) -> Response:
        if not self._can_read_activities():
            return json_response(401, errors.missing_permission("activity:read_permission"))
        query = request.query
        after = _epoch(query, "after")
        before = _epoch(query, "before")
        page = max(1, _int_or_default(query.get("page"), 1))
        per_page = _int_or_default(query.get("per_page"), DEFAULT_PER_PAGE)
        if per_page <= 0:
            per_page = DEFAULT_PER_PAGE
        per_page = min(per_page, MAX_PER_PAGE)
        items = self.store.page(
            after=after,
            before=before,
            include_only_me=self.tokens.has_scope("activity:read_all"),
            page=page,
            per_page=per_page,
        )
        response = json_response(200, items)
        if self.after_list_page is not None and items:
            self.after_list_page()
        return response

    def _athlete_zones(self, _request: Request, _match: re.Match[str], _now: float) -> Response:
        if not self.tokens.has_scope("profile:read_all"):
            return json_response(401, errors.missing_permission("profile:read_permission"))
        return json_response(
            200,
            {
                "heart_rate": {
                    "custom_zones": False,
                    "zones": [
                        {"min": 0, "max": 116},
                        {"min": 116, "max": 145},
                        {"min": 145, "max": 159},
                        {"min": 159, "max": 174},
                        {"min": 174, "max": -1},
                    ],
                },
                "power": {
                    "zones": [
                        {"min": 0, "max": 120},
                        {"min": 121, "max": 165},
                        {"min": 166, "max": 198},
                        {"min": 199, "max": 231},
                        {"min": 232, "max": 264},
                        {"min": 265, "max": 330},
                        {"min": 331, "max": -1},
                    ]
                },
            },
        )

    def _paged(self, request: Request, items: list[JSONDict]) -> Response:
        page = max(1, _int_or_default(request.query.get("page"), 1))
        per_page = _int_or_default(request.query.get("per_page"), DEFAULT_PER_PAGE)
        per_page = min(per_page if per_page > 0 else DEFAULT_PER_PAGE, MAX_PER_PAGE)
        start = (page - 1) * per_page
        return json_response(200, items[start : start + per_page])

    def _clubs(self, request: Request, _match: re.Match[str], _now: float) -> Response:
        return self._paged(request, self.dataset.clubs)

    def _empty_list(self, request: Request, _match: re.Match[str], _now: float) -> Response:
        return self._paged(request, [])

    def _stats(self, _request: Request, match: re.Match[str], now: float) -> Response:
        if match.group(1) != str(self.athlete_id):
            # Only the authorized athlete's stats are available (403: not documented exactly).
            return json_response(403, errors.forbidden("Athlete", "id"))
        return json_response(200, athlete_stats(self.store.all(), now))

    def _activity(self, _request: Request, match: re.Match[str], _now: float) -> Response:
        found = self._readable_activity(match.group(1))
        if isinstance(found, Response):
            return found
        return json_response(200, details.detailed(found, self.dataset.gear))

    def _update_activity(self, request: Request, match: re.Match[str], _now: float) -> Response:
        if not self.tokens.has_scope("activity:write"):
            return json_response(401, errors.missing_permission("activity:write_permission"))
        found = self._readable_activity(match.group(1))
        if isinstance(found, Response):
            return found
        fields: dict[str, Any] = {k: v for k, v in request.query.items() if k in EDITABLE_FIELDS}
        for key in ("trainer", "commute", "hide_from_home"):
            if key in fields:
                fields[key] = str(fields[key]).lower() in ("1", "true")
        try:
            self.store.update(found.id, fields, self.dataset.home)
        except ValueError:
            return json_response(400, errors.bad_request("Activity", "body"))
        return json_response(200, details.detailed(found, self.dataset.gear))

    def _laps(self, _request: Request, match: re.Match[str], _now: float) -> Response:
        found = self._readable_activity(match.group(1))
        if isinstance(found, Response):
            return found
        return json_response(200, details.laps(found))

    def _zones(self, _request: Request, match: re.Match[str], _now: float) -> Response:
        found = self._readable_activity(match.group(1))
        if isinstance(found, Response):
            return found
        return json_response(200, details.zones(found))

    def _streams(self, request: Request, match: re.Match[str], _now: float) -> Response:
        found = self._readable_activity(match.group(1))
        if isinstance(found, Response):
            return found
        raw_keys = (
            match.group(2)
            if match.lastindex and match.lastindex >= 2
            else (request.query.get("keys", ""))
        )
        keys = [k.strip() for k in raw_keys.split(",") if k.strip()]
        result = details.streams(found, keys)
        if request.query.get("key_by_type", "").lower() == "true":
            return json_response(200, result)
        return json_response(200, [{"type": key, **value} for key, value in result.items()])

    def _gear(self, _request: Request, match: re.Match[str], _now: float) -> Response:
        gear = self.dataset.gear.get(match.group(1))
        if gear is None:
            return json_response(404, errors.record_not_found("Gear"))
        return json_response(200, gear)
