"""Pickup rate (taux de décroché), SPEC section 4.

pickup rate = calls answered by an agent / calls offered to agents. Calls handled by the
voice server only (``ivr_only``) are outside the rate; calls abandoned unanswered within
``short_abandon_seconds`` are excluded from both terms (the raw rate keeps them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from charter_contracts import CallRecord


@dataclass(slots=True)
class PickupCounts:
    """Parts of the pickup rate; add them up to aggregate exactly."""

    offered: int = 0
    answered: int = 0
    short_abandons: int = 0
    ivr_only: int = 0

    def add(self, other: PickupCounts) -> None:
        self.offered += other.offered
        self.answered += other.answered
        self.short_abandons += other.short_abandons
        self.ivr_only += other.ivr_only

    @property
    def raw_offered(self) -> int:
        """Calls offered including short abandons (denominator of the raw rate)."""
        return self.offered + self.short_abandons


def count_call(call: CallRecord, short_abandon_seconds: float) -> PickupCounts:
    """The contribution of one call to the pickup counts."""
    if call.ivr_only:
        return PickupCounts(ivr_only=1)
    if call.answered_at is not None:
        return PickupCounts(offered=1, answered=1)
    if (call.ended_at - call.received_at).total_seconds() < short_abandon_seconds:
        return PickupCounts(short_abandons=1)
    return PickupCounts(offered=1)


class RollingPickup:
    """Pickup counts of one scope in one-minute event-time buckets over a rolling window."""

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self._buckets: dict[int, PickupCounts] = {}

    def add(self, at: datetime, counts: PickupCounts) -> None:
        minute = int(at.timestamp()) // 60
        self._buckets.setdefault(minute, PickupCounts()).add(counts)

    def total(self, as_of: datetime) -> PickupCounts:
        """Counts of calls received in (as_of - window, as_of]; older buckets are dropped."""
        end = int(as_of.timestamp()) // 60
        start = end - int(self.window.total_seconds()) // 60
        for minute in [m for m in self._buckets if m <= start]:
            del self._buckets[minute]
        total = PickupCounts()
        for minute, counts in self._buckets.items():
            if minute <= end:
                total.add(counts)
        return total
