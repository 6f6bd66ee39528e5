"""Properties of the indicators over generated traffic (hypothesis).

- aggregating per site then summing over partitions equals computing on all the events
  directly (an independent, brute-force oracle);
- the order of events within the grace period, and when the service happens to flush,
  change no result;
- splitting the sites over several partitions changes no aggregate;
- saving the state and restoring it mid-stream changes no result.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charter_contracts import Closure, Site
from charter_contracts.sites import department_timezone
from charter_indicators.domain.aggregate import Aggregator
from charter_indicators.domain.calendar import local_days
from charter_indicators.domain.deadline import Deadline, ProcedureRules, within_deadline
from charter_indicators.domain.events import Call, Case, CounterChange, DomainEvent, Outcome
from charter_indicators.domain.intervals import intersect, merge, subtract
from charter_indicators.domain.partition import IndicatorConfig, PartitionState
from charter_indicators.domain.schedule import compile_site
from tests.support.indicators import Figures, collect, partition, ts
from tests.support.sites import site, weekly

GRACE = 120.0
START = ts("2024-03-04T06:00:00+00:00")  # a Monday
SPAN = 30 * 3600  # across local midnights, in Paris and in Guadeloupe
RULES = ProcedureRules(
    default=Deadline(15),
    procedures={"rsa": Deadline(15), "carte-grise": Deadline(5, "working"), "information": None},
)
CONFIG = IndicatorConfig(grace=GRACE, stale_after=10 * 86400, rules=RULES)
SCOPES = [("caf", "75"), ("caf", "971"), ("cpam", "75"), ("cpam", "57")]
HOURS = [weekly(), weekly(time(8), time(12)), weekly(time(14), time(18), days=["monday", "tuesday", "saturday"])]


@dataclass
class Traffic:
    sites: list[Site]
    events: list[DomainEvent]  # in time order


@st.composite
def traffic(draw: st.DrawFn) -> Traffic:
    sites = []
    for n, (network, department) in enumerate(SCOPES):
        for k in range(draw(st.integers(1, 2))):
            closures = []
            if draw(st.booleans()):
                begin = START + draw(st.integers(0, SPAN))
                closures.append(
                    Closure(
                        start=f"{_iso(begin)}",
                        end=f"{_iso(begin + draw(st.integers(600, 4 * 3600)))}",
                        announced=draw(st.booleans()),
                    )
                )
            sites.append(
                site(
                    f"{network}-{n}-{k}",
                    network=network,
                    department=department,
                    hours=draw(st.sampled_from(HOURS)),
                    closures=closures,
                )
            )
    events: list[DomainEvent] = []
    for i in range(draw(st.integers(20, 120))):
        target = draw(st.sampled_from(sites))
        at = START + draw(st.integers(0, SPAN))
        kind = draw(st.sampled_from(["counter", "call", "call", "case"]))
        if kind == "counter":
            events.append(
                CounterChange(
                    f"k{i}",
                    target.network,
                    target.site_id,
                    at,
                    draw(st.booleans()),
                    draw(st.sampled_from(["g1", "g2"])),
                )
            )
        elif kind == "call":
            answered = draw(st.one_of(st.none(), st.integers(0, 200)))
            duration = draw(st.integers(0, 300))
            ivr = answered is None and draw(st.integers(0, 5)) == 0
            answered_at = at + answered if answered is not None else None
            events.append(
                Call(f"c{i}", target.network, target.site_id, at, answered_at, (answered_at or at) + duration, ivr)
            )
        else:
            procedure = draw(st.sampled_from(["rsa", "carte-grise", "information", "autre"]))
            age = draw(st.integers(0, 40 * 86400))
            deadline = draw(st.one_of(st.none(), st.integers(1, 30)))
            events.append(Case(f"d{i}", target.network, target.site_id, at, at - age, procedure, deadline))
    # every site's partition starts its history at START (see _start)
    events += [Call(f"start-{s.site_id}", s.network, s.site_id, START, None, START, True) for s in sites]
    events.sort(key=lambda e: e.t)
    return Traffic(sites, events)


def _iso(t: float) -> str:
    from charter_indicators.domain.calendar import iso  # noqa: PLC0415

    return iso(t)


def arrival(events: Sequence[DomainEvent], seed: int) -> list[DomainEvent]:
    """An arrival order where no event is later than the grace period: sorted by time plus a jitter < grace."""
    rng = random.Random(seed)
    return sorted(events, key=lambda e: e.t + rng.uniform(0, GRACE * 0.99))


def end_of(events: Sequence[DomainEvent]) -> float:
    return max(e.t for e in events) + 600  # watermark after the last event's minute


def play(
    sites: Sequence[Site],
    events: Sequence[DomainEvent],
    *,
    partitions: int = 1,
    flush_every: int = 0,
    restore_at: int | None = None,
) -> tuple[Figures, list[PartitionState]]:
    """Run events through ``partitions`` partition states (sites spread by a stable hash), then close at the end."""
    states = [PartitionState(p, CONFIG) for p in range(partitions)]
    owner = {s.site_id: sum(map(ord, s.site_id)) % partitions for s in sites}
    for s in sites:
        states[owner[s.site_id]].register(compile_site(s))
    figures = Figures()
    aggregator = Aggregator(sources=partitions)
    for i, event in enumerate(events):
        p = owner[event.site_id]
        assert states[p].apply(event) is Outcome.ACCEPTED
        if restore_at == i:
            states[p] = _restored(states[p], sites)
        if flush_every and i % flush_every == 0:
            states[p].progress()
            collect(states[p].flush(), p, figures, aggregator)
    end = end_of(events)
    for p, state in enumerate(states):
        state.progress()
        state.advance(end)
        collect(state.flush(), p, figures, aggregator)
    for state in states:
        figures.add(state.current_sites())
    return figures, states


def _restored(state: PartitionState, sites: Sequence[Site]) -> PartitionState:
    """A new state restored from a JSON checkpoint of ``state``, as a new owner of the partition would."""
    document = orjson.loads(orjson.dumps(state.dump(), option=orjson.OPT_NON_STR_KEYS))
    fresh = PartitionState(state.partition, state.config)
    for s in sites:
        if s.site_id in state.sites:
            fresh.register(compile_site(s))
    fresh.load(document)
    return fresh


def final(figures: Figures, *, exact: bool = True) -> dict[Any, Any]:
    """What a user sees at the end: every calendar bucket, and the other windows as of the end."""
    as_of = max(s.as_of for s in figures.latest.values())
    out = {}
    for key, s in figures.latest.items():
        if s.window in ("hour", "day") or s.as_of == as_of:
            details = {k: v for k, v in s.details.items() if exact or k == "cases_completed"}
            out[key] = (s.numerator, s.denominator, details) if exact else (pytest.approx(s.numerator), s.denominator)
    return out


PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(traffic(), st.integers(0, 2**16), st.integers(0, 2**16), st.integers(1, 40))
def test_event_order_within_grace_and_flush_timing_change_no_result(
    sample: Traffic, seed_a: int, seed_b: int, flush_every: int
) -> None:
    a, _ = play(sample.sites, arrival(sample.events, seed_a))
    b, _ = play(sample.sites, arrival(sample.events, seed_b), flush_every=flush_every)
    assert final(a) == final(b)


@PROPERTY
@given(traffic(), st.integers(2, 4), st.integers(0, 2**16))
def test_sites_spread_over_partitions_give_the_same_aggregates(sample: Traffic, partitions: int, seed: int) -> None:
    events = arrival(sample.events, seed)
    single, _ = play(sample.sites, events)
    spread, _ = play(sample.sites, events, partitions=partitions, flush_every=7)
    assert final(spread, exact=False) == final(single, exact=False)


@PROPERTY
@given(traffic(), st.integers(0, 2**16), st.data())
def test_a_checkpoint_restored_mid_stream_changes_no_result(sample: Traffic, seed: int, data: st.DataObject) -> None:
    events = arrival(sample.events, seed)
    cut = data.draw(st.integers(0, len(events) - 1))
    whole, _ = play(sample.sites, events, flush_every=5)
    restored, _ = play(sample.sites, events, flush_every=5, restore_at=cut)
    assert final(restored) == final(whole)


@PROPERTY
@given(traffic(), st.integers(2, 3), st.integers(0, 2**16))
def test_aggregates_equal_the_figures_computed_on_all_events(sample: Traffic, partitions: int, seed: int) -> None:
    figures, states = play(sample.sites, arrival(sample.events, seed), partitions=partitions, flush_every=11)
    as_of = states[0].as_of
    assert as_of is not None
    oracle = Oracle(sample, as_of)
    for network, department in SCOPES:
        zone = local_days(department_timezone(department))
        today = zone.day_of(as_of - 60)
        windows = {
            "15m": as_of - 900,
            "1h": as_of - 3600,
            "today": zone.midnight(today),
            "7d": zone.midnight(today - 6),
        }
        for window, start in windows.items():
            pickup = figures.get("pickup_rate", window, network=network, department=department)
            assert (pickup.numerator, pickup.denominator) == oracle.pickup(network, department, start)
            deadline = figures.get("deadline_compliance", window, network=network, department=department)
            within, with_deadline, completed = oracle.deadline(network, department, start)
            assert (deadline.numerator, deadline.denominator) == (within, with_deadline)
            assert deadline.details["cases_completed"] == completed
            opening = figures.get("opening_rate", window, network=network, department=department)
            open_seconds, scheduled = oracle.opening(network, department, start)
            assert opening.numerator == pytest.approx(open_seconds, abs=1e-3)
            assert opening.denominator == pytest.approx(scheduled, abs=1e-3)
    # every site's own opening windows too (read back through its own changes and its schedule's edges)
    for s in sample.sites:
        zone = local_days(department_timezone(s.department))
        today = zone.day_of(as_of - 60)
        for window, start in (("15m", as_of - 900), ("1h", as_of - 3600), ("today", zone.midnight(today))):
            mine = figures.get("opening_rate", window, network=s.network, department=s.department, site_id=s.site_id)
            open_seconds, scheduled = oracle.site_opening(s.site_id, start)
            assert mine.numerator == pytest.approx(open_seconds, abs=1e-3), (s.site_id, window)
            assert mine.denominator == pytest.approx(scheduled, abs=1e-3), (s.site_id, window)
    national = figures.get("pickup_rate", "1h")
    assert (national.numerator, national.denominator) == tuple(
        map(sum, zip(*(oracle.pickup(n, d, as_of - 3600) for n, d in SCOPES), strict=True))
    )


class Oracle:
    """The figures computed directly from all the events, one scope at a time (no buckets, no partitions)."""

    def __init__(self, sample: Traffic, as_of: float) -> None:
        self.sites = {s.site_id: s for s in sample.sites}
        self.events = sample.events
        self.as_of = as_of
        self.origin = min(e.t for e in sample.events) // 60 * 60

    def _in(self, event: DomainEvent, network: str, department: str, start: float) -> bool:
        s = self.sites[event.site_id]
        return s.network == network and s.department == department and start <= event.t < self.as_of

    def pickup(self, network: str, department: str, start: float) -> tuple[int, int]:
        answered = offered = 0
        for e in self.events:
            if isinstance(e, Call) and self._in(e, network, department, start) and not e.ivr_only:
                if e.answered is not None:
                    answered += 1
                    offered += 1
                elif e.ended - e.t >= CONFIG.short_abandon:
                    offered += 1
        return answered, offered

    def deadline(self, network: str, department: str, start: float) -> tuple[int, int, int]:
        within = with_deadline = completed = 0
        for e in self.events:
            if isinstance(e, Case) and self._in(e, network, department, start):
                completed += 1
                deadline = RULES.deadline(e.procedure, e.deadline_days)
                if deadline is not None:
                    with_deadline += 1
                    info = compile_site(self.sites[e.site_id])
                    within += within_deadline(e.submitted, e.t, deadline, info.days, info.holidays)
        return within, with_deadline, completed

    def opening(self, network: str, department: str, start: float) -> tuple[float, float]:
        open_total = scheduled_total = 0.0
        for s in self.sites.values():
            if (s.network, s.department) == (network, department):
                opened, scheduled = self.site_opening(s.site_id, start)
                open_total += opened
                scheduled_total += scheduled
        return open_total, scheduled_total

    def site_opening(self, site_id: str, start: float) -> tuple[float, float]:
        """Seconds one site was open within its schedule, and scheduled, in [start, as_of)."""
        lo = max(start, self.origin)
        s = self.sites[site_id]
        info = compile_site(s)
        scheduled = info.scheduled_between(lo, self.as_of)
        changes = sorted(
            (e.t, int(e.opened), e.counter_id)
            for e in self.events
            if isinstance(e, CounterChange) and e.site_id == site_id
        )
        open_now: set[str] = set()
        since: dict[str, float] = defaultdict(float)
        intervals = []
        for t, opened, counter in changes:
            if opened and not open_now:
                since["site"] = t
            if opened:
                open_now.add(counter)
            else:
                open_now.discard(counter)
                if not open_now and "site" in since:
                    intervals.append((since.pop("site"), t))
        if open_now:
            intervals.append((since["site"], self.as_of))
        effective = subtract(merge(intervals), list(info.unannounced))
        open_total = sum(e - b for b, e in intersect(merge(effective), scheduled) if e > lo)
        return open_total, sum(e - b for b, e in scheduled)


def test_the_oracle_counts_what_the_hand_computed_cases_say() -> None:
    """The oracle itself, on the issue's hand-computed cases (so it cannot agree with a wrong service by accident)."""
    paris = site("caf-1")
    t0 = ts("2024-03-04T09:00:00+01:00")
    events: list[DomainEvent] = [
        CounterChange("k1", "caf", "caf-1", t0, True, "g1"),
        CounterChange("k2", "caf", "caf-1", t0 + 3 * 3600, False, "g1"),
    ]
    events += [Call(f"a{i}", "caf", "caf-1", t0 + 60, t0 + 80, t0 + 200, False) for i in range(72)]
    events += [Call(f"s{i}", "caf", "caf-1", t0 + 60, None, t0 + 62, False) for i in range(10)]
    events += [Call(f"l{i}", "caf", "caf-1", t0 + 60, None, t0 + 160, False) for i in range(18)]
    oracle = Oracle(Traffic([paris], sorted(events, key=lambda e: e.t)), ts("2024-03-04T18:00:00+01:00"))
    assert oracle.opening("caf", "75", t0) == (3 * 3600, 8 * 3600)
    assert oracle.pickup("caf", "75", t0) == (72, 90)
    single = partition(paris, config=CONFIG)
    assert all(single.apply(e) is Outcome.ACCEPTED for e in sorted(events, key=lambda e: e.t))
