"""The events job's notification: what the push events did, and a revocation's duty."""

from __future__ import annotations

from strava_notify.messages import RunReport, compose
from strava_notify.tally import RunTally


def _tally(*outcomes: tuple[str, int]) -> dict:
    tally = RunTally("Postgres")
    tally.on_schema({"stream": "event_receipts", "schema": {"properties": {"outcome": {}}}})
    for index, (outcome, owner) in enumerate(outcomes):
        record = {"event_key": f"k{index}", "outcome": outcome, "owner_id": owner}
        tally.on_record({"type": "RECORD", "stream": "event_receipts", "record": record})
    return tally.as_dict()


def _report(tally: dict) -> RunReport:
    return RunReport(
        environment="prod",
        job="strava-events",
        stamp="20261201T120000Z",
        exit_code=0,
        tallies={"Postgres": tally},
    )


def test_the_message_counts_what_the_events_did():
    tally = _tally(("applied", 1), ("applied", 1), ("deleted", 1), ("ignored", 2))
    message = compose(_report(tally))
    assert message.title == "Strava push events (prod): 2 applied, 1 deleted"
    assert "2 created or changed activities loaded (one read each)" in message.body
    assert "1 deletion confirmed with the owner's token, 1 ignored" in message.body
    assert "revoked" not in message.body


def test_a_revocation_names_the_athlete_and_the_command_that_removes_their_data():
    report = _report(_tally(("revoked", 4711), ("ignored", 4711)))
    message = compose(report)
    # Its own outcome (issue 23: it was no_new), a warning: a duty is due within 48 hours.
    assert report.outcome == message.outcome == "revoked"
    assert message.notify_type == "warning"
    assert message.title == "Strava push events (prod): athlete 4711 revoked access"
    assert "Athlete 4711 revoked this app's access" in message.body
    assert "strava-forget-athlete --athlete 4711 --apply" in message.body


def test_an_events_run_with_nothing_pending_says_so():
    message = compose(_report(_tally()))
    assert message.title == "Strava push events (prod): nothing to apply"
