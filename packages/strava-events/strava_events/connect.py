"""The "Connect with Strava" page: athletes of a club authorize the app by themselves.

``GET /connect`` sends the browser to Strava's consent page; ``GET /connect/return`` is
where Strava sends it back. What comes back is untrusted (anyone can open the return URL
with any query), so the return is accepted only with a ``state`` that

* this receiver issued (random, 32 bytes), less than :data:`STATE_TTL_SECONDS` ago;
* is bound to the browser that started: the start sets a random cookie (``HttpOnly``,
  ``SameSite=Lax``, ``Secure`` behind https) and only its hash is kept beside the state;
* is used once: it is taken out of the table before anything else happens.

The pending states are bounded (:data:`MAX_PENDING`, the oldest dropped first) and each
start is charged to its client's failure budget, so a flood of starts is refused with a
429 like any other failure and never grows memory.

Then the code is exchanged at Strava's token endpoint with the tap's own
:func:`tap_strava.oauth_flow.exchange_code`, and the athlete is stored the way
``tap-strava-auth --athlete`` stores one: an entry ``athlete-<id>`` in the project's
``TAP_STRAVA_ATHLETES`` (``.env``, mode 0600) and the token chain seeded in the token store,
so that the next run of the tap syncs the athlete and the receiver accepts their events.
A refusal is one line on the page, naming what to do; nothing is stored then. The club
needs every activity, so a grant without ``activity:read_all`` is refused too.

No token value ever reaches a page, a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import hmac
import html
import logging
import secrets
import time
import typing as t
from pathlib import Path

from starlette.responses import HTMLResponse, RedirectResponse, Response

if t.TYPE_CHECKING:
    from starlette.requests import Request

log = logging.getLogger("strava_events.connect")
START_PATH = "/connect"
RETURN_PATH = "/connect/return"
COOKIE = "strava_connect"
STATE_TTL_SECONDS = 600.0
MAX_PENDING = 1000
#: What the club asks for: every activity (private ones too) and the full profile.
SCOPE = "read,activity:read_all,profile:read_all"


@dataclasses.dataclass(frozen=True)
class ConnectSettings:
    """What the page needs (``STRAVA_EVENTS_CONNECT_URL`` turns it on)."""

    #: The receiver as browsers reach it, e.g. ``https://club.example.org``.
    public_url: str
    client_id: str
    client_secret: str
    token_url: str
    authorize_url: str
    #: The project's ``.env``, where the tap reads ``TAP_STRAVA_ATHLETES``.
    env_file: Path
    #: The file store; unused when ``shared_database_url`` is set (the club's store).
    token_store_path: Path
    #: The tap's shared database: connected athletes' tokens go there, encrypted.
    shared_database_url: str | None = None

    @property
    def redirect_uri(self) -> str:
        """Where Strava sends the browser back (its host must be the app's callback domain)."""
        return self.public_url + RETURN_PATH

    @property
    def secure(self) -> bool:
        """Whether the cookie is ``Secure`` (every public deployment is https)."""
        return self.public_url.startswith("https://")


class ConnectRefused(Exception):
    """The sign-in cannot complete; the message is the page's one line."""


def _hash(nonce: str) -> bytes:
    return hashlib.sha256(nonce.encode("utf-8")).digest()


class PendingStates:
    """States issued and not yet used: bounded, expiring, single-use, bound to a browser."""

    def __init__(
        self,
        ttl: float = STATE_TTL_SECONDS,
        limit: int = MAX_PENDING,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self._clock = clock
        self._states: collections.OrderedDict[str, tuple[bytes, float]] = collections.OrderedDict()

    def issue(self, browser_nonce: str) -> str:
        """A new state for the browser holding ``browser_nonce``."""
        now = self._clock()
        while self._states:  # drop the expired, oldest first
            oldest = next(iter(self._states.values()))
            if oldest[1] > now:
                break
            self._states.popitem(last=False)
        while len(self._states) >= self.limit:
            self._states.popitem(last=False)
        state = secrets.token_urlsafe(32)
        self._states[state] = (_hash(browser_nonce), now + self.ttl)
        return state

    def take(self, state: str, browser_nonce: str | None) -> bool:
        """Whether ``state`` is live and this browser's; it is used up either way."""
        entry = self._states.pop(state, None)
        if entry is None or browser_nonce is None:
            return False
        bound, expires = entry
        return expires > self._clock() and hmac.compare_digest(bound, _hash(browser_nonce))

    def __len__(self) -> int:
        """How many states wait for their return."""
        return len(self._states)


def _page(status: int, title: str, line: str) -> HTMLResponse:
    """A tiny page saying one thing (escaped: parts of it may come from the query)."""
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width">'
        f"<title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p id=outcome>{html.escape(line)}</p></html>"
    )
    return HTMLResponse(
        body,
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


class ConnectPage:
    """The two routes of the page and what they share (see the module docstring)."""

    def __init__(
        self,
        settings: ConnectSettings,
        states: PendingStates | None = None,
        on_connected: t.Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.states = states or PendingStates()
        # Told each athlete stored (the receiver then accepts their events at once).
        self.on_connected = on_connected
        # One athlete stored at a time: .env and the token store are rewritten whole.
        self._storing = asyncio.Lock()
        self.connected: list[int] = []

    def start(self, _request: Request) -> Response:
        """Send the browser to Strava's consent page with a fresh state and cookie."""
        from tap_strava.oauth_flow import build_authorize_url

        nonce = secrets.token_urlsafe(32)
        state = self.states.issue(nonce)
        url = build_authorize_url(
            _AuthorizeTarget(self.settings), self.settings.redirect_uri, state
        )
        response = RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            COOKIE,
            nonce,
            max_age=int(self.states.ttl),
            path=START_PATH,
            secure=self.settings.secure,
            httponly=True,
            samesite="lax",
        )
        return response

    async def finish(self, request: Request) -> Response:
        """Check the return, exchange the code, store the athlete; one line either way."""
        query = request.query_params
        state = query.get("state", "")
        if not state or not self.states.take(state, request.cookies.get(COOKIE)):
            return _page(
                400,
                "Sign-in expired",
                "This sign-in link expired, was already used or was opened in another "
                f"browser: start again at {self.settings.public_url}{START_PATH}",
            )
        try:
            athlete_id, name = await self._complete(query.get("error"), query)
        except ConnectRefused as exc:
            return _page(400, "Not connected", str(exc))
        done = _page(
            200,
            "Connected",
            f"Connected athlete {athlete_id}{f' ({name})' if name else ''}: the club's next "
            "run syncs your activities. You can close this tab.",
        )
        done.delete_cookie(COOKIE, path=START_PATH)
        return done

    async def _complete(self, error: str | None, query: t.Mapping[str, str]) -> tuple[int, str]:
        from tap_strava.errors import StravaUserError
        from tap_strava.oauth_flow import granted_scopes

        again = f"start again at {self.settings.public_url}{START_PATH}"
        if error == "access_denied":
            msg = (
                f"You declined on Strava's page (error=access_denied), so nothing was stored: "
                f"{again} and click Authorize"
            )
            raise ConnectRefused(msg)
        if error:
            msg = f"Strava's sign-in failed (error={error[:40]}): {again}"
            raise ConnectRefused(msg)
        code = query.get("code", "")
        if not code or len(code) > 512:
            msg = f"Strava's return carried no usable code: {again}"
            raise ConnectRefused(msg)
        granted = granted_scopes(query)
        if "activity:read_all" not in granted:
            shown = ",".join(sorted(granted)) or "nothing"
            msg = (
                f"Strava granted {shown[:120]}, but the club needs 'View data about your "
                f"private activities' (activity:read_all); nothing was stored: {again} and "
                "leave every box ticked"
            )
            raise ConnectRefused(msg)
        async with self._storing:
            try:
                return await asyncio.to_thread(self._exchange_and_store, code, granted, again)
            except StravaUserError as exc:
                raise ConnectRefused(str(exc)) from None

    def _exchange_and_store(self, code: str, granted: set[str], again: str) -> tuple[int, str]:
        """The blocking part: Strava's token endpoint, then ``.env`` and the token store."""
        from tap_strava.dotenv_file import read_env_file, update_env_file
        from tap_strava.errors import AuthorizeError
        from tap_strava.oauth_flow import (
            ENV_PREFIX,
            exchange_code,
            seed_token_store,
            with_athlete_token,
        )

        answer = exchange_code(self.settings, code, again=again)
        athlete = answer.get("athlete") if isinstance(answer.get("athlete"), dict) else {}
        raw_id = athlete.get("id") if isinstance(athlete, dict) else None
        if not isinstance(raw_id, int) or raw_id <= 0:
            msg = f"Strava's answer named no athlete, so nothing was stored: {again}"
            raise AuthorizeError(msg)
        if self.settings.shared_database_url is None:
            # One machine's project: the tap reads its athletes from TAP_STRAVA_ATHLETES.
            # With the shared store the tap takes every athlete stored there, and a second
            # copy of the token in one machine's .env would go stale at the first rotation.
            key = ENV_PREFIX + "ATHLETES"
            current = read_env_file(self.settings.env_file).get(key)
            token = str(answer["refresh_token"])
            updated = with_athlete_token(current, f"athlete-{raw_id}", token)
            update_env_file(self.settings.env_file, {key: updated})
        seed_token_store(self.settings, answer, time.time(), granted)
        self.connected.append(raw_id)
        if self.on_connected is not None:
            self.on_connected(raw_id)
        first = str(athlete.get("firstname") or "")[:60] if isinstance(athlete, dict) else ""
        log.info("athlete %d connected through the page", raw_id)
        return raw_id, first


@dataclasses.dataclass(frozen=True)
class _AuthorizeTarget:
    """What :func:`tap_strava.oauth_flow.build_authorize_url` reads of its settings."""

    settings: ConnectSettings
    scope: str = SCOPE

    @property
    def client_id(self) -> str:
        return self.settings.client_id

    @property
    def authorize_url(self) -> str:
        return self.settings.authorize_url
