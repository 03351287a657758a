"""tap-strava: settings, stream list and the command-line entry point."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import subprocess
import sys
import traceback
import typing as t
from functools import cached_property
from pathlib import Path

import requests
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.singerlib import StateMessage

from tap_strava import backends, shared_database
from tap_strava.answer_size import DEFAULT_MAX_ANSWER_MIB
from tap_strava.archive_local_time import athlete_zone
from tap_strava.athletes import DEFAULT_API_URL, DEFAULT_TOKEN_URL, Athletes
from tap_strava.detail_streams import (
    ActivityDetailsStream,
    ActivityStreamsStream,
    GearStream,
    LapsStream,
    ZonesStream,
)
from tap_strava.errors import StravaConfigError, StravaUserError
from tap_strava.event_handling import EventRun
from tap_strava.event_inbox import EventInbox
from tap_strava.event_streams import (
    ActivityDeletionsStream,
    EventActivitiesStream,
    EventDetailsStream,
    EventReceiptsStream,
)
from tap_strava.export_streams import export_streams
from tap_strava.message_writer import BackgroundWriter
from tap_strava.run import SyncRun
from tap_strava.sdk_adapter import ConfigValidationHook
from tap_strava.state_keys import SKIPPED_ATHLETES_KEY
from tap_strava.streams import ActivitiesStream, AthleteStatsStream, AthleteStream

if t.TYPE_CHECKING:
    from tap_strava.client import StravaStream

#: A failed or stopped run waits this long for the target to take what was written.
FLUSH_ON_FAILURE_SECONDS = 10.0

STATE_FILE_HINT = (
    "pass the value of the last STATE message of the previous run (a JSON object; {} or "
    "no --state at all for a first run)"
)


def read_state_input(handle: t.IO[str] | None) -> dict[str, t.Any]:
    """The ``--state`` file as a dict, or one clear :class:`StravaConfigError`.

    The SDK feeds the file straight to a JSON parser, so an empty file (what ``tail -1``
    of a target's output gives when the target printed no state) ended in a
    JSONDecodeError traceback. A whole STATE message instead of its value is unwrapped:
    it is what a pipeline that keeps the target's last output line hands over.
    """
    if handle is None:
        return {}
    name = getattr(handle, "name", "--state")
    try:
        text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read the --state file {name} ({exc}): {STATE_FILE_HINT}"
        raise StravaConfigError(msg) from exc
    if not text.strip():
        msg = f"the --state file {name} is empty: {STATE_FILE_HINT}"
        raise StravaConfigError(msg)
    try:
        value = json.loads(text)
    except ValueError as exc:
        msg = f"the --state file {name} is not valid JSON ({exc}): {STATE_FILE_HINT}"
        raise StravaConfigError(msg) from exc
    if isinstance(value, dict) and value.get("type") == "STATE" and "value" in value:
        value = value["value"]
    if not isinstance(value, dict):
        msg = f"the --state file {name} holds a {type(value).__name__}: {STATE_FILE_HINT}"
        raise StravaConfigError(msg)
    return value


def parent_command_line() -> list[str]:
    """The parent process's arguments, or ``[]`` when they cannot be read.

    Linux's ``/proc`` first (no dependency, no subprocess); elsewhere ``ps``, which every
    POSIX system has. A tap must not pull psutil's compiled wheel for this one question.
    """
    parent = os.getppid()
    try:
        raw = Path(f"/proc/{parent}/cmdline").read_bytes()
    except OSError:
        try:
            proc = subprocess.run(
                ["ps", "-o", "args=", "-p", str(parent)],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return []
        return proc.stdout.split() if proc.returncode == 0 else []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def started_by_meltano_config_test() -> bool:
    """Whether ``meltano config test`` started this tap (its parent's command line says).

    Meltano's test runs the tap exactly like a sync and stops it at the first RECORD:
    nothing in the arguments or the environment tells the two apart. The test must
    neither wait out a spent quota (up to 15 minutes of silence) nor pass on a stored
    access token while the client secret is wrong, so the tap looks at its parent.
    """
    cmdline = parent_command_line()
    for position, arg in enumerate(cmdline[:3]):  # meltano, python meltano, python -m meltano
        if Path(arg).name == "meltano":
            words = [a for a in cmdline[position + 1 :] if not a.startswith("-")]
            return any(words[i : i + 2] == ["config", "test"] for i in range(min(len(words), 3)))
    return False


_INTEGER_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")
_INTEGER_LIST_TEXT = re.compile(r"^\s*\d+(\s*,\s*\d+)*\s*$")
_BOOLEAN_TEXT = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def coerce_setting_text(config: dict[str, t.Any], schema: dict[str, t.Any]) -> dict[str, t.Any]:
    """``config`` with integer and boolean settings given as text converted where exact.

    ``"7"`` becomes 7 and ``"true"`` True; ``"seven"`` stays text, for the validation to
    name. Under Meltano every such setting arrives as text (see :class:`TapStrava`).
    """
    result = dict(config)
    for name, spec in (schema.get("properties") or {}).items():
        value = result.get(name)
        if not isinstance(value, str):
            continue
        kinds = spec.get("type")
        kinds = {kinds} if isinstance(kinds, str) else set(kinds or ())
        if "integer" in kinds and _INTEGER_TEXT.match(value):
            result[name] = int(value)
        elif "boolean" in kinds and value.strip().lower() in _BOOLEAN_TEXT:
            result[name] = _BOOLEAN_TEXT[value.strip().lower()]
        elif "array" in kinds:
            try:
                parsed = json.loads(value)
            except ValueError:
                if _INTEGER_LIST_TEXT.match(value):  # athlete_ids as "123, 456"
                    result[name] = [int(part) for part in value.split(",")]
                continue
            if isinstance(parsed, list):
                result[name] = parsed
    return result


class TapStrava(ConfigValidationHook, Tap):
    """Singer tap for a Strava athlete's activities, profile and totals."""

    name = "tap-strava"
    package_name = "singer-tap-strava"  # the distribution (the index's "tap-strava" is another)

    config_jsonschema = th.PropertiesList(
        th.Property(
            "client_id",
            th.StringType,
            required=True,
            title="Client ID",
            description="Client ID of your Strava API application "
            "(https://www.strava.com/settings/api).",
        ),
        th.Property(
            "client_secret",
            th.StringType,
            required=True,
            secret=True,
            title="Client Secret",
            description="Client secret of your Strava API application.",
        ),
        th.Property(
            "refresh_token",
            th.StringType,
            secret=True,
            title="Refresh Token",
            description="OAuth refresh token of the athlete (scope "
            "read,activity:read_all,profile:read_all). Strava rotates it; the newest one is "
            "kept in the token store, and a newly configured token takes over from it. "
            "Required unless athletes is set, or shared_database_url, whose store then "
            "holds the athletes (those who connected: a club, docs/scaling.md).",
        ),
        th.Property(
            "athletes",
            th.ArrayType(
                th.ObjectType(
                    th.Property(
                        "name",
                        th.StringType,
                        description="Label for logs and messages (never the token).",
                    ),
                    th.Property("refresh_token", th.StringType, required=True, secret=True),
                )
            ),
            secret=True,
            title="Athletes",
            description="Several athletes of one Strava app (up to 10 on the standard tier): "
            'a JSON list like [{"name": "ann", "refresh_token": "..."}], each with its own '
            "token store entry and state partition; added to refresh_token if both are set. "
            "An athlete whose token fails is skipped and reported while the others sync. "
            "The app's quota is shared: an athlete the quota left out last run goes first.",
        ),
        th.Property(
            "athlete_ids",
            th.ArrayType(th.IntegerType),
            title="Athlete IDs",
            description="Restrict the run to these Strava athlete ids (a JSON list like "
            "[123, 456], or 123,456), out of the configured tokens: an orchestrator runs one "
            "athlete per run under its own state id (docs/scaling.md). An id with no token "
            "in the configuration ends the run with one line. Absent: every configured "
            "athlete. With export_archive_path: whose archive it is (an archive naming "
            "another athlete stops the run with one line; one naming none is that athlete's).",
        ),
        th.Property(
            "reconcile",
            th.BooleanType,
            default=False,
            title="Reconcile",
            description="Full-history pass over activities that marks activities deleted on "
            "Strava as deleted in the target (Singer ACTIVATE_VERSION, sent only after the "
            "pass completes for every athlete) and updates old edits. Run it under its own "
            "state id (the tap-strava-reconcile plugin); needs activity:read_all, as recorded "
            "by tap-strava-auth in the token store.",
        ),
        th.Property(
            "events_url",
            th.StringType,
            title="Events URL",
            description="The events mode: the push-event receiver's tap interface (for "
            "example http://127.0.0.1:8788/tap, see docs/events.md). When set, a run reads "
            "the pending push events instead of the activity list and emits the activities "
            "they name (one read each), their details, confirmed deletions "
            "(activity_deletions) and event_receipts. Run it under its own state id (the "
            "tap-strava-events plugin).",
        ),
        th.Property(
            "events_token",
            th.StringType,
            secret=True,
            title="Events Token",
            description="The bearer token of the receiver's tap interface "
            "(STRAVA_EVENTS_TAP_TOKEN of strava-events serve).",
        ),
        th.Property(
            "events_per_run",
            th.IntegerType(minimum=1, maximum=1000),
            default=500,
            title="Events Per Run",
            description="At most this many pending events per run, up to 1,000 (one read "
            "per activity they name); the rest stay queued for the next run.",
        ),
        th.Property(
            "export_archive_path",
            th.StringType,
            title="Export Archive Path",
            description="Strava's bulk export (Settings > My Account > Download or Delete "
            "Your Account > Request your archive): the zip, or the folder it unpacks to. "
            "When set, a run reads only the archive, with no request and no API app "
            "(client_id, client_secret and refresh_token are not needed), and emits "
            "export_activities, export_tracks and export_gear (see docs/export-archive.md). "
            "Run it under its own state id.",
        ),
        th.Property(
            "export_workers",
            th.IntegerType(minimum=1, maximum=64),
            title="Export Workers",
            description="Processes decoding the archive's track files (FIT, GPX, TCX) side "
            "by side; default one per CPU, at most 4. 1 decodes in the tap's own process, "
            "as does any run with fewer than 32 files to decode. The output is the same "
            "whatever the number.",
        ),
        th.Property(
            "athlete_timezone",
            th.StringType,
            title="Athlete Timezone",
            description="The athlete's IANA time zone (Europe/Paris; Strava's '(GMT+01:00) "
            "Europe/Paris' is read too): the local start time of an archive activity whose "
            "file tells none (no FIT local time, no position), e.g. a manual one "
            "(export_activities.start_date_local_rule athlete_timezone). Unset: those stay null.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            title="Start Date",
            description="Earliest activity start time to sync (ISO 8601). Absent: the "
            "whole history. Only used where no bookmark exists or as a floor for the "
            "lookback; lowering it later does not backfill (use a full refresh).",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            title="End Date",
            description="Latest activity start time to sync (ISO 8601), for a backfill of a "
            "date range: run it with start_date and its own state id (meltano run "
            "--state-id-suffix=backfill-2019 ...) so the daily bookmark is not moved. "
            "Absent: up to now and beyond.",
        ),
        th.Property(
            "lookback_days",
            th.IntegerType(minimum=0),
            default=7,
            title="Lookback Days",
            description="Each run re-reads activities that started up to this many days "
            "before the bookmark, so late uploads and recent edits arrive.",
        ),
        th.Property(
            "details_full_pass_days",
            th.IntegerType(minimum=0),
            default=7,
            title="Details Full Pass Days",
            description="Every this many days the per-activity streams (details, laps, "
            "zones, time-series) read the whole activity list instead of the look-back "
            "window, and fetch again any activity whose name, sport type, start, distance, "
            "times or gear changed since they fetched it (list requests as in a first "
            "sync: one per 200 activities plus about a dozen for the empty years before "
            "the first one). 0: never.",
        ),
        th.Property(
            "gear_max_age_days",
            th.IntegerType(minimum=0),
            default=7,
            title="Gear Max Age Days",
            description="A bike or shoe is fetched again (one read each) when its last fetch "
            "is older than this many days (at most 7, Strava's caching limit); new gear ids "
            "are fetched at once. 0: every run.",
        ),
        th.Property(
            "archive_tracks_in_target",
            th.BooleanType,
            default=False,
            title="Archive Tracks In Target",
            description="This pipeline's target holds the export archive's tracks "
            "(export_tracks, loaded by strava-archive into the same database): "
            "activity_streams then skips the activities an archive import gave a track. "
            "Off: every track is read from the API (another destination lacks them).",
        ),
        th.Property(
            "window_days",
            th.IntegerType(minimum=1),
            default=30,
            title="Window Days",
            description="Initial size of the time windows a resumed run or a date range "
            "reads the activity list in (a look-back from the bookmark to now is one open "
            "window); the bookmark advances after each finished window (sizes adapt).",
        ),
        *(
            th.Property(
                setting,
                th.IntegerType(minimum=0),
                default=0,
                title=title,
                description=f"Requests per run the {stream} stream may spend, one per "
                f"activity, oldest first ({what}). 0 (the default) turns it off. The next "
                "run goes on where the budget or Strava's quota ended.",
            )
            for setting, title, stream, what in (
                (
                    "activity_details_per_run",
                    "Activity Details Per Run",
                    "activity_details",
                    "description, calories, gear, splits, best efforts, full polyline",
                ),
                ("laps_per_run", "Laps Per Run", "laps", "one row per lap"),
                (
                    "zones_per_run",
                    "Zones Per Run",
                    "activity_zones",
                    "heart-rate, power and pace zones",
                ),
                (
                    "streams_per_run",
                    "Streams Per Run",
                    "activity_streams",
                    "time-series: time, latlng, distance, altitude, heartrate, cadence, watts, "
                    "temp, moving, grade",
                ),
            )
        ),
        th.Property(
            "api_url",
            th.StringType,
            default=DEFAULT_API_URL,
            title="API URL",
            description="Base URL of the Strava API (a simulator's URL for tests). For "
            "2027 Strava's own sources name two new bases, https://api-v3.strava.com and "
            "https://www.api-v3.strava.com (both without /api/v3): set the one Strava "
            "confirms here (no automatic switch by date).",
        ),
        th.Property(
            "token_url",
            th.StringType,
            default=DEFAULT_TOKEN_URL,
            title="Token URL",
            description="Strava's OAuth token endpoint.",
        ),
        th.Property(
            "token_store_path",
            th.StringType,
            title="Token Store Path",
            description="JSON file (mode 0600) that keeps the newest rotated refresh "
            "token and the current access token. Default: "
            "$XDG_STATE_HOME/tap-strava/tokens.json (~/.local/state/...).",
        ),
        th.Property(
            "shared_database_url",
            th.StringType,
            secret=True,
            title="Shared Database URL",
            description="PostgreSQL URL (postgresql://user@host/db) of the database that "
            "several workers of one Strava app share: the tokens (encrypted with the keys "
            "of TAP_STRAVA_TOKEN_KEYS), the facts cache and the quota ledger then live in "
            "its schema strava_shared instead of files beside token_store_path. Also read "
            "from TAP_STRAVA_SHARED_DATABASE_URL. Default: unset (files).",
        ),
        th.Property(
            "quota_reserve_percent",
            th.IntegerType(minimum=0, maximum=50),
            default=10,
            title="Quota Reserve Percent",
            description="With shared_database_url: the share of each quota window kept "
            "for events; daily polls stop short of it, backfills (details, laps, zones, "
            "streams) short of twice it.",
        ),
        th.Property(
            "max_rate_limit_wait_seconds",
            th.IntegerType(minimum=0),
            default=900,
            title="Max Rate Limit Wait Seconds",
            description="When Strava's 15-minute quota is spent, wait for the next window "
            "if it opens within this many seconds; otherwise stop cleanly (the state is "
            "kept and the next run resumes there).",
        ),
        th.Property(
            "rate_limit_window_seconds",
            th.IntegerType(minimum=1),
            default=900,
            title="Rate Limit Window Seconds",
            description="Length of Strava's short quota window (900 s, windows start at "
            ":00/:15/:30/:45). Change only for a simulator with short windows.",
        ),
        th.Property(
            "request_timeout",
            th.IntegerType(minimum=1),
            default=60,
            title="Request Timeout",
            description="Seconds to wait for one Strava answer before retrying.",
        ),
        th.Property(
            "max_answer_mib",
            th.IntegerType(minimum=1),
            default=DEFAULT_MAX_ANSWER_MIB,
            title="Max Answer MiB",
            description="Largest answer read from Strava, in MiB after decompression; a "
            "larger one (or a decompression bomb) ends the run with one line. Strava's "
            "largest (a day-long activity's streams) is about 10 MB.",
        ),
    ).to_dict()

    def config_errors(self, sdk_errors: list[str], *, raise_errors: bool) -> list[str]:
        """The SDK's JSON-schema checks plus the ones it skips, as one actionable line."""
        errors = sdk_errors
        if self.config.get("export_archive_path"):  # an archive import needs no API app
            errors = [e for e in errors if not e.startswith(("'client_id'", "'client_secret'"))]
        typed = self._type_errors()
        # The SDK's "'seven' is not of type 'integer', 'null' in config['lookback_days']"
        # is replaced by a line that says what the setting wants and its variable.
        errors = [e for e in errors if not any(f"config['{name}']" in e for name in typed)]
        errors = list(typed.values()) + self._without_secret_values(errors)
        errors += self._semantic_errors()
        if errors and raise_errors:
            msg = (
                "invalid configuration: " + "; ".join(errors) + ". Fix the setting "
                "(TAP_STRAVA_<SETTING> in Meltano's .env, or the --config file)"
            )
            raise StravaConfigError(msg)
        return errors

    def __init__(self, *, config: t.Any = None, **kwargs: t.Any) -> None:
        """The SDK's tap, with numbers and booleans given as text read as such.

        meltano.yml declares these settings as strings: Meltano's own ``kind: integer``
        cast ``TAP_STRAVA_LOOKBACK_DAYS=seven`` with a 60-line traceback before the tap
        ever ran, and ``kind: date_iso8601`` read ``01/02/2024`` as a date. Meltano now
        passes the text through and the tap converts it here, or names the setting.
        """
        if isinstance(config, dict):
            config = coerce_setting_text(config, self.config_jsonschema)
        super().__init__(config=config, **kwargs)

    def _type_errors(self) -> dict[str, str]:
        """Setting name to a clear line, for every integer or boolean setting given as text."""
        errors: dict[str, str] = {}
        for name, spec in self.config_jsonschema["properties"].items():
            value = self.config.get(name)
            if not isinstance(value, str):
                continue
            kinds = spec.get("type")
            kinds = {kinds} if isinstance(kinds, str) else set(kinds or ())
            variable = f"TAP_STRAVA_{name.upper()}"
            if "integer" in kinds:
                floor = spec.get("minimum")
                bound = f" of at least {floor}" if floor is not None else ""
                errors[name] = f"{name} ({variable}) must be a whole number{bound}, got {value!r}"
            elif "boolean" in kinds:
                errors[name] = f"{name} ({variable}) must be true or false, got {value!r}"
            elif name == "athlete_ids":
                errors[name] = (
                    f"{name} ({variable}) must be a JSON list of athlete ids like [123, 456] "
                    f"or 123,456, got {value!r}"
                )
            elif "array" in kinds:
                # Never the value: the athletes list holds refresh tokens.
                errors[name] = (
                    f"{name} ({variable}) must be a JSON list like "
                    '[{"name": "ann", "refresh_token": "..."}]; its text is not valid JSON'
                )
        return errors

    def _without_secret_values(self, errors: list[str]) -> list[str]:
        """The SDK's errors about secret settings, with the offending value left out.

        ``'<token>' is not of type 'object' in config['athletes'][0]`` would print a
        refresh token; the place is enough to find the mistake.
        """
        secret = [
            name
            for name, spec in self.config_jsonschema["properties"].items()
            if spec.get("secret") or spec.get("writeOnly")
        ]
        cleaned = []
        for error in errors:
            name = next((n for n in secret if f"config['{n}']" in error), None)
            if name is None:
                cleaned.append(error)
                continue
            place = error[error.index(f"config['{name}']") :].removeprefix("config")
            cleaned.append(
                f"{name} (TAP_STRAVA_{name.upper()}) has the wrong shape at {place} (the value "
                'is not shown; expected [{"name": "ann", "refresh_token": "..."}])'
            )
        return list(dict.fromkeys(cleaned))

    def _semantic_errors(self) -> list[str]:
        errors = []
        try:
            athlete_zone(self.config.get("athlete_timezone"))
        except StravaConfigError as exc:
            errors.append(str(exc))
        for setting in ("start_date", "end_date"):
            value = self.config.get(setting)
            if not value:
                continue
            try:
                datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                errors.append(
                    f"{setting} {value!r} is not an ISO 8601 date-time (e.g. "
                    f"2024-01-01T00:00:00Z or 2024-01-01; TAP_STRAVA_{setting.upper()})"
                )
        tokens = [str(self.config["refresh_token"])] if self.config.get("refresh_token") else []
        tokens += [
            str(item.get("refresh_token") or "")
            for item in self.config.get("athletes") or []
            if isinstance(item, dict)
        ]
        if not tokens and not (
            self.config.get("export_archive_path") or shared_database.configured_url(self.config)
        ):
            errors.append(
                "refresh_token is required (or athletes, a list of refresh tokens, or "
                "shared_database_url, whose store holds the athletes who connected)"
            )
        elif len(set(tokens)) < len(tokens):
            errors.append("the same refresh token is configured twice (refresh_token/athletes)")
        for setting in ("api_url", "token_url", "events_url"):
            value = self.config.get(setting)
            if value is not None and not str(value).startswith(("http://", "https://")):
                errors.append(f"{setting} must be an http(s) URL, got {value!r}")
        if self.config.get("events_url") and not self.config.get("events_token"):
            errors.append(
                "events_url is set but events_token is not: give the receiver's "
                "STRAVA_EVENTS_TAP_TOKEN (TAP_STRAVA_EVENTS_TOKEN)"
            )
        if self.config.get("athlete_ids") and self.config.get("reconcile"):
            errors.append(
                "athlete_ids and reconcile exclude each other: a reconcile flags rows of every "
                "athlete, so it must read them all (unset athlete_ids for tap-strava-reconcile)"
            )
        if self.config.get("events_url") and self.config.get("reconcile"):
            errors.append("events_url and reconcile exclude each other: run them as two plugins")
        for other in ("events_url", "reconcile"):
            if self.config.get("export_archive_path") and self.config.get(other):
                errors.append(
                    f"export_archive_path and {other} exclude each other: an archive import "
                    "reads no API (run it as its own plugin, tap-strava-archive)"
                )
        return errors

    @cached_property
    def sync_run(self) -> SyncRun:
        """What every stream of this sync shares (see :mod:`tap_strava.run`)."""
        facts = backends.shared_facts(self.config)
        events = None
        if self.config.get("events_url"):
            inbox = EventInbox(
                str(self.config["events_url"]),
                str(self.config.get("events_token") or ""),
                timeout=float(self.config.get("request_timeout", 60)),
            )
            events = EventRun(inbox, self.config)
        return SyncRun(
            athletes=Athletes(self.config, facts, self.logger, get=self._get_profile_path),
            started_at=self.run_started_at,
            shared_facts=facts,
            report_skipped=self.report_skipped_athletes,
            events=events,
        )

    def _get_profile_path(self, account: t.Any, path: str) -> t.Any:
        """An account's own GET (its profile) through the ``athlete`` stream's machinery."""
        # The events mode has no athlete stream: any of its streams makes the request.
        stream = t.cast("StravaStream", self.streams.get("athlete") or self.streams["activities"])
        return stream.get_one(path, account)

    @property
    def athletes(self) -> Athletes:
        """The athletes of this sync (built on first use, not at discovery)."""
        return self.sync_run.athletes

    @cached_property
    def run_started_at(self) -> datetime.datetime:
        """The moment this sync started (UTC), shared by every stream."""
        return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

    def report_skipped_athletes(self) -> None:
        """Put the skipped athletes' reasons in the state; fail if every athlete failed.

        Called after each stream. The reasons land in the state (``skipped_athletes`` of
        ``activities``), so the run is reported as partial; the key goes away once every
        athlete syncs again. If no athlete could be synced, the run fails with one line.
        """
        accounts = self.athletes.accounts
        failed = [account for account in accounts if account.failure]
        if failed and len(failed) == len(accounts):
            msg = "no athlete could be synced: " + "; ".join(
                f"{account.label}: {account.failure}" for account in failed
            )
            raise StravaUserError(msg)
        activities_state = self.state.setdefault("bookmarks", {}).setdefault("activities", {})
        skipped = {account.label: str(account.failure) for account in failed}
        if activities_state.get(SKIPPED_ATHLETES_KEY) == (skipped or None):
            return
        if skipped:
            activities_state[SKIPPED_ATHLETES_KEY] = skipped
        else:
            activities_state.pop(SKIPPED_ATHLETES_KEY, None)
        self.state_writer.write_state(self.state)

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: t.Any = None,
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
    ) -> None:
        """The SDK's sync command, with four things a plain Singer pipeline needs.

        * an empty or broken ``--state`` file is one line, not a JSONDecodeError;
        * the last message is always a STATE after the last RECORD: targets such as
          target-jsonl emit only a state that no record follows, so without it no state
          survived a run whose state had not changed since its start;
        * under ``meltano config test`` the client id and secret are checked with a real
          token request and a spent quota is reported at once instead of waited for;
        * stdout is written from a thread (:mod:`tap_strava.message_writer`), so decoding
          an archive goes on while the target copies a batch into its database.
        """
        if about:
            super().invoke(about=True, about_format=about_format)  # prints, then exits
        state_dict = read_state_input(state)
        catalog_dict = json.loads(catalog.read()) if catalog is not None else None
        cls.print_version(print_fn=cls.logger.info)
        tap = cls(
            config=getattr(config, "config", None) or {},
            state=state_dict,
            catalog=catalog_dict,
            parse_env_config=bool(getattr(config, "parse_env", False)),
            validate_config=True,
            # stdout from a thread: the tap keeps working while the target drains a batch.
            message_writer=BackgroundWriter(),
        )
        config_test = started_by_meltano_config_test() and not tap.config.get("export_archive_path")
        with tap.messages_flushed():
            if config_test:
                tap.check_credentials_now()
            tap.sync_all()
            if config_test:
                tap.report_quota_for_config_test()
            tap.write_message(StateMessage(value=tap.state))

    @contextlib.contextmanager
    def messages_flushed(self) -> t.Iterator[None]:
        """Every message written inside is on stdout at the end, failure or not.

        On a failure, what was written before it (records and the state that covers them)
        still reaches the target, waiting at most :data:`FLUSH_ON_FAILURE_SECONDS` for a
        target that reads nothing, and the failure, not a later broken pipe, is raised.
        """
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self.flush_messages(timeout=FLUSH_ON_FAILURE_SECONDS)
            raise
        self.flush_messages()

    def flush_messages(self, timeout: float | None = None) -> None:
        """Write every queued message now (see :mod:`tap_strava.message_writer`)."""
        writer = self.message_writer
        if isinstance(writer, BackgroundWriter):
            writer.close(timeout)

    def check_credentials_now(self) -> None:
        """Ask Strava for a token now, even if a stored access token is still valid.

        A stored access token lives up to six hours without the client secret being
        used; a test that reuses it passes with a wrong secret. Forgetting the stored
        access token and refreshing goes through the rotation-safe path (a rotated
        refresh token is stored before use). The test also must not sit out a spent
        15-minute window: it stops at once (see :meth:`report_quota_for_config_test`).
        """
        self.logger.info("meltano config test: checking client_id and client_secret with Strava")
        for account in self.athletes.accounts:
            account.authenticator.invalidate_access_token()
            account.authenticator.update_access_token()
            account.rate_limits.max_wait_seconds = 0
        self.logger.info("Strava accepted client_id, client_secret and the refresh token")

    def report_quota_for_config_test(self) -> None:
        """A config test that reached no record because of the quota: say so, as an error.

        Meltano's own verdict would be "no RECORD message received, check the selection",
        which sends the user the wrong way; the credentials were fine.
        """
        reason = self.athletes.first.rate_limits.exhausted
        if reason:
            msg = (
                "Strava accepted the credentials, but the app's rate-limit quota is spent, "
                f"so no record could be read to finish the test: {reason}. Run the test "
                "again then; a scheduled run would wait or stop cleanly and resume"
            )
            raise StravaUserError(msg)

    def discover_streams(self) -> list[StravaStream]:
        """The streams this tap offers (the events mode's own set when events_url is set)."""
        if self.config.get("export_archive_path"):
            # An archive import: its own streams, no API stream, no request.
            return t.cast(
                "list[StravaStream]",
                export_streams(
                    self,
                    str(self.config["export_archive_path"]),
                    backends.shared_facts(self.config),
                    workers=self.config.get("export_workers"),
                    athlete_timezone=self.config.get("athlete_timezone"),
                    athlete_ids=self.config.get("athlete_ids") or (),
                ),
            )
        if self.config.get("events_url"):
            # event_receipts must sync last (its state acknowledges what the others
            # emitted): the SDK syncs streams in name order, and it sorts after activity_*.
            return [
                EventActivitiesStream(self),
                EventDetailsStream(self),
                ActivityDeletionsStream(self),
                EventReceiptsStream(self),
            ]
        return [
            ActivitiesStream(self),
            AthleteStream(self),
            AthleteStatsStream(self),
            GearStream(self),  # after activities: it fetches the gear ids they used
            ActivityDetailsStream(self),
            LapsStream(self),
            ZonesStream(self),
            ActivityStreamsStream(self),
        ]


def main() -> None:
    """Run the tap; a problem the user can fix ends in one line and exit code 1."""
    try:
        TapStrava.cli()
    except StravaUserError as exc:
        print(f"tap-strava: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        # The network kept failing through every retry. `meltano config test` shows only
        # the last line: make it name the URL and the setting, not a traceback's tail.
        request = getattr(exc, "request", None)
        url = str(getattr(request, "url", "") or "").split("?", 1)[0] or "Strava"
        print(
            f"tap-strava: error: cannot reach {url} ({type(exc).__name__}) after several "
            "tries: check api_url (https://www.strava.com/api/v3; for 2027 Strava names "
            "https://api-v3.strava.com and https://www.api-v3.strava.com) and the network",
            file=sys.stderr,
        )
        sys.exit(1)
    except RetriableAPIError as exc:
        # 5xx (or broken answers) through every retry: Strava itself is in trouble. The
        # raw exception named neither that nor what to do.
        print(
            f"tap-strava: error: {' '.join(str(exc).split())[:300]}, still after every "
            "retry: Strava's servers are failing (see https://status.strava.com); nothing "
            "is lost, run again later and it resumes from the last state",
            file=sys.stderr,
        )
        sys.exit(1)
    except FatalAPIError as exc:
        # Strava refused a request or sent what cannot be loaded; the message says which.
        print(f"tap-strava: error: {' '.join(str(exc).split())[:500]}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        # A bug, not a Strava or configuration problem: the run must fail (never be
        # reported as a skipped athlete or a partial run), and say where.
        print(f"tap-strava: error: {describe_bug(exc)}", file=sys.stderr)
        sys.exit(1)


def describe_bug(exc: BaseException) -> str:
    """One line for an unexpected exception: its type, message and innermost tap frame."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if f"{Path('tap_strava')}" in frame.filename:
            where = f" at {Path(frame.filename).name}:{frame.lineno}"
            break
    text = " ".join(str(exc).split())[:300]
    return (
        f"unexpected {type(exc).__name__}: {text}{where}; a bug in tap-strava, not in your "
        "settings: nothing is lost (the state stays at the last checkpoint), please report "
        "it with this line"
    )


if __name__ == "__main__":
    main()
