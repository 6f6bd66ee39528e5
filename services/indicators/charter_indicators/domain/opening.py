"""Opening time as it accrues: when a site's state changes, and the running integrals.

A site's contribution to the opening rate is piecewise constant in time: it changes only
at the edges of its schedule (weekly hours, public holidays, announced closures), of its
unannounced closures, when a counter opens or closes, and when its status goes stale.
Between two such instants nothing changes, so seconds open and seconds scheduled are
integrals of step functions. ``Integral`` keeps them running (for a site, whose rates
are 0 or 1, and for a department, whose rates are counts of sites), so that any window
is a difference of two values and time passing costs nothing until the next change.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence

from charter_indicators.domain.calendar import HOUR
from charter_indicators.domain.intervals import Interval, merge
from charter_indicators.domain.schedule import SiteInfo

#: How far ahead a schedule is searched for its next edge; a site scheduled on none of
#: these days is looked at again then (a schedule change may start later).
LOOKAHEAD_DAYS = 8

# -- the running integrals -------------------------------------------------------------------
# One ``array('d')`` per site or scope, with this layout:
AT = 0  # instant the values below are at (the anchor)
ACC_OPEN = 1  # seconds open (and scheduled) accrued up to T
ACC_SCHED = 2  # seconds scheduled accrued up to T
RATE_OPEN = 3  # current rate of open seconds (sites open within their schedule)
RATE_SCHED = 4  # current rate of scheduled seconds (sites scheduled)
HOUR_AT = 5  # start of the current UTC hour, and ACC_OPEN, S at that instant
HOUR_OPEN = 6
HOUR_SCHED = 7
DAY_AT = 8  # local day (ordinal) in progress, and ACC_OPEN, S at its midnight
DAY_OPEN = 9
DAY_SCHED = 10
WIDTH = 11


def new_integral(t: float, day: int) -> array[float]:
    """Integrals starting at ``t``: nothing accrued, the hour and local day ``day`` in progress."""
    return array("d", [t, 0.0, 0.0, 0.0, 0.0, t // HOUR * HOUR, 0.0, 0.0, float(day), 0.0, 0.0])


def advance(op: array[float], t: float) -> None:
    """Accrue the current rates up to ``t`` (never backwards)."""
    dt = t - op[AT]
    if dt > 0:
        op[ACC_OPEN] += op[RATE_OPEN] * dt
        op[ACC_SCHED] += op[RATE_SCHED] * dt
        op[AT] = t


def at(op: array[float], x: float, recent: Sequence[float] | None) -> tuple[float, float]:
    """(seconds open, seconds scheduled) accrued up to ``x``.

    ``recent`` holds, for each rate change of the last hour, the instant, the values there
    and the rates *before* it (flat, five numbers each): before a change the values are the
    change's minus what its old rates accrued; after the last one, the anchor's rates hold.
    """
    if recent:
        n = len(recent) // 5
        lo, hi = 0, n
        while lo < hi:  # first change at or after x
            mid = (lo + hi) // 2
            if recent[mid * 5] < x:
                lo = mid + 1
            else:
                hi = mid
        if lo < n:
            i = lo * 5
            back = recent[i] - x
            return recent[i + 1] - recent[i + 3] * back, recent[i + 2] - recent[i + 4] * back
    return op[ACC_OPEN] + op[RATE_OPEN] * (x - op[AT]), op[ACC_SCHED] + op[RATE_SCHED] * (x - op[AT])


def since(op: array[float], start: float, end: float, recent: Sequence[float] | None) -> tuple[float, float]:
    """Seconds open and scheduled accrued within ``[start, end)`` (both within reach of ``recent``)."""
    o1, s1 = at(op, end, recent)
    o0, s0 = at(op, start, recent)
    return o1 - o0, s1 - s0


def set_rates(op: array[float], t: float, ro: float, rs: float, recent: array[float] | None) -> array[float]:
    """The rates change at ``t``; the change is remembered in ``recent`` (returned, created if needed).

    Only the first change at an instant is kept: it holds the rates before that instant, and
    the values there are the same for all (the sites of a schedule change together).
    """
    advance(op, t)
    if recent is None:
        recent = array("d", (t, op[ACC_OPEN], op[ACC_SCHED], op[RATE_OPEN], op[RATE_SCHED]))
    elif recent[-5] != t:
        recent += array("d", (t, op[ACC_OPEN], op[ACC_SCHED], op[RATE_OPEN], op[RATE_SCHED]))
    op[RATE_OPEN] = ro
    op[RATE_SCHED] = rs
    return recent


def prune_recent(recent: array[float] | None, keep_from: float) -> array[float] | None:
    """Forget the changes before ``keep_from`` (a window never starts earlier); the rest at its exact size."""
    if not recent:
        return None
    n = len(recent) // 5
    i = 0
    while i < n and recent[i * 5] < keep_from:
        i += 1
    if i == n:
        return None
    return recent[i * 5 :] if i else recent


def close_hour(op: array[float], boundary: float) -> tuple[float, float]:
    """The UTC hour ending at ``boundary`` is over: its seconds, and the next hour starts."""
    advance(op, boundary)
    opened, scheduled = op[ACC_OPEN] - op[HOUR_OPEN], op[ACC_SCHED] - op[HOUR_SCHED]
    op[HOUR_AT], op[HOUR_OPEN], op[HOUR_SCHED] = boundary, op[ACC_OPEN], op[ACC_SCHED]
    return opened, scheduled


def close_day(op: array[float], midnight: float, next_day: int) -> tuple[float, float]:
    """The local day ending at ``midnight`` is over: its seconds, and ``next_day`` starts."""
    advance(op, midnight)
    opened, scheduled = op[ACC_OPEN] - op[DAY_OPEN], op[ACC_SCHED] - op[DAY_SCHED]
    op[DAY_AT], op[DAY_OPEN], op[DAY_SCHED] = float(next_day), op[ACC_OPEN], op[ACC_SCHED]
    return opened, scheduled


# -- edges of a site's state -----------------------------------------------------------------


def schedule_intervals(info: SiteInfo, first_day: int, last_day: int) -> list[Interval]:
    """Scheduled intervals of local days ``first_day`` to ``last_day``, merged across midnights."""
    out: list[Interval] = []
    for ordinal in range(first_day, last_day + 1):
        out.extend(info.scheduled_on(ordinal))
    return merge(out)


def schedule_edges(info: SiteInfo, start: float, end: float) -> array[float]:
    """The schedule's edges within ``[start, end)``: (instant, 1.0 when it starts / 0.0 when it ends), flat."""
    first, last = info.days.day_of(start) - 1, info.days.day_of(end) + 1
    out = array("d")
    for s, e in schedule_intervals(info, first, last):
        if start <= s < end:
            out += array("d", (s, 1.0))
        if start <= e < end:
            out += array("d", (e, 0.0))
    return out


def scheduled_before(info: SiteInfo, t: float) -> bool:
    """Scheduled just before ``t`` (on ``[t - e, t)``): the state once every edge before ``t`` is past."""
    day = info.days.day_of(t)
    return any(s < t <= e for s, e in schedule_intervals(info, day - 1, day))


def _next_edge(intervals: Sequence[Interval], t: float, current: bool, after: bool) -> tuple[float, bool] | None:
    """Where sorted disjoint ``intervals`` next leave state ``current``, from ``t``.

    ``after``: the state is the one just after ``t`` (an edge at ``t`` was applied), so the
    next edge is later; otherwise it is the state just before ``t`` and an edge at ``t``
    counts. A state that disagrees with the intervals is corrected at ``t``. None: no
    interval reaches ``t`` (and ``current`` is False, or the caller looks further).
    """
    for s, e in intervals:
        if e < t or (after and e <= t):
            continue
        inside = s <= t if after else s < t
        if inside:
            return (e, False) if current else (t, True)
        return (t, False) if current else (s, True)
    return None


def next_schedule_edge(info: SiteInfo, t: float, current: bool, *, after: bool) -> tuple[float, bool]:
    """The first instant from ``t`` where the schedule leaves state ``current``, and the new state.

    When there is none within ``LOOKAHEAD_DAYS``, the answer is a check at that horizon
    with the state there (a schedule that starts later is found then).
    """
    day = info.days.day_of(t)
    for first in range(day - 1, day + LOOKAHEAD_DAYS, 2):
        # three days at a time, overlapping: an interval across midnight is seen whole
        edge = _next_edge(schedule_intervals(info, first, first + 2), t, current, after)
        if edge is not None:
            return edge
    if current:
        return t, False
    horizon = info.days.midnight(day + LOOKAHEAD_DAYS)
    return horizon, scheduled_before(info, horizon + 1e-3)


def closure_before(closures: Sequence[Interval], t: float) -> bool:
    """Inside an unannounced closure just before ``t``."""
    i = bisect.bisect_left(closures, (t,)) - 1
    return i >= 0 and closures[i][0] < t <= closures[i][1]


def next_closure_edge(
    closures: Sequence[Interval], t: float, current: bool, *, after: bool
) -> tuple[float, bool] | None:
    """The first instant from ``t`` where the unannounced closures leave state ``current``."""
    edge = _next_edge(closures, t, current, after)
    if edge is None and current:
        return t, False
    return edge
