"""The OAuth authorization-code flow of ``tap-strava-auth``, without its command line.

Strava's flow for a script is: send the athlete to ``/oauth/authorize`` with a
``redirect_uri`` on this machine, receive ``code``, ``scope`` and ``state`` there, and trade
the code for tokens at ``/oauth/token``. This module does each step and the checks between
them (the ``state`` of this run, a denial, the scopes actually ticked), then stores the
result where the pipeline reads it: the refresh token in ``.env`` and the whole chain in
the token store, so that the first run reuses the fresh access token. The command line
(:mod:`tap_strava.authorize`) only finds the settings and prints.

No token value is ever printed, logged or put in a message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import secrets
import time
import typing as t
import webbrowser
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests

from tap_strava import backends
from tap_strava.callback_server import (
    CALLBACK_HOST,
    CALLBACK_PATH,
    open_callback_server,
    wait_for_redirect,
)
from tap_strava.dotenv_file import read_env_file, update_env_file
from tap_strava.errors import (
    AuthorizeError,
    StravaUserError,
    strava_error_fields,
    strava_error_summary,
)
from tap_strava.shared_database import describe
from tap_strava.token_store import StoredTokens

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

REQUIRED_SCOPE = "read,activity:read_all,profile:read_all"
DEFAULT_TOKEN_URL = "https://www.strava.com/oauth/token"  # noqa: S105 - a URL, not a secret
ENV_PREFIX = "TAP_STRAVA_"
SETTINGS_PAGE = "https://www.strava.com/settings/api"


class AppCredentials(t.Protocol):
    """What the code exchange and the token store read of their settings.

    ``tap-strava-auth``'s :class:`Settings` has it, and so has the receiver's "Connect with
    Strava" page (``strava_events.connect``), which stores athletes the same way.
    """

    @property
    def client_id(self) -> str:
        """The Strava app's Client ID."""

    @property
    def client_secret(self) -> str:
        """The Strava app's Client Secret."""

    @property
    def token_url(self) -> str:
        """Strava's token endpoint."""

    @property
    def token_store_path(self) -> Path:
        """Where the token chains are kept."""


class AuthorizeTarget(t.Protocol):
    """What Strava's consent page URL is built from."""

    @property
    def client_id(self) -> str:
        """The Strava app's Client ID."""

    @property
    def authorize_url(self) -> str:
        """Strava's consent page."""

    @property
    def scope(self) -> str:
        """The scopes asked for, comma separated."""


@dataclasses.dataclass
class Settings:
    """Everything one authorization needs, with where each value came from."""

    client_id: str
    client_secret: str
    token_url: str
    authorize_url: str
    token_store_path: Path
    env_file: Path
    port: int
    timeout: float
    open_browser: bool
    scope: str = REQUIRED_SCOPE
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    # An entry of the `athletes` setting to (re)authorize instead of refresh_token.
    athlete: str | None = None
    # Several workers' shared database: the token store is there, not in the file.
    shared_database_url: str | None = None

    @property
    def store_config(self) -> dict[str, t.Any]:
        """The token store's settings as the tap reads them (see ``tap_strava.backends``)."""
        return {
            "token_store_path": str(self.token_store_path),
            "shared_database_url": self.shared_database_url,
        }

    @property
    def token_store_name(self) -> str:
        """Where the tokens go, for messages (the database without its password)."""
        if self.shared_database_url:
            return f"the shared database {describe(self.shared_database_url)}"
        return str(self.token_store_path)


def authorize_url_for(token_url: str) -> str:
    """Strava's consent page lives next to its token endpoint (``/oauth/authorize``).

    Deriving it keeps one setting (``token_url``) enough to point the helper at the
    simulator or at a future Strava host.
    """
    parts = urlsplit(token_url)
    path = parts.path.rstrip("/")
    path = path[: -len("token")] + "authorize" if path.endswith("/token") else "/oauth/authorize"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def build_authorize_url(settings: AuthorizeTarget, redirect_uri: str, state: str) -> str:
    """Strava's consent page URL (``approval_prompt=force``: always show the scopes)."""
    query = urlencode(
        {
            "client_id": settings.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "approval_prompt": "force",
            "scope": settings.scope,
            "state": state,
        },
        safe=",:/",
    )
    return f"{settings.authorize_url}?{query}"


def granted_scopes(redirect: Mapping[str, str]) -> set[str]:
    """The scopes the athlete left ticked, from the redirect's ``scope=``."""
    return {part for part in re.split(r"[ ,]+", redirect.get("scope", "")) if part}


def check_scopes(granted: set[str], warn: Callable[[str], None]) -> None:
    """Refuse without activity access; warn about what a partial grant will miss."""
    if not granted & {"activity:read", "activity:read_all"}:
        shown = ",".join(sorted(granted)) or "nothing"
        msg = (
            f"Strava granted only {shown}: without activity:read the pipeline cannot read "
            "activities; run again and leave 'View data about your activities' (and the "
            "private ones) ticked. No token was written"
        )
        raise AuthorizeError(msg)
    if "activity:read_all" not in granted:
        warn(
            'activity:read_all was not granted: "Only You" (private) activities will be '
            "skipped; run again and tick 'View data about your private activities' to get them"
        )
    if "profile:read_all" not in granted:
        warn("profile:read_all was not granted: the athlete stream gets the summary profile")


def exchange_code(
    settings: AppCredentials, code: str, *, again: str = "run tap-strava-auth again"
) -> dict[str, t.Any]:
    """Trade the one-time code for tokens; turn Strava's refusals into one line each.

    ``again``: how the person starts over, for the refusals only a new code fixes.
    """
    try:
        response = requests.post(
            settings.token_url,
            data={
                "client_id": settings.client_id,
                "client_secret": settings.client_secret,
                "code": code,
                "grant_type": "authorization_code",
            },
            timeout=30,
        )
    except requests.exceptions.RequestException as exc:
        msg = (
            f"Strava's token endpoint {settings.token_url} did not answer "
            f"({type(exc).__name__}): check the network and token_url, then run again"
        )
        raise AuthorizeError(msg) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.ok and isinstance(body, dict) and body.get("refresh_token"):
        return body
    summary = strava_error_summary(response.status_code, body, response.text)
    fields = {field for _, field, _ in strava_error_fields(body)}
    if response.status_code == 403 and "inactive" in response.text.lower():
        msg = (
            "Strava answered 403 Application Status Inactive: the Strava API app needs an "
            f"active developer subscription ({SETTINGS_PAGE}). No token was written"
        )
    elif "code" in fields:
        msg = (
            f"Strava refused the authorization code ({summary}): it expired or was already "
            f"used; {again}"
        )
    elif response.status_code in (400, 401):
        msg = (
            f"Strava rejected the client id or secret ({summary}): copy both again from "
            f"{SETTINGS_PAGE} and run again. No token was written"
        )
    else:
        msg = (
            f"Strava's token endpoint refused the exchange ({summary}): check token_url "
            "and run again. No token was written"
        )
    raise AuthorizeError(msg)


def with_athlete_token(current: str | None, name: str, refresh_token: str) -> str:
    """``TAP_STRAVA_ATHLETES`` with ``name``'s refresh token set (the entry added if new).

    Other entries are kept as they are; the value is compact JSON for one .env line.
    """
    try:
        athletes = json.loads(current) if current else []
    except json.JSONDecodeError as exc:
        msg = (
            f"{ENV_PREFIX}ATHLETES in .env is not valid JSON: fix it (a list like "
            '[{"name": "ann", "refresh_token": "..."}]) and run again. No token was written'
        )
        raise AuthorizeError(msg) from exc
    if not isinstance(athletes, list):
        msg = f"{ENV_PREFIX}ATHLETES in .env must be a JSON list: fix it and run again"
        raise AuthorizeError(msg)
    for entry in athletes:
        if isinstance(entry, dict) and entry.get("name") == name:
            entry["refresh_token"] = refresh_token
            break
    else:
        athletes.append({"name": name, "refresh_token": refresh_token})
    return json.dumps(athletes, separators=(",", ":"))


def seed_token_store(
    settings: AppCredentials,
    answer: Mapping[str, t.Any],
    now: float,
    granted: set[str] | None = None,
) -> None:
    """Store the new chain keyed like the tap will look it up (client id + this token).

    The tap then reuses the fresh access token on its first run instead of refreshing.
    """
    refresh_token = str(answer["refresh_token"])
    athlete = _athlete(answer)
    expires_at = answer.get("expires_at")
    if expires_at is None and answer.get("expires_in") is not None:
        expires_at = int(now + float(answer["expires_in"]))
    # Whatever the caller's settings: the shared database when configured (a setting of
    # tap-strava-auth, else TAP_STRAVA_SHARED_DATABASE_URL), else the file.
    store_config = {
        "token_store_path": str(settings.token_store_path),
        "shared_database_url": getattr(settings, "shared_database_url", None),
    }
    store = backends.token_store(
        store_config,
        client_id=settings.client_id,
        configured_refresh_token=refresh_token,
    )
    with store.locked():
        store.save(
            StoredTokens(
                refresh_token=refresh_token,
                access_token=str(answer["access_token"]) if answer.get("access_token") else None,
                expires_at=int(expires_at) if expires_at is not None else None,
                athlete_id=int(athlete["id"]) if athlete.get("id") is not None else None,
                updated_at=int(now),
                scope=",".join(sorted(granted)) if granted else None,
            )
        )


def _athlete(answer: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The ``athlete`` of a code-exchange answer (``{}`` if Strava left it out)."""
    athlete = answer.get("athlete")
    return athlete if isinstance(athlete, dict) else {}


@dataclasses.dataclass
class Outcome:
    """What an authorization did (for the caller and the tests; no token values)."""

    granted: set[str]
    athlete_id: int | None
    env_file: Path
    token_store_path: Path
    warnings: list[str]


def authorize(
    settings: Settings,
    *,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    browser: Callable[[str], bool] | None,
    environ: Mapping[str, str],
    clock: Callable[[], float] = time.time,
) -> Outcome:
    """Run one authorization; raise :class:`AuthorizeError` with a one-line reason."""
    server = open_callback_server(settings.port)
    try:
        port = int(server.server_address[1])
        redirect_uri = f"http://{CALLBACK_HOST}:{port}{CALLBACK_PATH}"
        state = secrets.token_urlsafe(16)
        url = build_authorize_url(settings, redirect_uri, state)
        say(f"Authorize tap-strava for your Strava athlete (scope {settings.scope}):")
        opened = False
        if browser is not None:
            with contextlib.suppress(webbrowser.Error):
                opened = bool(browser(url))
        say("Opened in your browser; if it did not appear, open:" if opened else "Open:")
        say(f"  {url}")
        say(f"Waiting up to {settings.timeout:.0f} s for Strava's redirect to {redirect_uri}")
        done: list[Outcome] = []
        failed: list[BaseException] = []

        def on_redirect(redirect: dict[str, str]) -> tuple[str, str]:
            """Finish while the browser waits, so that its page tells the real outcome."""
            try:
                done.append(
                    _complete(
                        settings, redirect, state, say=say, warn=warn, environ=environ, clock=clock
                    )
                )
            except StravaUserError as exc:
                failed.append(exc)
                return "Authorization failed", f"{exc}. Return to the terminal."
            except BaseException as exc:
                failed.append(exc)
                return "Authorization failed", "See the terminal for what went wrong."
            return "Authorized", "tap-strava can read your activities now. You can close this tab."

        server.on_redirect = on_redirect
        wait_for_redirect(server, settings.timeout, say=say)
    finally:
        server.server_close()
    if failed:
        raise failed[0]
    return done[0]


def _complete(
    settings: Settings,
    redirect: Mapping[str, str],
    state: str,
    *,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    environ: Mapping[str, str],
    clock: Callable[[], float] = time.time,
) -> Outcome:
    """Check the redirect, exchange the code, write .env and the token store."""
    warnings: list[str] = []

    def _warn(message: str) -> None:
        warnings.append(message)
        warn(message)

    if redirect.get("state") != state:
        msg = (
            "The redirect did not carry this run's state (a stale browser tab or another "
            "site): run tap-strava-auth again and use the URL it prints"
        )
        raise AuthorizeError(msg)
    if redirect.get("error"):
        if redirect["error"] == "access_denied":
            msg = (
                "Authorization denied on Strava's page (error=access_denied): run again and "
                "click Authorize. No token was written"
            )
        else:
            msg = f"Strava's authorization failed (error={redirect['error']}): run again"
        raise AuthorizeError(msg)
    code = redirect.get("code")
    if not code:
        msg = "Strava's redirect carried neither a code nor an error: run again"
        raise AuthorizeError(msg)
    granted = granted_scopes(redirect)
    say(f"Strava granted: {','.join(sorted(granted)) or 'nothing'}")
    check_scopes(granted, _warn)
    answer = exchange_code(settings, code)
    athlete = _athlete(answer)
    athlete_id = int(athlete["id"]) if athlete.get("id") is not None else None
    dotenv = read_env_file(settings.env_file)
    token_key = ENV_PREFIX + ("ATHLETES" if settings.athlete else "REFRESH_TOKEN")
    if settings.athlete:
        athletes = with_athlete_token(
            dotenv.get(token_key), settings.athlete, str(answer["refresh_token"])
        )
        updates = {token_key: athletes}
    else:
        updates = {token_key: str(answer["refresh_token"])}
    for name in ("client_id", "client_secret"):
        key, value = ENV_PREFIX + name.upper(), getattr(settings, name)
        # The new token only works with this app: keep .env consistent with it, but do not
        # copy credentials into .env that already reach the pipeline from elsewhere.
        if dotenv.get(key, value) != value or (
            key not in dotenv and settings.sources.get(name) in ("option", "prompt")
        ):
            updates[key] = value
    shadow = environ.get(token_key)
    update_env_file(settings.env_file, updates)
    written = ", ".join(sorted(updates))
    say(f"Wrote {written} to {settings.env_file} (mode 0600)")
    # Under `meltano invoke` the variable is Meltano's own copy of the settings: no warning.
    started_by_meltano = "MELTANO_PROJECT_ROOT" in environ
    if shadow and shadow != dotenv.get(token_key) and not started_by_meltano:
        _warn(
            f"{token_key} is also set in this shell's environment and overrides "
            f"{settings.env_file}: unset it (or update it) before running the pipeline"
        )
    try:
        seed_token_store(settings, answer, clock(), granted)
    except StravaUserError as exc:
        _warn(f"The token store was not seeded ({exc}); the first run will refresh instead")
    else:
        say(f"Seeded the token store {settings.token_store_name}")
    who = f"athlete {athlete_id}" if athlete_id is not None else "the athlete"
    names = " ".join(str(athlete.get(k) or "") for k in ("firstname", "lastname")).strip()
    say(f"Authorized {who}{f' ({names})' if names else ''}. Next: meltano config test tap-strava")
    return Outcome(granted, athlete_id, settings.env_file, settings.token_store_path, warnings)
