"""Pickup rate against hand-computed cases: short abandons, IVR, service level, waits, windows, lateness."""

from __future__ import annotations

import pytest

from charter_indicators.domain.events import Outcome
from charter_indicators.domain.partition import IndicatorConfig
from tests.support.indicators import call, partition, run, ts
from tests.support.sites import site

T0 = ts("2024-03-04T10:00:00+01:00")
LATER = ts("2024-03-04T10:30:00+01:00")  # a call that moves event time past the first ones


def test_100_calls_with_10_short_abandons_and_72_answered_is_72_over_90() -> None:
    state = partition(site("caf-1"))
    calls = [call(T0, "caf-1", answered_after=15) for _ in range(72)]
    calls += [call(T0, "caf-1", answered_after=None, duration=3) for _ in range(10)]  # short abandons (< 5 s)
    calls += [call(T0, "caf-1", answered_after=None, duration=90) for _ in range(18)]  # abandoned after waiting
    calls += [call(T0, "caf-1", answered_after=None, ivr_only=True) for _ in range(7)]  # voice server only
    figures = run(state, [*calls, call(LATER, "caf-1", ivr_only=True)])
    scopes: list[dict[str, str | None]] = [
        {"network": "caf", "department": None, "site_id": None},
        {"network": "caf", "department": "75", "site_id": "caf-1"},
    ]
    for scope in scopes:
        hour = figures.get(
            "pickup_rate", "1h", network=scope["network"], department=scope["department"], site_id=scope["site_id"]
        )
        assert (hour.numerator, hour.denominator, hour.value) == (72, 90, 0.8)
        assert hour.details["raw_denominator"] == 100
        assert hour.details["raw_rate"] == 0.72
        assert hour.details["short_abandons"] == 10
        assert hour.details["ivr_only"] == 7
        assert hour.details["abandoned"] == 18
        assert hour.details["abandonment_rate"] == 0.2


def test_service_level_mean_and_p90_wait() -> None:
    state = partition(site("caf-1"))
    # 10 answered calls waiting 10, 20, ..., 100 s: 6 within 60 s; mean 55 s
    calls = [call(T0, "caf-1", answered_after=10.0 * i) for i in range(1, 11)]
    figures = run(state, [*calls, call(LATER, "caf-1", ivr_only=True)])
    network = figures.get("pickup_rate", "1h", network="caf")
    assert network.details["service_level"] == 0.6
    assert network.details["answered_in_service_level"] == 6
    assert network.details["wait_mean_seconds"] == 55
    # the 9th of 10 waits (90 s) falls in the 60-90 s bin: p90 read from it
    assert network.details["wait_p90_seconds"] == pytest.approx(90)
    site_figures = figures.get("pickup_rate", "1h", network="caf", department="75", site_id="caf-1")
    assert site_figures.details["wait_mean_seconds"] == 55


def test_rolling_windows_follow_event_time() -> None:
    state = partition(site("caf-1"))
    figures = run(
        state,
        [
            call(ts("2024-03-04T09:10:00+01:00"), "caf-1"),  # in the last hour, not the last 15 min
            call(ts("2024-03-04T09:55:00+01:00"), "caf-1", answered_after=None, duration=60),
            call(ts("2024-03-04T10:01:00+01:00"), "caf-1", ivr_only=True),  # watermark 10:00
        ],
    )
    quarter = figures.get("pickup_rate", "15m", network="caf")
    hour = figures.get("pickup_rate", "1h", network="caf")
    assert (quarter.numerator, quarter.denominator) == (0, 1)
    assert (hour.numerator, hour.denominator) == (1, 2)
    assert quarter.as_of == ts("2024-03-04T10:00:00+01:00")
    assert quarter.window_start == ts("2024-03-04T09:45:00+01:00")
    # the site's own windows slide the same way
    site_quarter = figures.get("pickup_rate", "15m", network="caf", department="75", site_id="caf-1")
    site_hour = figures.get("pickup_rate", "1h", network="caf", department="75", site_id="caf-1")
    assert (site_quarter.numerator, site_quarter.denominator) == (0, 1)
    assert (site_hour.numerator, site_hour.denominator) == (1, 2)
    # twenty minutes on, the 09:55 call has left the 15-minute window; the 09:10 one the hour
    later = run(state, [call(ts("2024-03-04T10:21:00+01:00"), "caf-1", ivr_only=True)], figures=figures)
    site_quarter = later.get("pickup_rate", "15m", network="caf", department="75", site_id="caf-1")
    site_hour = later.get("pickup_rate", "1h", network="caf", department="75", site_id="caf-1")
    assert site_quarter.as_of == ts("2024-03-04T10:20:00+01:00")
    assert (site_quarter.denominator, site_hour.numerator, site_hour.denominator) == (0, 0, 1)


def test_late_events_are_not_counted_duplicates_count_once_out_of_order_within_grace_counts() -> None:
    state = partition(site("caf-1"), config=IndicatorConfig(grace=60))
    first = call(T0, "caf-1", event_id="same")
    assert state.apply(first) is Outcome.ACCEPTED
    assert state.apply(call(T0, "caf-1", event_id="same")) is Outcome.DUPLICATE
    assert state.apply(call(T0 + 300, "caf-1")) is Outcome.ACCEPTED
    assert state.apply(call(T0 + 250, "caf-1")) is Outcome.ACCEPTED  # 50 s out of order: within grace
    # a call is known once it has ended, so it is judged on its end: this one ended 90 s
    # before the stream's latest call arrived, later than the grace period allows
    assert state.apply(call(T0 + 200, "caf-1", answered_after=None, duration=10)) is Outcome.LATE
    # received 200 s before the latest call, but it was still going on: not late
    assert state.apply(call(T0 + 100, "caf-1", answered_after=20, duration=180)) is Outcome.ACCEPTED
    assert state.apply(call(T0, "caf-unknown")) is Outcome.UNKNOWN_SITE
    assert state.apply(call(T0, "caf-1", network="cpam")) is Outcome.UNKNOWN_SITE  # not that network's site
    figures = run(state, [call(LATER, "caf-1", ivr_only=True)])
    hour = figures.get("pickup_rate", "1h", network="caf")
    assert hour.denominator == 4


def test_a_call_counts_where_it_was_received_from_the_first_minute_after_it_ended() -> None:
    # networks publish a call record when the call ends: an answered call of four minutes
    # arrives after calls received later; it belongs to the minute it was received in
    state = partition(site("caf-1"), config=IndicatorConfig(grace=60))
    received = ts("2024-03-04T09:58:00+01:00")
    long_call = call(received, "caf-1", answered_after=30, duration=210)  # ends at 10:02
    figures = run(state, [call(received + 60 + i, "caf-1", answered_after=None, duration=10) for i in range(3)])
    # as of 09:58 (the watermark is a minute behind the latest call): nothing received before has ended
    assert figures.get("pickup_rate", "1h", network="caf").denominator == 0
    figures = run(state, [call(ts("2024-03-04T10:02:00+01:00"), "caf-1", ivr_only=True)], figures=figures)
    # as of 10:01 the 9 o'clock hour is closed and published: the long call is still going on
    nine = figures.get("pickup_rate", "hour", network="caf", start=ts("2024-03-04T09:00:00+01:00"))
    assert (nine.numerator, nine.denominator, nine.as_of) == (0, 3, ts("2024-03-04T10:01:00+01:00"))
    figures = run(state, [long_call, call(ts("2024-03-04T10:05:00+01:00"), "caf-1", ivr_only=True)], figures=figures)
    hour = figures.get("pickup_rate", "1h", network="caf")
    assert hour.as_of == ts("2024-03-04T10:04:00+01:00")
    assert (hour.numerator, hour.denominator) == (1, 4)
    # it revises the hour it was received in, closed and published, which is published again
    nine = figures.get("pickup_rate", "hour", network="caf", start=ts("2024-03-04T09:00:00+01:00"))
    assert (nine.numerator, nine.denominator, nine.as_of) == (1, 4, hour.as_of)
    site_nine = figures.get(
        "pickup_rate", "hour", network="caf", department="75", site_id="caf-1", start=ts("2024-03-04T09:00:00+01:00")
    )
    assert (site_nine.numerator, site_nine.denominator) == (1, 4)


def test_a_call_longer_than_the_longest_counted_is_late() -> None:
    state = partition(site("caf-1"), config=IndicatorConfig(max_call=1800))
    assert state.apply(call(T0, "caf-1", answered_after=60, duration=1740)) is Outcome.ACCEPTED  # 30 min
    assert state.apply(call(T0, "caf-1", answered_after=60, duration=1741)) is Outcome.LATE
