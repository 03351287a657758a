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

This module is the command line: it finds the settings (step 1) and prints. Steps 2 to 4
are :mod:`tap_strava.oauth_flow`, the listener :mod:`tap_strava.callback_server` and the
``.env`` update :mod:`tap_strava.dotenv_file` (python-dotenv, as Meltano reads it); their
public names stay importable from here, as when this was one module.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import subprocess
import sys
import typing as t
import webbrowser
from pathlib import Path

from tap_strava import backends
from tap_strava.callback_server import (
    CALLBACK_HOST,
    CALLBACK_PATH,
    PAGE,
    CallbackServer,
    open_callback_server,
    wait_for_redirect,
)
from tap_strava.dotenv_file import format_env_value, read_env_file, update_env_file
from tap_strava.errors import AuthorizeError, StravaUserError
from tap_strava.oauth_flow import (
    DEFAULT_TOKEN_URL,
    ENV_PREFIX,
    REQUIRED_SCOPE,
    SETTINGS_PAGE,
    Outcome,
    Settings,
    authorize,
    authorize_url_for,
    build_authorize_url,
    check_scopes,
    exchange_code,
    granted_scopes,
    seed_token_store,
    with_athlete_token,
)
from tap_strava.token_store import default_token_store_path

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

# The command used to be one module: what it defined stays importable from here.
__all__ = [
    "CALLBACK_HOST",
    "CALLBACK_PATH",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT_SECONDS",
    "DEFAULT_TOKEN_URL",
    "ENV_PREFIX",
    "LOOKED_UP",
    "PAGE",
    "PROG",
    "REQUIRED_SCOPE",
    "SETTINGS_PAGE",
    "AuthorizeError",
    "CallbackServer",
    "Outcome",
    "Settings",
    "authorize",
    "authorize_url_for",
    "build_authorize_url",
    "build_parser",
    "can_open_browser",
    "check_scopes",
    "exchange_code",
    "format_env_value",
    "granted_scopes",
    "main",
    "meltano_config",
    "open_callback_server",
    "project_dir",
    "read_env_file",
    "resolve_settings",
    "seed_token_store",
    "update_env_file",
    "wait_for_redirect",
    "with_athlete_token",
]

PROG = "tap-strava-auth"
DEFAULT_PORT = 8799
DEFAULT_TIMEOUT_SECONDS = 300.0
#: Settings this command needs; looked up in this order of sources (first found wins).
LOOKED_UP = ("client_id", "client_secret", "token_url", "token_store_path", "shared_database_url")


# -- settings -----------------------------------------------------------------------------


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
        shared_database_url=found.get("shared_database_url"),
    )


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
            removed = backends.forget_athlete(settings.store_config, args.forget_athlete)
            say(
                f"Removed {removed} token chain(s) of athlete {args.forget_athlete} from "
                f"{settings.token_store_name}"
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
