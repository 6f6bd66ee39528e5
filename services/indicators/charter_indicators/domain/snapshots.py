"""From parts to indicator values: numerator, denominator and companion figures (``details``).

The ``details`` keys are part of what the product publishes (README, "Indicator
snapshots"); add keys freely, never rename one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from charter_indicators.domain.parts import (
    ANSWERED,
    IVR,
    LIVE_OPEN,
    LIVE_OPEN_UNSCHEDULED,
    LIVE_SCHEDULED,
    LIVE_SITES,
    LIVE_STALE,
    LIVE_STALE_SCHEDULED,
    OFFERED,
    OPEN_SECONDS,
    PROCESSING_EDGES,
    PROCESSING_HIST,
    PROCESSING_SUM,
    SCHEDULED_SECONDS,
    SHORT,
    SITES_SCHEDULED,
    WAIT_EDGES,
    WAIT_HIST,
    WAIT_SUM,
    WITH_DEADLINE,
    WITHIN_DEADLINE,
    WITHIN_SL,
    WITHOUT_DEADLINE,
    quantile,
    ratio,
)

OPENING = "opening_rate"
PICKUP = "pickup_rate"
DEADLINE = "deadline_compliance"
INDICATORS = (OPENING, PICKUP, DEADLINE)

Details = dict[str, float | None]


@dataclass(frozen=True, slots=True)
class SnapshotValue:
    """One indicator of one scope over one window, complete up to ``as_of`` (epoch seconds)."""

    indicator: str
    network: str | None
    department: str | None
    site_id: str | None
    window: str
    window_start: float | None
    numerator: float
    denominator: float
    as_of: float
    details: Details

    @property
    def value(self) -> float | None:
        return ratio(self.numerator, self.denominator)


def opening(vector: Sequence[float]) -> tuple[float, float, Details]:
    """Seconds open (within the schedule) over seconds scheduled; the volume is in sites."""
    return vector[OPEN_SECONDS], vector[SCHEDULED_SECONDS], {"sites_scheduled": vector[SITES_SCHEDULED]}


def opening_live_site(
    live: Sequence[float], counters_open: int, last_status: float | None
) -> tuple[float, float, Details]:
    """One site now: 1/1 open and scheduled, 0/1 scheduled but closed, 0/0 not scheduled."""
    return (
        live[LIVE_OPEN],
        live[LIVE_SCHEDULED],
        {
            "stale": live[LIVE_STALE],
            "counters_open": float(counters_open),
            "last_status_at": last_status,
            "open_unscheduled": live[LIVE_OPEN_UNSCHEDULED],
        },
    )


def opening_live(live: Sequence[float]) -> tuple[float, float, Details]:
    """Sites open now over sites scheduled open now, with the stale ones counted beside."""
    return (
        live[LIVE_OPEN],
        live[LIVE_SCHEDULED],
        {
            "sites": live[LIVE_SITES],
            "sites_stale": live[LIVE_STALE],
            "sites_scheduled_stale": live[LIVE_STALE_SCHEDULED],
            "sites_open_unscheduled": live[LIVE_OPEN_UNSCHEDULED],
        },
    )


def pickup(vector: Sequence[float], *, histograms: bool) -> tuple[float, float, Details]:
    """Calls answered over calls offered (short abandons and IVR-only calls excluded)."""
    offered = vector[OFFERED]
    answered = vector[ANSWERED]
    raw = offered + vector[SHORT]
    details: Details = {
        "raw_denominator": raw,
        "raw_rate": ratio(answered, raw),
        "short_abandons": vector[SHORT],
        "ivr_only": vector[IVR],
        "abandoned": offered - answered,
        "abandonment_rate": ratio(offered - answered, offered),
        "answered_in_service_level": vector[WITHIN_SL],
        "service_level": ratio(vector[WITHIN_SL], offered),
        "wait_mean_seconds": ratio(vector[WAIT_SUM] / 1000, answered),
    }
    if histograms:
        details["wait_p90_seconds"] = quantile(vector, WAIT_HIST, WAIT_EDGES, 0.9)
    return answered, offered, details


def deadline(
    vector: Sequence[float],
    *,
    histograms: bool,
    procedures: Mapping[str, Sequence[float]] | None = None,
) -> tuple[float, float, Details]:
    """Cases completed within their deadline over cases completed that had one."""
    with_deadline = vector[WITH_DEADLINE]
    completed = with_deadline + vector[WITHOUT_DEADLINE]
    details: Details = {
        "cases_completed": completed,
        "cases_without_deadline": vector[WITHOUT_DEADLINE],
        "processing_mean_seconds": ratio(vector[PROCESSING_SUM], completed),
    }
    if histograms:
        details["processing_median_seconds"] = quantile(vector, PROCESSING_HIST, PROCESSING_EDGES, 0.5)
    for procedure, parts in sorted((procedures or {}).items()):
        if parts[WITH_DEADLINE] + parts[WITHOUT_DEADLINE] > 0:
            details[f"processing_median_seconds.{procedure}"] = quantile(parts, PROCESSING_HIST, PROCESSING_EDGES, 0.5)
    return vector[WITHIN_DEADLINE], with_deadline, details


def build(
    indicator: str,
    vector: Sequence[float],
    *,
    histograms: bool,
    procedures: Mapping[str, Sequence[float]] | None = None,
) -> tuple[float, float, Details]:
    """Numerator, denominator and details of ``indicator`` from a parts vector."""
    if indicator == OPENING:
        return opening(vector)
    if indicator == PICKUP:
        return pickup(vector, histograms=histograms)
    return deadline(vector, histograms=histograms, procedures=procedures)


def is_empty(indicator: str, vector: Sequence[float]) -> bool:
    """True when a window holds nothing for ``indicator`` (no scheduled time, no call, no case)."""
    if indicator == OPENING:
        return not (vector[OPEN_SECONDS] or vector[SCHEDULED_SECONDS])
    if indicator == PICKUP:
        return not (vector[OFFERED] or vector[SHORT] or vector[IVR])
    return not (vector[WITH_DEADLINE] or vector[WITHOUT_DEADLINE])


def indicator_key(indicator: str, vector: Sequence[float]) -> tuple[float, ...]:
    """The parts that decide an indicator's snapshot (to publish only what changed)."""
    if indicator == OPENING:
        return (vector[OPEN_SECONDS], vector[SCHEDULED_SECONDS], vector[SITES_SCHEDULED])
    if indicator == PICKUP:
        return tuple(vector[OFFERED : WAIT_SUM + 1])
    return tuple(vector[WITH_DEADLINE : PROCESSING_SUM + 1])
