"""The receiver's settings, from ``STRAVA_EVENTS_*`` variables: environment, then ``.env``.

Like every command of the project (and like Meltano), the receiver reads the project's
``.env`` with python-dotenv's ``dotenv_values``, and a variable of the environment wins
over it (:func:`project_environment`). Every setting is read and checked here, once, so
that a missing or invalid one gives one line naming the variable, where it was looked
for, and the fix before anything listens or connects. Secrets (the
verify token, the callback path, the tap's bearer token, the client secret, the database
password) are never part of a message.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from strava_events.connect import ConnectSettings

PREFIX = "STRAVA_EVENTS_"
#: The tap's own variable for its shared database (tap_strava.shared_database.URL_ENV).
SHARED_URL_ENV = "TAP_STRAVA_SHARED_DATABASE_URL"
DEFAULT_API_BASE = "https://www.strava.com/api/v3"
DEFAULT_SCHEMA = "strava_events"
SUBSCRIPTION_FILE = "subscription.json"
#: Secrets shorter than this are guessable: the callback path is the only thing that
#: keeps forged events away, the bearer token the only thing that guards the queue.
MIN_SECRET_LENGTH = 16
_SECRET_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Settings of earlier versions, and what replaced them: set, they stop `serve` with one
#: line rather than being ignored in silence.
OBSOLETE = {
    "CLIENT_RATE": "valid events are never rate limited; failed requests are, by "
    "STRAVA_EVENTS_FAILURE_RATE",
    "CLIENT_BURST": "valid events are never rate limited; failed requests are, by "
    "STRAVA_EVENTS_FAILURE_BURST",
    "TOTAL_RATE": "valid events are never rate limited; remove it",
    "TOTAL_BURST": "valid events are never rate limited; remove it",
}


class SettingsError(Exception):
    """A setting is missing or invalid; the message is one line naming the fix."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what a client may send (all of it untrusted).

    No bound refuses a valid delivery: Strava sends from a few undocumented addresses, so
    a budget per sender would refuse Strava itself in a burst. What is budgeted is what
    fails (a wrong path, a body that is no event, a wrong token), per client address.
    """

    max_body_bytes: int = 4096
    #: Failed callback requests of one client address: sustained per second, and burst.
    #: A client beyond them is answered 429 before its request is read.
    failure_rate: float = 5.0
    failure_burst: int = 50
    #: Requests to the tap listener without the right bearer token (every client).
    tap_unauthorized_rate: float = 5.0
    tap_unauthorized_burst: int = 20
    #: A connection that has not sent a request's complete headers within this is closed
    #: (the server's keep-alive timeout, armed when a connection opens).
    header_timeout_seconds: float = 5.0
    #: Unacknowledged events of one athlete beyond which new ones are answered 503
    #: (events are unsigned: a forger who knows the path could grow the store without end).
    max_pending_per_athlete: int = 1000
    #: How long a store write may take before the event goes to the spool instead.
    store_deadline_seconds: float = 0.5
    #: Events in the spool beyond which new events are refused (503, Strava retries).
    max_spool_events: int = 100_000


@dataclasses.dataclass(frozen=True)
class StravaApp:
    """What the subscription commands need: the app's credentials and the API base."""

    client_id: str
    client_secret: str
    api_base: str
    callback_url: str | None
    verify_token: str | None
    #: Where ``subscription create`` records the id for ``serve`` (see ``subscription_file``).
    subscription_file: Path


@dataclasses.dataclass(frozen=True)
class Settings:
    """What ``strava-events serve`` needs."""

    verify_token: str
    callback_path: str
    tap_token: str
    subscription_id: int | None
    athlete_ids: frozenset[int]
    token_store: Path | None
    #: The tap's shared database (``TAP_STRAVA_SHARED_DATABASE_URL``): whose tokens it
    #: holds are accepted, and the Connect page stores tokens there. Never logged.
    shared_database_url: str | None
    host: str
    port: int
    #: The tap's interface listens on 127.0.0.1 at this port, apart from the callback.
    tap_port: int
    forwarded_allow_ips: str
    postgres_dsn: str | None
    postgres_schema: str
    sqlite_path: Path
    spool_dir: Path
    #: The id ``subscription create`` recorded, read when SUBSCRIPTION_ID is not set.
    subscription_file: Path
    limits: Limits = dataclasses.field(default_factory=Limits)
    #: Acknowledged events are kept this long (duplicates of them are still recognised).
    retention_days: int = 30
    #: The "Connect with Strava" page (``STRAVA_EVENTS_CONNECT_URL``), off when None.
    connect: ConnectSettings | None = None

    @property
    def store_label(self) -> str:
        """Which store is used, for a log line (no password)."""
        if self.postgres_dsn:
            return f"PostgreSQL schema {self.postgres_schema}"
        return f"SQLite {self.sqlite_path}"


def project_root(env: Mapping[str, str]) -> Path:
    """The Meltano project (Meltano sets MELTANO_PROJECT_ROOT), else the current folder."""
    return Path(env.get("MELTANO_PROJECT_ROOT") or Path.cwd())


def state_dir(env: Mapping[str, str]) -> Path:
    """The receiver's own files: STRAVA_EVENTS_STATE_DIR, else ``<project>/.strava-events``."""
    raw = _get(env, "STATE_DIR")
    return Path(raw).expanduser() if raw else project_root(env) / ".strava-events"


def project_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The project's ``.env`` (python-dotenv, as Meltano reads it), the environment winning.

    The project is ``$MELTANO_PROJECT_ROOT``, else the current folder; a missing ``.env``
    is empty. The path read is kept as ``_ENV_FILE`` for the one-line errors.
    """
    from dotenv import dotenv_values

    environ = os.environ if environ is None else environ
    path = project_root(environ) / ".env"
    try:
        values = dotenv_values(path) if path.is_file() else {}
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read {path} ({exc}): fix its permissions"
        raise SettingsError(msg) from exc
    merged = {key: value for key, value in values.items() if value is not None}
    merged.update(environ)
    merged[_ENV_FILE] = str(path)
    return merged


#: Where ``.env`` was read from (set by :func:`project_environment`).
_ENV_FILE = "\0env-file"


def _where(env: Mapping[str, str]) -> str:
    path = env.get(_ENV_FILE)
    return f" in the environment or {path}" if path else ""


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(PREFIX + name, "").strip()
    return value or None


def _required(env: Mapping[str, str], name: str, what: str) -> str:
    value = _get(env, name)
    if value is None:
        msg = f"{PREFIX}{name} is not set{_where(env)}: set it to {what}"
        raise SettingsError(msg)
    return value


def _secret(env: Mapping[str, str], name: str, what: str) -> str:
    value = _required(env, name, what)
    if len(value) < MIN_SECRET_LENGTH or not _SECRET_RE.match(value):
        msg = (
            f"{PREFIX}{name} must be at least {MIN_SECRET_LENGTH} characters of letters, "
            "digits and ._~- (for example the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(24))'`)"
        )
        raise SettingsError(msg)
    return value


def _int(env: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> int:
    raw = _get(env, name)
    if raw is None:
        if default is None:
            msg = f"{PREFIX}{name} is not set{_where(env)}: set it to a whole number"
            raise SettingsError(msg)
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        msg = f"{PREFIX}{name} must be a whole number from {low} to {high}"
        raise SettingsError(msg)
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        msg = f"{PREFIX}{name} must be a number from {low:g} to {high:g}"
        raise SettingsError(msg)
    return value


def parse_athlete_ids(raw: str | None) -> frozenset[int]:
    """A comma list of athlete ids; a word that is no positive id is an error."""
    if not raw:
        return frozenset()
    ids: set[int] = set()
    for part in raw.split(","):
        word = part.strip()
        if not word:
            continue
        if not word.isdigit() or not 0 < int(word) < 2**63:
            msg = (
                f"{PREFIX}ATHLETE_IDS must be a comma list of Strava athlete ids "
                f"(positive numbers); {word[:20]!r} is not one"
            )
            raise SettingsError(msg)
        ids.add(int(word))
    return frozenset(ids)


def postgres_dsn(env: Mapping[str, str]) -> str | None:
    """The queue's PostgreSQL: STRAVA_EVENTS_POSTGRES_DSN, else the project's TARGET_POSTGRES_*.

    The project's loader is configured by ``TARGET_POSTGRES_SQLALCHEMY_URL`` or by
    ``TARGET_POSTGRES_HOST`` and its siblings; the receiver uses the same server (in its own
    schema) so that one database is all a user runs.
    """
    dsn = _get(env, "POSTGRES_DSN")
    if dsn:
        return to_libpq(dsn)
    url = env.get("TARGET_POSTGRES_SQLALCHEMY_URL", "").strip()
    if url:
        return to_libpq(url)
    host = env.get("TARGET_POSTGRES_HOST", "").strip()
    if not host:
        return None
    user = quote(env.get("TARGET_POSTGRES_USER", "postgres"))
    password = env.get("TARGET_POSTGRES_PASSWORD")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    port = env.get("TARGET_POSTGRES_PORT", "5432")
    database = env.get("TARGET_POSTGRES_DATABASE", "strava")
    return f"postgresql://{auth}@{quote(host)}:{port}/{database}"


def to_libpq(url: str) -> str:
    """A URL in libpq's form (the project's SQLAlchemy URLs say ``+psycopg``)."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Every setting of ``serve``, checked; a bad one raises :class:`SettingsError`."""
    env = project_environment() if env is None else env
    folder = state_dir(env)
    verify_token = _secret(
        env,
        "VERIFY_TOKEN",
        "the secret you give Strava when creating the "
        "subscription (a random string of 16+ characters)",
    )
    callback_path = _secret(
        env,
        "CALLBACK_PATH",
        "a random path segment of 16+ characters (the callback URL is https://<your host>/<it>)",
    )
    tap_token = _secret(
        env,
        "TAP_TOKEN",
        "a random bearer token of 16+ characters that tap-strava sends to read the events",
    )
    raw_subscription = _get(env, "SUBSCRIPTION_ID")
    subscription_id = (
        None if raw_subscription is None else _int(env, "SUBSCRIPTION_ID", None, 1, 2**63 - 1)
    )
    athlete_ids = parse_athlete_ids(_get(env, "ATHLETE_IDS"))
    store_raw = _get(env, "TOKEN_STORE")
    token_store = Path(store_raw).expanduser() if store_raw else None
    shared_url = shared_database_url(env)
    if not athlete_ids and token_store is None and shared_url is None:
        msg = (
            f"Neither {PREFIX}ATHLETE_IDS nor {PREFIX}TOKEN_STORE nor {SHARED_URL_ENV} is set"
            f"{_where(env)}: set one so that the receiver knows whose events to accept (a comma "
            "list of athlete ids, tap-strava's token store file, or its shared database)"
        )
        raise SettingsError(msg)
    schema = _get(env, "POSTGRES_SCHEMA") or DEFAULT_SCHEMA
    if not _SCHEMA_RE.match(schema):
        msg = f"{PREFIX}POSTGRES_SCHEMA must be a lower-case SQL name (letters, digits, _)"
        raise SettingsError(msg)
    sqlite_raw = _get(env, "SQLITE_PATH")
    spool_raw = _get(env, "SPOOL_DIR")
    for gone, instead in OBSOLETE.items():
        if _get(env, gone) is not None:
            msg = f"{PREFIX}{gone} is no longer read: {instead} (see docs/events.md)"
            raise SettingsError(msg)
    defaults = Limits()
    limits = Limits(
        max_body_bytes=_int(env, "MAX_BODY_BYTES", defaults.max_body_bytes, 256, 1_000_000),
        failure_rate=_float(env, "FAILURE_RATE", defaults.failure_rate, 0.1, 100_000),
        failure_burst=_int(env, "FAILURE_BURST", defaults.failure_burst, 1, 1_000_000),
        header_timeout_seconds=_float(
            env, "HEADER_TIMEOUT_SECONDS", defaults.header_timeout_seconds, 0.5, 60
        ),
        max_pending_per_athlete=_int(
            env, "MAX_PENDING_PER_ATHLETE", defaults.max_pending_per_athlete, 1, 10_000_000
        ),
        store_deadline_seconds=_float(
            env, "STORE_DEADLINE_SECONDS", defaults.store_deadline_seconds, 0.05, 1.5
        ),
        max_spool_events=_int(env, "MAX_SPOOL_EVENTS", defaults.max_spool_events, 1, 10_000_000),
    )
    port = _int(env, "PORT", 8787, 0, 65535)
    tap_port = _int(env, "TAP_PORT", 8788, 0, 65535)
    if port and port == tap_port:
        msg = f"{PREFIX}TAP_PORT must differ from {PREFIX}PORT (the tap has its own listener)"
        raise SettingsError(msg)
    return Settings(
        verify_token=verify_token,
        callback_path=callback_path,
        tap_token=tap_token,
        subscription_id=subscription_id,
        athlete_ids=athlete_ids,
        token_store=token_store,
        shared_database_url=shared_url,
        host=_get(env, "HOST") or "127.0.0.1",
        port=port,
        tap_port=tap_port,
        forwarded_allow_ips=_get(env, "FORWARDED_ALLOW_IPS") or "127.0.0.1",
        postgres_dsn=postgres_dsn(env),
        postgres_schema=schema,
        sqlite_path=Path(sqlite_raw).expanduser() if sqlite_raw else folder / "events.sqlite3",
        spool_dir=Path(spool_raw).expanduser() if spool_raw else folder / "spool",
        subscription_file=folder / SUBSCRIPTION_FILE,
        limits=limits,
        retention_days=_int(env, "RETENTION_DAYS", 30, 1, 3650),
        connect=load_connect(env, token_store, shared_url),
    )


_PUBLIC_URL_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def shared_database_url(env: Mapping[str, str]) -> str | None:
    """The tap's shared database URL (``TAP_STRAVA_SHARED_DATABASE_URL``), checked, or None.

    The receiver reads the variable the tap and ``tap-strava-auth`` read, so that one
    setting names the club's store for all three.
    """
    from tap_strava.errors import StravaConfigError
    from tap_strava.shared_database import to_conninfo

    url = env.get(SHARED_URL_ENV, "").strip()
    if not url:
        return None
    try:
        to_conninfo(url)
    except StravaConfigError as exc:
        raise SettingsError(str(exc)) from None
    return url


def load_connect(
    env: Mapping[str, str], token_store: Path | None, shared_url: str | None = None
) -> ConnectSettings | None:
    """The "Connect with Strava" page's settings, or None when it is off (the default).

    ``STRAVA_EVENTS_CONNECT_URL`` is the receiver's address as browsers reach it (scheme
    and host, no path); its host must be the Strava app's "Authorization Callback Domain".
    https is required except on a loopback host (a test, or a tunnel on this machine).
    """
    from tap_strava.oauth_flow import DEFAULT_TOKEN_URL, authorize_url_for
    from tap_strava.token_store import default_token_store_path

    raw = _get(env, "CONNECT_URL")
    if raw is None:
        return None
    public_url = raw.rstrip("/")
    host = public_url.split("://", 1)[-1].split(":", 1)[0]
    if not _PUBLIC_URL_RE.match(public_url) or (
        public_url.startswith("http://") and host not in _LOOPBACK_HOSTS
    ):
        msg = (
            f"{PREFIX}CONNECT_URL must be the receiver's https address without a path, such as "
            "https://club.example.org (http only on 127.0.0.1 or localhost)"
        )
        raise SettingsError(msg)
    if token_store is None and shared_url is None:
        msg = (
            f"{PREFIX}CONNECT_URL needs {PREFIX}TOKEN_STORE or {SHARED_URL_ENV}{_where(env)}: "
            "set one to the tap's token store (its file, or its shared database), where "
            "connected athletes' tokens go"
        )
        raise SettingsError(msg)
    app = load_strava_app(env)
    token_url = (
        _get(env, "TOKEN_URL") or env.get("TAP_STRAVA_TOKEN_URL", "").strip() or DEFAULT_TOKEN_URL
    )
    env_file = env.get(_ENV_FILE)
    return ConnectSettings(
        public_url=public_url,
        client_id=app.client_id,
        client_secret=app.client_secret,
        token_url=token_url,
        authorize_url=authorize_url_for(token_url),
        env_file=Path(env_file) if env_file else project_root(env) / ".env",
        token_store_path=token_store or default_token_store_path(),
        shared_database_url=shared_url,
    )


def load_strava_app(env: Mapping[str, str] | None = None) -> StravaApp:
    """The subscription commands' settings: the app's id and secret, the API base.

    The client id and secret are the tap's (``TAP_STRAVA_CLIENT_ID`` / ``_SECRET``, as
    Meltano's ``.env`` has them) unless ``STRAVA_EVENTS_CLIENT_ID`` / ``_SECRET`` are set.
    """
    env = project_environment() if env is None else env
    client_id = _get(env, "CLIENT_ID") or env.get("TAP_STRAVA_CLIENT_ID", "").strip()
    client_secret = _get(env, "CLIENT_SECRET") or env.get("TAP_STRAVA_CLIENT_SECRET", "").strip()
    if not client_id or not client_id.isdigit():
        msg = (
            f"{PREFIX}CLIENT_ID (or TAP_STRAVA_CLIENT_ID){_where(env)} must be your Strava "
            "application's numeric Client ID (strava.com/settings/api)"
        )
        raise SettingsError(msg)
    if not client_secret:
        msg = (
            f"{PREFIX}CLIENT_SECRET (or TAP_STRAVA_CLIENT_SECRET) is not set{_where(env)}: set "
            "it to your application's Client Secret (strava.com/settings/api)"
        )
        raise SettingsError(msg)
    api_base = (_get(env, "API_BASE") or DEFAULT_API_BASE).rstrip("/")
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", api_base):
        msg = f"{PREFIX}API_BASE must be an http(s) URL such as {DEFAULT_API_BASE}"
        raise SettingsError(msg)
    return StravaApp(
        client_id=client_id,
        client_secret=client_secret,
        api_base=api_base,
        callback_url=_get(env, "CALLBACK_URL"),
        verify_token=_get(env, "VERIFY_TOKEN"),
        subscription_file=state_dir(env) / SUBSCRIPTION_FILE,
    )
