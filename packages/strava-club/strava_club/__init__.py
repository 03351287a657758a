"""Dagster definitions for a club of athletes on one Strava app (docs/scaling.md)."""
