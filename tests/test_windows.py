"""The time-window planner: windows tile the range exactly, with no gap and no overlap."""

from __future__ import annotations

import itertools

from tap_strava.windows import (
    DAY,
    MAX_PAGES_HELD,
    MAX_PAGES_PER_WINDOW,
    TimeWindow,
    WindowPlanner,
    page_cap,
    pages_for,
)


def test_windows_tile_the_range_without_gap_or_overlap():
    planner = WindowPlanner(start=1_000, now=1_000 + 100 * DAY, initial_span=10 * DAY)
    windows = []
    for window in planner:
        windows.append(window)
        planner.report(150)
    assert windows[0].first == 1_000
    for previous, current in itertools.pairwise(windows):
        assert previous.last is not None
        assert current.first == previous.last + 1
    assert windows[-1].last is None, "the last window is open-ended"


def test_after_and_before_are_exclusive_bounds_around_the_window():
    window = TimeWindow(first=100, last=199)
    assert (window.after, window.before) == (99, 200)
    assert TimeWindow(first=100, last=None).before is None


def test_empty_windows_grow_and_crowded_windows_shrink():
    planner = WindowPlanner(start=1, now=10_000 * DAY, initial_span=30 * DAY, max_span=400 * DAY)
    first = next(planner)
    planner.report(0)
    second = next(planner)
    assert planner.span_of(second) == 2 * planner.span_of(first)
    for _ in range(10):
        next(planner)
        planner.report(0)
    assert planner.span == 400 * DAY
    next(planner)
    planner.report(1_000)
    assert planner.span == 100 * DAY, "at most a quarter at once"
    next(planner)
    planner.report(75)
    assert planner.span == 200 * DAY, "density scaling toward three quarters of a page"


def test_a_crowded_window_is_read_again_as_smaller_windows():
    planner = WindowPlanner(start=1_000, now=1_000 + 400 * DAY, initial_span=100 * DAY)
    crowded = next(planner)
    planner.split(crowded)
    smaller = next(planner)
    assert smaller.first == crowded.first
    assert planner.span_of(smaller) == planner.span_of(crowded) // 4
    tiny = WindowPlanner(start=1_000, now=1_000 + 10 * DAY, initial_span=DAY)
    assert not tiny.can_split(next(tiny))


def test_a_whole_history_backfill_from_1970_needs_few_empty_requests():
    now = 1_790_000_000  # late 2026
    planner = WindowPlanner(start=0, now=now, initial_span=30 * DAY)
    empty_requests = 0
    for window in planner:
        if window.last is not None and window.last < 1_400_000_000:  # nothing before 2014
            empty_requests += 1
            planner.report(0)
        else:
            planner.report(150)
    assert empty_requests <= 20


def test_the_page_allowance_follows_the_quota_left():
    assert pages_for(None) == MAX_PAGES_PER_WINDOW
    assert pages_for(900) == MAX_PAGES_PER_WINDOW
    assert pages_for(4) == 3, "three pages and the closing empty one"
    assert pages_for(2) == 1
    assert pages_for(0) == 1, "one page is always allowed (the stop comes from the quota)"
    planner = WindowPlanner(start=1, now=1_000 * DAY, initial_span=10 * DAY)
    next(planner)
    planner.pages = 10
    planner.report(150)
    assert planner.span == 40 * DAY, "sized for half the allowance: 5 pages of 150"


def test_an_overgrown_window_is_abandoned_only_when_the_quota_or_memory_requires():
    assert page_cap(None) == MAX_PAGES_HELD
    assert page_cap(10_000) == MAX_PAGES_HELD, "memory bound"
    assert page_cap(6) == 5, "five pages and the closing one fit in six reads"
    assert page_cap(1) == 1
    assert pages_for(10_000) == MAX_PAGES_PER_WINDOW < MAX_PAGES_HELD
