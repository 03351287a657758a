"""``strava-notify``: one message from standard input to the webhooks, as the job posts its own.

The club's Dagster definitions pipe their daily message here. A real local webhook
records what arrives; a service that refuses, and a call with nothing to post, each end
with one line and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import subprocess

from tests.test_notify_helpers import BIN, WebhookServer

COMMAND = str(BIN / "strava-notify")


def send(body: str, *args: str, urls: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STRAVA_NOTIFY_URLS"}
    if urls is not None:
        env["STRAVA_NOTIFY_URLS"] = urls
    return subprocess.run(
        [COMMAND, *args],
        input=body,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_message_arrives_with_its_title_type_and_lines():
    body = "14 athletes; 13 synced; 1 failed\n  athlete 7: Strava rejected the refresh token"
    with WebhookServer() as hook:
        proc = send(body, "--title", "Strava club: warning", "--type", "warning", urls=hook.url())
    assert proc.returncode == 0, proc.stderr
    (posted,) = hook.requests
    assert json.loads(posted["raw"]) == {
        "title": "Strava club: warning",
        "body": body,
        "type": "warning",
    }
    assert "/hook" not in proc.stderr, "a webhook's path is its secret: never logged"


def test_a_refusing_service_nothing_to_post_and_no_url_are_one_line_each():
    with WebhookServer(statuses=[500, 500, 500]) as hook:
        refused = send("a message", "--title", "t", urls=hook.url("/secret-path"))
    assert refused.returncode == 1
    assert len(hook.requests) == 3, "retried, then given up"
    assert "secret-path" not in refused.stderr
    no_url = send("a message", "--title", "t")
    assert no_url.returncode == 2
    assert no_url.stderr.strip() == (
        "strava-notify: error: no notification URL: set STRAVA_NOTIFY_URLS or pass --url"
    )
    with WebhookServer() as hook:
        empty = send("  \n", "--title", "t", urls=hook.url())
        too_long = send("x" * 70_000, "--title", "t", urls=hook.url())
    assert empty.returncode == 2
    assert "empty" in empty.stderr
    assert too_long.returncode == 2
    assert "over 64000 bytes" in too_long.stderr
    assert hook.requests == [], "nothing posted for a refused input"
