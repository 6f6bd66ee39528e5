"""The alert lifecycle: pending -> firing -> resolved, in event time, once per breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from charter_alerts.domain.book import AlertBook, AlertRecord, Transition
from charter_alerts.domain.rules import parse_rules
from charter_contracts import AlertEvent, IndicatorSnapshot, Scope

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)

PICKUP = """
version: 1
thresholds:
  pickup_rate_1h: {indicator: pickup_rate, window: 1h, threshold: 85%, min_volume: 30, for: 10m, recovery_margin: 2%}
"""
BURN = """
version: 1
burn_rates:
  pickup_rate_burn_fast: {indicator: pickup_rate, objective: 85%, long_window: 1h, short_window: 15m, factor: 4,
                          min_volume: 30, for: 0s, recovery_margin: 5%}
"""


def pickup(
    rate: float,
    minute: float,
    *,
    network: str = "caf",
    department: str | None = None,
    window: str = "1h",
    offered: int = 100,
) -> IndicatorSnapshot:
    return IndicatorSnapshot.of(
        "pickup_rate",
        Scope(network=network, department=department),
        window,  # type: ignore[arg-type]
        round(rate * offered),
        offered,
        as_of=T0 + timedelta(minutes=minute),
    )


def run(book: AlertBook, snapshots: list[IndicatorSnapshot]) -> list[AlertEvent]:
    return [t.event for s in snapshots for t in book.observe(s) if t.event is not None]


def test_a_breach_fires_after_its_for_duration_in_event_time_then_resolves_past_the_margin() -> None:
    book = AlertBook(rules=parse_rules(PICKUP))
    pending = book.observe(pickup(0.70, 0))
    assert [t.record.status for t in pending] == ["pending"]
    assert [e.status for e in book.current()] == ["pending"]
    # 9 minutes of event time: still pending, however many snapshots arrive.
    assert run(book, [pickup(0.70, m / 2) for m in range(1, 19)]) == []
    fired = run(book, [pickup(0.72, 10)])
    assert [(e.status, e.episode, e.since, e.at) for e in fired] == [("firing", 1, T0, T0 + timedelta(minutes=10))]
    firing = fired[0]
    assert (firing.network, firing.department, firing.indicator, firing.window) == ("caf", None, "pickup_rate", "1h")
    assert (firing.value, firing.threshold, firing.rule, firing.kind) == (0.72, 0.85, "pickup_rate_1h", "threshold")
    assert "72,0\u00a0%" in firing.summary_fr
    assert "sous le seuil" in firing.summary_fr
    assert "72.0 %" in firing.summary_en
    assert "since 2024-03-04 09:00 UTC" in firing.summary_en
    assert firing.dashboard_url.startswith("http://127.0.0.1:3000/d/charter-network?var-network=caf&from=")
    # 85 % and 86 % are above the threshold but not past the 2-point margin: still firing.
    assert run(book, [pickup(0.85, 11), pickup(0.86, 12)]) == []
    resolved = run(book, [pickup(0.87, 13)])
    assert [(e.status, e.episode, e.since, e.fingerprint) for e in resolved] == [
        ("resolved", 1, T0, firing.fingerprint)
    ]
    assert "revenu à 87,0" in resolved[0].summary_fr


def test_flapping_around_the_threshold_fires_once() -> None:
    book = AlertBook(rules=parse_rules(PICKUP))
    # Down for 10 minutes, then oscillating 84 %/86 % for two hours.
    snapshots = [pickup(0.80, m) for m in range(11)]
    snapshots += [pickup(0.84 if m % 2 else 0.86, 11 + m) for m in range(120)]
    events = run(book, snapshots)
    assert [e.status for e in events] == ["firing"]


def test_a_breach_shorter_than_the_for_duration_never_fires_and_leaves_no_trace() -> None:
    book = AlertBook(rules=parse_rules(PICKUP))
    transitions = [t for s in [pickup(0.5, 0), pickup(0.5, 5), pickup(0.9, 6)] for t in book.observe(s)]
    assert [(t.record.status, t.event) for t in transitions] == [("pending", None), ("inactive", None)]
    assert book.current() == []
    # The next breach starts its own clock.
    assert run(book, [pickup(0.5, 7), pickup(0.5, 16)]) == []
    assert [e.since for e in run(book, [pickup(0.5, 17)])] == [T0 + timedelta(minutes=7)]


def test_duplicate_late_and_replayed_snapshots_change_nothing() -> None:
    book = AlertBook(rules=parse_rules(PICKUP))
    snapshots = [pickup(0.6, m) for m in range(12)] + [pickup(0.95, 20)]
    first = run(book, snapshots)
    assert [e.status for e in first] == ["firing", "resolved"]
    # The same snapshots again (a consumer-group offset reset), and each one twice.
    assert run(book, snapshots + [s for s in snapshots for _ in range(2)]) == []


def test_too_little_volume_is_not_judged_and_leaves_a_firing_alert_as_it_is() -> None:
    book = AlertBook(rules=parse_rules(PICKUP))
    assert run(book, [pickup(0.1, m, offered=29) for m in range(30)]) == []
    assert [e.status for e in run(book, [pickup(0.5, 40 + m) for m in range(11)])] == ["firing"]
    # Evening: 3 calls, all answered. Not enough to say it recovered.
    assert run(book, [pickup(1.0, 60, offered=3)]) == []
    assert [e.status for e in book.current()] == ["firing"]


def test_network_and_department_alerts_are_separate_and_sites_are_not_judged() -> None:
    book = AlertBook(rules=parse_rules(PICKUP))
    events = run(
        book,
        [pickup(0.5, m, department="75") for m in range(11)]
        + [pickup(0.9, m) for m in range(11)]
        + [
            IndicatorSnapshot.of("pickup_rate", Scope(network="caf", site_id="caf-1"), "1h", 10, 100, as_of=T0),
            IndicatorSnapshot.of("pickup_rate", Scope(department="75"), "1h", 10, 100, as_of=T0),
        ],
    )
    assert [(e.network, e.department, e.status) for e in events] == [("caf", "75", "firing")]
    assert "caf (75)" in events[0].summary_en
    assert "var-department=75" in events[0].dashboard_url


def test_the_state_comes_back_from_records_and_from_events_that_got_ahead_of_them() -> None:
    book = AlertBook(rules=parse_rules(PICKUP))
    transitions = [t for s in [pickup(0.6, m) for m in range(11)] for t in book.observe(s)]
    firing = transitions[-1]
    assert firing.event is not None
    # Crashed after charter.alerts got the firing event but before the state record was written.
    restarted = AlertBook(rules=parse_rules(PICKUP))
    restarted.restore(transitions[0].record)  # the pending record
    restarted.restore_event(firing.event)
    assert run(restarted, [pickup(0.6, m) for m in range(20)]) == []  # replay: no second firing
    assert [e.status for e in run(restarted, [pickup(0.9, 21)])] == ["resolved"]


def test_burn_rate_fires_fast_on_a_collapse_over_both_windows_and_resolves_on_the_short_one() -> None:
    book = AlertBook(rules=parse_rules(BURN))
    # 60 % is a breach of the 85 % target, but burns the budget at only 2.7x: no fast-burn alert.
    assert run(book, [pickup(0.6, 0), pickup(0.6, 0, window="15m")]) == []
    # Collapse in the last 15 minutes only: the hour is still above 40 %.
    assert run(book, [pickup(0.5, 1), pickup(0.1, 1, window="15m")]) == []
    events = run(book, [pickup(0.35, 2), pickup(0.1, 2, window="15m")])
    assert [(e.status, e.kind, e.window, e.value) for e in events] == [("firing", "burn_rate", "1h", 0.35)]
    assert events[0].threshold == 0.40
    assert "4x too fast" in events[0].summary_en
    assert "15 min: 10.0 %" in events[0].summary_en
    # The short window recovers first: resolved without waiting for the hour.
    events = run(book, [pickup(0.6, 3, window="15m"), pickup(0.3, 3)])
    assert [e.status for e in events] == ["resolved"]


def test_removing_a_rule_resolves_its_firing_alerts() -> None:
    book = AlertBook(rules=parse_rules(PICKUP))
    run(book, [pickup(0.6, m) for m in range(11)])
    ended = book.replace_rules(parse_rules("version: 1"))
    assert [(t.record.status, t.event.status if t.event else None) for t in ended] == [("resolved", "resolved")]
    assert "Rule removed or disabled" in ended[0].event.summary_en  # type: ignore[union-attr]
    assert book.firing() == []


breach_values = st.lists(st.sampled_from([0.3, 0.6, 0.84, 0.85, 0.86, 0.87, 0.95]), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    values=breach_values,
    steps=st.lists(st.sampled_from([0, 1, 1, 1]), min_size=60, max_size=60),
    rules_text=st.sampled_from([PICKUP, PICKUP.replace("for: 10m", "for: 0s")]),
    crash_at=st.integers(min_value=0, max_value=60),
    replay_from=st.integers(min_value=0, max_value=60),
    lose_last_records=st.booleans(),
)
def test_a_crash_and_a_replay_from_any_offset_never_page_twice(
    values: list[float],
    steps: list[int],
    rules_text: str,
    crash_at: int,
    replay_from: int,
    lose_last_records: bool,
) -> None:
    """Exactly-once: whatever the crash point, replay point and write order, the events are those of a clean run.

    Snapshots may share an ``as_of`` (step 0): re-publications of the same instant.
    """
    minutes = [sum(steps[: i + 1]) for i in range(len(values))]
    snapshots = [pickup(v, m) for m, v in zip(minutes, values, strict=False)]
    clean = run(AlertBook(rules=parse_rules(rules_text)), snapshots)

    crash_at = min(crash_at, len(snapshots))
    first = AlertBook(rules=parse_rules(rules_text))
    before: list[Transition] = [t for s in snapshots[:crash_at] for t in first.observe(s)]
    published = [t.event for t in before if t.event is not None]
    records: dict[str, AlertRecord] = {}
    persisted = before[:-1] if lose_last_records and before else before  # died between event and record
    for t in persisted:
        records[t.record.fingerprint] = t.record

    second = AlertBook(rules=parse_rules(rules_text))
    for record in records.values():
        second.restore(record)
    for event in published:
        second.restore_event(event)
    # The consumer resumes at (or anywhere before) the crash point.
    after = run(second, snapshots[min(replay_from, crash_at) :])
    assert published + after == clean
    statuses = [e.status for e in clean]
    assert statuses == ["firing", "resolved"] * (len(statuses) // 2) + ["firing"] * (len(statuses) % 2)
    assert [e.episode for e in clean] == [1 + i // 2 for i in range(len(clean))]


STALE = """
version: 1
thresholds:
  sites_reporting_live: {indicator: opening_rate, window: live, measure: sites_reporting, threshold: 90%,
                         min_volume: 5, for: 30m, recovery_margin: 5%, severity: ticket}
"""


def live_opening(minute: float, *, open_now: int, scheduled: int, stale: int | None) -> IndicatorSnapshot:
    details: dict[str, float | None] = {
        "sites": 40.0,
        "sites_stale": 30.0,
    }  # most sites are closed for the night, hence stale
    if stale is not None:
        details["sites_scheduled_stale"] = float(stale)
    return IndicatorSnapshot.of(
        "opening_rate",
        Scope(network="caf", department="75"),
        "live",
        open_now,
        scheduled,
        as_of=T0 + timedelta(minutes=minute),
        details=details,
    )


def test_stale_sites_scheduled_open_fire_a_ticket_whatever_the_sites_closed_for_the_night() -> None:
    book = AlertBook(rules=parse_rules(STALE))
    # 20 sites scheduled open now, 19 open, one stale: 95 % report, above 90 %
    assert run(book, [live_opening(m, open_now=19, scheduled=20, stale=1) for m in range(0, 60, 5)]) == []
    # a feed stops: 4 of the 20 scheduled sites send nothing (80 %) for half an hour
    events = run(book, [live_opening(60 + m, open_now=16, scheduled=20, stale=4) for m in range(0, 35, 5)])
    assert [(e.status, e.rule, e.value, e.threshold) for e in events] == [("firing", "sites_reporting_live", 0.8, 0.9)]
    assert "part des sites prévus ouverts qui envoient leur statut" in events[0].summary_fr
    assert "share of sites scheduled open that send their status (now) at 80.0 %" in events[0].summary_en
    # back to 19 of 20 reporting (95 %, the threshold plus the margin): resolved once
    back = run(book, [live_opening(100 + m, open_now=19, scheduled=20, stale=1) for m in range(0, 20, 5)])
    assert [e.status for e in back] == ["resolved"]


def test_a_live_snapshot_without_the_stale_count_is_not_judged_on_stale_sites() -> None:
    book = AlertBook(rules=parse_rules(STALE))
    assert run(book, [live_opening(m, open_now=0, scheduled=20, stale=None) for m in range(0, 120, 5)]) == []
    assert book.unjudged["volume_unknown"] == 24
    assert book.current() == []
