"""Control endpoints under ``/_sim/`` for a simulator running in another process.

They mirror the Python API (the demo and ``meltano run`` tests drive the simulator through
them). They are not Strava: they need no token, are never rate limited, never faulted and
never recorded in ``requests``.

=======  ==========================  ===============================================
method   path                        effect
=======  ==========================  ===============================================
GET      /_sim/info                  URLs, client credentials, current refresh token
GET      /_sim/activities            every summary, newest first
POST     /_sim/activities            JSON fields -> new upload (201)
GET      /_sim/activities/{id}       one summary
PATCH    /_sim/activities/{id}       JSON fields -> edit
DELETE   /_sim/activities/{id}       delete
POST     /_sim/revoke                the athlete deauthorizes the app
POST     /_sim/scope                 {"scope": "read,activity:read"}
POST     /_sim/authorization         {"approve": false} / {"scope": "read"}
POST     /_sim/consent               {"athlete_id": 123}: who consents (null: the primary)
POST     /_sim/app                   {"active": false}: 403 Application Status Inactive
POST     /_sim/access_token          issue an access token directly
POST     /_sim/refresh_token         the athlete authorizes again: new refresh token
GET      /_sim/faults                pending faults
POST     /_sim/faults                {"path_pattern", "kind", "count", "status", "delay", "size"}
DELETE   /_sim/faults                clear faults
GET      /_sim/requests              request records; DELETE clears them
GET      /_sim/token_grants          refresh grants (token fingerprints, accepted, rotated)
GET      /_sim/rate_usage            current usage
POST     /_sim/rate_limits/reset     forget usage
POST     /_sim/clock                 {"advance": seconds}
GET      /_sim/push                  push subscription, verify token, settings, counts
POST     /_sim/push/settings         {"retry_delay", "timeout", "loopback_only"}
GET      /_sim/push/events           events handed to the deliverer (with event_id)
GET      /_sim/push/deliveries       every attempt: event, status, latency, ok
DELETE   /_sim/push/deliveries       forget events, deliveries and validations
GET      /_sim/push/validations      validation GETs against callbacks, with reasons
POST     /_sim/push/forge            {"event": {...}, "template": true, "url", "attempts"}
POST     /_sim/push/duplicate        {"event_id": N} (default: the latest event)
POST     /_sim/push/wait             {"timeout": 30}: until the delivery queue is idle
=======  ==========================  ===============================================
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from strava_simulator.faults import DEFAULT_OVERSIZE
from strava_simulator.messages import Request, Response, json_response

if TYPE_CHECKING:
    from strava_simulator.simulator import StravaSimulator

JSONDict = dict[str, Any]
_ACTIVITY = re.compile(r"^/_sim/activities/(\d+)/?$")


class AdminError(Exception):
    """A control call that cannot be honoured (status and message for the answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _body(request: Request) -> JSONDict:
    if not request.body.strip():
        return {}
    try:
        data = json.loads(request.body)
    except ValueError as exc:
        raise AdminError(400, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AdminError(400, "body must be a JSON object")
    return data


def _activity_call(sim: StravaSimulator, request: Request, activity_id: int) -> Response:
    try:
        if request.method == "GET":
            return json_response(200, sim.activity(activity_id))
        if request.method == "PATCH":
            return json_response(200, sim.update_activity(activity_id, **_body(request)))
        if request.method == "DELETE":
            sim.delete_activity(activity_id)
            return json_response(200, {"deleted": activity_id})
    except KeyError:
        raise AdminError(404, f"no activity {activity_id}") from None
    raise AdminError(405, f"{request.method} not allowed here")


def _route(sim: StravaSimulator, request: Request) -> Response:
    path = request.path.rstrip("/")
    method = request.method
    match = _ACTIVITY.match(path)
    if match:
        return _activity_call(sim, request, int(match.group(1)))
    routes: dict[tuple[str, str], Any] = {
        ("GET", "/_sim/info"): lambda: (200, sim.info()),
        ("GET", "/_sim/activities"): lambda: (200, sim.activities),
        ("POST", "/_sim/activities"): lambda: (201, sim.add_activity(**_body(request))),
        ("POST", "/_sim/revoke"): lambda: (200, _revoke(sim)),
        ("POST", "/_sim/scope"): lambda: (200, _scope(sim, _body(request))),
        ("POST", "/_sim/authorization"): lambda: (200, _authorization(sim, _body(request))),
        ("POST", "/_sim/consent"): lambda: (200, _consent(sim, _body(request))),
        ("POST", "/_sim/app"): lambda: (200, _app(sim, _body(request))),
        ("POST", "/_sim/access_token"): lambda: (200, {"access_token": sim.issue_access_token()}),
        ("POST", "/_sim/refresh_token"): lambda: (
            200,
            {"refresh_token": sim.issue_refresh_token()},
        ),
        ("GET", "/_sim/faults"): lambda: (200, [f.as_dict() for f in sim.faults]),
        ("POST", "/_sim/faults"): lambda: (201, _fault(sim, _body(request))),
        ("DELETE", "/_sim/faults"): lambda: (200, _clear_faults(sim)),
        ("GET", "/_sim/requests"): lambda: (200, [r.as_dict() for r in sim.requests]),
        ("DELETE", "/_sim/requests"): lambda: (200, _clear_requests(sim)),
        ("GET", "/_sim/token_grants"): lambda: (200, [g.as_dict() for g in sim.token_grants]),
        ("GET", "/_sim/rate_usage"): lambda: (200, _usage(sim)),
        ("POST", "/_sim/rate_limits/reset"): lambda: (200, _reset_limits(sim)),
        ("POST", "/_sim/clock"): lambda: (200, _clock(sim, _body(request))),
        ("GET", "/_sim/push"): lambda: (200, sim.push.status()),
        ("POST", "/_sim/push/settings"): lambda: (200, _push_settings(sim, _body(request))),
        ("GET", "/_sim/push/events"): lambda: (200, [e.as_dict() for e in sim.push.events]),
        ("GET", "/_sim/push/deliveries"): lambda: (
            200,
            [d.as_dict() for d in sim.push.deliveries],
        ),
        ("DELETE", "/_sim/push/deliveries"): lambda: (200, _clear_push_log(sim)),
        ("GET", "/_sim/push/validations"): lambda: (
            200,
            [v.as_dict() for v in sim.push.validations],
        ),
        ("POST", "/_sim/push/forge"): lambda: (201, _forge(sim, _body(request))),
        ("POST", "/_sim/push/duplicate"): lambda: (201, _duplicate(sim, _body(request))),
        ("POST", "/_sim/push/wait"): lambda: (200, _push_wait(sim, _body(request))),
    }
    action = routes.get((method, path))
    if action is None:
        if any(p == path for _, p in routes):
            raise AdminError(405, f"{method} not allowed on {path}")
        raise AdminError(404, f"no control endpoint {path}")
    status, body = action()
    return json_response(status, body)


def _revoke(sim: StravaSimulator) -> JSONDict:
    sim.revoke_tokens()
    return {"revoked": True}


def _scope(sim: StravaSimulator, body: JSONDict) -> JSONDict:
    if not isinstance(body.get("scope"), str):
        raise AdminError(400, 'expected {"scope": "read,activity:read"}')
    sim.set_scope(body["scope"])
    return {"scope": sim.scope}


def _authorization(sim: StravaSimulator, body: JSONDict) -> JSONDict:
    scope = body.get("scope")
    sim.set_authorization(
        approve=bool(body.get("approve", True)), scope=str(scope) if scope is not None else None
    )
    return {"approve": bool(body.get("approve", True)), "scope": scope}


def _consent(sim: StravaSimulator, body: JSONDict) -> JSONDict:
    wanted = body.get("athlete_id")
    if wanted is None:
        sim.set_consenting_athlete(None)
        return {"athlete_id": sim.primary.athlete_id}
    athlete = next((a for a in sim.athletes if a.athlete_id == wanted), None)
    if athlete is None:
        raise AdminError(400, f"no athlete {wanted!r} in this simulator")
    sim.set_consenting_athlete(athlete)
    return {"athlete_id": athlete.athlete_id}


def _app(sim: StravaSimulator, body: JSONDict) -> JSONDict:
    if not isinstance(body.get("active"), bool):
        raise AdminError(400, 'expected {"active": false} or {"active": true}')
    sim.set_app_active(body["active"])
    return {"active": sim.app_active}


def _fault(sim: StravaSimulator, body: JSONDict) -> JSONDict:
    pattern = body.get("path_pattern", body.get("pattern"))
    if not isinstance(pattern, str) or not isinstance(body.get("kind"), str):
        raise AdminError(400, 'expected {"path_pattern": "...", "kind": "..."}')
    status = body.get("status")
    fault = sim.inject_fault(
        pattern,
        body["kind"],
        int(body.get("count", 1)),
        int(status) if status is not None else None,
        float(body.get("delay", 0.0)),
        int(body.get("size", DEFAULT_OVERSIZE)),
    )
    return fault.as_dict()


def _clear_faults(sim: StravaSimulator) -> JSONDict:
    sim.clear_faults()
    return {"cleared": True}


def _clear_requests(sim: StravaSimulator) -> JSONDict:
    sim.clear_requests()
    return {"cleared": True}


def _usage(sim: StravaSimulator) -> JSONDict:
    read_15, read_day, overall_15, overall_day = sim.rate_usage
    return {
        "read_15min": read_15,
        "read_daily": read_day,
        "overall_15min": overall_15,
        "overall_daily": overall_day,
    }


def _reset_limits(sim: StravaSimulator) -> JSONDict:
    sim.reset_rate_limits()
    return _usage(sim)


def _clock(sim: StravaSimulator, body: JSONDict) -> JSONDict:
    try:
        sim.advance_clock(float(body.get("advance", 0)))
    except (TypeError, ValueError):
        raise AdminError(400, 'expected {"advance": seconds}') from None
    return {"now": sim.now()}


def _push_settings(sim: StravaSimulator, body: JSONDict) -> JSONDict:
    try:
        if "retry_delay" in body:
            sim.push.retry_delay = float(body["retry_delay"])
        if "timeout" in body:
            sim.push.timeout = float(body["timeout"])
    except (TypeError, ValueError):
        raise AdminError(400, 'expected {"retry_delay": seconds >= 0, "timeout": s > 0}') from None
    if "loopback_only" in body:
        if not isinstance(body["loopback_only"], bool):
            raise AdminError(400, 'expected {"loopback_only": true} or false')
        sim.push.loopback_only = body["loopback_only"]
    return sim.push.status()


def _clear_push_log(sim: StravaSimulator) -> JSONDict:
    sim.push.clear_log()
    return {"cleared": True}


def _forge(sim: StravaSimulator, body: JSONDict) -> JSONDict:
    event = body.get("event", {})
    url = body.get("url")
    if not isinstance(event, dict) or (url is not None and not isinstance(url, str)):
        raise AdminError(400, 'expected {"event": {...fields}, "template": true, "url": "..."}')
    event_id = sim.push.forge_event(
        event,
        template=bool(body.get("template", True)),
        url=url,
        attempts=int(body.get("attempts", 1)),
    )
    return sim.push.deliverer.event(event_id).as_dict()


def _duplicate(sim: StravaSimulator, body: JSONDict) -> JSONDict:
    raw = body.get("event_id")
    try:
        event_id = sim.push.duplicate_event(None if raw is None else int(raw))
    except KeyError:
        missing = f"no push event {raw}" if raw is not None else "no push event yet"
        raise AdminError(404, missing) from None
    return sim.push.deliverer.event(event_id).as_dict()


def _push_wait(sim: StravaSimulator, body: JSONDict) -> JSONDict:
    try:
        timeout = min(float(body.get("timeout", 30.0)), 300.0)
    except (TypeError, ValueError):
        raise AdminError(400, 'expected {"timeout": seconds}') from None
    return {"idle": sim.push.wait_idle(timeout)}


def handle(sim: StravaSimulator, request: Request) -> Response:
    """Answer a ``/_sim/`` control call."""
    try:
        return _route(sim, request)
    except AdminError as exc:
        return json_response(exc.status, {"message": exc.message, "errors": []})
    except (TypeError, ValueError) as exc:
        return json_response(400, {"message": str(exc), "errors": []})
