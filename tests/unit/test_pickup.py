"""Pickup rate arithmetic, against hand-computed cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from charter_contracts import CallRecord, parse_event
from charter_indicators.domain.pickup import PickupCounts, RollingPickup, count_call
from tests.support import events

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def make_call(at: datetime, answered_after: float | None, duration: float = 120, **kw: Any) -> CallRecord:
    event = parse_event(events.encode(events.call(at, answered_after=answered_after, duration=duration, **kw)))
    assert isinstance(event, CallRecord)
    return event


def test_100_calls_with_10_short_abandons_and_72_answered_is_72_over_90() -> None:
    window = RollingPickup(timedelta(hours=1))
    calls = (
        [make_call(T0, answered_after=15) for _ in range(72)]
        + [make_call(T0, answered_after=None, duration=3) for _ in range(10)]  # short abandons
        + [make_call(T0, answered_after=None, duration=90) for _ in range(18)]
    )
    for call in calls:
        window.add(call.received_at, count_call(call, short_abandon_seconds=5))
    total = window.total(T0 + timedelta(minutes=5))
    assert (total.answered, total.offered, total.raw_offered) == (72, 90, 100)


def test_ivr_only_calls_are_outside_the_rate() -> None:
    assert count_call(make_call(T0, None, ivr_only=True), 5) == PickupCounts(ivr_only=1)


def test_calls_older_than_the_window_no_longer_count() -> None:
    window = RollingPickup(timedelta(hours=1))
    window.add(T0, PickupCounts(offered=1, answered=1))
    window.add(T0 + timedelta(minutes=50), PickupCounts(offered=1))
    assert window.total(T0 + timedelta(minutes=59)).offered == 2
    assert window.total(T0 + timedelta(minutes=61)) == PickupCounts(offered=1)
