"""Delivering one notification through apprise, to every configured URL.

``STRAVA_NOTIFY_URLS`` holds one or more URLs (separated by spaces or commas):

* an apprise URL (``slack://``, ``discord://``, ``workflows://``, ``json://``, ...) is used
  as it is;
* a plain Slack, Discord or Microsoft Teams *Workflows* webhook URL, as those services
  hand it out, is converted to apprise's form by apprise's own parser for that service
  (Teams' old ``msteams://`` connectors are retired: Workflows URLs are what Teams gives);
* any other ``http(s)://`` URL gets a generic JSON POST with exactly the keys ``title``,
  ``body`` and ``type``: apprise's ``json://`` with its keys remapped in the URL
  (``:message=body`` renames, ``:version=`` and ``:attachments=`` drop).

Delivery never decides the job's outcome: an unreachable or refusing service is retried a
few times with a short backoff, logged (scheme and host only: a webhook URL's path or query
*is* its secret) and given up on.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import typing as t
from urllib.parse import parse_qsl, urlencode, urlsplit

import apprise
from apprise.plugins.discord import NotifyDiscord
from apprise.plugins.slack import NotifySlack
from apprise.plugins.workflows import NotifyWorkflows

logger = logging.getLogger(__name__)

# apprise logs whole webhook URLs, tokens included, at DEBUG (and some at INFO), and
# urllib3 logs every request line (path and query: a webhook's token) at DEBUG: whatever
# the root logger's level, both stay at WARNING.
APPRISE_LOGGER = logging.getLogger("apprise")
URLLIB3_LOGGER = logging.getLogger("urllib3")


def quiet_url_loggers() -> None:
    """Keep the loggers that print whole URLs above DEBUG and INFO."""
    APPRISE_LOGGER.setLevel(logging.WARNING)
    URLLIB3_LOGGER.setLevel(logging.WARNING)


quiet_url_loggers()

NOTIFY_TYPES = {
    "success": apprise.NotifyType.SUCCESS,
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "failure": apprise.NotifyType.FAILURE,
}

# The services whose plain webhook URLs are converted with apprise's own native parser.
_NATIVE_SERVICES: tuple[tuple[str, t.Any], ...] = (
    ("slack", NotifySlack),
    ("discord", NotifyDiscord),
    ("workflows", NotifyWorkflows),
)


def split_urls(value: str | None) -> list[str]:
    """The URLs of a ``STRAVA_NOTIFY_URLS`` value (spaces, commas or newlines between)."""
    return [item for item in re.split(r"[\s,]+", value or "") if item]


def describe(url: str) -> str:
    """What a log line may say about a URL: its scheme and host, never path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
    except ValueError:
        return "an unparseable URL"
    return f"{parts.scheme}://{host}"


def generic_json_url(url: str) -> str:
    """``json(s)://`` posting ``{"title", "body", "type"}`` to a plain http(s) URL.

    The URL's own query parameters are kept (``-name=value`` is apprise's syntax for GET
    parameters of the POST); credentials, port and path stay as they were.
    """
    parts = urlsplit(url)
    scheme = "jsons" if parts.scheme.lower() == "https" else "json"
    query = [(f"-{key}", value) for key, value in parse_qsl(parts.query, keep_blank_values=True)]
    # Remap apprise's payload keys: message -> body; version and attachments dropped.
    query += [(":message", "body"), (":version", ""), (":attachments", "")]
    return f"{scheme}://{parts.netloc}{parts.path or '/'}?{urlencode(query)}"


def to_apprise_url(url: str) -> tuple[str, str]:
    """``(apprise_url, kind)`` for a configured URL; kind names the conversion made."""
    if not re.match(r"^https?://", url, re.IGNORECASE):
        return url, "apprise"
    for kind, service in _NATIVE_SERVICES:
        parsed = service.parse_native_url(url)
        if parsed:
            return str(service(**parsed).url()), kind
    return generic_json_url(url), "json"


@dataclasses.dataclass
class Delivery:
    """The fate of one notification at one URL (for the log and the tests)."""

    target: str  # scheme://host of the configured URL
    kind: str
    delivered: bool
    attempts: int


def deliver(
    title: str,
    body: str,
    notify_type: str,
    urls: t.Sequence[str],
    *,
    tries: int = 3,
    backoff: float = 1.0,
    sleep: t.Callable[[float], None] = time.sleep,
) -> list[Delivery]:
    """Send one notification to each URL, each retried on its own; never raises.

    Each URL gets its own apprise object, so that a dead Discord does not make Slack
    receive the message three times. Waits ``backoff``, then twice that, between tries.
    """
    results: list[Delivery] = []
    kind_of_type = NOTIFY_TYPES.get(notify_type, apprise.NotifyType.INFO)
    for url in urls:
        target = describe(url)
        try:
            apprise_url, kind = to_apprise_url(url)
        except Exception:  # a malformed URL must not stop the other ones
            logger.warning("Notification URL %s could not be read; skipped", target)
            results.append(Delivery(target, "invalid", delivered=False, attempts=0))
            continue
        sender = apprise.Apprise()
        if not sender.add(apprise_url):
            logger.warning("Notification URL %s is not one apprise understands; skipped", target)
            results.append(Delivery(target, kind, delivered=False, attempts=0))
            continue
        delivered, attempts = False, 0
        for attempt in range(1, max(1, tries) + 1):
            attempts = attempt
            try:
                delivered = bool(
                    sender.notify(
                        title=title,
                        body=body,
                        notify_type=kind_of_type,
                        body_format=apprise.NotifyFormat.TEXT,
                    )
                )
            except Exception as exc:  # apprise should not raise; the load must not care
                logger.warning("Notification to %s raised %s", target, type(exc).__name__)
            if delivered:
                break
            if attempt < tries:
                wait = backoff * 2 ** (attempt - 1)
                logger.warning(
                    "Notification to %s not delivered (try %d of %d); retrying in %.1f s",
                    target,
                    attempt,
                    tries,
                    wait,
                )
                sleep(wait)
        if delivered:
            logger.info("Notification delivered to %s (%s, try %d)", target, kind, attempts)
        else:
            logger.error(
                "Notification to %s not delivered after %d tries; the run itself is unaffected",
                target,
                attempts,
            )
        results.append(Delivery(target, kind, delivered=delivered, attempts=attempts))
    return results
