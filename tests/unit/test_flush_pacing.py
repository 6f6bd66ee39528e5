"""The indicators' flush pacing: live, a minute's figures go out at once whatever the last flush
cost; in a replay flushes take a fifth of the time, never more, and no pause exceeds the cap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charter_indicators.pacing import FlushPacer

TICK = 1.0


def test_live_a_heavy_flush_does_not_hold_the_next_minute_back() -> None:
    pacer = FlushPacer(TICK)
    now = 0.0
    for _ in range(10):  # a quiet live minute: no-op ticks every second
        now += TICK
        assert pacer.after_flush(0.001, now) == TICK
    now += 3.0
    assert pacer.after_flush(3.0, now) == TICK  # every site's snapshots: 3 s of CPU
    now += TICK + 1.0
    assert pacer.after_flush(1.0, now) == TICK  # the next minute closes: flushed at the next tick


def test_a_replay_is_paced_to_a_fifth_of_the_time() -> None:
    pacer = FlushPacer(TICK)
    now, cpu = 0.0, 0.0
    for _ in range(200):  # every flush finds event time moved on and costs 1.5 s
        now += 1.5
        cpu += 1.5
        now += pacer.after_flush(1.5, now)
    assert 0.19 <= cpu / now <= 0.21
    assert pacer.after_flush(1.5, now + 1.5) == pytest.approx(6.0)  # 4x the flush, as the older rule had it


@given(st.lists(st.tuples(st.floats(0, 60), st.floats(0, 60)), min_size=1, max_size=200))
def test_flushes_never_take_more_than_their_share_beyond_the_burst(flushes: list[tuple[float, float]]) -> None:
    pacer = FlushPacer(TICK, max_pause=1e9)
    now, cpu = 0.0, 0.0
    for cost, extra_wait in flushes:
        now += cost  # the flush's own wall time (as long as its CPU time: the worst case)
        cpu += cost
        now += pacer.after_flush(cost, now) + extra_wait
    assert cpu <= pacer.share * now + pacer.burst + 1e-6


@given(st.lists(st.floats(0, 1e4), min_size=1, max_size=50))
def test_no_pause_exceeds_the_cap_nor_goes_below_the_tick(costs: list[float]) -> None:
    pacer = FlushPacer(TICK, max_pause=30.0)
    now = 0.0
    for cost in costs:
        now += cost
        pause = pacer.after_flush(cost, now)
        assert TICK <= pause <= 30.0
        now += pause
