"""Schemas of ``athlete`` (``DetailedAthlete``) and ``athlete_stats`` (``ActivityStats``)."""

from __future__ import annotations

from singer_sdk import typing as th

from tap_strava.conform import with_unknown_fields
from tap_strava.schemas.common import ATHLETE_ID

_GEAR_SUMMARY = th.ArrayType(
    th.ObjectType(
        th.Property("id", th.StringType),
        th.Property("primary", th.BooleanType),
        th.Property("name", th.StringType),
        th.Property("nickname", th.StringType),
        th.Property("resource_state", th.IntegerType),
        th.Property("retired", th.BooleanType),
        th.Property("distance", th.NumberType, description="Metres."),
        th.Property("converted_distance", th.NumberType),
    )
)

ATHLETE_SCHEMA = th.PropertiesList(
    ATHLETE_ID,
    th.Property("id", th.IntegerType, required=True, description="Athlete id."),
    th.Property("resource_state", th.IntegerType, description="3 detailed, 2 summary."),
    th.Property("username", th.StringType),
    th.Property("firstname", th.StringType),
    th.Property("lastname", th.StringType),
    th.Property("bio", th.StringType),
    th.Property("city", th.StringType),
    th.Property("state", th.StringType),
    th.Property("country", th.StringType),
    th.Property("sex", th.StringType, description="M, F or null."),
    th.Property("premium", th.BooleanType),
    th.Property("summit", th.BooleanType),
    th.Property("created_at", th.DateTimeType),
    th.Property("updated_at", th.DateTimeType),
    th.Property("badge_type_id", th.IntegerType),
    th.Property("weight", th.NumberType, description="Kilograms."),
    th.Property("profile_medium", th.StringType, description="URL of a 62x62 picture."),
    th.Property("profile", th.StringType, description="URL of a 124x124 picture."),
    th.Property("friend", th.StringType),
    th.Property("follower", th.StringType),
    th.Property("blocked", th.BooleanType),
    th.Property("can_follow", th.BooleanType),
    th.Property("follower_count", th.IntegerType),
    th.Property("friend_count", th.IntegerType),
    th.Property("mutual_friend_count", th.IntegerType),
    th.Property("athlete_type", th.IntegerType, description="0 cyclist, 1 runner."),
    th.Property("date_preference", th.StringType),
    th.Property("measurement_preference", th.StringType, description="feet or meters."),
    th.Property("ftp", th.IntegerType, description="Functional threshold power in watts."),
    th.Property("postable_clubs_count", th.IntegerType),
    th.Property(
        "clubs",
        th.ArrayType(
            th.ObjectType(
                th.Property("id", th.IntegerType),
                th.Property("name", th.StringType),
                th.Property("sport_type", th.StringType),
                th.Property("city", th.StringType),
                th.Property("country", th.StringType),
                th.Property("private", th.BooleanType),
                th.Property("member_count", th.IntegerType),
                th.Property("url", th.StringType),
                th.Property("membership", th.StringType),
            )
        ),
        description="Clubs the athlete belongs to (summary).",
    ),
    th.Property("bikes", _GEAR_SUMMARY),
    th.Property("shoes", _GEAR_SUMMARY),
    th.Property(
        "fetched_at",
        th.DateTimeType,
        description="When Strava gave this profile (a pipeline may emit a cached answer).",
    ),
).to_dict()

_TOTALS = th.ObjectType(
    th.Property("count", th.IntegerType, description="Number of activities."),
    th.Property("distance", th.NumberType, description="Metres."),
    th.Property("moving_time", th.NumberType, description="Seconds."),
    th.Property("elapsed_time", th.NumberType, description="Seconds."),
    th.Property("elevation_gain", th.NumberType, description="Metres."),
    th.Property("achievement_count", th.IntegerType),
)

ATHLETE_STATS_SCHEMA = th.PropertiesList(
    ATHLETE_ID,
    th.Property(
        "snapshot_date",
        th.DateType,
        required=True,
        description="UTC date of the sync; with athlete_id the key of the daily history.",
    ),
    th.Property(
        "fetched_at",
        th.DateTimeType,
        description="When Strava gave this snapshot (a pipeline may emit a cached answer).",
    ),
    th.Property("biggest_ride_distance", th.NumberType, description="Metres."),
    th.Property("biggest_climb_elevation_gain", th.NumberType, description="Metres."),
    *(
        th.Property(
            f"{period}_{sport}_totals",
            _TOTALS,
            description=f"{label} {sport} totals (activities visible to Everyone only).",
        )
        for period, label in (
            ("recent", "Last 4 weeks'"),
            ("ytd", "Year-to-date"),
            ("all", "All-time"),
        )
        for sport in ("ride", "run", "swim")
    ),
).to_dict()

# Fields Strava adds later are kept in one catch-all column (tap_strava.conform).
with_unknown_fields(ATHLETE_SCHEMA)
with_unknown_fields(ATHLETE_STATS_SCHEMA)
