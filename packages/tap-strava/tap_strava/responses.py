"""Sorting Strava's answers: which are usable, retriable, a quota wait, or an error to report.

Every answer goes through :func:`check_strava_response`, which sorts it:

* 2xx with a JSON body: fine (its rate-limit headers are recorded);
* 5xx, HTML from a proxy, malformed or truncated JSON: retriable with backoff;
* 429: wait for Strava's next quota window (see :mod:`tap_strava.ratelimit`);
* 401 with a bad access token: refresh once, then a one-line :class:`StravaAuthError`;
* 401 for a missing scope, 403: one-line errors that name the fix;
* other 4xx: fatal, with Strava's own message.
"""

from __future__ import annotations

import json
import typing as t
from http import HTTPStatus
from urllib.parse import urlparse

from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_strava.errors import (
    StravaAuthError,
    StravaScopeError,
    strava_error_fields,
    strava_error_summary,
)
from tap_strava.ratelimit import RateLimited

if t.TYPE_CHECKING:
    import requests

    from tap_strava.auth import StravaAuthenticator
    from tap_strava.ratelimit import RateLimitTracker

UNAUTHORIZED_RETRIES = 1


class AnswerAccount(t.Protocol):
    """What sorting an answer needs of the athlete whose token asked (``StravaAccount``)."""

    rate_limits: RateLimitTracker
    unauthorized_retries: int
    authenticator: StravaAuthenticator


# What Strava answers about one athlete (revoked or rejected token, missing scope, a 403,
# 5xx that outlasted every retry): with several athletes only these skip the athlete.
# Anything else (a bug, a spent quota, the network, the token store) concerns the run.
ATHLETE_FAILURES: tuple[type[BaseException], ...] = (
    StravaAuthError,
    StravaScopeError,
    RetriableAPIError,
)


class StravaNotFound(FatalAPIError):
    """404: the record is gone (e.g. an activity deleted between listing and fetching)."""


_BODY_ATTRIBUTE = "_strava_json_body"


def json_body(response: requests.Response) -> t.Any:
    """The decoded JSON of an answer (None if it is not JSON), decoded once per answer.

    Both the error sorting and the record parsing need it; decoding a 200-activity page
    twice was a tenth of the tap's time.
    """
    if _BODY_ATTRIBUTE in response.__dict__:
        return response.__dict__[_BODY_ATTRIBUTE]
    try:
        # From the bytes, with the standard library's decoder: requests' .json() decodes
        # the text first, then parses it with simplejson, both slower (UTF-8 assumed,
        # with or without a BOM, or UTF-16/32: json detects them as RFC 8259 allows).
        body = json.loads(response.content)
    except ValueError:  # not JSON, or not text (UnicodeDecodeError is a ValueError)
        body = None
    response.__dict__[_BODY_ATTRIBUTE] = body
    return body


def check_strava_response(response: requests.Response, account: AnswerAccount) -> None:
    """Raise the right exception for a Strava answer; return for a usable one."""
    account.rate_limits.observe(response)
    status = response.status_code
    body = json_body(response)
    if status < HTTPStatus.BAD_REQUEST and body is not None:
        account.unauthorized_retries = 0
        return  # a usable answer: no summary (it splits the whole text of a 300 KB page)
    summary = strava_error_summary(status, body, response.text)
    path = urlparse(response.url).path

    if status == HTTPStatus.TOO_MANY_REQUESTS:
        raise RateLimited(f"Strava rate limit reached on {path} ({summary})")
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        raise RetriableAPIError(f"Strava server error on {path}: {summary}", response)
    if status == HTTPStatus.UNAUTHORIZED:
        fields = {field for _, field, _ in strava_error_fields(body)}
        if any(field.endswith("_permission") for field in fields):
            msg = (
                f"The Strava token lacks a required scope ({summary}): authorize the app "
                "again granting read,activity:read_all,profile:read_all with "
                "`tap-strava-auth` (it sets the new refresh token in .env)"
            )
            raise StravaScopeError(msg)
        if account.unauthorized_retries < UNAUTHORIZED_RETRIES:
            account.unauthorized_retries += 1
            account.authenticator.invalidate_access_token()
            msg = f"Strava rejected the access token on {path}; refreshing it once"
            raise RetriableAPIError(msg, response)
        hint = account.authenticator.reauthorize_hint
        msg = f"Strava rejects this athlete's tokens ({summary}): {hint}"
        raise StravaAuthError(msg)
    if status == HTTPStatus.FORBIDDEN:
        if "inactive" in response.text.lower():
            msg = (
                "Strava answered 403 Application Status Inactive: the Strava API app needs an "
                "active developer subscription (https://www.strava.com/settings/api)"
            )
            raise StravaAuthError(msg)
        msg = f"Strava refused access to {path} ({summary}): the token's athlete may not read it"
        raise StravaAuthError(msg)
    if status == HTTPStatus.NOT_FOUND:
        raise StravaNotFound(f"Strava has no {path}: {summary}")
    if status >= HTTPStatus.BAD_REQUEST:
        raise FatalAPIError(f"Strava refused {path}: {summary}")
    if body is None:
        # A 200 whose body is not JSON: a truncated answer or a proxy page. Retry.
        msg = f"Strava answered {path} with a body that is not valid JSON ({summary})"
        raise RetriableAPIError(msg, response)


_F = t.TypeVar("_F", bound=t.Callable[..., t.Any])


def with_rate_limit_waits(func: _F, rate_limits: RateLimitTracker) -> _F:
    """Call ``func``; after a 429, wait for the next quota window and call it again."""

    def call(*args: t.Any, **kwargs: t.Any) -> t.Any:
        attempt = 0
        while True:
            try:
                return func(*args, **kwargs)
            except RateLimited:
                attempt += 1
                rate_limits.after_rate_limited(attempt)

    return t.cast("_F", call)
