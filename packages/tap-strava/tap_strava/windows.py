"""Bounded time windows for reading Strava's activity list without ever skipping one.

Strava's list has no "updated since" filter, no total, and its order is undocumented
(``after``+``before`` answers come newest first). So the incremental runs (from the
look-back before the bookmark to now) and the per-activity streams read the time range to
sync in windows (a history with no bookmark yet is read newest first with a ``before``
cursor instead: see ``ActivitiesStream._backfill``; a look-back from a bookmark to now is
one open window, see ``open_from_start``): each window is read whole (all its
pages), deduplicated by id, sorted by ``(start_date, id)`` and only then emitted. The
bookmark can therefore advance after each finished window, and a run that stops anywhere
resumes at a window boundary.

Every window costs its pages plus Strava's closing empty page (a short page does not
prove the end: Strava documents "stop at the first empty page"), so windows should be
big; but a window is only progress once finished, so it must fit in the quota that is
left. Hence the window's page allowance follows the quota (:func:`pages_for`): up to
``MAX_PAGES_PER_WINDOW`` pages when there is plenty, one page when only a few requests
remain. Sizes adapt to the athlete's density, aiming at three quarters of half the
allowance: an empty window doubles the next one (a walk from 1970 to a first activity costs a
dozen requests, not hundreds), others scale by the density they showed. A window that
outgrows what the quota left allows (:func:`page_cap`, also a memory bound) is
abandoned and read as smaller windows, so a run that Strava's quota allows only a few
requests still finishes windows and makes progress; with quota to spare an overgrown
window is simply read on, since re-reading it would waste its pages.
"""

from __future__ import annotations

import dataclasses

DAY = 86400
# Strava's largest page (``per_page``) of a list endpoint.
MAX_PAGE_SIZE = 200


@dataclasses.dataclass(frozen=True)
class TimeWindow:
    """Start times from ``first`` to ``last`` inclusive (epoch seconds); ``last=None``: open."""

    first: int
    last: int | None

    @property
    def after(self) -> int:
        """Strava's ``after`` is exclusive: one second before ``first``."""
        return max(0, self.first - 1)

    @property
    def before(self) -> int | None:
        """Strava's ``before`` is exclusive: one second after ``last``."""
        return None if self.last is None else self.last + 1


TARGET_RECORDS = MAX_PAGE_SIZE * 3 // 4  # per page of the window's target
MAX_PAGES_PER_WINDOW = 10  # the allowance windows are sized for (they aim at half)
MAX_PAGES_HELD = 25  # a window is held in memory until read whole: 5,000 records at most


def page_cap(reads_left: int | None) -> int:
    """Pages a window may grow to before it is read again as smaller windows.

    What the quota left allows (the window and its closing empty page must fit, or the
    run would stop without finishing it), and at most ``MAX_PAGES_HELD``.
    """
    if reads_left is None:
        return MAX_PAGES_HELD
    return max(1, min(MAX_PAGES_HELD, reads_left - 1))


def pages_for(reads_left: int | None) -> int:
    """The page allowance windows are sized for: at most ``MAX_PAGES_PER_WINDOW``."""
    return min(MAX_PAGES_PER_WINDOW, page_cap(reads_left))


class WindowPlanner:
    """Yields consecutive, non-overlapping windows from ``start`` to the open end.

    ``open_from_start``: the whole range is one open window from the start (a look-back
    from the bookmark to now, which holds the look-back's activities and the new ones
    only); a window that outgrows its allowance is split as any other.
    """

    def __init__(
        self,
        *,
        start: int,
        now: int,
        initial_span: int = 30 * DAY,
        min_span: int = DAY,
        max_span: int = 4 * 365 * DAY,
        end: int | None = None,
        open_from_start: bool = False,
    ) -> None:
        self.cursor = max(1, start)
        self.end = end
        self.now = now if end is None else min(now, end)
        if open_from_start and end is None:
            # A look-back to now (see ``ActivityListStream.sorted_windows``): one open
            # window, however old the bookmark, unless it proves crowded and is split.
            initial_span = max(initial_span, self.now - self.cursor + 1)
        self.min_span = max(1, min(min_span, initial_span))
        self.max_span = max(initial_span, max_span)
        self.span = max(self.min_span, initial_span)
        self.finished = False
        # Pages the current window may use (see pages_for); sizes aim at half of them.
        self.pages = 1

    def __iter__(self) -> WindowPlanner:
        return self

    def __next__(self) -> TimeWindow:
        if self.finished:
            raise StopIteration
        last = self.cursor + self.span - 1
        if last >= self.now:
            # Without an end, the last window has no upper bound: activities dated "in
            # the future" (clock skew, odd device time zones) still arrive.
            self.finished = True
            window = TimeWindow(self.cursor, self.end)
        else:
            window = TimeWindow(self.cursor, last)
        self.cursor = last + 1
        return window

    def report(self, records_in_window: int) -> None:
        """Adapt the next window's size to the density this one showed."""
        if records_in_window == 0:
            wanted = self.span * 2
        else:
            target = TARGET_RECORDS * max(1, self.pages // 2)
            wanted = self.span * target // records_in_window
            wanted = max(self.span // 4, min(wanted, self.span * 4))
        self.span = max(self.min_span, min(wanted, self.max_span))

    def span_of(self, window: TimeWindow) -> int:
        """Seconds covered by a window (an open one: up to now)."""
        last = window.last if window.last is not None else max(self.now, window.first)
        return last - window.first + 1

    def can_split(self, window: TimeWindow) -> bool:
        """Whether a window is longer than the smallest span."""
        return self.span_of(window) > self.min_span

    def split(self, window: TimeWindow) -> None:
        """Read ``window`` again as smaller windows (its first page was full)."""
        self.cursor = window.first
        self.span = max(self.min_span, self.span_of(window) // 4)
        self.finished = False
