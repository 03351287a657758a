"""The club's Dagster definitions: athletes as dynamic partitions, their daily poll.

* ``athletes``: one dynamic partition per athlete id, kept equal to the token store's
  athletes by ``athlete_partitions`` (a sensor): added when an athlete connects, removed
  when their entry goes after they revoke. A newly added athlete's first poll starts at
  once.
* ``daily_poll``: one athlete's run of tap-strava piped into target-postgres under that
  athlete's own state (strava_club.sync). Its op runs in the ``strava_tap`` pool; the
  instance's run queue limits concurrent runs and, by a tag limit per unique partition,
  keeps one run per athlete at a time. A failure a retry cannot help (revoked token, bad
  setting) tags the run so that Dagster's run retries leave it alone; a quota stop is a
  success the next poll resumes.
* ``daily_poll_schedule`` asks for every athlete's poll once a day.
* ``cycle_end``: apply-deletions and the merged view, once per cycle under a PostgreSQL
  advisory lock (never in every athlete's run: concurrent DROP/CREATE VIEW fail).
* ``events_run`` (not partitioned: the receiver's pending events have no owner filter)
  runs the tap's events mode into target-postgres, then the cycle's steps; the
  ``receiver_events`` sensor starts one when events wait and none is queued or running.
* ``details_backfill`` (partitioned by athlete): the per-activity streams of
  ``STRAVA_CLUB_DETAIL_STREAMS`` under the athlete's own details state, asked for once a
  day by ``details_backfill_schedule`` after the polls, at a lower run priority.
* ``archive_import`` (partitioned by athlete): the athlete's export archive, from
  ``STRAVA_CLUB_ARCHIVE_DIR``, under its own archive state; ``athlete_archives`` (a
  sensor) starts one when an archive appears or changes.
* ``club_message`` (a job, scheduled at 07:30 UTC): the club's day in one message, piped
  to the project's ``strava-notify``.
* ``tag_failure_reasons`` (a run failure sensor) tags a failed run with why when its op
  could not (a killed process): the report reads every reason from Dagster's records.

Dagster's public API only; settings come from ``STRAVA_CLUB_*`` variables
(strava_club.settings), never from run config or tags, which Dagster stores in clear.
"""

import datetime
import json
import os
import subprocess
import time
import typing as t

import dagster as dg

from strava_club import names
from strava_club.archives import archive_of, scan_archives
from strava_club.athletes import connected_athletes, shared_athletes
from strava_club.events import ReceiverUnreachable, pending_events
from strava_club.names import FAILURE_LINE_MAX, FAILURE_TAG, SYNC_SECONDS_TAG
from strava_club.report import NotDelivered, club_day, post, summary
from strava_club.settings import EVENT_STREAMS, EXPORT_STREAMS, ClubSettings, club_settings
from strava_club.sync import (
    SyncOutcome,
    archive_catalog,
    create_tables,
    discover,
    selected_catalog,
    sync_archive,
    sync_athlete,
    sync_events,
)
from strava_club.tables import advisory_lock, tables_exist

ATHLETES = dg.DynamicPartitionsDefinition(name=names.ATHLETES)
POOL = "strava_tap"
#: The tag Dagster's run retries read; set on a run whose failure a retry cannot help.
RETRY_ON_FAILURE_TAG = "dagster/retry_on_asset_or_op_failure"
TABLES_LOCK = "strava-club:create-tables"
CYCLE_LOCK = "strava-club:cycle-end"
#: The events run's tag value (the instance limits ``strava/job: events`` to one run).
EVENTS_JOB_TAG = "events"
#: How often the events sensor asks the receiver (a definition, so read at load time).
EVENTS_SENSOR_SECONDS = int(os.environ.get("STRAVA_CLUB_EVENTS_SENSOR_SECONDS", "60"))
#: When the details backfill is asked for (a definition, so read at load time): after
#: the daily polls (05:00), which its lower run priority lets go first anyway.
DETAILS_CRON = os.environ.get("STRAVA_CLUB_DETAILS_CRON", "0 6 * * *")
#: The details backfill's and the archive import's run priorities: below the daily
#: polls' (0) and the events run's (10). An import costs no request, and the details'
#: activity_streams can skip the tracks an archive gave, so imports go before details.
DETAILS_PRIORITY = "-10"
ARCHIVE_PRIORITY = "-5"
#: How often the archive sensor looks at STRAVA_CLUB_ARCHIVE_DIR (read at load time).
ARCHIVE_SENSOR_SECONDS = int(os.environ.get("STRAVA_CLUB_ARCHIVE_SENSOR_SECONDS", "60"))
#: The run tag naming the archive fingerprint a run was started for.
ARCHIVE_TAG = "strava/archive"
#: Run statuses of an events run not finished yet.
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def fail_run_on(
    context: dg.OpExecutionContext,
    outcome: SyncOutcome,
    who: str,
    metadata: dict[str, t.Any],
) -> None:
    """Fail the run when the sync failed; one a retry cannot help is tagged so.

    The tag is read by Dagster when the run fails: no run retry for a revoked athlete, a
    bad setting or a quota stop (strava_club.sync.NOT_RETRYABLE).
    """
    if outcome.ok:
        return
    fail_run(
        context,
        f"{who}: {outcome.reason}",
        retryable=outcome.retryable,
        metadata={**metadata, "tap_exit": outcome.tap_exit},
    )


def fail_run(
    context: dg.OpExecutionContext,
    description: str,
    *,
    retryable: bool,
    metadata: dict[str, t.Any] | None = None,
) -> t.NoReturn:
    """Fail the run with one line; tagged first when a retry cannot help.

    Dagster reads the tag when the run fails: no run retry for it.
    """
    tags = {FAILURE_TAG: failure_line(description)}
    if not retryable:
        tags[RETRY_ON_FAILURE_TAG] = "false"
    context.instance.add_run_tags(context.run_id, tags)
    raise dg.Failure(description=description, metadata={**(metadata or {}), "retryable": retryable})


def athlete_output(
    context: dg.OpExecutionContext, outcome: SyncOutcome, athlete_id: int, what: str
) -> dg.Output[int]:
    """Fail the run on a failed sync; else the athlete id out, a quota stop logged.

    ``what`` (``poll``, ``backfill``) names the next run that resumes after a quota stop.
    """
    fail_run_on(
        context,
        outcome,
        f"athlete {athlete_id}",
        {"athlete_id": athlete_id, "target_exit": outcome.target_exit},
    )
    if outcome.quota_stops:
        context.log.warning(
            f"athlete {athlete_id}: {what} stopped on the app's quota "
            f"({outcome.quota_stops[0]}); the next {what} resumes there"
        )
    return dg.Output(
        athlete_id,
        metadata={"athlete_id": athlete_id, "quota_stops": len(outcome.quota_stops)},
    )


@dg.op(pool=POOL)
def poll_athlete(context: dg.OpExecutionContext) -> dg.Output[int]:
    """Sync one athlete (the run's partition) into PostgreSQL; the athlete id out."""
    settings = club_settings()
    athlete_id = int(context.partition_key)
    catalog = selected_catalog(discover(settings), settings.streams)
    ensure_tables(settings, catalog, context.log)
    began = time.monotonic()
    outcome = sync_athlete(settings, athlete_id, catalog, context.log.info)
    # The pipe's own wall time: the run's wall less this is Dagster's part (the report).
    context.instance.add_run_tags(
        context.run_id, {SYNC_SECONDS_TAG: f"{time.monotonic() - began:.2f}"}
    )
    return athlete_output(context, outcome, athlete_id, "poll")


def ensure_tables(
    settings: ClubSettings,
    catalog: dict,
    log: dg.DagsterLogManager,
    wanted: tuple[str, ...] | None = None,
) -> None:
    """Create the target tables once, under an advisory lock, before the first load.

    target-postgres's CREATE TABLE races when several athletes' first runs start at once
    (and the events run with them); the first run to take the lock creates them, the
    others find them.
    """
    streams = [entry["tap_stream_id"] for entry in catalog.get("streams", [])]
    selected = [name for name in streams if name in (wanted or settings.streams)]
    with advisory_lock(settings.postgres_dsn(), TABLES_LOCK) as connection:
        if tables_exist(connection, settings.target_schema(), selected):
            return
        log.info(f"creating the tables {', '.join(selected)} before the first load")
        create_tables(settings, catalog)


@dg.job(
    partitions_def=ATHLETES,
    tags={"strava/job": "daily-poll"},
    description="One athlete's daily poll: tap-strava (athlete_ids) into target-postgres.",
)
def daily_poll() -> None:
    """The daily poll of one athlete (the partition)."""
    poll_athlete()


@dg.sensor(
    job=daily_poll, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING
)
def athlete_partitions(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Keep one partition per athlete of the token store; poll a new athlete at once.

    The token store is the shared database's when the tap's configuration (or the
    environment) sets ``shared_database_url``: athletes who connect through the receiver's
    Connect page land there, on whichever machine serves it.
    """
    settings = club_settings()
    dsn = settings.shared_database_dsn()
    ids = shared_athletes(dsn) if dsn else connected_athletes(settings.token_store_path())
    connected = {str(athlete_id) for athlete_id in ids}
    known = set(context.instance.get_dynamic_partitions(ATHLETES.name))
    added = sorted(connected - known, key=int)
    removed = sorted(known - connected, key=int)
    requests = []
    if added:
        requests.append(ATHLETES.build_add_request(added))
    if removed:
        requests.append(ATHLETES.build_delete_request(removed))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=key, run_key=f"first-poll-{key}") for key in added
        ],
        dynamic_partitions_requests=requests,
    )


@dg.schedule(job=daily_poll, cron_schedule="0 5 * * *", execution_timezone="UTC")
def daily_poll_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Every athlete's poll, once a day; the run queue spreads them out."""
    day = (context.scheduled_execution_time or datetime.datetime.now(datetime.UTC)).date()
    return [
        dg.RunRequest(partition_key=key, run_key=f"{day.isoformat()}-{key}")
        for key in context.instance.get_dynamic_partitions(ATHLETES.name)
    ]


def run_cycle_commands(log: dg.DagsterLogManager) -> None:
    """apply-deletions and the merged view, once, under a PostgreSQL advisory lock."""
    settings = club_settings()
    with advisory_lock(settings.postgres_dsn(), CYCLE_LOCK):
        for command in settings.cycle_commands:
            proc = subprocess.run(list(command), capture_output=True, text=True, check=False)
            log.info(f"{' '.join(command)}: {proc.stdout.strip()[-300:]}")
            if proc.returncode != 0:
                tail = " ".join(proc.stderr.strip().splitlines()[-1:])
                raise dg.Failure(description=f"{command[0]} failed: {tail}")


@dg.op
def apply_cycle_commands(context: dg.OpExecutionContext) -> None:
    """apply-deletions and the merged view, once, under a PostgreSQL advisory lock."""
    run_cycle_commands(context.log)


@dg.job(description="Once per cycle, after the athletes' polls: deletions, merged view.")
def cycle_end() -> None:
    """The steps that span every athlete, never run inside one athlete's run."""
    apply_cycle_commands()


@dg.schedule(job=cycle_end, cron_schedule="0 7 * * *", execution_timezone="UTC")
def cycle_end_schedule() -> dg.RunRequest:
    """After the daily polls have had two hours."""
    return dg.RunRequest()


@dg.op(pool=POOL)
def apply_events(context: dg.OpExecutionContext) -> dg.Output[int]:
    """The tap's events mode into PostgreSQL: what the receiver's pending events name.

    Every request of this run is an event request in the app's quota ledger, the first
    class served (its reserve is kept from the daily polls and backfills).
    """
    settings = club_settings()
    events_config = settings.events_config
    if events_config is None:
        raise dg.Failure(description="STRAVA_CLUB_EVENTS_CONFIG is not set: no events run")
    catalog = selected_catalog(discover(settings, events_config), EVENT_STREAMS)
    ensure_tables(settings, catalog, context.log, EVENT_STREAMS)
    outcome = sync_events(settings, events_config, catalog, context.log.info)
    fail_run_on(context, outcome, "events", {})
    if outcome.quota_stops:
        context.log.warning(
            f"events: stopped on the app's quota ({outcome.quota_stops[0]}); the rest stay "
            "pending for the next events run"
        )
    return dg.Output(0, metadata={"quota_stops": len(outcome.quota_stops)})


@dg.op
def end_cycle_after_events(context: dg.OpExecutionContext, _events: int) -> None:
    """The deletions the events run confirmed are applied, once, under the cycle's lock."""
    run_cycle_commands(context.log)


@dg.job(
    tags={"strava/job": EVENTS_JOB_TAG, "dagster/priority": "10"},
    description="The receiver's pending events (every athlete), then the cycle's steps.",
)
def events_run() -> None:
    """Not partitioned: the receiver's pending events have no owner filter."""
    end_cycle_after_events(apply_events())


@dg.sensor(
    job=events_run,
    minimum_interval_seconds=EVENTS_SENSOR_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def receiver_events(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """An events run when events wait in the receiver and none is queued or running.

    One at a time (the instance's tag limit on ``strava/job: events`` backs this up): two
    runs would read the same pending events. A run's handled events stay pending until the
    next run acknowledges them, so one more, short, run follows each batch.
    """
    settings = club_settings()
    if settings.events_config is None:
        return dg.SkipReason("STRAVA_CLUB_EVENTS_CONFIG is not set: the club has no events run")
    try:
        waiting = pending_events(settings)
    except ReceiverUnreachable as exc:
        return dg.SkipReason(str(exc))
    if not waiting:
        return dg.SkipReason("no pending events")
    active = context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=events_run.name, statuses=IN_FLIGHT), limit=1
    )
    if active:
        return dg.SkipReason("an events run is queued or running")
    return dg.SensorResult(run_requests=[dg.RunRequest()])


def failure_line(text: str) -> str:
    """One line of at most :data:`FAILURE_LINE_MAX` characters."""
    line = " ".join(text.split())
    return line if len(line) <= FAILURE_LINE_MAX else line[: FAILURE_LINE_MAX - 3] + "..."


@dg.op(pool=POOL)
def backfill_details(context: dg.OpExecutionContext) -> dg.Output[int]:
    """One athlete's per-activity streams (STRAVA_CLUB_DETAIL_STREAMS) into PostgreSQL.

    Their requests are the quota ledger's backfill class: served after the events and
    the daily polls, within the athlete's fair share, stopped cleanly when the window's
    backfill part is spent (a success; the next backfill resumes there).
    """
    settings = club_settings()
    athlete_id = int(context.partition_key)
    problem = settings.details_problem()
    if problem:
        fail_run(context, f"athlete {athlete_id}: {problem}", retryable=False)
    catalog = selected_catalog(discover(settings), settings.detail_streams)
    ensure_tables(settings, catalog, context.log, settings.detail_streams)
    outcome = sync_athlete(settings, athlete_id, catalog, context.log.info, job="details")
    return athlete_output(context, outcome, athlete_id, "backfill")


@dg.job(
    partitions_def=ATHLETES,
    tags={"strava/job": "details-backfill", "dagster/priority": DETAILS_PRIORITY},
    description="One athlete's per-activity streams (STRAVA_CLUB_DETAIL_STREAMS), "
    "tap-strava (athlete_ids) into target-postgres under the athlete's details state.",
)
def details_backfill() -> None:
    """The details backfill of one athlete (the partition)."""
    backfill_details()


@dg.schedule(
    job=details_backfill,
    cron_schedule=DETAILS_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def details_backfill_schedule(
    context: dg.ScheduleEvaluationContext,
) -> list[dg.RunRequest] | dg.SkipReason:
    """Every athlete's details backfill, once a day, when STRAVA_CLUB_DETAIL_STREAMS is set.

    Running by default: the setting is what turns the backfill on, and an empty one
    skips the tick with its reason.
    """
    settings = club_settings()
    if not settings.detail_streams:
        return dg.SkipReason("STRAVA_CLUB_DETAIL_STREAMS is empty: no details backfill")
    day = (context.scheduled_execution_time or datetime.datetime.now(datetime.UTC)).date()
    return [
        dg.RunRequest(partition_key=key, run_key=f"details-{day.isoformat()}-{key}")
        for key in context.instance.get_dynamic_partitions(ATHLETES.name)
    ]


@dg.op(pool=POOL)
def import_archive(context: dg.OpExecutionContext) -> dg.Output[int]:
    """One athlete's export archive into PostgreSQL: the tap's archive mode, no request.

    A bad archive (not an export, damaged, another athlete's) fails this run with the
    tap's one line and is not retried: the same file would fail the same way; a new
    file starts a new run.
    """
    settings = club_settings()
    athlete_id = int(context.partition_key)
    folder = settings.archive_dir
    archive = archive_of(folder, str(athlete_id)) if folder else None
    if archive is None:
        fail_run(
            context,
            f"athlete {athlete_id}: no archive {athlete_id}.zip (or folder {athlete_id}/, "
            f"not both) in STRAVA_CLUB_ARCHIVE_DIR ({folder})",
            retryable=False,
        )
    context.log.info(f"athlete {athlete_id}: importing {archive.name}")
    catalog = selected_catalog(archive_catalog(settings, athlete_id, archive), EXPORT_STREAMS)
    ensure_tables(settings, catalog, context.log, EXPORT_STREAMS)
    outcome = sync_archive(settings, athlete_id, archive, catalog, context.log.info)
    fail_run_on(
        context,
        outcome,
        f"athlete {athlete_id}",
        {"athlete_id": athlete_id, "archive": archive.name, "target_exit": outcome.target_exit},
    )
    return dg.Output(athlete_id, metadata={"athlete_id": athlete_id, "archive": archive.name})


@dg.job(
    partitions_def=ATHLETES,
    tags={"strava/job": "archive-import", "dagster/priority": ARCHIVE_PRIORITY},
    description="One athlete's Strava export archive (STRAVA_CLUB_ARCHIVE_DIR) into "
    "target-postgres under the athlete's archive state; no request to Strava.",
)
def archive_import() -> None:
    """The archive import of one athlete (the partition)."""
    import_archive()


@dg.sensor(
    job=archive_import,
    minimum_interval_seconds=ARCHIVE_SENSOR_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def athlete_archives(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """An archive import when an athlete's archive appears or changes in the folder.

    The run key is the athlete and the archive's fingerprint (a zip's size and
    modification time, a folder's digest of its files'): Dagster starts one run per key,
    ever, so an archive is imported once, a new one again, and a failed one is not
    started again until the file changes. An entry named after no athlete's partition is
    never imported (its rows would be filed under whoever the name says); one still
    being written waits for a later look.
    """
    settings = club_settings()
    folder = settings.archive_dir
    if folder is None:
        return dg.SkipReason("STRAVA_CLUB_ARCHIVE_DIR is not set: the club imports no archive")
    if not folder.is_dir():
        return dg.SkipReason(f"STRAVA_CLUB_ARCHIVE_DIR {folder} is not a folder")
    scan = scan_archives(folder)
    known = set(context.instance.get_dynamic_partitions(ATHLETES.name))
    skipped, waiting, requests = list(scan.skipped), [], []
    now = datetime.datetime.now(datetime.UTC).timestamp()
    for found in scan.found:
        if found.athlete_key not in known:
            skipped.append(
                f"{found.path.name}: athlete {found.athlete_key} is not a partition (not "
                "connected), not imported"
            )
        elif now - found.changed_at < settings.archive_settle_seconds:
            waiting.append(f"{found.path.name}: changed in the last seconds, looked at again")
        else:
            requests.append(
                dg.RunRequest(
                    partition_key=found.athlete_key,
                    run_key=f"archive-{found.athlete_key}-{found.fingerprint}",
                    tags={ARCHIVE_TAG: found.fingerprint},
                )
            )
    # Each skipped entry is logged once (the cursor keeps the lines already logged), not
    # at every look; the tick's skip reason repeats them.
    warned = set(json.loads(context.cursor)) if context.cursor else set()
    for line in skipped:
        if line not in warned:
            context.log.warning(line)
    cursor = json.dumps(sorted(skipped))
    if not requests:
        context.update_cursor(cursor)
        return dg.SkipReason("; ".join(skipped + waiting) or f"no archive in {folder}")
    return dg.SensorResult(run_requests=requests, cursor=cursor)


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
)
def tag_failure_reasons(context: dg.RunFailureSensorContext) -> None:
    """Tag a failed run of the club with why, when its op did not (a crash, a kill).

    A failure the op saw (the tap's one-line error) is tagged by the op itself
    (:func:`fail_run_on`); this covers the rest (a killed process, an exception in the
    op, a run worker that died) with the step's first error line, so that
    ``strava-club-report`` names a reason for every failed run from Dagster's records
    alone: no file on the daemon's machine.
    """
    run = context.dagster_run
    if run.tags.get(FAILURE_TAG):
        return
    reason = context.failure_event.message or "the run failed"
    for step in context.get_step_failure_events():
        data = step.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            reason = data.user_failure_data.description
        elif data.error is not None:
            reason = (data.error.message.strip().splitlines() or [reason])[0]
    context.instance.add_run_tags(run.run_id, {FAILURE_TAG: failure_line(reason)})


@dg.op
def post_club_message(context: dg.OpExecutionContext) -> None:
    """The club's day in one message, from Dagster's records, to the notifier.

    What ``strava-club-report --notify`` posts: how many athletes synced, which failed
    and why, a failed events run; success, warning or failure like the daily job's own.
    """
    settings = club_settings()
    report = club_day(context.instance)
    context.log.info(summary(report))
    if settings.notify_command is None:
        context.log.info("STRAVA_CLUB_NOTIFY_COMMAND is not set: the message is not posted")
        return
    try:
        post(report, settings.notify_command)
    except NotDelivered as exc:
        raise dg.Failure(description=str(exc)) from None


@dg.job(description="The club's daily message: athletes synced, failed and why.")
def club_message() -> None:
    """Once a day, after the polls and the cycle's steps."""
    post_club_message()


@dg.schedule(job=club_message, cron_schedule="30 7 * * *", execution_timezone="UTC")
def club_message_schedule() -> dg.RunRequest:
    """After the cycle's steps (07:00), when the day's polls have had two and a half hours."""
    return dg.RunRequest()


#: Every job's steps run in the run worker's own process. Dagster's default executor starts
#: one more Python process per step, importing Dagster and these definitions again (about
#: 2 s of CPU per run, measured by the club's day test), for jobs of one or two steps that
#: only wait on the tap and the target; one run's steps run one after the other anyway.
defs = dg.Definitions(
    executor=dg.in_process_executor,
    jobs=[daily_poll, cycle_end, events_run, details_backfill, archive_import, club_message],
    sensors=[athlete_partitions, receiver_events, tag_failure_reasons, athlete_archives],
    schedules=[
        daily_poll_schedule,
        cycle_end_schedule,
        details_backfill_schedule,
        club_message_schedule,
    ],
)
