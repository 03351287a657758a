"""JSON schemas of the streams, typed after Strava's model (``SummaryActivity``, ...).

Every field is optional and nullable: Strava's spec marks all fields optional and real
answers send ``null`` often. Sport types are plain strings (Strava adds new ones every
year). Fields Strava adds later are kept in the ``_unknown_fields``
column of every stream (see :mod:`tap_strava.conform`), never an error, never lost.
"""

from tap_strava.schemas.activity import ACTIVITY_SCHEMA
from tap_strava.schemas.athlete import ATHLETE_SCHEMA, ATHLETE_STATS_SCHEMA

__all__ = ["ACTIVITY_SCHEMA", "ATHLETE_SCHEMA", "ATHLETE_STATS_SCHEMA"]
