"""The one notification of a run: its outcome and its words.

The outcomes, decided only after Meltano has exited (a success needs exit code 0, which
means every target committed):

* **success**: new activities arrived (per target: new and updated counts per stream, the
  new activities briefly, capped);
* **no_new**: the run worked and found nothing new (it may have refreshed recent ones);
* **partial**: the tap stopped at Strava's rate limit and recorded where (the next run
  resumes there), or skipped an athlete whose token failed while the others synced;
* **revoked**: the run worked and an athlete revoked the app's access (push events): a
  duty is due (delete their data within 48 hours), so it is a warning of its own;
* **failure**: a step failed, or the job could not run at all (lock held, an earlier
  pipeline still alive);
* **interrupted**: Ctrl-C or SIGTERM stopped the job (someone ran it by hand, a shutdown);
  not a failure of the pipeline, and nothing is lost.
"""

from __future__ import annotations

import dataclasses
import typing as t
from pathlib import Path

from strava_notify.meltano_log import FailedStep, step_label

SUCCESS, NO_NEW, PARTIAL, FAILURE = "success", "no_new", "partial", "failure"
INTERRUPTED, REVOKED = "interrupted", "revoked"
NOTIFY_TYPE = {
    SUCCESS: "success",
    NO_NEW: "info",
    PARTIAL: "warning",
    REVOKED: "warning",
    FAILURE: "failure",
    INTERRUPTED: "warning",
}
ACTIVITIES = "activities"


@dataclasses.dataclass
class RunReport:
    """Everything the notification says about one run of the job."""

    environment: str
    job: str
    stamp: str
    exit_code: int | None
    tallies: dict[str, dict[str, t.Any]]  # target label -> tally
    log_path: Path | None = None
    step: FailedStep | None = None
    committed: list[str] = dataclasses.field(default_factory=list)  # labels, failure only
    did_not_run: str | None = None  # why the job refused to start the pipeline
    notes: list[str] = dataclasses.field(default_factory=list)
    interrupted: str | None = None  # the signal that stopped the job ("SIGINT")

    @property
    def outcome(self) -> str:
        """success, no_new, partial, failure or interrupted (see the module docstring)."""
        if self.interrupted:
            return INTERRUPTED
        if self.did_not_run or self.exit_code != 0:
            return FAILURE
        if any(tally.get("partial") for tally in self.tallies.values()):
            return PARTIAL
        if self.revoked_athletes():
            return REVOKED
        if self.tallies and self.new_count() == 0:
            return NO_NEW
        return SUCCESS

    def revoked_athletes(self) -> list[int]:
        """Athletes whose revocation this run handled (push events), in order."""
        found: list[int] = []
        for tally in self.tallies.values():
            events = tally.get("events")
            revoked = events.get("revoked_athletes") if isinstance(events, dict) else None
            found += [a for a in revoked or [] if isinstance(a, int) and a not in found]
        return found

    def new_count(self) -> int:
        """New activities of the run: absent from PostgreSQL before it, where it was read.

        Otherwise (no Postgres tally, or PostgreSQL unreadable) the pipelines' own count
        against their last run; the targets read the same source: the largest.
        """
        tallies = [t for t in self.tallies.values() if t.get("counted_against")]
        if not tallies:
            tallies = [t for t in self.tallies.values() if not t.get("rows_written")]
        tallies = tallies or list(self.tallies.values())
        return max((_activities(tally).get("new", 0) for tally in tallies), default=0)


@dataclasses.dataclass
class Notification:
    """Title, body and apprise notify type of one message."""

    outcome: str
    title: str
    body: str
    notify_type: str


def _activities(tally: t.Mapping[str, t.Any]) -> dict[str, int]:
    return dict((tally.get("streams") or {}).get(ACTIVITIES) or {})


def _activities_phrase(count: int, adjective: str) -> str:
    """``1 new activity``, ``3 new activities``."""
    return f"{count} {adjective} {'activity' if count == 1 else 'activities'}"


def duration(seconds: t.Any) -> str:
    """``1:02:45`` or ``52:13``: how runners read a moving time."""
    if not isinstance(seconds, (int, float)):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def target_line(label: str, tally: t.Mapping[str, t.Any]) -> str:
    """``Postgres: activities 3 new, 1 updated; athlete 1 read; athlete_stats 1 read``."""
    parts = []
    for stream, counts in sorted((tally.get("streams") or {}).items()):
        if stream == ACTIVITIES and tally.get("rows_written"):
            # A CSV folder is a per-run log of what was read: every record is a row.
            parts.append(f"{stream} {counts.get('records', 0)} rows written")
        elif stream == ACTIVITIES:
            parts.append(
                f"{stream} {counts.get('new', 0)} new, {counts.get('updated', 0)} updated"
                f" ({counts.get('records', 0)} read)"
            )
        elif counts.get("records", 0):
            # A stream without records is left out: the per-activity streams are off in
            # the daily job (budget 0), and "activity_details 0 read" read like a fault.
            parts.append(f"{stream} {counts.get('records', 0)} read")
    return f"{label}: " + ("; ".join(parts) if parts else "no records")


def activity_line(fact: t.Mapping[str, t.Any]) -> str:
    """``2026-11-27 Morning Run (Run, 10.21 km, 52:13)``."""
    km = fact.get("distance_km")
    distance = f"{km:.2f} km" if isinstance(km, (int, float)) else "? km"
    sport = fact.get("sport_type") or "?"
    name = fact.get("name") or "(no name)"
    moving = duration(fact.get("moving_time"))
    return f"{fact.get('date') or '?'} {name} ({sport}, {distance}, {moving})"


def _new_activity_lines(tallies: t.Mapping[str, t.Mapping[str, t.Any]]) -> list[str]:
    if not tallies:
        return []
    counted = [t for t in tallies.values() if t.get("counted_against")] or list(tallies.values())
    richest = max(counted, key=lambda tally: _activities(tally).get("new", 0))
    facts = richest.get("new_activities") or []
    if not facts:
        return []
    lines = ["New activities:"] + [f"- {activity_line(fact)}" for fact in facts]
    more = int(richest.get("new_activities_more") or 0)
    if more:
        lines.append(f"- and {more} more")
    return lines


def _event_outcomes(report: RunReport) -> dict[str, t.Any] | None:
    """The events mode's tally (handled push events by outcome), if this run had one."""
    for tally in report.tallies.values():
        events = tally.get("events")
        if isinstance(events, dict):
            return events
    if report.job == "strava-events" and report.tallies:
        return {"outcomes": {}, "revoked_athletes": []}
    return None


def _events_message(env: str, events: t.Mapping[str, t.Any]) -> tuple[str, list[str]]:
    """What an events run did: applied changes, deletions, ignored events, revocations."""
    outcomes = events.get("outcomes") or {}
    applied, deleted = int(outcomes.get("applied", 0)), int(outcomes.get("deleted", 0))
    ignored, revoked = int(outcomes.get("ignored", 0)), int(outcomes.get("revoked", 0))
    parts = [
        *([f"{applied} applied"] if applied else []),
        *([f"{deleted} deleted"] if deleted else []),
        *([f"{revoked} revoked"] if revoked else []),
    ]
    title = f"Strava push events ({env}): " + (", ".join(parts) or "nothing to apply")
    revoking = [str(a) for a in events.get("revoked_athletes") or []]
    if revoking:
        who = (
            "athlete " + ", ".join(revoking)
            if len(revoking) == 1
            else "athletes " + ", ".join(revoking)
        )
        title = f"Strava push events ({env}): {who} revoked access"
    body = [
        f"Push events handled: {applied} created or changed "
        f"{'activity' if applied == 1 else 'activities'} loaded (one read each), "
        f"{deleted} deletion{'' if deleted == 1 else 's'} confirmed with the owner's token, "
        f"{ignored} ignored (unconfirmed, forged or of no configured athlete)."
    ]
    for athlete in events.get("revoked_athletes") or []:
        body.append(
            f"Athlete {athlete} revoked this app's access: its tokens were removed from the "
            "token store. Remove its refresh token from the configuration and delete its "
            f"data (Strava asks within 48 hours): strava-forget-athlete --athlete {athlete} "
            "--apply (docs/events.md#deletions-and-revocations)."
        )
    return title, body


def _counts_lines(report: RunReport) -> list[str]:
    if not report.tallies:
        return ["Counts unavailable: no tally was written (is mapper-strava-tally in the job?)."]
    return [target_line(label, tally) for label, tally in report.tallies.items()]


def _footer(report: RunReport) -> list[str]:
    lines = [f"Run {report.stamp}, job {report.job}, environment {report.environment}."]
    if report.log_path is not None:
        lines.append(f"Full log: {report.log_path}")
    return lines


def _distinct_reasons(reasons: list[str]) -> list[str]:
    """One reason per kind of stop, the latest wording of each.

    Each block reads Strava separately and words its stop with its own times ("opens in
    461 s", "after 09:15:00 UTC"): the same stop must not be told once per block. The kind
    is the text before the first ``;`` or ``:`` detail; the last block's text is the
    freshest.
    """
    latest: dict[str, str] = {}
    for reason in reasons:
        kind = reason.split(";", 1)[0].split(" (", 1)[0].strip()
        latest.pop(kind, None)
        latest[kind] = reason
    return list(latest.values())


def compose(report: RunReport) -> Notification:
    """The notification for a run; plain text that reads well in chat and JSON alike."""
    outcome = report.outcome
    env = report.environment
    notes = list(report.notes)
    events = _event_outcomes(report)
    if outcome in (SUCCESS, NO_NEW, REVOKED) and events is not None:
        title, body = _events_message(env, events)
        body = [*body, *_counts_lines(report)]
    elif outcome == SUCCESS and not report.tallies:
        # A job without the tally mapper (the weekly reconcile): say only what is known.
        title = f"Strava sync ({env}): {report.job} finished"
        body = ["Every target committed.", *_counts_lines(report)]
    elif outcome == SUCCESS:
        new = report.new_count()
        title = f"Strava sync ({env}): {_activities_phrase(new, 'new')}"
        body = [
            "Every target committed.",
            *_counts_lines(report),
            *_new_activity_lines(report.tallies),
        ]
    elif outcome == NO_NEW:
        updated = max(_activities(tally).get("updated", 0) for tally in report.tallies.values())
        title = f"Strava sync ({env}): no new activities"
        refreshed = (
            f"{_activities_phrase(updated, 'recent')} changed on Strava and "
            f"{'was' if updated == 1 else 'were'} refreshed."
            if updated
            else "Recent activities were re-read; none had changed."
        )
        body = ["Nothing new since the last run.", refreshed, *_counts_lines(report)]
    elif outcome == PARTIAL:
        reasons: list[str] = []
        skipped: list[str] = []
        for tally in report.tallies.values():
            partial = tally.get("partial") or {}
            for stop in partial.get("stops") or [{"reason": partial.get("reason")}]:
                if stop.get("athlete"):
                    line = f"{stop['athlete']}: {stop.get('reason')}"
                    if line not in skipped:
                        skipped.append(line)
                elif stop.get("reason"):
                    reasons.append(str(stop["reason"]))
        reasons = _distinct_reasons(reasons)
        title = f"Strava sync ({env}): partial" + (", resumes next run" if reasons else "")
        body = [
            *(["Stopped early at Strava's rate limit: " + "; ".join(reasons)] if reasons else []),
            *(["Athletes skipped (the others synced): " + "; ".join(skipped)] if skipped else []),
            "Everything fetched so far is committed; the next run resumes from there.",
            *_counts_lines(report),
            *_new_activity_lines(report.tallies),
        ]
    elif outcome == INTERRUPTED:
        how = "Ctrl-C" if report.interrupted == "SIGINT" else report.interrupted
        title = f"Strava sync ({env}) interrupted"
        body = [f"Stopped by {how} ({report.interrupted}) before the job finished."]
        if report.committed:
            body.append("Committed before the interruption: " + ", ".join(report.committed) + ".")
        else:
            body.append("No target had committed this run's data yet.")
        body.append(
            "Nothing is lost: each target's state only advances with what it committed; "
            "the next run resumes from there."
        )
    elif report.did_not_run:
        title = f"Strava sync ({env}) did not run"
        body = [report.did_not_run, "Nothing was loaded by this run."]
    else:
        step = report.step or FailedStep(kind="meltano", plugin="meltano", cause="unknown")
        label = step_label(step.kind, step.plugin)
        title = f"Strava sync ({env}) FAILED: {label}"
        where = f" (state {step.state_id})" if step.state_id else ""
        body = [f"Failed step: {label}{where}", f"Cause: {step.cause}"]
        if report.committed:
            body.append("Committed before the failure: " + ", ".join(report.committed) + ".")
        body.append(
            "Nothing is lost: each target's state only advances with what it committed; "
            "the next run resumes from there."
        )
    return Notification(
        outcome=outcome,
        title=title,
        body="\n".join([*body, *notes, *_footer(report)]),
        notify_type=NOTIFY_TYPE[outcome],
    )
