"""Strava's error bodies ("Fault" objects), built in one place.

Strava answers every error with ``{"message": str, "errors": [{"resource", "field", "code"}]}``.
Clients branch on these exact strings (a 400 naming ``refresh_token`` means "re-authorize", a
401 naming ``activity:read_permission`` means "missing scope"), so the simulator must spell
them exactly as Strava does and nowhere else.
"""

from __future__ import annotations

from typing import Any

JSONDict = dict[str, Any]


def fault(message: str, resource: str | None = None, field: str = "", code: str = "") -> JSONDict:
    """Build a Strava Fault body; without a resource the ``errors`` list is empty."""
    errors: list[JSONDict] = []
    if resource is not None:
        errors.append({"resource": resource, "field": field, "code": code})
    return {"message": message, "errors": errors}


def invalid_access_token() -> JSONDict:
    """401 body for a missing, unknown, expired or revoked access token."""
    return fault("Authorization Error", "Athlete", "access_token", "invalid")


def missing_permission(permission: str) -> JSONDict:
    """401 body for a token that lacks a scope, e.g. ``activity:read_permission``."""
    return fault("Authorization Error", "AccessToken", permission, "missing")


def record_not_found(resource: str = "Activity", field: str = "id") -> JSONDict:
    """404 body for an unknown record id."""
    return fault("Record Not Found", resource, field, "invalid")


def unknown_path() -> JSONDict:
    """404 body Strava gives for a route it does not have."""
    return fault("Record Not Found", "resource", "path", "invalid")


def rate_limit_exceeded() -> JSONDict:
    """429 body once a 15-minute or daily limit is spent."""
    return fault("Rate Limit Exceeded", "Application", "rate limit", "exceeded")


def bad_request(resource: str, field: str, code: str = "invalid") -> JSONDict:
    """400 body naming the offending field."""
    return fault("Bad Request", resource, field, code)


def forbidden(resource: str, field: str) -> JSONDict:
    """403 body, e.g. asking for another athlete's stats."""
    return fault("Forbidden", resource, field, "forbidden")


def application_inactive() -> JSONDict:
    """403 body for an application without an active developer subscription (since 2026).

    Only the message is known from reports; the ``errors`` list is left empty rather than
    guessed, so clients must key on the status and the message.
    """
    return fault("Application Status Inactive")


def for_status(status: int) -> JSONDict:
    """Return the body Strava sends with a given status, used by injected faults.

    5xx answers from Strava's application servers carry just ``{"message": "error"}``.
    """
    if status >= 500:
        return {"message": "error"}
    bodies: dict[int, JSONDict] = {
        400: fault("Bad Request"),
        401: invalid_access_token(),
        403: fault("Forbidden"),
        404: unknown_path(),
        429: rate_limit_exceeded(),
    }
    return bodies.get(status, fault("error"))
