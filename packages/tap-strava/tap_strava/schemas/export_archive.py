"""Schemas of the archive's streams: ``export_activities``, ``export_tracks``, ``export_gear``.

Columns carry the API's names and units where the meaning is the same (``id``,
``start_date`` in UTC, ``distance`` in metres, times in seconds, speeds in m/s...); every
other column Strava's ``activities.csv`` has is declared under a snake_case name, and the
ones this version does not know land in ``_unknown_fields`` (see
:data:`tap_strava.export_archive.ENGLISH_COLUMNS`). They are streams of their own, never
the API's: target-postgres writes NULL into every column a record lacks, so an archive
row upserted over an API row would blank the API's fields.
"""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from tap_strava.conform import with_unknown_fields
from tap_strava.export_archive import ENGLISH_COLUMNS
from tap_strava.schemas.common import ATHLETE_ID
from tap_strava.track_files import INTEGER_SERIES, SERIES
from tap_strava.wall_time import wall_time_property

_KINDS: dict[str, dict[str, t.Any]] = {
    "int": {"type": ["integer", "null"]},
    "number": {"type": ["number", "null"]},
    "text": {"type": ["string", "null"]},
    "bool": {"type": ["boolean", "null"]},
    "date": {"type": ["string", "null"], "format": "date-time"},
    "list": {"type": ["array", "null"], "items": {"type": ["string"]}},
}

_UNITS = {
    "id": "Activity id (the API's).",
    "start_date": "Start in UTC (the export's Activity Date is UTC).",
    "distance": "Metres.",
    "distance_display": "In the athlete's unit (km or miles), as shown on strava.com.",
    "elapsed_time": "Seconds.",
    "moving_time": "Seconds.",
    "max_speed": "m/s.",
    "average_speed": "m/s.",
    "average_grade_adjusted_speed": "m/s (the CSV's 'Average Grade Adjusted Pace').",
    "total_elevation_gain": "Metres.",
    "filename": "The original upload, relative to the archive's root (see export_tracks).",
    "activity_type": "The CSV's Activity Type as written (localized: 'Radfahrt').",
    "suffer_score": "Relative Effort (the API's suffer_score).",
    "gear_name": "The gear's name as in bikes.csv/shoes.csv (export_gear id kind:name).",
    "media": "Paths of the activity's photos in the archive.",
}


#: The local start the export lacks, worked out by the tap (tap_strava.archive_local_time).
_LOCAL_START: dict[str, t.Any] = {
    "start_date_local": wall_time_property(
        "Start as local wall-clock time (no zone), by the rule in start_date_local_rule; "
        "null when none applies."
    ),
    "start_date_local_rule": {
        "type": ["string", "null"],
        "description": "How start_date_local was found: fit_local_timestamp (the FIT "
        "file's local time), start_coordinates (the zone of the first position, "
        "timezonefinder), athlete_timezone (the tap's setting); null: none applied.",
    },
}


def _after(properties: dict[str, t.Any], name: str, extra: dict[str, t.Any]) -> dict[str, t.Any]:
    """``properties`` with ``extra`` inserted after ``name`` (a reader finds them together)."""
    out: dict[str, t.Any] = {}
    for key, spec in properties.items():
        out[key] = spec
        if key == name:
            out.update(extra)
    out.update({key: spec for key, spec in extra.items() if key not in out})
    return out


def _activity_schema() -> dict[str, t.Any]:
    properties: dict[str, t.Any] = {
        "id": {"type": ["integer"], "description": _UNITS["id"]},
        "athlete_id": ATHLETE_ID.to_dict()["athlete_id"],
        "sport_type": {
            "type": ["string", "null"],
            "description": "The API's sport_type (Run, TrailRun...) from Activity Type; "
            "null where a localized value cannot be told.",
        },
    }
    for name, kind in ENGLISH_COLUMNS.values():
        spec = dict(_KINDS[kind])
        if name in _UNITS:
            spec["description"] = _UNITS[name]
        properties.setdefault(name, spec)
    properties = _after(properties, "start_date", _LOCAL_START)
    schema = {"type": "object", "properties": properties, "required": ["id", "athlete_id"]}
    return with_unknown_fields(schema)


EXPORT_ACTIVITIES_SCHEMA = _activity_schema()

_SERIES_TEXT = {
    "time": "Seconds since the first sample.",
    "distance": "Metres since the start (computed from the positions for GPX).",
    "altitude": "Metres.",
    "heartrate": "bpm.",
    "cadence": "rpm (cycling) or steps/min per leg (running).",
    "watts": "Watts.",
    "temp": "Degrees Celsius.",
}


def _tracks_schema() -> dict[str, t.Any]:
    schema = th.PropertiesList(
        ATHLETE_ID,
        th.Property("activity_id", th.IntegerType, required=True, description="Activity id."),
        th.Property("activity_start_date", th.DateTimeType, description="Start (UTC)."),
        th.Property("file_name", th.StringType, description="The original in the archive."),
        th.Property("file_format", th.StringType, description="fit, gpx or tcx."),
        th.Property(
            "series",
            th.ArrayType(th.StringType),
            description="The series the file had (the others are null).",
        ),
        th.Property(
            "computed_series",
            th.ArrayType(th.StringType),
            description="Series computed by the tap, not read (GPX: distance).",
        ),
        th.Property("original_size", th.IntegerType, description="Samples in the file."),
        th.Property(
            "point_step",
            th.IntegerType,
            description="1: every sample; n: every n-th sample, kept so that the record "
            "stays under Meltano's message limit.",
        ),
    ).to_dict()
    properties = schema["properties"]
    properties["latlng"] = {
        "type": ["array", "null"],
        "items": {"type": ["array", "null"], "items": {"type": ["number"]}},
        "description": "[latitude, longitude] per sample, degrees; null without a fix.",
    }
    for name in SERIES:
        if name == "latlng":
            continue
        kind = "integer" if name in INTEGER_SERIES else "number"
        properties[name] = {
            "type": ["array", "null"],
            "items": {"type": [kind, "null"]},
            "description": f"One value per sample (null where the file has none): "
            f"{_SERIES_TEXT[name]}",
        }
    return with_unknown_fields(schema)


EXPORT_TRACKS_SCHEMA = _tracks_schema()

EXPORT_GEAR_SCHEMA = with_unknown_fields(
    th.PropertiesList(
        th.Property(
            "id",
            th.StringType,
            required=True,
            description="bike:<name> or shoe:<name> (the export has no gear id).",
        ),
        ATHLETE_ID,
        th.Property("kind", th.StringType, description="bike or shoe."),
        th.Property("name", th.StringType, description="As in Activity Gear."),
        th.Property("brand_name", th.StringType),
        th.Property("model_name", th.StringType),
        th.Property("default_sport_types", th.StringType, description="As written."),
    ).to_dict()
)
