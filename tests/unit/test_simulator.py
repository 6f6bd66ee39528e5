"""The traffic simulator: deterministic, realistic, every event valid against the contract."""

from __future__ import annotations

import collections
import itertools
import statistics
import subprocess
import tracemalloc
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from charter_contracts import CallRecord, CaseCompleted, CounterClosed, CounterOpened, Site, parse_event
from charter_ops.simulator import (
    NETWORKS,
    Degradation,
    SimSite,
    TrafficConfig,
    TrafficGenerator,
    build_registry,
    parse_duration,
)
from charter_ops.simulator.publish import encode
from charter_ops.sites import read_france_services_csv
from tests.support.kafka import CHARTER

PARIS = ZoneInfo("Europe/Paris")
MONDAY = datetime(2024, 3, 4, tzinfo=PARIS)  # an ordinary working Monday


@pytest.fixture(scope="module")
def registry() -> list[SimSite]:
    return build_registry(read_france_services_csv().sites)


def run(registry: list[SimSite], start: datetime, end: datetime, **config: Any) -> list[tuple[float, dict[str, Any]]]:
    return list(TrafficGenerator(registry, TrafficConfig(**config)).events(start, end))


def events_of(emitted: Iterable[tuple[float, dict[str, Any]]]) -> Iterator[Any]:
    for _, payload in emitted:
        yield parse_event(encode(payload))


def pickup(calls: Iterable[CallRecord]) -> float:
    """As the charter defines it: agent answers / calls offered, IVR-only and short abandons excluded."""
    offered = answered = 0
    for call in calls:
        if call.ivr_only:
            continue
        if call.answered_at is None and (call.ended_at - call.received_at).total_seconds() < 5:
            continue
        offered += 1
        answered += call.answered_at is not None
    return answered / offered


def within_deadline(cases: Iterable[CaseCompleted]) -> float:
    judged = [(c.completed_at - c.submitted_at) <= timedelta(days=c.deadline_days or 15) for c in cases]
    return sum(judged) / len(judged)


def test_the_registry_is_the_real_france_services_sites_plus_plausible_networks(registry: list[SimSite]) -> None:
    by_network = collections.Counter(entry.site.network for entry in registry)
    assert set(by_network) == set(NETWORKS)
    assert by_network["france-services"] == 2845
    ids = [entry.site.site_id for entry in registry]
    assert len(ids) == len(set(ids)), "site ids are unique across networks"
    caf = [e.site for e in registry if e.site.network == "caf"]
    assert {s.department for s in caf if s.kind == "site"} >= {"01", "2A", "75", "971", "976"}
    assert {s.department for s in caf if s.kind == "call_centre"} == {s.department for s in caf}
    reunion = next(s for s in caf if s.department == "974")
    assert reunion.timezone == "Indian/Reunion"
    paris = [s for s in caf if s.department == "75" and s.kind == "site"]
    lozere = [s for s in caf if s.department == "48" and s.kind == "site"]
    assert len(paris) > 3 * len(lozere), "sites follow population"
    assert any(e.site.kind == "call_centre" for e in registry if e.site.network == "dgfip")
    for entry in registry[::97]:
        Site.model_validate_json(entry.site.model_dump_json())


def test_the_same_seed_gives_the_same_events_byte_for_byte_and_another_seed_others(
    registry: list[SimSite], tmp_path: Path
) -> None:
    def history(seed: int, directory: Path) -> dict[str, bytes]:
        args = ["--out", str(directory), "--seed", str(seed), "--rate", "5", "--start", "2024-03-04T09:00:00+01:00"]
        subprocess.run(
            [CHARTER, "simulate", "history", *args, "--span", "1h", "--degrade", "cpam@30m"],
            check=True,
            capture_output=True,
        )
        return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}

    first, again, other = history(7, tmp_path / "a"), history(7, tmp_path / "b"), history(8, tmp_path / "c")
    assert set(first) == {f"{network}.ndjson" for network in NETWORKS} | {"sites.ndjson"}
    assert first == again
    assert first["sites.ndjson"] == other["sites.ndjson"], "the registry does not depend on the seed"
    assert first["caf.ndjson"] != other["caf.ndjson"]
    assert len(first["caf.ndjson"].splitlines()) > 500


def test_a_working_day_has_every_event_type_all_valid_and_balanced(registry: list[SimSite]) -> None:
    emitted = run(registry, MONDAY, MONDAY + timedelta(days=1), rate=2)
    events = list(events_of(emitted))
    kinds = collections.Counter((e.network, e.type) for e in events)
    for network in NETWORKS:
        assert kinds[(network, "call")] > 0, network
        if network != "france-services":  # France services help with cases, other networks complete them
            assert kinds[(network, "case_completed")] > 0, network
        if network != "ants":  # ANTS receives no public
            assert kinds[(network, "counter_opened")] == kinds[(network, "counter_closed")] > 0, network
    sites = {entry.site.site_id: entry.site for entry in registry}
    assert all(sites[e.site_id].network == e.network for e in events)
    calls = [e for e in events if isinstance(e, CallRecord)]
    assert any(c.ivr_only for c in calls)
    assert any(c.answered_at is None and (c.ended_at - c.received_at).total_seconds() < 5 for c in calls)
    assert any(c.answered_at is None and (c.ended_at - c.received_at).total_seconds() > 60 for c in calls)
    assert any(sites[c.site_id].kind == "call_centre" for c in calls)
    ids = [(e.network, e.event_id) for e in events]
    assert len(ids) == len(set(ids)), "event ids are unique per network"


def test_counters_follow_each_site_schedule_in_its_own_time_zone(registry: list[SimSite]) -> None:
    emitted = run(registry, MONDAY, MONDAY + timedelta(days=1), rate=1)
    sites = {entry.site.site_id: entry.site for entry in registry}
    opened = [e for e in events_of(emitted) if isinstance(e, CounterOpened)]
    outside = 0
    for event in opened:
        site = sites[event.site_id]
        local = event.occurred_at.astimezone(ZoneInfo(site.timezone))
        periods = site.schedule_on(local.date()).day(local.weekday())
        slack = timedelta(minutes=30)
        inside = any(
            datetime.combine(local.date(), p.start, local.tzinfo) - slack
            <= local
            < datetime.combine(local.date(), p.end, local.tzinfo)
            for p in periods
        )
        outside += not inside
    assert outside == 0
    reunion = [e for e in opened if sites[e.site_id].department == "974"]
    assert reunion, "overseas sites open too"
    assert all(e.occurred_at.astimezone(ZoneInfo("Indian/Reunion")).hour < 17 for e in reunion)
    assert min(e.occurred_at for e in reunion) < min(
        e.occurred_at for e in opened if sites[e.site_id].department == "75"
    )


def test_no_counter_opens_on_a_public_holiday_of_the_sites_department(registry: list[SimSite]) -> None:
    # 20 December is the abolition of slavery in La Réunion only; 26 December is a holiday in Alsace-Moselle only.
    for day, departments in ((date(2024, 12, 20), {"974"}), (date(2024, 12, 26), {"57", "67", "68"})):
        start = datetime.combine(day, datetime.min.time(), PARIS)
        emitted = run(registry, start - timedelta(hours=4), start + timedelta(hours=28), rate=1)
        sites = {entry.site.site_id: entry.site for entry in registry}
        opened_departments = {
            sites[e.site_id].department
            for e in events_of(emitted)
            if isinstance(e, CounterOpened)
            and e.occurred_at.astimezone(ZoneInfo(sites[e.site_id].timezone)).date() == day
        }
        assert not opened_departments & departments
        assert {"75", "13", "971"} <= opened_departments


def test_calls_follow_a_daily_rhythm_with_a_morning_peak_and_a_lunch_dip(registry: list[SimSite]) -> None:
    emitted = run(registry, MONDAY, MONDAY + timedelta(days=1), rate=5)
    by_hour = collections.Counter(
        e.received_at.astimezone(PARIS).hour
        for e in events_of(p for p in emitted if p[1]["type"] == "call" and p[1]["network"] == "cpam")
    )
    assert by_hour[10] > 1.5 * by_hour[12]
    assert by_hour[14] > by_hour[12]
    assert by_hour[10] > 20 * by_hour[3]
    peak_events = sum(
        1
        for at, _ in emitted
        if MONDAY + timedelta(hours=10) <= datetime.fromtimestamp(at, UTC) < MONDAY + timedelta(hours=11)
    )
    assert 0.6 * 5 * 3600 < peak_events < 1.4 * 5 * 3600, "--rate is the events per second at the weekday peak"


def test_healthy_networks_meet_the_charter_and_a_degraded_one_breaks_all_three_indicators(
    registry: list[SimSite],
) -> None:
    start = MONDAY + timedelta(hours=8)
    emitted = run(registry, start, start + timedelta(hours=6), rate=10, degradations=(Degradation.parse("caf@1h"),))
    events = list(events_of(emitted))
    degraded_from = start + timedelta(hours=1)
    for network in ("cpam", "dgfip", "france-travail", "france-services"):
        calls = [e for e in events if isinstance(e, CallRecord) and e.network == network]
        assert pickup(calls) > 0.87, network
    for network in ("cpam", "dgfip", "cnav"):
        cases = [e for e in events if isinstance(e, CaseCompleted) and e.network == network]
        assert within_deadline(cases) > 0.88, network

    caf_calls = [e for e in events if isinstance(e, CallRecord) and e.network == "caf"]
    assert pickup(c for c in caf_calls if c.received_at < degraded_from) > 0.87
    assert pickup(c for c in caf_calls if c.received_at >= degraded_from) < 0.6
    caf_cases = [e for e in events if isinstance(e, CaseCompleted) and e.network == "caf"]
    assert within_deadline(c for c in caf_cases if c.completed_at < degraded_from) > 0.88
    assert within_deadline(c for c in caf_cases if c.completed_at >= degraded_from) < 0.7

    # sites with a counter open at 11:00, in the degraded network and in a healthy one
    def open_at(network: str, at: datetime) -> float:
        state: dict[tuple[str, str], bool] = {}
        for e in sorted(
            (e for e in events if isinstance(e, CounterOpened | CounterClosed) and e.network == network),
            key=lambda e: e.occurred_at,
        ):
            if e.occurred_at > at:
                break
            state[(e.site_id, e.counter_id)] = isinstance(e, CounterOpened)
        sites = {site for (site, _), is_open in state.items() if is_open}
        scheduled = {
            entry.site.site_id
            for entry in registry
            if entry.site.network == network
            and entry.counters
            and any(
                datetime.combine(at.date(), p.start, PARIS) <= at < datetime.combine(at.date(), p.end, PARIS)
                for p in entry.site.schedule_on(at.date()).day(at.weekday())
            )
            and entry.site.timezone == "Europe/Paris"
        }
        return len(sites & scheduled) / len(scheduled)

    eleven = MONDAY + timedelta(hours=11)
    assert open_at("cpam", eleven) > 0.95
    assert open_at("caf", eleven) < 0.5
    closed_reasons = {e.reason for e in events if isinstance(e, CounterClosed) and e.network == "caf"}
    assert {"staff", "strike"} & closed_reasons


def test_a_small_share_of_events_comes_out_of_order_or_hours_late(registry: list[SimSite]) -> None:
    start = MONDAY + timedelta(hours=8)
    emitted = run(registry, start, start + timedelta(hours=4), rate=10)
    delays = [at - payload["occurred_at"].timestamp() for at, payload in emitted]
    late = sum(d > 3600 for d in delays) / len(delays)
    assert 0.0005 < late < 0.01
    counters = [
        (at, payload["occurred_at"].timestamp()) for at, payload in emitted if payload["type"].startswith("counter")
    ]
    inversions = sum(1 for (_, a), (_, b) in itertools.pairwise(counters) if b < a - 60)
    assert inversions > 0, "some counter events are published after later ones"
    assert [at for at, _ in emitted] == sorted(at for at, _ in emitted), "yielded in publication order"
    without = run(registry, start, start + timedelta(hours=1), rate=10, disorder_fraction=0.0, late_fraction=0.0)
    assert max(at - p["occurred_at"].timestamp() for at, p in without if p["type"] == "case_completed") < 400


def test_a_network_re_sends_a_share_of_its_events_a_little_later_the_rest_unchanged(registry: list[SimSite]) -> None:
    start = MONDAY + timedelta(hours=9)
    plain = run(registry, start, start + timedelta(minutes=30), rate=10)
    resent = run(registry, start, start + timedelta(minutes=30), rate=10, resend_fraction=0.05)
    copies = collections.Counter((payload["network"], payload["event_id"]) for _, payload in resent)
    twice = {event_id for event_id, n in copies.items() if n == 2}
    assert set(copies.values()) == {1, 2}
    assert 0.03 < len(twice) / len(copies) < 0.07
    assert {(p["network"], p["event_id"]) for _, p in plain} == set(copies), "the same events, some twice"
    first: dict[tuple[str, str], float] = {}
    for at, payload in resent:
        key = (payload["network"], payload["event_id"])
        if key in first:
            assert at - first[key] == pytest.approx(30), "the copy 30 s after the first"
        first.setdefault(key, at)
    assert [at for at, _ in resent] == sorted(at for at, _ in resent), "still in publication order"


def test_a_scenario_is_written_network_at_start_plus_duration() -> None:
    assert Degradation.parse("caf") == Degradation("caf", timedelta(0), None)
    assert Degradation.parse("cpam@10m+2h") == Degradation("cpam", timedelta(minutes=10), timedelta(hours=2))
    at = Degradation.parse("dgfip@2024-03-04T09:00:00+01:00+90m")
    assert (at.start, at.duration) == (datetime(2024, 3, 4, 9, tzinfo=PARIS), timedelta(minutes=90))
    assert Degradation.parse("caf@1h+30m").window(MONDAY) == (
        (MONDAY + timedelta(hours=1)).timestamp(),
        (MONDAY + timedelta(hours=1, minutes=30)).timestamp(),
    )
    assert parse_duration("1.5h") == timedelta(minutes=90)
    for bad in ("CAF", "caf@soon", "caf+2 hours", "caf@2024-03-04T09:00:00"):
        with pytest.raises(ValueError, match="caf"):
            Degradation.parse(bad)
    with pytest.raises(ValueError, match="not simulated"):
        TrafficGenerator(build_registry([], ["caf"]), TrafficConfig(degradations=(Degradation("cpam"),)))


def test_a_degradation_that_ends_lets_the_network_recover(registry: list[SimSite]) -> None:
    start = MONDAY + timedelta(hours=8, minutes=30)
    caf = [entry for entry in registry if entry.site.network == "caf"]
    emitted = run(caf, start, start + timedelta(hours=3), rate=10, degradations=(Degradation.parse("caf@30m+1h"),))
    calls = [e for e in events_of(emitted) if isinstance(e, CallRecord)]
    during = [c for c in calls if start + timedelta(minutes=30) <= c.received_at < start + timedelta(minutes=90)]
    after = [c for c in calls if c.received_at >= start + timedelta(minutes=90)]
    assert pickup(during) < 0.6 < 0.87 < pickup(after)
    reopened = [
        e
        for e in events_of(emitted)
        if isinstance(e, CounterOpened) and e.occurred_at == start + timedelta(minutes=90) and e.reason is None
    ]
    assert reopened, "counters closed by the degradation reopen when it ends"


def test_generating_a_longer_history_does_not_take_more_memory(registry: list[SimSite]) -> None:
    sample = [entry for entry in registry if entry.site.network == "caf"]
    # load what is loaded once (holiday tables, zone data) before measuring
    sum(1 for _ in TrafficGenerator(sample, TrafficConfig(rate=0.2)).events(MONDAY, MONDAY + timedelta(hours=2)))

    def peak(days: int) -> int:
        generator = TrafficGenerator(sample, TrafficConfig(rate=0.2))
        tracemalloc.start()
        try:
            count = sum(1 for _ in generator.events(MONDAY, MONDAY + timedelta(days=days)))
            return tracemalloc.get_traced_memory()[1] if count else 0
        finally:
            tracemalloc.stop()

    one, four = peak(1), peak(4)
    assert one > 0
    assert four < 1.3 * one, f"peak {four} bytes over four days against {one} over one"


def test_live_and_history_agree_on_the_events_of_a_span(registry: list[SimSite]) -> None:
    """Randomness depends on (seed, network, minute) and (seed, site, day), not on where the run starts."""
    sample = [entry for entry in registry if entry.site.network in ("cpam", "msa")]
    generator = TrafficGenerator(sample, TrafficConfig(seed=3, rate=10))
    ten = MONDAY + timedelta(hours=10)
    from_nine = {
        p["event_id"]: encode(p)
        for _, p in generator.events(MONDAY + timedelta(hours=9), ten + timedelta(minutes=20))
        if p["type"] in ("call", "case_completed") and p["occurred_at"] >= ten
    }
    from_ten = {
        p["event_id"]: encode(p)
        for _, p in generator.events(ten, ten + timedelta(minutes=20))
        if p["type"] in ("call", "case_completed")
    }
    assert from_nine == from_ten
    assert statistics.mean(len(v) for v in from_ten.values()) > 200


def test_in_event_time_order_the_same_events_come_sorted_by_occurrence(registry: list[SimSite]) -> None:
    sample = [entry for entry in registry if entry.site.network in ("dgfip", "france-services")]
    generator = TrafficGenerator(sample, TrafficConfig(seed=5, rate=10))
    start = MONDAY + timedelta(hours=9)
    published = list(generator.events(start, start + timedelta(hours=1)))
    by_time = list(generator.events(start, start + timedelta(hours=1), order="occurred"))
    assert sorted(encode(p) for _, p in published) == sorted(encode(p) for _, p in by_time)
    occurred = [p["occurred_at"] for _, p in by_time]
    assert occurred == sorted(occurred)
    assert [p["occurred_at"] for _, p in published] != occurred, "publication order is not event-time order"
