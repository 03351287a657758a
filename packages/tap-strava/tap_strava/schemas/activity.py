"""Schema of ``activities``: Strava's ``SummaryActivity`` (list items)."""

from __future__ import annotations

from singer_sdk import typing as th

from tap_strava.conform import with_unknown_fields
from tap_strava.schemas.common import ATHLETE_ID, LATLNG, META_ATHLETE
from tap_strava.wall_time import wall_time_property

ACTIVITY_SCHEMA = th.PropertiesList(
    th.Property("id", th.IntegerType, required=True, description="Activity id (int64)."),
    ATHLETE_ID,
    th.Property("resource_state", th.IntegerType, description="2 = summary representation."),
    th.Property("external_id", th.StringType, description="Id given by the upload source."),
    th.Property("upload_id", th.IntegerType, description="Id of the upload; null if manual."),
    th.Property("upload_id_str", th.StringType, description="upload_id as a string."),
    th.Property("athlete", META_ATHLETE, description="The owner, as {id, resource_state}."),
    th.Property("name", th.StringType, description="Activity name (any unicode)."),
    th.Property("distance", th.NumberType, description="Distance in metres."),
    th.Property("moving_time", th.IntegerType, description="Moving time in seconds."),
    th.Property("elapsed_time", th.IntegerType, description="Elapsed time in seconds."),
    th.Property(
        "total_elevation_gain", th.NumberType, description="Total elevation gain in metres."
    ),
    th.Property("elev_high", th.NumberType, description="Highest elevation in metres."),
    th.Property("elev_low", th.NumberType, description="Lowest elevation in metres."),
    th.Property("type", th.StringType, description="Deprecated activity type; see sport_type."),
    th.Property(
        "sport_type",
        th.StringType,
        description="Sport type (Run, Ride, Padel, ...); an open list, new values appear.",
    ),
    th.Property(
        "workout_type",
        th.IntegerType,
        description="Workout type code (runs: 0 default, 1 race, 2 long, 3 workout; "
        "rides: 10 default, 11 race, 12 workout).",
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        required=True,
        description="Start time in UTC (replication key).",
    ),
    th.Property(
        "start_date_local",
        th.DateTimeType,
        description="Start as local wall-clock time; Strava writes it with a false 'Z'.",
    ),
    th.Property("timezone", th.StringType, description="E.g. '(GMT+01:00) Europe/Amsterdam'."),
    th.Property("utc_offset", th.NumberType, description="Offset of local time in seconds."),
    th.Property("location_city", th.StringType, description="Legacy, usually null."),
    th.Property("location_state", th.StringType, description="Legacy, usually null."),
    th.Property("location_country", th.StringType, description="Legacy, usually null."),
    th.Property(
        "start_latlng", LATLNG, description="[latitude, longitude] in degrees; [] without GPS."
    ),
    th.Property(
        "end_latlng", LATLNG, description="[latitude, longitude] in degrees; [] without GPS."
    ),
    th.Property("achievement_count", th.IntegerType, description="Number of achievements."),
    th.Property("kudos_count", th.IntegerType, description="Number of kudos."),
    th.Property("comment_count", th.IntegerType, description="Number of comments."),
    th.Property("athlete_count", th.IntegerType, description="Athletes in a group activity."),
    th.Property("photo_count", th.IntegerType, description="Instagram photos."),
    th.Property("total_photo_count", th.IntegerType, description="All photos."),
    th.Property(
        "map",
        th.ObjectType(
            th.Property("id", th.StringType, description="The map's id."),
            th.Property(
                "summary_polyline",
                th.StringType,
                description="Encoded polyline; '' or null without GPS.",
            ),
            th.Property("resource_state", th.IntegerType, description="2 summary, 3 detailed."),
        ),
        description="Route summary.",
    ),
    th.Property("trainer", th.BooleanType, description="Recorded on a trainer."),
    th.Property("commute", th.BooleanType, description="Marked as a commute."),
    th.Property("manual", th.BooleanType, description="Created manually (no device file)."),
    th.Property("private", th.BooleanType, description="Visible to the owner only."),
    th.Property(
        "visibility",
        th.StringType,
        description="everyone, followers_only or only_me.",
    ),
    th.Property("flagged", th.BooleanType, description="Flagged by other athletes."),
    th.Property("hide_from_home", th.BooleanType, description="Muted from home feeds."),
    th.Property("has_kudoed", th.BooleanType, description="The athlete gave kudos to it."),
    th.Property("gear_id", th.StringType, description="Gear id (b… bike, g… shoe) or null."),
    th.Property("average_speed", th.NumberType, description="Average speed in m/s."),
    th.Property("max_speed", th.NumberType, description="Maximum speed in m/s."),
    th.Property("average_cadence", th.NumberType, description="Average cadence (rpm or spm/2)."),
    th.Property("average_temp", th.NumberType, description="Average temperature in °C."),
    th.Property("average_watts", th.NumberType, description="Average power in watts (rides)."),
    th.Property("max_watts", th.NumberType, description="Maximum power in watts (rides)."),
    th.Property(
        "weighted_average_watts", th.NumberType, description="Weighted average power in watts."
    ),
    th.Property("kilojoules", th.NumberType, description="Work in kilojoules (rides)."),
    th.Property("device_watts", th.BooleanType, description="Power from a power meter."),
    th.Property("has_heartrate", th.BooleanType, description="Heart-rate data recorded."),
    th.Property("average_heartrate", th.NumberType, description="Average heart rate in bpm."),
    th.Property("max_heartrate", th.NumberType, description="Maximum heart rate in bpm."),
    th.Property("heartrate_opt_out", th.BooleanType, description="Heart rate hidden by owner."),
    th.Property(
        "display_hide_heartrate_option",
        th.BooleanType,
        description="Strava offers the owner to hide the heart rate.",
    ),
    th.Property("pr_count", th.IntegerType, description="Personal records set."),
    th.Property("suffer_score", th.NumberType, description="Relative effort score."),
    th.Property("from_accepted_tag", th.BooleanType, description="Copied from a group tag."),
    th.Property("device_name", th.StringType, description="Recording device, if given."),
).to_dict()
# A local wall time, sent without Strava's false 'Z' (tap_strava.wall_time).
ACTIVITY_SCHEMA["properties"]["start_date_local"] = wall_time_property(
    "Start as local wall-clock time (the athlete's clock, no zone: Strava's false 'Z' is "
    "removed); timestamp without time zone in PostgreSQL."
)

# Fields Strava adds later are kept in one catch-all column (tap_strava.conform).
with_unknown_fields(ACTIVITY_SCHEMA)
