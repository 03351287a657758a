"""``tap-strava-auth``: get a refresh token with the right scopes, without copying anything.

Getting the first refresh token was the hardest step of the setup: read Strava's OAuth
docs, open an authorize URL by hand, copy a ``code`` out of a redirect, run curl. This
command does the whole dance:

1. takes the client id and secret (options, ``TAP_STRAVA_*`` environment, the project's
   ``.env``, ``meltano config``, or a prompt; the secret prompt does not echo);
2. builds Strava's authorize URL (scope ``read,activity:read_all,profile:read_all``) with
   a redirect to a one-shot HTTP listener on ``127.0.0.1`` and opens it in a browser, or
   prints it where there is no browser;
3. checks the redirect (``state``, ``error=access_denied``, the scopes actually granted),
   exchanges the code for tokens;
4. writes the refresh token to ``.env`` (``TAP_STRAVA_REFRESH_TOKEN``, mode 0600, other
   lines kept) and seeds the token store, so the first run reuses the access token.

No token value is ever printed or logged. Every failure the user can fix ends in one line
``tap-strava-auth: error: ...`` and exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import getpass
import html
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import typing as t
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from tap_strava.errors import StravaUserError, strava_error_fields, strava_error_summary
from tap_strava.files import write_atomically
from tap_strava.token_store import (
    StoredTokens,
    TokenStore,
    default_token_store_path,
    forget_athlete,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

PROG = "tap-strava-auth"
REQUIRED_SCOPE = "read,activity:read_all,profile:read_all"
DEFAULT_TOKEN_URL = "https://www.strava.com/oauth/token"  # noqa: S105 - a URL, not a secret
DEFAULT_PORT = 8799
DEFAULT_TIMEOUT_SECONDS = 300.0
# While waiting for the browser, a reminder this often (a silent terminal looks hung).
WAIT_REMINDER_SECONDS = 60.0
CALLBACK_HOST = "127.0.0.1"
CALLBACK_PATH = "/exchange_token"
ENV_PREFIX = "TAP_STRAVA_"
SETTINGS_PAGE = "https://www.strava.com/settings/api"
#: Settings this command needs; looked up in this order of sources (first found wins).
LOOKED_UP = ("client_id", "client_secret", "token_url", "token_store_path")
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:/@%+=,-]*$")


class AuthorizeError(StravaUserError):
    """A failure of the authorization the user can act on (printed as one line)."""


# -- settings -----------------------------------------------------------------------------


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


def authorize_url_for(token_url: str) -> str:
    """Strava's consent page lives next to its token endpoint (``/oauth/authorize``).

    Deriving it keeps one setting (``token_url``) enough to point the helper at the
    simulator or at a future Strava host.
    """
    parts = urlsplit(token_url)
    path = parts.path.rstrip("/")
    path = path[: -len("token")] + "authorize" if path.endswith("/token") else "/oauth/authorize"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=VALUE`` pairs of a dotenv file (``export`` and simple quotes allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        msg = f"Cannot read {path} ({exc.strerror}): fix its permissions or pass --env-file"
        raise AuthorizeError(msg) from exc
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _ENV_LINE.match(line)
        if not match:
            continue  # comments, blank lines
        value = match.group(2)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[match.group(1)] = value
    return values


def _format_env_value(value: str) -> str:
    """Bare when safe (Strava's tokens are hex), else double-quoted with escapes."""
    if _SAFE_VALUE.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def update_env_file(path: Path, updates: Mapping[str, str]) -> None:
    """Set ``updates`` in a dotenv file in place: other lines, comments and order are kept.

    The file is rewritten atomically (temporary file, then rename) with mode 0600, as it
    holds secrets; a missing file is created. A symlinked ``.env`` is followed.
    """
    target = path.resolve() if path.is_symlink() else path
    try:
        lines = target.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    except OSError as exc:
        msg = f"Cannot read {target} ({exc.strerror}): fix its permissions or pass --env-file"
        raise AuthorizeError(msg) from exc
    pending = dict(updates)
    out: list[str] = []
    for line in lines:
        match = _ENV_LINE.match(line)
        key = match.group(1) if match else None
        if key is not None and key in updates:
            if key in pending:
                out.append(f"{key}={_format_env_value(pending.pop(key))}")
            continue  # a duplicate of a key already written: drop it, it would win
        out.append(line)
    out.extend(f"{key}={_format_env_value(value)}" for key, value in pending.items())
    payload = "\n".join(out) + "\n"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, payload)
    except OSError as exc:
        msg = f"Cannot write {target} ({exc.strerror}): pass --env-file with a writable path"
        raise AuthorizeError(msg) from exc


def meltano_config(project_dir: Path, timeout: float = 60.0) -> dict[str, t.Any]:
    """The tap's settings as Meltano resolves them (``meltano config --unsafe print``).

    Used only when the command runs outside ``meltano invoke`` and a setting is not in
    the environment or ``.env``: it finds values kept in ``meltano.yml`` or the system
    database, and the project's ``token_store_path``. Any failure gives ``{}``.
    """
    if not (project_dir / "meltano.yml").is_file():
        return {}
    sibling = Path(sys.executable).with_name("meltano")
    executable = shutil.which("meltano") or (str(sibling) if sibling.exists() else None)
    if executable is None:
        return {}
    try:
        proc = subprocess.run(
            [executable, "config", "--unsafe", "print", "tap-strava", "--format=json"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        config = json.loads(proc.stdout) if proc.returncode == 0 else {}
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def project_dir(environ: Mapping[str, str]) -> Path:
    """The Meltano project root when Meltano started us, else the current folder."""
    return Path(environ.get("MELTANO_PROJECT_ROOT") or Path.cwd())


def resolve_settings(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    *,
    prompt: Callable[[str], str] | None = None,
    secret_prompt: Callable[[str], str] | None = None,
    interactive: bool | None = None,
) -> Settings:
    """Find each setting in options, environment, ``.env``, ``meltano config``, prompt.

    The secret is asked with :func:`getpass.getpass`, which does not echo it.
    """
    root = project_dir(environ)
    env_file = Path(args.env_file) if args.env_file else root / ".env"
    dotenv = read_env_file(env_file)
    found: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in LOOKED_UP:
        key = ENV_PREFIX + name.upper()
        for source, value in (
            ("option", getattr(args, name, None)),
            ("environment", environ.get(key)),
            (str(env_file), dotenv.get(key)),
        ):
            if value:
                found[name], sources[name] = str(value), source
                break
    if args.use_meltano and any(name not in found for name in LOOKED_UP):
        for name, value in meltano_config(root).items():
            if name in LOOKED_UP and name not in found and value not in (None, ""):
                found[name], sources[name] = str(value), "meltano config"
    if interactive is None:
        interactive = sys.stdin.isatty()
    for name, label, ask in (
        ("client_id", "Strava Client ID: ", prompt or input),
        ("client_secret", "Strava Client Secret (not shown): ", secret_prompt or getpass.getpass),
    ):
        if name in found:
            continue
        if not interactive:
            msg = (
                f"No {name}: pass --{name.replace('_', '-')}, set "
                f"{ENV_PREFIX}{name.upper()} (environment or {env_file}), or run in a "
                "terminal to be asked"
            )
            raise AuthorizeError(msg)
        try:
            value = ask(label).strip()
        except EOFError:  # Ctrl-D at the prompt
            value = ""
            print(file=sys.stderr)  # end the prompt's line before the error line
        if not value:
            msg = f"No {name} given: copy it from {SETTINGS_PAGE}"
            raise AuthorizeError(msg)
        found[name], sources[name] = value, "prompt"
    token_url = found.get("token_url") or DEFAULT_TOKEN_URL
    if not token_url.startswith(("http://", "https://")):
        msg = f"token_url must be an http(s) URL, got {token_url!r}: fix token_url"
        raise AuthorizeError(msg)
    store_path = found.get("token_store_path") or str(default_token_store_path())
    store_path = store_path.replace("$MELTANO_PROJECT_ROOT", str(root))
    return Settings(
        client_id=found["client_id"],
        client_secret=found["client_secret"],
        token_url=token_url,
        authorize_url=args.authorize_url or authorize_url_for(token_url),
        token_store_path=Path(store_path).expanduser(),
        env_file=env_file,
        port=args.port,
        timeout=args.timeout,
        open_browser=args.browser,
        scope=args.scope,
        sources=sources,
        athlete=(getattr(args, "athlete", None) or "").strip() or None,
    )


# -- the redirect listener ------------------------------------------------------------------

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>tap-strava</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto"><h1>{title}</h1>
<p>{text}</p></body></html>"""


class _CallbackServer(HTTPServer):
    """Answers the browser's redirect once and keeps its query for the command.

    With ``on_redirect`` set, the page is only sent once that has run (the code exchanged,
    the token written): the browser says "authorized" only when it is true.
    """

    expected_path: str = CALLBACK_PATH
    result: dict[str, str] | None = None
    on_redirect: Callable[[dict[str, str]], tuple[str, str]] | None = None


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer
    # A browser's speculative connection that never sends a request must not block us.
    timeout = 5

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the default access log would print the authorization code."""

    def do_GET(self) -> None:
        """The browser's redirect (any other path gets a 404 and we keep waiting)."""
        split = urlsplit(self.path)
        if split.path != self.server.expected_path:
            self._page(404, "Not here", "This is tap-strava-auth's one-time callback.")
            return
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if self.server.on_redirect is not None:
            title, text = self.server.on_redirect(query)
            self._page(200, title, text)
        elif query.get("error"):
            self._page(
                200,
                "Access not granted",
                "Strava did not authorize the app. Return to the terminal.",
            )
        else:
            self._page(
                200,
                "Authorization received",
                "You can close this tab and return to the terminal.",
            )
        self.server.result = query

    def _page(self, status: int, title: str, text: str) -> None:
        body = PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def open_callback_server(port: int) -> _CallbackServer:
    """Listen on ``127.0.0.1:port`` (0 = any free port) before the user is sent away."""
    try:
        return _CallbackServer((CALLBACK_HOST, port), _CallbackHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            msg = (
                f"Port {port} on {CALLBACK_HOST} is already in use: pass --port with a free "
                "port (any port works; Strava only checks the callback domain)"
            )
        else:
            msg = f"Cannot listen on {CALLBACK_HOST}:{port} ({exc.strerror}): pass --port"
        raise AuthorizeError(msg) from exc


def wait_for_redirect(
    server: _CallbackServer,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    say: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Serve requests until the redirect arrives or ``timeout`` seconds have passed.

    With ``say``, a reminder every ``WAIT_REMINDER_SECONDS``: a terminal that shows
    nothing for minutes looks hung.
    """
    deadline = clock() + timeout
    next_reminder = clock() + WAIT_REMINDER_SECONDS
    while server.result is None:
        remaining = deadline - clock()
        if say is not None and clock() >= next_reminder and remaining > 0:
            say(f"Still waiting for Strava's redirect ({remaining:.0f} s left)")
            next_reminder += WAIT_REMINDER_SECONDS
        if remaining <= 0:
            msg = (
                f"No redirect from Strava within {timeout:.0f} s: open the URL above in a "
                "browser on this machine (or forward the port with ssh -L) and approve, or "
                "run again with a longer --timeout"
            )
            raise AuthorizeError(msg)
        server.timeout = min(remaining, 0.5)
        server.handle_request()
    return server.result


# -- authorization --------------------------------------------------------------------------


def build_authorize_url(settings: Settings, redirect_uri: str, state: str) -> str:
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


def can_open_browser(environ: Mapping[str, str]) -> bool:
    """Whether a graphical browser can be expected (never a console one in the terminal).

    On a server without a display, :mod:`webbrowser` would start lynx or w3m in the very
    terminal that shows the URL; there the user opens the URL elsewhere instead.
    """
    if environ.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


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


def exchange_code(settings: Settings, code: str) -> dict[str, t.Any]:
    """Trade the one-time code for tokens; turn Strava's refusals into one line each."""
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
            "used; run tap-strava-auth again"
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
    settings: Settings, answer: Mapping[str, t.Any], now: float, granted: set[str] | None = None
) -> None:
    """Store the new chain keyed like the tap will look it up (client id + this token).

    The tap then reuses the fresh access token on its first run instead of refreshing.
    """
    refresh_token = str(answer["refresh_token"])
    athlete = _athlete(answer)
    expires_at = answer.get("expires_at")
    if expires_at is None and answer.get("expires_in") is not None:
        expires_at = int(now + float(answer["expires_in"]))
    store = TokenStore(
        settings.token_store_path,
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
        say(f"Seeded the token store {settings.token_store_path}")
    who = f"athlete {athlete_id}" if athlete_id is not None else "the athlete"
    names = " ".join(str(athlete.get(k) or "") for k in ("firstname", "lastname")).strip()
    say(f"Authorized {who}{f' ({names})' if names else ''}. Next: meltano config test tap-strava")
    return Outcome(granted, athlete_id, settings.env_file, settings.token_store_path, warnings)


# -- command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Options; every one has an environment or project default, so none is required."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Authorize tap-strava for a Strava athlete and store the refresh token "
        "where the pipeline reads it (.env and the token store). Tokens are never printed.",
    )
    parser.add_argument("--client-id", help="default: TAP_STRAVA_CLIENT_ID, .env, meltano")
    parser.add_argument(
        "--client-secret",
        help="default: TAP_STRAVA_CLIENT_SECRET, .env, meltano, else asked without echo "
        "(an option is visible to other local users in the process list)",
    )
    parser.add_argument("--token-url", help=f"default: TAP_STRAVA_TOKEN_URL or {DEFAULT_TOKEN_URL}")
    parser.add_argument(
        "--authorize-url", help="default: the token URL with /token replaced by /authorize"
    )
    parser.add_argument(
        "--token-store-path", help="default: TAP_STRAVA_TOKEN_STORE_PATH, meltano, XDG state"
    )
    parser.add_argument(
        "--env-file", help="dotenv file to update (default: the project's .env, else ./.env)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"local callback port on {CALLBACK_HOST} ({DEFAULT_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds to wait for the redirect ({DEFAULT_TIMEOUT_SECONDS:.0f})",
    )
    parser.add_argument("--scope", default=REQUIRED_SCOPE, help=f"({REQUIRED_SCOPE})")
    parser.add_argument(
        "--athlete",
        metavar="NAME",
        help="authorize one of several athletes: sets the refresh token of the entry NAME "
        "of TAP_STRAVA_ATHLETES in .env (added if new) instead of TAP_STRAVA_REFRESH_TOKEN",
    )
    parser.add_argument(
        "--forget-athlete",
        metavar="ID",
        type=int,
        help="remove every token of the Strava athlete ID from the token store (an athlete "
        "who left: a reconcile refuses while their tokens are there) and exit",
    )
    parser.add_argument(
        "--no-browser",
        dest="browser",
        action="store_false",
        help="only print the URL (e.g. on a server; forward the port with ssh -L)",
    )
    parser.add_argument(
        "--no-meltano",
        dest="use_meltano",
        action="store_false",
        help="do not ask `meltano config` for settings missing elsewhere",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run ``tap-strava-auth``; exit 0 on success, 1 with one line on a failure."""
    args = build_parser().parse_args(argv)
    environ = dict(os.environ)

    def say(message: str) -> None:
        print(message, flush=True)

    def warn(message: str) -> None:
        print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)

    try:
        settings = resolve_settings(args, environ)
        if args.forget_athlete is not None:
            removed = forget_athlete(settings.token_store_path, args.forget_athlete)
            say(
                f"Removed {removed} token chain(s) of athlete {args.forget_athlete} from "
                f"{settings.token_store_path}"
            )
            return
        browser = webbrowser.open if args.browser and can_open_browser(environ) else None
        authorize(settings, say=say, warn=warn, browser=browser, environ=environ)
    except StravaUserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no token was written", file=sys.stderr, flush=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
