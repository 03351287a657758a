"""Delivery through apprise: URL forms, the generic JSON keys, retries, secrets."""

from __future__ import annotations

import logging
import time

import pytest

from strava_notify import notify
from strava_notify.meltano_log import FailedStep
from strava_notify.messages import RunReport, compose
from strava_notify.redact import MASK, Redactor
from tests.test_notify_helpers import WebhookServer, closed_port, tally

TOKEN = "WebhookToken0123456789secret"


def no_sleep(waits: list[float]):
    return waits.append


def test_plain_service_urls_become_apprise_urls():
    slack, kind = notify.to_apprise_url("https://hooks.slack.com/services/T0ABC/B0DEF/" + TOKEN)
    assert kind == "slack"
    assert slack.startswith(f"slack://T0ABC/B0DEF/{TOKEN}/")

    discord, kind = notify.to_apprise_url(f"https://discord.com/api/webhooks/123456789/{TOKEN}")
    assert kind == "discord"
    assert discord.startswith(f"discord://123456789/{TOKEN}/")

    teams_url = (
        "https://prod-12.westus.logic.azure.com:443/workflows/abc123def/triggers/manual/paths/"
        f"invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TOKEN}"
    )
    teams, kind = notify.to_apprise_url(teams_url)
    assert kind == "workflows"
    assert teams.startswith(f"workflow://prod-12.westus.logic.azure.com:443/abc123def/{TOKEN}/")

    power_automate = (
        "https://default1234.56.environment.api.powerplatform.com:443/powerautomate/automations/"
        "direct/workflows/abcd1234/triggers/manual/paths/invoke?api-version=1"
        f"&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TOKEN}"
    )
    pa, kind = notify.to_apprise_url(power_automate)
    assert kind == "workflows"
    assert "pa=yes" in pa

    # An apprise URL is used as it is; anything else over http(s) is the generic JSON POST.
    assert notify.to_apprise_url("tgram://bottoken/chatid") == (
        "tgram://bottoken/chatid",
        "apprise",
    )
    generic, kind = notify.to_apprise_url("https://user:pw@example.com:8443/hook?token=abc")
    assert kind == "json"
    assert generic.startswith("jsons://user:pw@example.com:8443/hook?")
    assert "-token=abc" in generic


def test_several_urls_split_on_spaces_and_commas():
    assert notify.split_urls(" a://x, b://y\nc://z ,, ") == ["a://x", "b://y", "c://z"]


def test_generic_json_post_has_exactly_title_body_type():
    with WebhookServer() as hook:
        results = notify.deliver(
            "Strava sync (dev): 2 new activities",
            "line one\nline two",
            "success",
            [hook.url("/hooks/x") + "?token=abc"],
        )
    assert [r.delivered for r in results] == [True]
    (post,) = hook.posts
    assert post["json"] == {
        "title": "Strava sync (dev): 2 new activities",
        "body": "line one\nline two",
        "type": "success",
    }
    assert post["path"] == "/hooks/x"
    assert post["query"] == {"token": ["abc"]}
    assert post["headers"]["Content-Type"] == "application/json"


def test_failed_deliveries_are_retried_then_succeed():
    waits: list[float] = []
    with WebhookServer(statuses=[503, 404]) as hook:
        (result,) = notify.deliver(
            "t", "b", "failure", [hook.url()], tries=3, backoff=0.5, sleep=no_sleep(waits)
        )
    assert result.delivered
    assert result.attempts == 3
    assert waits == [0.5, 1.0]
    assert [r["status"] for r in hook.requests] == [503, 404, 200]
    assert len(hook.posts) == 1


def test_unreachable_webhook_is_given_up_without_raising(caplog):
    caplog.set_level(logging.INFO)
    waits: list[float] = []
    started = time.monotonic()
    (result,) = notify.deliver(
        "t", "b", "info", [f"http://127.0.0.1:{closed_port()}/x"], sleep=no_sleep(waits)
    )
    assert not result.delivered
    assert result.attempts == 3
    assert len(waits) == 2
    assert time.monotonic() - started < 10
    assert "not delivered after 3 tries" in caplog.text


def test_slow_webhook_times_out_and_is_retried():
    waits: list[float] = []
    with WebhookServer(delay=2.0) as hook:
        # An apprise URL as is: its own read timeout option makes the test quick.
        url = f"json://127.0.0.1:{hook.port}/slow?rto=0.3"
        (result,) = notify.deliver("t", "b", "info", [url], tries=2, sleep=no_sleep(waits))
    assert not result.delivered
    assert result.attempts == 2
    assert len(hook.requests) == 2


def test_several_urls_each_get_one_post_even_when_one_is_dead():
    waits: list[float] = []
    with WebhookServer() as first, WebhookServer(statuses=[500]) as second:
        dead = f"http://127.0.0.1:{closed_port()}/dead"
        results = notify.deliver(
            "t",
            "b",
            "success",
            [first.url("/a"), dead, second.url("/b")],
            tries=2,
            sleep=no_sleep(waits),
        )
    assert [r.delivered for r in results] == [True, False, True]
    assert len(first.posts) == 1
    assert len(second.posts) == 1  # the 500 was retried once, then delivered


def test_no_webhook_token_in_logs_even_at_debug(caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    waits: list[float] = []
    with WebhookServer(statuses=[403]) as hook:
        url = hook.url(f"/services/{TOKEN}") + f"?sig={TOKEN}x"
        notify.deliver("t", "b", "success", [url], tries=2, sleep=no_sleep(waits))
        dead = f"http://127.0.0.1:{closed_port()}/{TOKEN}"
        notify.deliver("t", "b", "success", [dead], tries=1, sleep=no_sleep(waits))
    assert hook.requests  # it was really tried
    assert TOKEN not in caplog.text
    assert "http://127.0.0.1" in caplog.text  # scheme and host only
    assert logging.getLogger("apprise").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("urllib3").getEffectiveLevel() >= logging.WARNING


def test_redactor_masks_known_values_and_secret_shapes():
    redact = Redactor.from_environment(
        {
            "TAP_STRAVA_CLIENT_SECRET": "client-secret-value",
            "TARGET_POSTGRES_SQLALCHEMY_URL": "postgresql+psycopg://strava:pg-pass-42@db:5432/x",
            "STRAVA_NOTIFY_URLS": f"https://hooks.slack.com/services/T0/B0/{TOKEN}",
            "TAP_STRAVA_CLIENT_ID": "12345",
        }
    )
    text = redact(
        "error with client-secret-value and pg-pass-42 and "
        f"https://hooks.slack.com/services/T0/B0/{TOKEN} and "
        "postgresql://other:unknown-pw@host/db and ?refresh_token=abcdef&code=xyz and "
        "Authorization: Bearer abc.def.ghi; client 12345"
    )
    for secret in ("client-secret-value", "pg-pass-42", TOKEN, "unknown-pw", "abcdef", "abc.def"):
        assert secret not in text
    assert "client 12345" in text  # an id is not a secret
    assert MASK in text


def _report(**overrides):
    base = {
        "environment": "prod",
        "job": "strava-daily",
        "stamp": "20261128T061500Z",
        "exit_code": 0,
        "tallies": {},
    }
    return RunReport(**{**base, **overrides})


def test_messages_of_each_outcome():
    facts = [
        {
            "date": "2026-11-27",
            "name": "Morning Run",
            "sport_type": "Run",
            "distance_km": 10.21,
            "moving_time": 3133,
        },
        {
            "date": "2026-11-27",
            "name": "Ride",
            "sport_type": "Ride",
            "distance_km": 30.0,
            "moving_time": 3765,
        },
    ]
    success = compose(
        _report(
            tallies={
                "CSV": tally("CSV", new=12, updated=1, facts=facts, more=10),
                "Postgres": tally("Postgres", new=12, updated=1, unchanged=4),
            }
        )
    )
    assert success.outcome == "success"
    assert success.notify_type == "success"
    assert success.title == "Strava sync (prod): 12 new activities"
    assert "CSV: activities 12 new, 1 updated (13 read); athlete 1 read" in success.body
    assert "Postgres: activities 12 new, 1 updated (17 read)" in success.body
    assert "- 2026-11-27 Morning Run (Run, 10.21 km, 52:13)" in success.body
    assert "- 2026-11-27 Ride (Ride, 30.00 km, 1:02:45)" in success.body
    assert "- and 10 more" in success.body

    no_new = compose(_report(tallies={"CSV": tally("CSV", updated=1, unchanged=5)}))
    assert no_new.outcome == "no_new"
    assert no_new.title == "Strava sync (prod): no new activities"
    assert "1 recent activity changed on Strava and was refreshed." in no_new.body

    partial = compose(_report(tallies={"CSV": tally("CSV", new=40, partial="daily quota spent")}))
    assert partial.outcome == "partial"
    assert partial.notify_type == "warning"
    assert "resumes next run" in partial.title
    assert "daily quota spent" in partial.body

    failure = compose(
        _report(
            exit_code=1,
            step=FailedStep(
                kind="target",
                plugin="target-postgres",
                cause="psycopg.OperationalError: connection refused",
                state_id="prod:tap-strava-to-target-postgres",
            ),
            committed=["CSV target (target-csv)"],
            log_path="/srv/tap-strava/logs/strava-daily-20261128T061500Z.log",
        )
    )
    assert failure.outcome == "failure"
    assert failure.title == "Strava sync (prod) FAILED: Postgres target (target-postgres)"
    assert "Cause: psycopg.OperationalError: connection refused" in failure.body
    assert "Committed before the failure: CSV target (target-csv)." in failure.body
    assert "Full log: /srv/tap-strava/logs/strava-daily-20261128T061500Z.log" in failure.body


@pytest.mark.parametrize("exit_code", [0, 1])
def test_a_success_needs_exit_code_zero(exit_code):
    report = _report(exit_code=exit_code, tallies={"CSV": tally("CSV", new=3)})
    assert report.outcome == ("success" if exit_code == 0 else "failure")


def test_messages_for_skipped_athletes_and_for_a_job_without_tallies():
    stops = [
        {"stream": "activities", "athlete": "bob", "reason": "token revoked; run tap-strava-auth"}
    ]
    partial = compose(
        _report(tallies={"Postgres": {"partial": {"reason": stops[0]["reason"], "stops": stops}}})
    )
    assert partial.outcome == "partial"
    assert partial.title == "Strava sync (prod): partial"
    assert "Athletes skipped (the others synced): bob: token revoked" in partial.body
    assert "rate limit" not in partial.body

    reconcile = compose(_report(job="strava-reconcile"))
    assert reconcile.outcome == "success"
    assert reconcile.title == "Strava sync (prod): strava-reconcile finished"
    assert "new activities" not in reconcile.title
