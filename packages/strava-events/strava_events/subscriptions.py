"""The application's push subscription: create, show, delete (``/push_subscriptions``).

Strava allows one subscription per application and no update: a new callback URL means
delete, then create. Creating makes Strava call the callback URL at once (the validation
GET), so ``strava-events serve`` must already be reachable there. Every error Strava is
known to answer becomes one line with the cause and the fix; the client secret, the
verify token and the callback's secret path are never printed (the secret path is shown
as a short fingerprint only).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing as t
import urllib.error
import urllib.parse
import urllib.request

if t.TYPE_CHECKING:
    from strava_events.settings import StravaApp

TIMEOUT_SECONDS = 30
MAX_ANSWER_BYTES = 256 * 1024
MAX_CALLBACK_URL_LENGTH = 255


class SubscriptionError(Exception):
    """A subscription call failed; the message is one line naming the fix."""


@dataclasses.dataclass(frozen=True)
class Subscription:
    """One push subscription as Strava shows it."""

    id: int
    callback_url: str
    created_at: str | None
    updated_at: str | None


def mask_url(url: str) -> str:
    """A callback URL with its path replaced by a fingerprint (the path is the secret)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.path.strip("/"):
        return f"{parts.scheme}://{parts.netloc}/"
    digest = hashlib.sha256(parts.path.encode("utf-8")).hexdigest()[:8]
    return f"{parts.scheme}://{parts.netloc}/<secret path {digest}>"


def _codes(body: bytes) -> list[str]:
    """The ``code`` of each entry of a Strava error body (``errors[].code``)."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return []
    return [
        str(entry.get("code"))[:80]
        for entry in errors
        if isinstance(entry, dict) and entry.get("code") is not None
    ]


def explain(status: int, body: bytes, action: str, app: StravaApp) -> str:
    """One line for a refused subscription call (known Strava codes first)."""
    codes = [code.lower() for code in _codes(body)]
    joined = " ".join(codes)
    callback = mask_url(app.callback_url) if app.callback_url else "the callback URL"
    if "already exists" in joined:
        return (
            "This application already has a push subscription (Strava allows one): "
            "`strava-events subscription show` gives its id; delete it with "
            "`strava-events subscription delete` and create again"
        )
    if "does not return 200" in joined:
        return (
            f"Strava's validation GET to {callback} did not get a 200: the receiver answers "
            "403 when the verify token differs (STRAVA_EVENTS_VERIFY_TOKEN must be the same for "
            "`serve` and `subscription create`), 404 when the secret path differs "
            "(STRAVA_EVENTS_CALLBACK_PATH); a proxy's login or bot protection answers other "
            "codes: fix it, then create again"
        )
    if "not verifiable" in joined:
        return (
            f"Strava could not verify {callback}: it must be a public HTTPS URL that reaches "
            "a running `strava-events serve` within 2 seconds (check DNS, the reverse proxy or "
            "tunnel, its certificate, and that the receiver is running), then create again"
        )
    if status == 401:
        return (
            "Strava refused the application's credentials (401): check STRAVA_EVENTS_CLIENT_ID "
            "and STRAVA_EVENTS_CLIENT_SECRET (or TAP_STRAVA_*) against strava.com/settings/api"
        )
    if status == 403:
        return (
            "Strava forbids push subscriptions for this application (403; an Inactive "
            "application needs its owner's Strava subscription): check strava.com/settings/api"
        )
    if status == 404:
        return (
            f"Strava has no such subscription to {action} (404): `strava-events subscription "
            "show` lists the current one"
        )
    if status == 429:
        return "Strava's rate limit was reached (429): wait 15 minutes and try again"
    if status >= 500:
        return f"Strava failed to {action} the subscription (HTTP {status}): try again later"
    detail = f" ({', '.join(codes)})" if codes else ""
    return f"Strava refused to {action} the subscription: HTTP {status}{detail}"


def _call(
    app: StravaApp,
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    action: str,
) -> tuple[int, bytes]:
    url = app.api_base + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = urllib.parse.urlencode(form).encode("ascii") if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
            return answer.status, answer.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as exc:
        body = exc.read(MAX_ANSWER_BYTES)
        raise SubscriptionError(explain(exc.code, body, action, app)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        host = urllib.parse.urlsplit(app.api_base).netloc
        msg = (
            f"Cannot reach Strava at {host} to {action} the subscription ({reason}): check the "
            "network or STRAVA_EVENTS_API_BASE"
        )
        raise SubscriptionError(msg) from None


def _json(body: bytes, action: str) -> object:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        msg = f"Strava's answer to {action} the subscription is not JSON: try again later"
        raise SubscriptionError(msg) from None


def create(app: StravaApp) -> int:
    """Create the subscription; its id. Strava validates the callback first."""
    if not app.callback_url:
        msg = (
            "STRAVA_EVENTS_CALLBACK_URL is not set: set it to the public HTTPS URL of the "
            "receiver's secret path (https://<your host>/<STRAVA_EVENTS_CALLBACK_PATH>)"
        )
        raise SubscriptionError(msg)
    if len(app.callback_url) > MAX_CALLBACK_URL_LENGTH:
        msg = f"STRAVA_EVENTS_CALLBACK_URL is longer than Strava's {MAX_CALLBACK_URL_LENGTH}"
        raise SubscriptionError(msg)
    if not app.verify_token:
        msg = "STRAVA_EVENTS_VERIFY_TOKEN is not set: set it to the same value `serve` uses"
        raise SubscriptionError(msg)
    _status, body = _call(
        app,
        "POST",
        "/push_subscriptions",
        form={
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "callback_url": app.callback_url,
            "verify_token": app.verify_token,
        },
        action="create",
    )
    document = _json(body, "create")
    identifier = document.get("id") if isinstance(document, dict) else None
    if not isinstance(identifier, int) or isinstance(identifier, bool):
        msg = "Strava's answer to create the subscription has no id: run `subscription show`"
        raise SubscriptionError(msg)
    return identifier


def show(app: StravaApp) -> list[Subscription]:
    """The application's subscriptions (none or one)."""
    _status, body = _call(
        app,
        "GET",
        "/push_subscriptions",
        query={"client_id": app.client_id, "client_secret": app.client_secret},
        action="show",
    )
    document = _json(body, "show")
    if not isinstance(document, list):
        msg = "Strava's answer to show the subscription is not a list: try again later"
        raise SubscriptionError(msg)
    found = []
    for entry in document:
        if isinstance(entry, dict) and isinstance(entry.get("id"), int):
            found.append(
                Subscription(
                    id=entry["id"],
                    callback_url=str(entry.get("callback_url", ""))[:300],
                    created_at=str(entry["created_at"])[:40] if entry.get("created_at") else None,
                    updated_at=str(entry["updated_at"])[:40] if entry.get("updated_at") else None,
                )
            )
    return found


def delete(app: StravaApp, subscription_id: int) -> None:
    """Delete one subscription (Strava answers 204)."""
    _call(
        app,
        "DELETE",
        f"/push_subscriptions/{int(subscription_id)}",
        query={"client_id": app.client_id, "client_secret": app.client_secret},
        action="delete",
    )
