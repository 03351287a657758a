"""Names the club's definitions and its report share (no Dagster object: no import cycle)."""

#: The dynamic partitions: one per athlete id.
ATHLETES = "athletes"
#: The jobs the report reads.
DAILY_POLL = "daily_poll"
EVENTS_RUN = "events_run"
DETAILS_BACKFILL = "details_backfill"
ARCHIVE_IMPORT = "archive_import"
#: Why a run failed, in one line (the tap's own error): the club's report reads it from
#: Dagster's run records, the one place every machine of the deployment sees. The tap's
#: errors never hold a secret, and the line is cut to ``FAILURE_LINE_MAX``.
FAILURE_TAG = "strava/failure"
FAILURE_LINE_MAX = 500
#: How long the tap and target's pipe took inside the run (seconds), for the report.
SYNC_SECONDS_TAG = "strava/sync-seconds"
