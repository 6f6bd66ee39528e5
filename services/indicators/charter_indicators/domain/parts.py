"""The additive parts every indicator is computed from (numerators, denominators, volumes).

Parts are flat lists of floats with a fixed layout, so that aggregating is adding
vectors: a department is the sum of its sites, a network the sum of its departments,
and the value of any scope is computed from its summed parts, never by averaging
ratios. Percentiles come from fixed-bin histograms, which also add up exactly.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from operator import add

# -- opening rate: seconds open (and scheduled), seconds scheduled ------------------------
OPEN_SECONDS = 0
SCHEDULED_SECONDS = 1
# -- calls (pickup rate) ------------------------------------------------------------
OFFERED = 2  # calls offered to agents (short abandons and IVR-only calls excluded)
ANSWERED = 3  # answered by an agent
SHORT = 4  # abandoned unanswered within the short-abandon threshold
IVR = 5  # handled by the voice server only
WITHIN_SL = 6  # answered within the service-level threshold (60 s)
WAIT_SUM = 7  # milliseconds waited before answer, summed over answered calls (whole numbers: exact sums)
# -- cases (deadline compliance) ----------------------------------------------------
WITH_DEADLINE = 8  # cases completed that had a deadline
WITHIN_DEADLINE = 9  # ... and were completed within it
WITHOUT_DEADLINE = 10  # cases completed with no deadline (outside the ratio, volume shown)
PROCESSING_SUM = 11  # whole seconds from submission to completion, summed
# -- opening rate volume: sites with scheduled time in the window (a site counts 1) --------
SITES_SCHEDULED = 12
#: Width of a site's parts; a scope's parts extend it with the two histograms.
SITE_WIDTH = 13

#: Upper bounds (seconds) of the wait-before-answer histogram bins; one more bin above.
WAIT_EDGES: tuple[float, ...] = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 600, 900, 1800)
#: Upper bounds (seconds) of the processing-time histogram bins; one more bin above.
PROCESSING_EDGES: tuple[float, ...] = tuple(
    days * 86400.0 for days in (0.5, 1, 2, 3, 5, 7, 10, 14, 15, 21, 30, 45, 60, 90, 120, 180, 365)
)
WAIT_HIST = SITE_WIDTH
PROCESSING_HIST = WAIT_HIST + len(WAIT_EDGES) + 1
#: Width of a scope's parts (department, network, nation, procedure).
GROUP_WIDTH = PROCESSING_HIST + len(PROCESSING_EDGES) + 1

# -- live opening: sites open now (and scheduled), scheduled now, stale, registered,
#    open outside their schedule -----------------------------------------------------
LIVE_OPEN = 0
LIVE_SCHEDULED = 1
LIVE_STALE = 2
LIVE_SITES = 3
LIVE_OPEN_UNSCHEDULED = 4
LIVE_STALE_SCHEDULED = 5  # stale among the sites scheduled open now (what the alert rules judge)
LIVE_WIDTH = 6


def set_opening(vector: list[float], opened: float, scheduled: float) -> None:
    """Write a site's opening figures into a window's parts: seconds, and the site as one scheduled site."""
    vector[OPEN_SECONDS] = opened
    vector[SCHEDULED_SECONDS] = scheduled
    vector[SITES_SCHEDULED] = 1.0 if scheduled > 0 else 0.0


def zeros(width: int) -> list[float]:
    return [0.0] * width


def add_into(target: list[float], source: Sequence[float]) -> None:
    """``target += source``, element-wise (source may be shorter: site parts into group parts).

    ``map(add, ...)`` runs the loop in C: flushes add hundreds of thousands of vectors.
    """
    n = len(source)
    if n == len(target):
        target[:] = map(add, target, source)
    else:
        target[:n] = map(add, target[:n], source)


def total(vectors: Iterable[Sequence[float]], width: int) -> list[float]:
    """Element-wise sum."""
    out = zeros(width)
    for vector in vectors:
        add_into(out, vector)
    return out


def wait_bin(seconds: float) -> int:
    """Index in a group vector of the wait histogram bin of ``seconds``."""
    return WAIT_HIST + bisect.bisect_left(WAIT_EDGES, seconds)


def processing_bin(seconds: float) -> int:
    """Index in a group vector of the processing-time histogram bin of ``seconds``."""
    return PROCESSING_HIST + bisect.bisect_left(PROCESSING_EDGES, seconds)


def quantile(vector: Sequence[float], first: int, edges: Sequence[float], q: float) -> float | None:
    """The q-quantile from a histogram stored at ``vector[first:first + len(edges) + 1]``.

    Linear interpolation within the bin; the open top bin answers its lower edge. None
    when the histogram is empty.
    """
    counts = vector[first : first + len(edges) + 1]
    n = sum(counts)
    if n <= 0:
        return None
    rank = q * n
    seen = 0.0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            low = edges[i - 1] if i > 0 else 0.0
            if i == len(edges):
                return float(low)
            high = edges[i]
            return float(low + (high - low) * (rank - seen) / count)
        seen += count
    return float(edges[-1])


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None
