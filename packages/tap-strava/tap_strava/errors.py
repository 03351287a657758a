"""User-facing errors: one line that names the cause and the fix.

Anything raised as a :class:`StravaUserError` is printed by ``tap-strava`` as a single
line on stderr (no traceback) and ends the process with exit code 1. Messages never
contain a secret: callers pass descriptions, never token values.
"""

from __future__ import annotations


class StravaUserError(Exception):
    """A problem the user can fix (configuration, authorization, scope)."""


class StravaAuthError(StravaUserError):
    """Strava refused the credentials (bad client, revoked or stale refresh token)."""


class StravaScopeError(StravaUserError):
    """The token works but lacks a scope the requested data needs."""


class StravaConfigError(StravaUserError):
    """A setting is missing or malformed."""


class AuthorizeError(StravaUserError):
    """A failure of ``tap-strava-auth`` the user can act on (printed as one line).

    Here rather than with the command, because its flow, callback server and ``.env``
    writer all raise it and none of them should import another to do so.
    """


def strava_error_fields(body: object) -> list[tuple[str, str, str]]:
    """The ``(resource, field, code)`` triples of a Strava error body, if it has any.

    Strava answers errors as ``{"message": ..., "errors": [{"resource", "field",
    "code"}]}``; a proxy in front of it may answer HTML instead, which gives ``[]``.
    """
    if not isinstance(body, dict):
        return []
    errors = body.get("errors")
    if not isinstance(errors, list):
        return []
    return [
        (str(e.get("resource", "")), str(e.get("field", "")), str(e.get("code", "")))
        for e in errors
        if isinstance(e, dict)
    ]


def strava_error_summary(status: int, body: object, text: str = "") -> str:
    """A short description of an error answer, safe to log (no request data in it)."""
    if isinstance(body, dict) and body.get("message"):
        fields = ", ".join(f"{r}.{f} {c}" for r, f, c in strava_error_fields(body))
        return f"HTTP {status} {body['message']}" + (f" ({fields})" if fields else "")
    snippet = " ".join(text.split())[:120]
    return f"HTTP {status}" + (f": {snippet}" if snippet else "")


def one_line(exc: BaseException) -> str:
    """An exception as one short line for logs, state and messages.

    A :class:`StravaUserError` already is one; anything else gets its type name, so that
    an unexpected failure of one athlete is still recognisable in a notification.
    """
    text = " ".join(str(exc).split())[:300]
    if isinstance(exc, StravaUserError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
