"""Schemas of ``athlete`` (``DetailedAthlete``) and ``athlete_stats`` (``ActivityStats``)."""

from __future__ import annotations

from singer_sdk import typing as th

from tap_strava.conform import with_unknown_fields
from tap_strava.schemas.common import ATHLETE_ID

_GEAR_SUMMARY = th.ArrayType(
    th.ObjectType(
        th.Property("id", th.StringType, description="Gear id (b... bike, g... shoe)."),
        th.Property("primary", th.BooleanType, description="The owner's default gear."),
        th.Property("name", th.StringType, description="The gear's name."),
        th.Property("nickname", th.StringType, description="The owner's name for it."),
        th.Property("resource_state", th.IntegerType, description="2 = summary."),
        th.Property("retired", th.BooleanType, description="Retired by the owner."),
        th.Property("distance", th.NumberType, description="Metres."),
        th.Property("converted_distance", th.NumberType, description="In the athlete's unit."),
    )
)

ATHLETE_SCHEMA = th.PropertiesList(
    ATHLETE_ID,
    th.Property("id", th.IntegerType, required=True, description="Athlete id."),
    th.Property("resource_state", th.IntegerType, description="3 detailed, 2 summary."),
    th.Property("username", th.StringType, description="The athlete's Strava username."),
    th.Property("firstname", th.StringType, description="First name."),
    th.Property("lastname", th.StringType, description="Last name."),
    th.Property("bio", th.StringType, description="The profile's bio text."),
    th.Property("city", th.StringType, description="City, as the athlete gave it."),
    th.Property("state", th.StringType, description="State or region."),
    th.Property("country", th.StringType, description="Country."),
    th.Property("sex", th.StringType, description="M, F or null."),
    th.Property("premium", th.BooleanType, description="Deprecated; see summit."),
    th.Property("summit", th.BooleanType, description="Has a Strava subscription."),
    th.Property("created_at", th.DateTimeType, description="Account created (UTC)."),
    th.Property("updated_at", th.DateTimeType, description="Profile last updated (UTC)."),
    th.Property("badge_type_id", th.IntegerType, description="Subscription badge shown."),
    th.Property("weight", th.NumberType, description="Kilograms."),
    th.Property("profile_medium", th.StringType, description="URL of a 62x62 picture."),
    th.Property("profile", th.StringType, description="URL of a 124x124 picture."),
    th.Property("friend", th.StringType, description="Follow status; null on one's own profile."),
    th.Property(
        "follower", th.StringType, description="Follower status; null on one's own profile."
    ),
    th.Property("blocked", th.BooleanType, description="Blocked; false on one's own profile."),
    th.Property("can_follow", th.BooleanType, description="Can be followed by the viewer."),
    th.Property("follower_count", th.IntegerType, description="Followers."),
    th.Property("friend_count", th.IntegerType, description="Athletes followed."),
    th.Property("mutual_friend_count", th.IntegerType, description="Mutual follows."),
    th.Property("athlete_type", th.IntegerType, description="0 cyclist, 1 runner."),
    th.Property("date_preference", th.StringType, description="strftime format, %m/%d/%Y."),
    th.Property("measurement_preference", th.StringType, description="feet or meters."),
    th.Property("ftp", th.IntegerType, description="Functional threshold power in watts."),
    th.Property("postable_clubs_count", th.IntegerType, description="Clubs it may post in."),
    th.Property(
        "clubs",
        th.ArrayType(
            th.ObjectType(
                th.Property("id", th.IntegerType, description="Club id."),
                th.Property("resource_state", th.IntegerType, description="2 = summary."),
                th.Property("name", th.StringType, description="Club name."),
                th.Property("profile_medium", th.StringType, description="URL, 60x60 pixels."),
                th.Property("profile", th.StringType, description="URL, 124x124 pixels."),
                th.Property("cover_photo", th.StringType, description="URL, about 1200x400."),
                th.Property("cover_photo_small", th.StringType, description="URL, about 360x120."),
                th.Property("sport_type", th.StringType, description="cycling, running, ..."),
                th.Property(
                    "activity_types",
                    th.ArrayType(th.StringType),
                    description="Activity types the club is about (Run, Ride, ...).",
                ),
                th.Property("city", th.StringType, description="The club's city."),
                th.Property("state", th.StringType, description="State or region."),
                th.Property("country", th.StringType, description="Country."),
                th.Property("private", th.BooleanType, description="Members only."),
                th.Property("member_count", th.IntegerType, description="Members."),
                th.Property("featured", th.BooleanType, description="Featured by Strava."),
                th.Property("verified", th.BooleanType, description="Verified by Strava."),
                th.Property("url", th.StringType, description="The club's vanity URL."),
                th.Property("membership", th.StringType, description="member or pending."),
                th.Property("admin", th.BooleanType, description="The athlete is an admin."),
                th.Property("owner", th.BooleanType, description="The athlete is the owner."),
            )
        ),
        description="Clubs the athlete belongs to (summary).",
    ),
    th.Property("bikes", _GEAR_SUMMARY, description="The athlete's bikes (summary)."),
    th.Property("shoes", _GEAR_SUMMARY, description="The athlete's shoes (summary)."),
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
    th.Property("achievement_count", th.IntegerType, description="Achievements (recent only)."),
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
