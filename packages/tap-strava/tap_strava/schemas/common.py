"""Schema fragments shared by several streams."""

from __future__ import annotations

from singer_sdk import typing as th

ATHLETE_ID = th.Property(
    "athlete_id",
    th.IntegerType,
    required=True,
    description="Id of the Strava athlete whose token fetched this record (partition key).",
)

LATLNG = th.ArrayType(th.NumberType)

META_ATHLETE = th.ObjectType(
    th.Property("id", th.IntegerType, description="The athlete's id."),
    th.Property("resource_state", th.IntegerType, description="1 = id only."),
)
