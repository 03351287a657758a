"""The project's PostgreSQL, as the loader is told where it is (TARGET_POSTGRES_*)."""

from __future__ import annotations

import os
from urllib.parse import quote


def postgres_dsn() -> str | None:
    """A libpq URL from the same TARGET_POSTGRES_* variables target-postgres reads."""
    url = os.environ.get("TARGET_POSTGRES_SQLALCHEMY_URL")
    if url:
        return url.replace("postgresql+psycopg://", "postgresql://", 1)
    host = os.environ.get("TARGET_POSTGRES_HOST")
    if not host:
        return None
    user = quote(os.environ.get("TARGET_POSTGRES_USER", "postgres"))
    password = os.environ.get("TARGET_POSTGRES_PASSWORD")
    auth = f"{user}:{quote(password)}" if password else user
    port = os.environ.get("TARGET_POSTGRES_PORT", "5432")
    database = os.environ.get("TARGET_POSTGRES_DATABASE", "strava")
    return f"postgresql://{auth}@{host}:{port}/{database}"


def target_schema(given: str | None) -> str:
    """The schema: given, else the loader's default_target_schema variable, else strava."""
    return given or os.environ.get("TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA") or "strava"
