"""What every stream of one sync shares, handed to them by the tap.

The streams must not import the tap (which imports them): they reach the sync through
:class:`RunOwner`, a protocol the tap fulfils with its ``sync_run``.
"""

from __future__ import annotations

import dataclasses
import typing as t

if t.TYPE_CHECKING:
    import datetime
    from collections.abc import Callable

    from tap_strava.athletes import Athletes
    from tap_strava.event_handling import EventRun
    from tap_strava.shared_facts import SharedFacts


@dataclasses.dataclass
class SyncRun:
    """One sync: its athletes, when it started, the shared facts, the gear ids it saw."""

    athletes: Athletes
    started_at: datetime.datetime
    shared_facts: SharedFacts
    # Called after each stream: records skipped athletes in the state (see the tap).
    report_skipped: Callable[[], None]
    # Gear ids of the activities emitted in this run, per athlete (from ``activities``).
    gear_ids_seen: dict[int, set[str]] = dataclasses.field(default_factory=dict)
    # The events mode's push events (``events_url`` set), shared by its four streams.
    events: EventRun | None = None


class RunOwner(t.Protocol):
    """The tap, as the streams see it."""

    @property
    def sync_run(self) -> SyncRun:
        """The sync under way."""
        ...
