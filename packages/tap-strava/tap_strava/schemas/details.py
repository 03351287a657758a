"""Schemas of the per-activity streams and of gear (units in the descriptions)."""

from __future__ import annotations

from singer_sdk import typing as th

from tap_strava.conform import with_unknown_fields
from tap_strava.schemas.activity import ACTIVITY_SCHEMA
from tap_strava.schemas.common import ATHLETE_ID, META_ATHLETE
from tap_strava.wall_time import wall_time_property

ACTIVITY_ID = th.Property(
    "activity_id", th.IntegerType, required=True, description="Id of the activity."
)
ACTIVITY_START = th.Property(
    "activity_start_date",
    th.DateTimeType,
    required=True,
    description="The activity's start (UTC); the stream's replication key.",
)

_OBJECTS = th.ArrayType(th.ObjectType(additional_properties=True))

_detail_extra = th.PropertiesList(
    ACTIVITY_ID,
    ACTIVITY_START,
    th.Property("description", th.StringType, description="The athlete's description."),
    th.Property("calories", th.NumberType, description="Kilocalories."),
    th.Property("perceived_exertion", th.NumberType, description="1-10, if given."),
    th.Property(
        "prefer_perceived_exertion",
        th.BooleanType,
        description="Perceived exertion shown instead of the heart-rate effort.",
    ),
    th.Property(
        "gear",
        th.ObjectType(
            th.Property("id", th.StringType, description="Gear id (b... bike, g... shoe)."),
            th.Property("name", th.StringType, description="The gear's name."),
            th.Property("distance", th.NumberType, description="Metres."),
            th.Property("primary", th.BooleanType, description="The owner's default gear."),
            th.Property("nickname", th.StringType, description="The owner's name for it."),
            th.Property("retired", th.BooleanType, description="Retired by the owner."),
            th.Property("converted_distance", th.NumberType, description="Athlete's unit."),
            th.Property("resource_state", th.IntegerType, description="2 = summary."),
        ),
        description="The gear used (summary).",
    ),
    th.Property("laps", _OBJECTS, description="Laps as listed in the detail (see laps)."),
    th.Property(
        "similar_activities",
        th.ObjectType(additional_properties=True),
        description="Comparison with similar activities, as Strava sends it.",
    ),
    th.Property("splits_metric", _OBJECTS, description="Per-km splits (m, s, m/s)."),
    th.Property("splits_standard", _OBJECTS, description="Per-mile splits (m, s, m/s)."),
    th.Property("best_efforts", _OBJECTS, description="Best efforts (distance m, time s)."),
    th.Property("segment_efforts", _OBJECTS, description="Segment efforts."),
    th.Property("photos", th.ObjectType(additional_properties=True), description="Photo summary."),
    th.Property(
        "available_zones",
        th.ArrayType(th.StringType),
        description="Zones the activity has (heartrate, power, pace): see activity_zones.",
    ),
    th.Property(
        "stats_visibility",
        _OBJECTS,
        description="Who may see each statistic, as [{type, visibility}].",
    ),
).to_dict()

_map = dict(ACTIVITY_SCHEMA["properties"]["map"])
_map["properties"] = {
    **_map["properties"],
    "polyline": {"type": ["string", "null"], "description": "Full encoded polyline."},
}

ACTIVITY_DETAIL_SCHEMA = {
    "type": "object",
    "properties": {**ACTIVITY_SCHEMA["properties"], "map": _map, **_detail_extra["properties"]},
    "required": ["id", "athlete_id", "activity_id", "activity_start_date"],
}

LAP_SCHEMA = th.PropertiesList(
    th.Property("id", th.IntegerType, required=True, description="Lap id."),
    ATHLETE_ID,
    ACTIVITY_ID,
    ACTIVITY_START,
    th.Property("name", th.StringType, description="The lap's name (Lap 1, ...)."),
    th.Property("lap_index", th.IntegerType, description="1-based position in the activity."),
    th.Property("split", th.IntegerType, description="Split number, as Strava counts them."),
    th.Property("start_date", th.DateTimeType, description="Lap start (UTC)."),
    th.Property("start_date_local", th.DateTimeType),  # declared below: a wall time
    th.Property("elapsed_time", th.IntegerType, description="Seconds."),
    th.Property("moving_time", th.IntegerType, description="Seconds."),
    th.Property("distance", th.NumberType, description="Metres."),
    th.Property("start_index", th.IntegerType, description="Index into the time-series."),
    th.Property("end_index", th.IntegerType, description="Index into the time-series."),
    th.Property("total_elevation_gain", th.NumberType, description="Metres."),
    th.Property("average_speed", th.NumberType, description="m/s."),
    th.Property("max_speed", th.NumberType, description="m/s."),
    th.Property("average_cadence", th.NumberType, description="rpm (rides), spm/2 (runs)."),
    th.Property("average_watts", th.NumberType, description="Watts."),
    th.Property("device_watts", th.BooleanType, description="Power from a power meter."),
    th.Property("average_heartrate", th.NumberType, description="bpm."),
    th.Property("max_heartrate", th.NumberType, description="bpm."),
    th.Property("pace_zone", th.IntegerType, description="The athlete's pace zone in the lap."),
    th.Property(
        "activity",
        th.ObjectType(
            th.Property("id", th.IntegerType, description="The activity's id."),
            th.Property("visibility", th.StringType, description="everyone, followers_only..."),
            th.Property("resource_state", th.IntegerType, description="1 = id only."),
        ),
        description="The activity, as {id, visibility, resource_state}.",
    ),
    th.Property("athlete", META_ATHLETE, description="The owner, as {id, resource_state}."),
    th.Property("resource_state", th.IntegerType, description="2 = summary."),
).to_dict()
LAP_SCHEMA["properties"]["start_date_local"] = wall_time_property(
    "Lap start as local wall-clock time (no zone: Strava's false 'Z' is removed)."
)

ZONE_SCHEMA = th.PropertiesList(
    ATHLETE_ID,
    ACTIVITY_ID,
    ACTIVITY_START,
    th.Property("type", th.StringType, required=True, description="heartrate, power or pace."),
    th.Property("score", th.NumberType, description="Strava's score for the zone type."),
    th.Property("points", th.IntegerType, description="Points Strava gives the effort."),
    th.Property(
        "max",
        th.IntegerType,
        description="In Strava's spec without a meaning; absent from recorded answers.",
    ),
    th.Property("sensor_based", th.BooleanType, description="From a sensor, not estimated."),
    th.Property("custom_zones", th.BooleanType, description="The athlete set their own zones."),
    th.Property("resource_state", th.IntegerType, description="3 = detailed."),
    th.Property(
        "distribution_buckets",
        th.ArrayType(
            th.ObjectType(
                th.Property("min", th.NumberType),
                th.Property("max", th.NumberType, description="-1 = open end."),
                th.Property("time", th.NumberType, description="Seconds in the zone."),
            )
        ),
        description="Time per zone (bpm, watts or m/s bounds).",
    ),
).to_dict()

STREAM_KEYS = {
    "time": ("integer", "Seconds since the start."),
    "distance": ("number", "Metres since the start."),
    "altitude": ("number", "Metres."),
    "velocity_smooth": ("number", "m/s."),
    "heartrate": ("integer", "bpm."),
    "cadence": ("integer", "rpm (cycling) or steps/min per leg (running)."),
    "watts": ("integer", "Watts."),
    "temp": ("integer", "Degrees Celsius."),
    "moving": ("boolean", "Moving at that sample."),
    "grade_smooth": ("number", "Grade in percent."),
}

ACTIVITY_STREAMS_SCHEMA = th.PropertiesList(
    ATHLETE_ID,
    ACTIVITY_ID,
    ACTIVITY_START,
    th.Property(
        "latlng",
        th.ArrayType(th.ArrayType(th.NumberType)),
        description="[latitude, longitude] per sample, degrees.",
    ),
    *(
        th.Property(
            key,
            th.ArrayType(
                {"integer": th.IntegerType, "number": th.NumberType, "boolean": th.BooleanType}[
                    kind
                ]
            ),
            description=f"One value per sample: {text}",
        )
        for key, (kind, text) in STREAM_KEYS.items()
    ),
    th.Property("original_size", th.IntegerType, description="Samples recorded."),
    th.Property("resolution", th.StringType, description="low, medium or high."),
    th.Property("series_type", th.StringType, description="distance or time."),
).to_dict()

GEAR_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True, description="b... bike, g... shoe."),
    ATHLETE_ID,
    th.Property("name", th.StringType, description="The gear's name."),
    th.Property("nickname", th.StringType, description="The owner's name for it."),
    th.Property("brand_name", th.StringType, description="Brand, e.g. Adidas."),
    th.Property("model_name", th.StringType, description="Model, e.g. Supernova ST."),
    th.Property("frame_type", th.IntegerType, description="Bikes: 1 MTB, 2 cross, 3 road..."),
    th.Property("description", th.StringType, description="The owner's description."),
    th.Property("distance", th.NumberType, description="Metres recorded with it."),
    th.Property("converted_distance", th.NumberType, description="In the athlete's unit."),
    th.Property("primary", th.BooleanType, description="The owner's default gear."),
    th.Property("retired", th.BooleanType, description="Retired by the owner."),
    th.Property("resource_state", th.IntegerType, description="3 = detailed."),
    th.Property("weight", th.NumberType, description="Kilograms."),
    th.Property("notification_distance", th.NumberType, description="Reminder distance, if set."),
    th.Property(
        "fetched_at",
        th.DateTimeType,
        description="When Strava gave this item (a pipeline may emit a cached answer).",
    ),
).to_dict()

# Fields Strava adds later are kept in one catch-all column (tap_strava.conform).
with_unknown_fields(LAP_SCHEMA)
with_unknown_fields(ZONE_SCHEMA)
with_unknown_fields(ACTIVITY_STREAMS_SCHEMA)
with_unknown_fields(GEAR_SCHEMA)
