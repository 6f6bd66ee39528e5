"""Arithmetic on sorted, disjoint half-open time intervals ``[start, end)`` in epoch seconds.

Opening time is a measure: time open within time scheduled. Both are unions of
intervals, so every opening figure is a length of an intersection of such unions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Interval = tuple[float, float]


def clip(intervals: Iterable[Interval], start: float, end: float) -> list[Interval]:
    """The parts of ``intervals`` inside ``[start, end)``."""
    out = []
    for s, e in intervals:
        s2 = s if s > start else start
        e2 = e if e < end else end
        if e2 > s2:
            out.append((s2, e2))
    return out


def intersect(xs: Sequence[Interval], ys: Sequence[Interval]) -> list[Interval]:
    """Intersection of two sorted disjoint unions."""
    out = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        s = max(xs[i][0], ys[j][0])
        e = min(xs[i][1], ys[j][1])
        if e > s:
            out.append((s, e))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(xs: Sequence[Interval], cuts: Sequence[Interval]) -> list[Interval]:
    """``xs`` minus ``cuts`` (both sorted; ``cuts`` may overlap each other)."""
    if not cuts:
        return list(xs)
    out = []
    for s, e in xs:
        cursor = s
        for cs, ce in cuts:
            if ce <= cursor:
                continue
            if cs >= e:
                break
            if cs > cursor:
                out.append((cursor, cs))
            cursor = max(cursor, ce)
            if cursor >= e:
                break
        if cursor < e:
            out.append((cursor, e))
    return out


def length(intervals: Iterable[Interval]) -> float:
    """Total length in seconds."""
    return sum(e - s for s, e in intervals)


def length_since(intervals: Iterable[Interval], start: float) -> float:
    """Length of the part of ``intervals`` at or after ``start``."""
    total = 0.0
    for s, e in intervals:
        if e > start:
            total += e - (s if s > start else start)
    return total


def contains(intervals: Iterable[Interval], t: float) -> bool:
    """True when instant ``t`` lies in one of the intervals."""
    return any(s <= t < e for s, e in intervals)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or touching intervals."""
    out: list[Interval] = []
    for s, e in sorted(intervals):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out
