"""Schemas of the events mode's own streams: confirmed deletions and event receipts."""

from __future__ import annotations

from singer_sdk import typing as th

from tap_strava.schemas.common import ATHLETE_ID

ACTIVITY_DELETION_SCHEMA = th.PropertiesList(
    th.Property("id", th.IntegerType, required=True, description="The deleted activity's id."),
    ATHLETE_ID,
    th.Property(
        "deleted_at",
        th.DateTimeType,
        description="When Strava says it was deleted (the event's event_time, UTC).",
    ),
    th.Property(
        "confirmed_at",
        th.DateTimeType,
        required=True,
        description="When the tap saw the owner's token get 404 for it (the run's start, UTC).",
    ),
    th.Property(
        "source",
        th.StringType,
        description="What reported it: push_event (a reconcile flags rows in activities instead).",
    ),
).to_dict()

EVENT_RECEIPT_SCHEMA = th.PropertiesList(
    th.Property(
        "event_key",
        th.StringType,
        required=True,
        description="The receiver's key of the event (a digest of the whole event).",
    ),
    th.Property(
        "received_at",
        th.DateTimeType,
        description="When the receiver stored it (UTC, to the microsecond). A PostgreSQL "
        "column created as text by a version before issue 25 stays text.",
    ),
    th.Property(
        "processed_at",
        th.DateTimeType,
        required=True,
        description="The start of the run that handled it (UTC).",
    ),
    th.Property("object_type", th.StringType, description="activity or athlete."),
    th.Property("object_id", th.IntegerType, description="The activity's or athlete's id."),
    th.Property("aspect_type", th.StringType, description="create, update or delete."),
    th.Property("owner_id", th.IntegerType, description="The athlete the event names."),
    th.Property("subscription_id", th.IntegerType),
    th.Property("event_time", th.DateTimeType, description="Strava's time of the change (UTC)."),
    th.Property("updates", th.StringType, description="The event's updates object, as JSON."),
    th.Property(
        "outcome",
        th.StringType,
        description="applied, deleted, revoked or ignored (unconfirmed, forged, unknown athlete).",
    ),
    th.Property("reason", th.StringType, description="Why it was ignored."),
).to_dict()
