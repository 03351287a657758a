"""``StravaSimulator``: the object tests and the CLI use, and the request pipeline.

The pipeline for every request is, in Strava's order: injected fault -> (API only) rate-limit
counting -> 429 if over a limit -> access token check -> resource. Token endpoints and the
push subscription endpoints (app credentials, no athlete token) are outside the rate limits
and carry no rate-limit headers. Control calls under ``/_sim/`` are neither counted, nor
faulted, nor recorded.

Every change of an athlete's activities (whoever makes it: the Python API, ``/_sim/``, the
API's ``PUT``) and every revocation is also a push event for the app's subscription
(``push.py``): the activity stores report their changes to :meth:`StravaSimulator._on_change`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import gzip
import json
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode

from strava_simulator import admin, errors
from strava_simulator.athlete import SimulatedAthlete
from strava_simulator.faults import DEFAULT_OVERSIZE, Fault, FaultInjector
from strava_simulator.messages import (
    API_JSON,
    OAUTH_JSON,
    Request,
    Response,
    json_response,
)
from strava_simulator.oauth import RefreshGrant, TokenAuthority, parse_scope
from strava_simulator.push import PushHub
from strava_simulator.push_events import DEAUTHORIZED, activity_events
from strava_simulator.ratelimits import Limits, RateLimiter
from strava_simulator.records import REDACTED, RequestLog, RequestRecord
from strava_simulator.server import make_server

JSONDict = dict[str, Any]
API_PREFIX = "/api/v3"
#: Where the simulator serves the API as Strava will from 2027-06-01
#: (``https://www.api-v3.strava.com``): the same resources, tokens only in the header.
API_2027_PREFIX = "/2027"
ADMIN_PREFIX = "/_sim"
#: Query parameters whose values are never recorded nor logged.
SECRET_PARAMS = frozenset({"access_token", "refresh_token", "client_secret", "code"})
MALFORMED_BODY = b'{"resource_state":2,"id":,"name":"Morning Run"]'
HTML_PAGE = (
    "<html>\r\n<head><title>{status} Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>{status} Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class StravaSimulator:
    """A local, faithful Strava API v3 for one athlete and one application.

    See the package docstring for the behaviours; every constructor argument is also a knob
    for tests (short rate-limit windows, small quotas, token lifetime, a fixed clock).
    """

    def __init__(
        self,
        seed: int = 1,
        activity_count: int = 300,
        client_id: str = "12345",
        client_secret: str = "sim-client-secret",  # noqa: S107 - a fake app's fake secret
        access_token_lifetime: int = 21600,
        rotate_refresh_tokens: bool = True,
        read_limit_15min: int = 100,
        read_limit_daily: int = 1000,
        overall_limit_15min: int = 200,
        overall_limit_daily: int = 2000,
        window_seconds: float = 900,
        day_seconds: float = 86400,
        scope: str = "read,activity:read_all,profile:read_all",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        initial_refresh_token: str | None = None,
        now: float | None = None,
        clock: Callable[[], float] | None = None,
        request_log: Callable[[RequestRecord], None] | None = None,
        hostile: bool = False,
        push_retry_delay: float = 1.0,
    ) -> None:
        self._clock: Callable[[], float] = clock or time.time
        self._clock_offset = 0.0
        self.seed = seed
        self.host = host
        self.port = port
        self._request_log_cb = request_log
        self._token_settings: dict[str, Any] = {
            "client_id": str(client_id),
            "client_secret": client_secret,
            "access_token_lifetime": access_token_lifetime,
            "rotate_refresh_tokens": rotate_refresh_tokens,
        }
        self._generated_at = self.now() if now is None else now
        self.hostile = hostile
        #: The app's push subscription and its event delivery (``push.py``).
        self.push = PushHub(
            client_id=str(client_id),
            client_secret=client_secret,
            clock=self.now,
            retry_delay=push_retry_delay,
        )
        #: Every activity id of every athlete: Strava's ids are unique across athletes.
        self._activity_ids: set[int] = set()
        self.primary = self._new_athlete(seed, activity_count, scope, initial_refresh_token)
        self.push.default_owner_id = self.primary.athlete_id
        self._athletes = [self.primary]
        # The primary athlete's parts, under the names the single-athlete code uses.
        self._dataset = self.primary.dataset
        self._store = self.primary.store
        self._tokens = self.primary.tokens
        # Who is signed in to Strava in the browser that opens the consent page.
        self._consenting: SimulatedAthlete | None = None
        self._api = self.primary.api
        self._limiter = RateLimiter(
            Limits(
                read_15min=read_limit_15min,
                read_daily=read_limit_daily,
                overall_15min=overall_limit_15min,
                overall_daily=overall_limit_daily,
                window_seconds=window_seconds,
                day_seconds=day_seconds,
            )
        )
        self._faults = FaultInjector()
        self._requests = RequestLog()
        self._app_active = True  # False: every token and API call gets 403 (no subscription)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def _new_athlete(
        self, seed: int, activity_count: int, scope: str, initial_refresh_token: str | None
    ) -> SimulatedAthlete:
        tokens = TokenAuthority(
            **self._token_settings,
            scope=scope,
            seed=seed,
            initial_refresh_token=initial_refresh_token,
        )
        athlete = SimulatedAthlete(
            seed=seed,
            activity_count=activity_count,
            now=self._generated_at,
            clock=self.now,
            tokens=tokens,
            hostile=self.hostile,
            taken_ids=self._activity_ids,
        )
        athlete.store.observer = functools.partial(self._on_change, athlete)
        return athlete

    # -- push events ---------------------------------------------------------------------
    def _on_change(
        self,
        athlete: SimulatedAthlete,
        aspect: str,
        before: JSONDict | None,
        after: JSONDict | None,
    ) -> None:
        """An athlete's activity changed: queue the events the app's subscription gets.

        Called by the store with its lock held, so it only queues (never waits for a
        callback). A deauthorized athlete's changes reach the app no more.
        """
        if self.push.subscription is None or athlete.refresh_token is None:
            return
        summary = after if after is not None else before
        if summary is None:
            return
        sees_private = athlete.tokens.has_scope("activity:read_all")
        for aspect_type, updates in activity_events(
            aspect, before, after, sees_private=sees_private
        ):
            self.push.emit(
                object_type="activity",
                object_id=int(summary["id"]),
                aspect_type=aspect_type,
                updates=updates,
                owner_id=athlete.athlete_id,
            )

    def _deauthorized(self, athlete: SimulatedAthlete) -> None:
        """The athlete revoked the app: Strava pushes ``{"authorized": "false"}``."""
        self.push.emit(
            object_type="athlete",
            object_id=athlete.athlete_id,
            aspect_type="update",
            updates=dict(DEAUTHORIZED),
            owner_id=athlete.athlete_id,
        )

    def add_athlete(
        self,
        seed: int,
        activity_count: int = 100,
        scope: str = "read,activity:read_all,profile:read_all",
    ) -> SimulatedAthlete:
        """Another athlete authorizes the same app: own data and tokens, shared quota.

        The seed must differ from the other athletes' (it picks ids, data and tokens).
        """
        if any(athlete.seed == seed for athlete in self._athletes):
            msg = f"an athlete with seed {seed} exists already"
            raise ValueError(msg)
        athlete = self._new_athlete(seed, activity_count, scope, None)
        self._athletes.append(athlete)
        return athlete

    @property
    def athletes(self) -> list[SimulatedAthlete]:
        """Every athlete of the app, the primary one first."""
        return list(self._athletes)

    def _athlete_for_access(self, token: str | None, now: float) -> SimulatedAthlete | None:
        return next((a for a in self._athletes if a.tokens.access_valid(token, now)), None)

    def _athlete_for_grant(self, params: dict[str, str]) -> SimulatedAthlete:
        """The athlete whose refresh token or code this is (else the primary answers)."""
        for athlete in self._athletes:
            if athlete.tokens.knows_grant(params):
                return athlete
        return self.primary

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> StravaSimulator:
        """Listen and serve in a background daemon thread; return self."""
        if self._server is not None:
            return self
        self._server = make_server(self, self.host, self.port)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"strava-sim:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; pending push deliveries are dropped."""
        self.push.stop()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StravaSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (the port is known once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Base of the API, what the tap calls ``api_url``."""
        return self.base_url + API_PREFIX

    @property
    def token_url(self) -> str:
        """The token endpoint, outside ``/api/v3`` as on Strava."""
        return self.base_url + "/oauth/token"

    @property
    def api_url_2027(self) -> str:
        """Base of the API in Strava's announced 2027 form: tokens accepted only in headers.

        Strava moves the API to ``https://www.api-v3.strava.com`` on 2027-06-01 (resources at
        the root, no ``/api/v3``); here the same resources live under ``/2027``, and an
        ``?access_token=`` in the query is ignored (401) as Strava announced.
        """
        return self.base_url + API_2027_PREFIX

    @property
    def authorize_url(self) -> str:
        """The browser authorization page (answers with a redirect at once)."""
        return self.base_url + "/oauth/authorize"

    # -- clock ---------------------------------------------------------------------------
    def now(self) -> float:
        """The simulator's current time (epoch seconds)."""
        return self._clock() + self._clock_offset

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Use another time source (e.g. a fake clock in tests)."""
        self._clock = clock

    def advance_clock(self, seconds: float) -> None:
        """Move the simulator's time forward (e.g. to expire tokens in a demo)."""
        self._clock_offset += seconds

    # -- athlete, tokens, scope ----------------------------------------------------------
    @property
    def client_id(self) -> str:
        """The simulated application's client id."""
        return self._tokens.client_id

    @property
    def client_secret(self) -> str:
        """The simulated application's client secret."""
        return self._tokens.client_secret

    @property
    def refresh_token(self) -> str | None:
        """The primary athlete's refresh token that works now (None after a revocation)."""
        return self.primary.refresh_token

    @property
    def athlete_id(self) -> int:
        """The primary athlete's id."""
        return self.primary.athlete_id

    @property
    def athlete(self) -> JSONDict:
        """A copy of the primary athlete, detailed."""
        return copy.deepcopy(self._dataset.athlete)

    @property
    def gear(self) -> dict[str, JSONDict]:
        """A copy of the primary athlete's gear by id."""
        return copy.deepcopy(self._dataset.gear)

    @property
    def scope(self) -> str:
        """The scope granted by the primary athlete, comma-separated."""
        return self.primary.scope

    def set_scope(self, scope: str) -> None:
        """Set the scope of the primary athlete's tokens (e.g. ``"read,activity:read"``)."""
        self.primary.set_scope(scope)

    def revoke_tokens(self, athlete_id: int | None = None) -> None:
        """An athlete (the primary one by default) deauthorizes the app: tokens stop working.

        The app's push subscription gets the athlete's ``{"authorized": "false"}`` event
        (once: revoking an athlete who has no authorization left sends nothing).
        """
        athlete = self.primary
        if athlete_id is not None:
            found = [a for a in self._athletes if a.athlete_id == int(athlete_id)]
            if not found:
                raise KeyError(athlete_id)
            athlete = found[0]
        was_authorized = athlete.refresh_token is not None
        athlete.revoke_tokens()
        if was_authorized:
            self._deauthorized(athlete)

    def issue_refresh_token(self) -> str:
        """The primary athlete authorizes the app again (see :class:`SimulatedAthlete`).

        Like a code exchange, it also issues a new access token (kept by the "browser"), so
        the returned refresh token starts a chain of its own. Also undoes a revocation.
        """
        return self.primary.issue_refresh_token()

    def issue_access_token(self) -> str:
        """Issue a valid access token directly, bypassing the refresh flow."""
        return self._tokens.issue_access_token(self.now())[0]

    def set_authorization(
        self,
        *,
        approve: bool = True,
        scope: str | None = None,
        athlete: SimulatedAthlete | None = None,
    ) -> None:
        """Decide what an athlete (the primary one by default) does on the consent screen.

        ``approve=False`` makes ``/oauth/authorize`` redirect with ``error=access_denied``;
        ``scope`` limits the granted scopes to those listed (the athlete unticks the others).
        """
        tokens = (athlete or self.primary).tokens
        tokens.approve = approve
        tokens.grant_override = None if scope is None else parse_scope(scope)

    def set_consenting_athlete(self, athlete: SimulatedAthlete | None) -> None:
        """Who is signed in to Strava in the browser that opens ``/oauth/authorize``.

        Strava's consent page answers for whoever is logged in there; the code it issues
        belongs to that athlete, and so do the tokens it is exchanged for. ``None``: the
        primary athlete (the default). A club's "Connect with Strava" page is tested by
        letting each athlete in turn consent.
        """
        if athlete is not None and athlete not in self._athletes:
            msg = "that athlete does not belong to this simulator"
            raise ValueError(msg)
        self._consenting = athlete

    @property
    def app_active(self) -> bool:
        """Whether the application has an active developer subscription (see below)."""
        return self._app_active

    def set_app_active(self, active: bool = True) -> None:
        """Model Strava's 2026 developer subscription: inactive apps are refused everywhere.

        With ``active=False`` the token endpoint and every API call answer ``403
        Application Status Inactive`` (not rate limited, not counted); the consent page
        still redirects, so an authorization only fails at the code exchange.
        """
        self._app_active = active

    # -- activities ----------------------------------------------------------------------
    @property
    def activities(self) -> list[JSONDict]:
        """The primary athlete's summaries, newest first (as ``activity:read_all`` sees them)."""
        return self.primary.activities

    def activity(self, activity_id: int) -> JSONDict:
        """A copy of one of the primary athlete's summaries; KeyError if unknown."""
        return self.primary.activity(activity_id)

    def add_activity(self, **fields: Any) -> JSONDict:
        """Upload a new activity of the primary athlete (see :meth:`SimulatedAthlete.add_activity`).

        ``start_date="2020-01-01T10:00:00Z"`` makes it a late upload of an old activity.
        """
        return self.primary.add_activity(**fields)

    def update_activity(self, activity_id: int, **fields: Any) -> JSONDict:
        """Edit an activity (name, sport_type, private/visibility, gear_id, start_date, ...)."""
        return self.primary.update_activity(activity_id, **fields)

    def delete_activity(self, activity_id: int) -> None:
        """Delete an activity; KeyError if unknown."""
        self.primary.delete_activity(activity_id)

    # -- faults, limits, records ---------------------------------------------------------
    def inject_fault(
        self,
        path_pattern: str,
        kind: str,
        count: int = 1,
        status: int | None = None,
        delay: float = 0.0,
        size: int = DEFAULT_OVERSIZE,
    ) -> Fault:
        """Make the next ``count`` requests whose path matches ``path_pattern`` fail.

        Kinds: status, html, malformed_json, truncated_json, slow, reset, lost_answer,
        rate_limit, oversized (``size`` bytes of padding, gzipped; see ``faults.py``). A
        negative count keeps the fault until :meth:`clear_faults`.
        """
        return self._faults.add(path_pattern, kind, count, status, delay, size)

    def clear_faults(self) -> None:
        """Remove all injected faults."""
        self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """Faults still pending."""
        return self._faults.active()

    @property
    def rate_usage(self) -> tuple[int, int, int, int]:
        """(read_15min, read_daily, overall_15min, overall_daily) usage now."""
        return self._limiter.usage(self.now())

    @property
    def rate_limits(self) -> Limits:
        """The configured limits and window lengths."""
        return self._limiter.limits

    def reset_rate_limits(self) -> None:
        """Forget the usage so far (convenience for demos; Strava has no such thing)."""
        self._limiter.reset()

    @property
    def requests(self) -> list[RequestRecord]:
        """Records of every request served so far (``/_sim/`` calls excluded)."""
        return self._requests.snapshot()

    def clear_requests(self) -> None:
        """Forget the request records."""
        self._requests.clear()

    @property
    def token_grants(self) -> list[RefreshGrant]:
        """Every refresh grant of every athlete, in time order (fingerprints, no tokens).

        Request records cannot show it (token values are redacted there): this is how a
        test proves that no refresh token was presented twice.
        """
        grants = [grant for athlete in self._athletes for grant in athlete.tokens.grants]
        return sorted(grants, key=lambda grant: grant.time)

    def info(self) -> JSONDict:
        """What a client needs to connect (``GET /_sim/info``)."""
        limits = self._limiter.limits
        return {
            "base_url": self.base_url,
            "api_url": self.api_url,
            "token_url": self.token_url,
            "authorize_url": self.authorize_url,
            "api_url_2027": self.api_url_2027,
            "app_active": self.app_active,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "athlete_id": self.athlete_id,
            "activity_count": len(self._store),
            "scope": self.scope,
            "seed": self.seed,
            "limits": {
                "read_15min": limits.read_15min,
                "read_daily": limits.read_daily,
                "overall_15min": limits.overall_15min,
                "overall_daily": limits.overall_daily,
                "window_seconds": limits.window_seconds,
                "day_seconds": limits.day_seconds,
            },
        }

    # -- request pipeline ----------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """Answer one HTTP request (called by the server thread for each request)."""
        path = request.path
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            return admin.handle(self, request)
        fault = self._faults.take(path)
        auth_via, token = _access_token(request)
        if fault is not None and fault.kind == "slow":
            # Event.wait, not time.sleep: test suites often stub time.sleep to skip backoffs.
            threading.Event().wait(max(0.0, fault.delay))
        now = self.now()
        if fault is not None and fault.kind == "reset":
            response = Response(0, reset=True)
        elif fault is not None and fault.kind == "html":
            page = HTML_PAGE.format(status=fault.status).encode()
            response = Response(fault.status, page, "text/html")
        elif not self._app_active and (
            path.rstrip("/") in ("/oauth/token", API_PREFIX + "/oauth/token")
            or path.startswith((API_PREFIX + "/", API_2027_PREFIX + "/"))
        ):
            kind = OAUTH_JSON if "/oauth/" in path else API_JSON
            response = json_response(403, errors.application_inactive(), kind)
        elif path.startswith("/oauth/") or path == API_PREFIX + "/oauth/token":
            response = self._handle_oauth(request, fault, now)
        elif path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            response = self._handle_api(request, path[len(API_PREFIX) :], fault, now, token)
        elif path == API_2027_PREFIX or path.startswith(API_2027_PREFIX + "/"):
            header_token = token if auth_via == "header" else None  # 2027: headers only
            rest = path[len(API_2027_PREFIX) :]
            response = self._handle_api(request, rest, fault, now, header_token)
        else:
            response = json_response(404, errors.unknown_path())
        if fault is not None and fault.kind == "lost_answer":
            # Served (a refresh rotated, an upload was stored), but the answer never arrives.
            response = Response(0, reset=True)
        if fault is not None and not response.reset:
            response = _corrupt(response, fault)
        record = RequestRecord(
            method=request.method,
            path=path,
            query={k: (REDACTED if k in SECRET_PARAMS else v) for k, v in request.query.items()},
            status=None if response.reset else response.status,
            token_in=auth_via,
            time=now,
            fault=fault.kind if fault is not None else None,
            ids=_list_ids(response),
        )
        self._requests.append(record)
        if self._request_log_cb is not None:
            self._request_log_cb(record)
        return response

    def _handle_api(
        self,
        request: Request,
        path: str,
        fault: Fault | None,
        now: float,
        token: str | None,
    ) -> Response:
        if PushHub.serves(path):
            # App credentials, no athlete token: no athlete's quota, no rate-limit headers.
            if fault is not None and fault.kind in ("status", "rate_limit"):
                return json_response(fault.status, errors.for_status(fault.status))
            return self.push.handle(request, path)
        if fault is not None and fault.kind == "rate_limit":
            self._limiter.spend_by_others(now)
        decision = self._limiter.count(now, is_read=request.method in ("GET", "HEAD"))
        if fault is not None and fault.kind == "status":
            response = json_response(fault.status, errors.for_status(fault.status))
        elif decision.limited:
            response = json_response(429, errors.rate_limit_exceeded())
        elif (athlete := self._athlete_for_access(token, now)) is None:
            response = json_response(401, errors.invalid_access_token())
        else:
            response = athlete.api.handle(request, path or "/", now)
        response.headers = [*decision.headers, *response.headers]
        return response

    def _handle_oauth(self, request: Request, fault: Fault | None, now: float) -> Response:
        if fault is not None and fault.kind in ("status", "rate_limit"):
            return json_response(fault.status, errors.for_status(fault.status), OAUTH_JSON)
        path = request.path.rstrip("/")
        params = dict(request.query)
        params.update(_form(request))
        if path in ("/oauth/token", API_PREFIX + "/oauth/token") and request.method == "POST":
            athlete = self._athlete_for_grant(params)
            result = athlete.tokens.token(params, now, athlete.api.summary_athlete())
            return json_response(result.status, result.body, OAUTH_JSON)
        if path in ("/oauth/authorize", "/oauth/mobile/authorize") and request.method == "GET":
            status, answer = (self._consenting or self.primary).tokens.authorize(params)
            if status != 302:
                return json_response(status, answer, OAUTH_JSON)
            redirect = params["redirect_uri"]
            sep = "&" if "?" in redirect else "?"
            location = redirect + sep + urlencode(answer, safe=",:")
            return Response(302, b"", "text/html; charset=utf-8", [("Location", location)])
        if path == "/oauth/deauthorize" and request.method == "POST":
            _, bearer = _access_token(request)
            token = bearer or params.get("access_token")
            was_authorized = self._tokens.refresh_token is not None
            result = self._tokens.deauthorize(token, now)
            if was_authorized and self._tokens.refresh_token is None:
                self._deauthorized(self.primary)
            return json_response(result.status, result.body, OAUTH_JSON)
        if path == "/oauth/revoke" and request.method == "POST":
            was_authorized = self._tokens.refresh_token is not None
            result = self._tokens.revoke_endpoint(_basic_auth(request), params.get("token", ""))
            if was_authorized and self._tokens.refresh_token is None:
                self._deauthorized(self.primary)
            if result.body is None:
                return Response(result.status, b"", OAUTH_JSON)
            return json_response(result.status, result.body, OAUTH_JSON)
        return json_response(404, errors.unknown_path(), OAUTH_JSON)


def _access_token(request: Request) -> tuple[str | None, str | None]:
    """Find the access token: the Authorization header wins over ``?access_token=``."""
    header = request.header("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            return "header", value.strip()
        return "header", None
    if "access_token" in request.query:
        return "query", request.query["access_token"]
    return None, None


def _basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.header("authorization") or ""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _form(request: Request) -> dict[str, str]:
    """Parameters from a form-encoded or JSON body (Strava accepts both)."""
    if not request.body:
        return {}
    content_type = (request.header("content-type") or "").lower()
    text = request.body.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return dict(parse_qsl(text, keep_blank_values=True))


def _list_ids(response: Response) -> tuple[int, ...] | None:
    """The ids of a JSON list answer as sent (None: no list, not received, not JSON)."""
    if response.reset or response.status != 200 or not response.body.startswith(b"["):
        return None
    try:
        items = json.loads(response.body)
    except ValueError:
        return None
    return tuple(
        int(item["id"])
        for item in items
        if isinstance(item, dict) and isinstance(item.get("id"), int)
    )


def _corrupt(response: Response, fault: Fault) -> Response:
    """Apply the body-level faults to a computed answer."""
    kind = fault.kind
    if kind == "malformed_json":
        return Response(200, MALFORMED_BODY, response.content_type, response.headers)
    if kind == "truncated_json":
        cut = max(1, len(response.body) // 2)
        return Response(
            response.status, response.body[:cut], response.content_type, response.headers
        )
    if kind == "oversized":
        # Two gzip members (a client inflates them as one body): the answer, then spaces.
        body = gzip.compress(response.body, mtime=0) + _gzipped_spaces(fault.size)
        headers = [*response.headers, ("Content-Encoding", "gzip")]
        return Response(response.status, body, response.content_type, headers)
    return response


@functools.lru_cache(maxsize=4)
def _gzipped_spaces(size: int) -> bytes:
    """``size`` spaces gzipped (about 1 MB per GiB): one member per MiB, made once."""
    mib, rest = divmod(size, 2**20)
    member = gzip.compress(b" " * 2**20, compresslevel=9, mtime=0)
    return member * mib + (gzip.compress(b" " * rest, mtime=0) if rest else b"")
