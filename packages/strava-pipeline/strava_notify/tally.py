"""The run tally: what one Singer stream of messages carried, as the notification needs it.

The mapper builds a :class:`RunTally` from the messages it passes through and writes it
as JSON when its input ends; ``strava-job`` reads it back after Meltano has exited. The
tally cannot say whether the target committed (the mapper's input ends before that, and
also when a tap crashes): that is the job's exit code, which only the wrapper sees.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import typing as t
from pathlib import Path

from tap_strava.digest import DIGESTS_KEY, classify
from tap_strava.files import write_atomically
from tap_strava.state_keys import QUOTA_STOP_KEY, SKIPPED_ATHLETES_KEY

TALLY_VERSION = 1
ACTIVITIES_STREAM = "activities"
EVENT_RECEIPTS_STREAM = "event_receipts"
#: How tap-strava-replay-csv names a spool's stream for target-csv-replay:
#: ``<label>/<stream>-<label>`` (the file ``output/<label>/<stream>-<label>.csv``).
_FOLDER_STREAM = re.compile(r"^(?P<folder>[^/]+)/(?P<stream>.+)-(?P=folder)$")


def split_folder(stream: str) -> tuple[str, str | None]:
    """``20261201T061500Z/activities-20261201T061500Z`` -> ``("activities", "20261201T061500Z")``.

    The CSV replay puts each spool in its own folder through the stream name; the tally
    counts the Strava stream, and remembers the folder (strava-job marks it ``_SUCCESS``).
    """
    match = _FOLDER_STREAM.match(stream)
    return (match["stream"], match["folder"]) if match else (stream, None)


def _utc_now() -> str:
    """ISO 8601 UTC time stamp, second precision (what a reader of a tally needs)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class StreamTally:
    """Counts for one stream; new/updated/unchanged only where digests exist."""

    records: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0


def previous_digests(state: t.Mapping[str, t.Any] | None) -> dict[str, t.Any]:
    """The activity digests of an input state, all partitions merged.

    The tap keeps ``digests`` per athlete partition (and a stream without partitions
    would keep them at the stream level): the union is what the previous run loaded.
    """
    bookmarks = (state or {}).get("bookmarks") or {}
    stream_state = bookmarks.get(ACTIVITIES_STREAM) or {}
    merged: dict[str, t.Any] = {}
    if isinstance(stream_state, dict):
        merged.update(stream_state.get(DIGESTS_KEY) or {})
        for partition in stream_state.get("partitions") or []:
            if isinstance(partition, dict):
                merged.update(partition.get(DIGESTS_KEY) or {})
    return merged


def quota_stops(state: t.Mapping[str, t.Any] | None) -> list[dict[str, str]]:
    """Why a run was partial: every quota stop and every skipped athlete in a state.

    Quota stops are per stream (and partition); skipped athletes (``skipped_athletes``,
    with several athletes) carry the athlete's label. Both live in the state so that the
    outcome "partial" survives Meltano (which turns any non-zero exit into 1).
    """
    stops: list[dict[str, str]] = []
    bookmarks = (state or {}).get("bookmarks") or {}
    if not isinstance(bookmarks, dict):
        return stops
    for stream, stream_state in bookmarks.items():
        if not isinstance(stream_state, dict):
            continue
        places = [stream_state] + [
            p for p in stream_state.get("partitions") or [] if isinstance(p, dict)
        ]
        stops.extend(
            {"stream": str(stream), "reason": str(place[QUOTA_STOP_KEY])}
            for place in places
            if place.get(QUOTA_STOP_KEY)
        )
        skipped = stream_state.get(SKIPPED_ATHLETES_KEY)
        if isinstance(skipped, dict):
            stops.extend(
                {"stream": str(stream), "athlete": str(label), "reason": str(reason)}
                for label, reason in sorted(skipped.items())
            )
    return stops


def activity_facts(record: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The brief description of a new activity: local date, name, sport, km, moving time."""
    distance = record.get("distance")
    moving_time = record.get("moving_time")
    return {
        "id": record.get("id"),
        "date": str(record.get("start_date_local") or record.get("start_date") or "")[:10],
        "name": record.get("name") or "",
        "sport_type": record.get("sport_type") or record.get("type") or "",
        "distance_km": round(float(distance) / 1000, 2)
        if isinstance(distance, (int, float))
        else None,
        "moving_time": int(moving_time) if isinstance(moving_time, (int, float)) else None,
    }


class RunTally:
    """Accumulates the tally of one run from Singer messages, in input order."""

    def __init__(
        self, target_label: str = "", new_activities_cap: int = 10, *, rows_written: bool = False
    ) -> None:
        """Start an empty tally for the target the mapper sits in front of.

        ``rows_written``: the target writes every record as a row (CSV), so the
        notification says rows written rather than new and updated.
        """
        self.target_label = target_label
        self.rows_written = rows_written
        self.new_activities_cap = max(0, new_activities_cap)
        self.started_at = _utc_now()
        self.streams: dict[str, StreamTally] = {}
        self.properties: dict[str, list[str]] = {}
        self.new_activities: list[dict[str, t.Any]] = []
        self.new_activities_more = 0
        self.state_messages = 0
        self.last_message_type: str | None = None
        self.tally_errors = 0
        self._first_state: t.Mapping[str, t.Any] | None = None
        self._last_state: t.Mapping[str, t.Any] | None = None
        self._previous: dict[str, t.Any] | None = None
        self._classified: set[str] = set()
        # CSV replay: records per stream per spool folder (output/<folder>/).
        self.folders: dict[str, dict[str, int]] = {}
        # The events mode: handled push events by outcome, and who revoked the app.
        self.events: dict[str, int] = {}
        self.revoked_athletes: list[int] = []
        # Every activity of the run by id: its kind by the digests, and its brief facts.
        self.activities: dict[str, dict[str, t.Any]] = {}

    def _stream(self, name: str) -> StreamTally:
        return self.streams.setdefault(name, StreamTally())

    def on_schema(self, message: t.Mapping[str, t.Any]) -> None:
        """Remember the stream's schema fields: digests are taken over exactly these."""
        stream, folder = split_folder(str(message.get("stream")))
        properties = (message.get("schema") or {}).get("properties") or {}
        self.properties[stream] = list(properties)
        self._stream(stream)
        if folder is not None:
            self.folders.setdefault(folder, {}).setdefault(stream, 0)

    def on_record(self, message: t.Mapping[str, t.Any]) -> None:
        """Count a record; classify an activity against the previous run's digests."""
        stream, folder = split_folder(str(message.get("stream")))
        record = message.get("record") or {}
        counts = self._stream(stream)
        counts.records += 1
        if folder is not None:
            per_folder = self.folders.setdefault(folder, {})
            per_folder[stream] = per_folder.get(stream, 0) + 1
        if stream == EVENT_RECEIPTS_STREAM:
            self._on_receipt(record)
            return
        if stream != ACTIVITIES_STREAM:
            return
        if self._previous is None:
            # Records before any STATE: the tap had no input state, everything is new.
            self._previous = previous_digests(self._first_state)
        key = str(record.get("id"))
        if key in self._classified:
            return  # the same activity twice in one run is still one activity
        self._classified.add(key)
        kind = classify(record, self.properties.get(stream, list(record)), self._previous)
        # Kept per key: strava-job recounts new and updated against the destination.
        self.activities[key] = {"kind": kind, **activity_facts(record)}
        if kind == "new":
            counts.new += 1
            if len(self.new_activities) < self.new_activities_cap:
                self.new_activities.append(activity_facts(record))
            else:
                self.new_activities_more += 1
        elif kind == "updated":
            counts.updated += 1
        else:
            counts.unchanged += 1

    def on_state(self, message: t.Mapping[str, t.Any]) -> None:
        """The first STATE is the tap's input state (digests); the last one is the outcome."""
        value = message.get("value") or {}
        self.state_messages += 1
        if self._first_state is None:
            self._first_state = value
        self._last_state = value

    def seen(self, message_type: str | None) -> None:
        """Note the type of the latest message (an input that ends on STATE is complete)."""
        self.last_message_type = message_type

    def _on_receipt(self, record: t.Mapping[str, t.Any]) -> None:
        """Count one handled push event; remember an athlete who revoked the app."""
        outcome = str(record.get("outcome") or "unknown")[:20]
        self.events[outcome] = self.events.get(outcome, 0) + 1
        owner = record.get("owner_id")
        if outcome == "revoked" and isinstance(owner, int) and owner not in self.revoked_athletes:
            self.revoked_athletes.append(owner)

    def as_dict(self) -> dict[str, t.Any]:
        """The tally as written to ``tally_path``."""
        stops = quota_stops(self._last_state)
        return {
            "version": TALLY_VERSION,
            "target_label": self.target_label,
            "started_at": self.started_at,
            "finished_at": _utc_now(),
            "state_messages": self.state_messages,
            "ended_after_state": self.state_messages > 0,
            "ended_with_state": self.last_message_type == "STATE",
            "streams": {name: dataclasses.asdict(c) for name, c in sorted(self.streams.items())},
            "new_activities": self.new_activities,
            "new_activities_more": self.new_activities_more,
            "partial": {"reason": stops[0]["reason"], "stops": stops} if stops else None,
            "tally_errors": self.tally_errors,
            "folders": self.folders,
            "events": {"outcomes": self.events, "revoked_athletes": self.revoked_athletes}
            if self.events
            else None,
            "activities": self.activities,
            "rows_written": self.rows_written,
        }


def count_against(tally: dict[str, t.Any], known: t.Collection[int], cap: int = 10) -> None:
    """Recount a tally's activities against the keys its destination held before the run.

    ``new``: the key was absent from the destination; ``updated``: present and changed
    by the previous digests of the pipeline (or never digested); ``unchanged``: present
    and the same. The new activities' facts follow the new count. Changes ``tally``.
    """
    activities = tally.get("activities")
    if not isinstance(activities, dict):
        return
    new: list[dict[str, t.Any]] = []
    updated = unchanged = 0
    for key, entry in activities.items():
        facts = {k: v for k, v in entry.items() if k != "kind"} if isinstance(entry, dict) else {}
        if not key.isdigit() or int(key) not in known:
            new.append(facts)
        elif isinstance(entry, dict) and entry.get("kind") == "unchanged":
            unchanged += 1
        else:
            updated += 1
    counts = tally.setdefault("streams", {}).setdefault(ACTIVITIES_STREAM, {})
    counts.update(new=len(new), updated=updated, unchanged=unchanged)
    tally["new_activities"] = new[: max(0, cap)]
    tally["new_activities_more"] = max(0, len(new) - max(0, cap))
    tally["counted_against"] = "destination"


def write_tally(path: Path, payload: t.Mapping[str, t.Any]) -> None:
    """Write JSON next to its final name, then rename: a reader never sees half a tally."""
    write_atomically(path, json.dumps(payload, indent=2, sort_keys=True) + "\n", mode=0o644)


def read_tally(path: Path) -> dict[str, t.Any] | None:
    """A tally file, or None when it is missing or unreadable (the block never got there)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
