"""The club's settings, read from the environment of the Dagster code location.

Secrets (the app's client secret, every athlete's refresh token, the database password)
stay in the files these variables name: Dagster stores run config and tags in clear, so
nothing secret is ever put there. Runs carry only the athlete id (its partition key).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from strava_club.states import FolderStates, PostgresStates, StateStore

#: The tap's variable for its shared database (tap_strava.shared_database.URL_ENV).
SHARED_URL_ENV = "TAP_STRAVA_SHARED_DATABASE_URL"
DEFAULT_STREAMS: tuple[str, ...] = ("activities", "athlete", "athlete_stats")
#: What the tap's events mode emits (meltano.yml's tap-strava-events selects the same).
EVENT_STREAMS: tuple[str, ...] = (
    "activities",
    "activity_details",
    "activity_deletions",
    "event_receipts",
)
#: The per-activity streams a details backfill may select, with the tap's per-run request
#: budget of each (tap_strava/detail_streams.py: off unless the budget is set; their
#: requests are the quota ledger's "backfill" class, served after events and polls).
DETAIL_BUDGETS: dict[str, str] = {
    "activity_details": "activity_details_per_run",
    "laps": "laps_per_run",
    "activity_zones": "zones_per_run",
    "activity_streams": "streams_per_run",
}
#: What the tap emits with ``export_archive_path`` set (no API request at all).
EXPORT_STREAMS: tuple[str, ...] = ("export_activities", "export_gear", "export_tracks")
DEFAULT_CYCLE_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("strava-apply-deletions",),
    ("strava-merged-view",),
)


class ClubSettingsError(Exception):
    """A club setting is missing or malformed (one line naming the variable)."""


@dataclasses.dataclass(frozen=True)
class ClubSettings:
    """Where the tap, the target, their configurations and the per-athlete states are.

    ``state_dir`` holds the states only without a shared database (:meth:`states`).
    """

    tap: str
    target: str
    tap_config: Path
    target_config: Path
    state_dir: Path
    streams: tuple[str, ...] = DEFAULT_STREAMS
    cycle_commands: tuple[tuple[str, ...], ...] = DEFAULT_CYCLE_COMMANDS
    #: The events run's extra tap config (``events_url``, ``events_token``), a file of
    #: its own (mode 0600: the token is a secret); None: no events run.
    events_config: Path | None = None
    #: The command the club's daily message is piped to (``strava-notify`` of the
    #: project's environment, which holds the webhooks); None: the message is not posted.
    notify_command: tuple[str, ...] | None = None
    #: The per-activity streams of the details backfill (empty: no backfill runs).
    detail_streams: tuple[str, ...] = ()
    #: Where athletes' export archives are dropped (``<athlete id>.zip`` or
    #: ``<athlete id>/``); None: no archive import.
    archive_dir: Path | None = None
    #: An archive changed more recently than this is left for a later look (a copy
    #: still being written would fail as a damaged zip).
    archive_settle_seconds: float = 30.0

    def states(self) -> StateStore:
        """Where the runs' Singer states are: the shared database when set, else the folder.

        With the shared database a state file an earlier version left in
        ``STRAVA_CLUB_STATE_DIR`` is read once, while the database has no row for it.
        """
        folder = FolderStates(self.state_dir)
        dsn = self.shared_database_dsn()
        return PostgresStates(dsn, earlier=folder) if dsn else folder

    def details_problem(self) -> str | None:
        """Why the details backfill cannot run as set, in one line; None when it can.

        A stream the tap does not fetch per activity, or whose ``<stream>_per_run``
        budget the tap's configuration leaves unset (the tap would skip it: a run that
        succeeds and fetches nothing), is a setting to fix, not something to retry.
        """
        if not self.detail_streams:
            return "STRAVA_CLUB_DETAIL_STREAMS is empty: the club has no details backfill"
        unknown = [name for name in self.detail_streams if name not in DETAIL_BUDGETS]
        if unknown:
            return (
                f"STRAVA_CLUB_DETAIL_STREAMS names {', '.join(unknown)}: not a per-activity "
                f"stream (choose among {', '.join(DETAIL_BUDGETS)})"
            )
        config = read_json(self.tap_config, "STRAVA_CLUB_TAP_CONFIG")
        unset = [
            DETAIL_BUDGETS[name]
            for name in self.detail_streams
            if int(config.get(DETAIL_BUDGETS[name]) or 0) <= 0
        ]
        if unset:
            return (
                f"{self.tap_config} sets no {', '.join(unset)}: the tap fetches a per-activity "
                "stream only within its per-run request budget; set it in "
                "STRAVA_CLUB_TAP_CONFIG's file"
            )
        return None

    def token_store_path(self) -> Path:
        """The tap's token store, as its configuration names it."""
        config = read_json(self.tap_config, "STRAVA_CLUB_TAP_CONFIG")
        path = config.get("token_store_path")
        if not path:
            msg = (
                f"{self.tap_config} sets no token_store_path nor shared_database_url: the "
                "club's sensor reads the athletes from the token store; set one in "
                "STRAVA_CLUB_TAP_CONFIG's file"
            )
            raise ClubSettingsError(msg)
        return Path(str(path)).expanduser()

    def shared_database_dsn(self) -> str | None:
        """The tap's shared database as a libpq URL, or None (the file store).

        As the tap reads it: ``shared_database_url`` of its configuration, else
        ``TAP_STRAVA_SHARED_DATABASE_URL`` in the environment (the runs inherit it).
        """
        config = read_json(self.tap_config, "STRAVA_CLUB_TAP_CONFIG")
        url = str(config.get("shared_database_url") or os.environ.get(SHARED_URL_ENV) or "")
        return libpq_url(url.strip()) if url.strip() else None

    def postgres_dsn(self) -> str:
        """A libpq connection string for target-postgres's database (its config file)."""
        config = read_json(self.target_config, "STRAVA_CLUB_TARGET_CONFIG")
        url = str(config.get("sqlalchemy_url") or "")
        if url:
            return libpq_url(url)
        parts = {
            "host": config.get("host", "127.0.0.1"),
            "port": config.get("port", 5432),
            "user": config.get("user", "postgres"),
            "password": config.get("password"),
            "dbname": config.get("database", "postgres"),
        }
        return " ".join(f"{key}={value}" for key, value in parts.items() if value is not None)

    def target_schema(self) -> str:
        """The schema target-postgres loads into."""
        config = read_json(self.target_config, "STRAVA_CLUB_TARGET_CONFIG")
        return str(config.get("default_target_schema") or "public")


def libpq_url(url: str) -> str:
    """A libpq URL from a SQLAlchemy-style one (``postgresql+psycopg://`` ...)."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.startswith("postgresql+"):
        return f"postgresql://{rest}"
    return url


def read_json(path: Path, variable: str) -> dict:
    """A JSON object from a settings file, or one line naming the variable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{variable}: cannot read {path} as JSON ({exc}); point it at a JSON config file"
        raise ClubSettingsError(msg) from exc
    if not isinstance(value, dict):
        msg = f"{variable}: {path} holds no JSON object; point it at a JSON config file"
        raise ClubSettingsError(msg)
    return value


def _required(environ: dict[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        msg = f"{name} is not set: the club's definitions need it (docs/scaling.md)"
        raise ClubSettingsError(msg)
    return value


def club_settings(environ: dict[str, str] | None = None) -> ClubSettings:
    """The settings from ``STRAVA_CLUB_*`` variables (see docs/scaling.md)."""
    env = dict(os.environ if environ is None else environ)
    streams = tuple(
        name.strip() for name in env.get("STRAVA_CLUB_STREAMS", "").split(",") if name.strip()
    )
    commands = DEFAULT_CYCLE_COMMANDS
    if env.get("STRAVA_CLUB_CYCLE_COMMANDS"):
        try:
            parsed = json.loads(env["STRAVA_CLUB_CYCLE_COMMANDS"])
            commands = tuple(tuple(str(arg) for arg in command) for command in parsed)
        except (ValueError, TypeError) as exc:
            msg = (
                "STRAVA_CLUB_CYCLE_COMMANDS must be a JSON list of command lines like "
                '[["strava-apply-deletions"], ["strava-merged-view"]]'
            )
            raise ClubSettingsError(msg) from exc
    notify = None
    if env.get("STRAVA_CLUB_NOTIFY_COMMAND", "").strip():
        try:
            parsed_notify = json.loads(env["STRAVA_CLUB_NOTIFY_COMMAND"])
            if isinstance(parsed_notify, list):
                notify = tuple(str(arg) for arg in parsed_notify)
        except ValueError:
            notify = ()
        if not notify:
            msg = (
                "STRAVA_CLUB_NOTIFY_COMMAND must be a JSON list, a command line like "
                '["/srv/strava/.venv/bin/strava-notify"]'
            )
            raise ClubSettingsError(msg)
    details = tuple(
        name.strip()
        for name in env.get("STRAVA_CLUB_DETAIL_STREAMS", "").split(",")
        if name.strip()
    )
    settle = env.get("STRAVA_CLUB_ARCHIVE_SETTLE_SECONDS", "").strip() or "30"
    try:
        settle_seconds = float(settle)
    except ValueError as exc:
        msg = f"STRAVA_CLUB_ARCHIVE_SETTLE_SECONDS must be a number of seconds, got {settle!r}"
        raise ClubSettingsError(msg) from exc
    archives = env.get("STRAVA_CLUB_ARCHIVE_DIR", "").strip()
    return ClubSettings(
        tap=_required(env, "STRAVA_CLUB_TAP"),
        target=_required(env, "STRAVA_CLUB_TARGET"),
        tap_config=Path(_required(env, "STRAVA_CLUB_TAP_CONFIG")),
        target_config=Path(_required(env, "STRAVA_CLUB_TARGET_CONFIG")),
        state_dir=Path(_required(env, "STRAVA_CLUB_STATE_DIR")),
        streams=streams or DEFAULT_STREAMS,
        cycle_commands=commands,
        events_config=Path(events) if (events := env.get("STRAVA_CLUB_EVENTS_CONFIG")) else None,
        notify_command=notify,
        detail_streams=details,
        archive_dir=Path(archives).expanduser() if archives else None,
        archive_settle_seconds=settle_seconds,
    )
