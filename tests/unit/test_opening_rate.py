"""Opening rate against hand-computed cases: schedule, time zones, holidays, closures, staleness."""

from __future__ import annotations

from datetime import date, time

import pytest

from charter_contracts import Closure
from charter_indicators.domain.aggregate import Aggregator
from charter_indicators.domain.calendar import idle_time
from charter_indicators.domain.events import DomainEvent
from charter_indicators.domain.partition import IndicatorConfig
from charter_indicators.domain.schedule import compile_site
from tests.support.indicators import call, collect, counter, partition, run, ts
from tests.support.sites import site, weekly

HOUR = 3600.0


def test_a_site_open_9_to_12_of_a_9_to_17_schedule_is_three_eighths() -> None:
    state = partition(site("caf-1"))  # Monday to Friday 9:00-17:00, Paris
    figures = run(
        state,
        [
            counter(ts("2024-03-04T09:00:00+01:00"), "caf-1"),
            counter(ts("2024-03-04T12:00:00+01:00"), "caf-1", opened=False),
            # the next morning: time has passed over the whole Monday
            call(ts("2024-03-05T08:30:00+01:00"), "caf-1", ivr_only=True),
        ],
    )
    monday = ts("2024-03-04T00:00:00+01:00")
    day = figures.get("opening_rate", "day", network="caf", department="75", site_id="caf-1", start=monday)
    # open 3 h (10,800 s) of 8 h scheduled (28,800 s)
    assert (day.numerator, day.denominator, day.value) == (10_800, 28_800, 3 / 8)
    network = figures.get("opening_rate", "day", network="caf", start=monday)
    assert (network.numerator, network.denominator) == (10_800, 28_800)
    # calendar hours: 9:00 open all hour, 12:00 scheduled but closed
    nine = figures.get("opening_rate", "hour", network="caf", department="75", site_id="caf-1", start=monday + 9 * HOUR)
    noon = figures.get(
        "opening_rate", "hour", network="caf", department="75", site_id="caf-1", start=monday + 12 * HOUR
    )
    assert (nine.numerator, nine.denominator, noon.numerator, noon.denominator) == (3600, 3600, 0, 3600)


def test_overseas_sites_are_measured_on_their_own_clock() -> None:
    # Cayenne is UTC-3: open 8:00-10:00 of an 8:00-12:00 schedule, local time
    state = partition(site("caf-973", department="973", hours=weekly(time(8), time(12))))
    figures = run(
        state,
        [
            counter(ts("2024-03-04T08:00:00-03:00"), "caf-973"),
            counter(ts("2024-03-04T10:00:00-03:00"), "caf-973", opened=False),
            call(ts("2024-03-04T13:00:00-03:00"), "caf-973", ivr_only=True),
        ],
    )
    today = figures.get("opening_rate", "today", network="caf", department="973", site_id="caf-973")
    assert (today.numerator, today.denominator, today.value) == (7200, 14_400, 0.5)
    assert today.window_start == ts("2024-03-04T00:00:00-03:00")  # local midnight, 03:00 UTC


def test_public_holidays_of_the_department_are_outside_the_schedule() -> None:
    # Friday 29 March 2024 is Good Friday: a public holiday in Moselle (57), a working day in Paris
    state = partition(site("caf-57", department="57"), site("caf-75", department="75"))
    figures = run(
        state,
        [
            counter(ts("2024-03-28T09:00:00+01:00"), "caf-57", opened=False),  # history starts on Thursday
            call(ts("2024-03-30T10:00:00+01:00"), "caf-75", ivr_only=True),
        ],
    )
    # as of Saturday: Thursday 9:00-17:00 scheduled in both, Friday only in Paris
    metz = figures.get("opening_rate", "7d", network="caf", department="57")
    paris = figures.get("opening_rate", "7d", network="caf", department="75")
    assert (metz.numerator, metz.denominator) == (0, 8 * HOUR)
    assert (paris.numerator, paris.denominator) == (0, 16 * HOUR)  # scheduled, sent nothing: closed
    friday = figures.get("opening_rate", "day", network="caf", department="75", start=ts("2024-03-29T00:00:00+01:00"))
    assert (friday.denominator, friday.value) == (8 * HOUR, 0.0)


def test_announced_closures_leave_the_schedule_unannounced_ones_count_as_closed() -> None:
    afternoon = ("2024-03-04T14:00:00+01:00", "2024-03-04T17:00:00+01:00")
    announced = Closure(start=afternoon[0], end=afternoon[1], reason="formation", announced=True)
    unannounced = Closure(start=afternoon[0], end=afternoon[1], reason="panne", announced=False)
    state = partition(site("caf-a", closures=[announced]), site("caf-u", closures=[unannounced]))
    events: list[DomainEvent] = []
    for site_id in ("caf-a", "caf-u"):  # both keep their counter open all day
        events += [
            counter(ts("2024-03-04T09:00:00+01:00"), site_id),
            counter(ts("2024-03-04T17:00:00+01:00"), site_id, opened=False),
        ]
    events.append(call(ts("2024-03-04T18:30:00+01:00"), "caf-a", ivr_only=True))
    figures = run(state, sorted(events, key=lambda e: e.t))  # in time order, as a network sends them
    a = figures.get("opening_rate", "today", network="caf", department="75", site_id="caf-a")
    u = figures.get("opening_rate", "today", network="caf", department="75", site_id="caf-u")
    assert (a.numerator, a.denominator) == (5 * HOUR, 5 * HOUR)  # 9-14 scheduled and open
    assert (u.numerator, u.denominator) == (5 * HOUR, 8 * HOUR)  # the afternoon counts as closed


def test_a_schedule_change_applies_from_its_effective_date() -> None:
    later = site("caf-1", changes=[(date(2024, 3, 5), weekly(time(9), time(12)))])
    state = partition(later)
    figures = run(
        state,
        [
            counter(ts("2024-03-04T08:00:00+01:00"), "caf-1", opened=False),  # history starts Monday 8:00
            call(ts("2024-03-06T08:00:00+01:00"), "caf-1", ivr_only=True),
        ],
    )
    monday = figures.get("opening_rate", "day", network="caf", start=ts("2024-03-04T00:00:00+01:00"))
    tuesday = figures.get("opening_rate", "day", network="caf", start=ts("2024-03-05T00:00:00+01:00"))
    assert (monday.denominator, tuesday.denominator) == (8 * HOUR, 3 * HOUR)


def test_time_passes_without_events_and_a_silent_scheduled_site_counts_as_closed() -> None:
    state = partition(site("caf-open"), site("caf-silent"))
    aggregator = Aggregator()
    figures = run(state, [counter(ts("2024-03-04T13:00:00+01:00"), "caf-open")], aggregator=aggregator)
    # no event all afternoon: the idle clock moves the watermark to 17:00
    state.advance(ts("2024-03-04T17:00:00+01:00"))
    collect(state.flush(), 0, figures, aggregator)
    site_open = figures.get("opening_rate", "today", network="caf", department="75", site_id="caf-open")
    assert (site_open.numerator, site_open.denominator) == (4 * HOUR, 4 * HOUR)
    # history starts at 13:00 (the first event): both sites were scheduled 13:00-17:00, one sent nothing
    department = figures.get("opening_rate", "today", network="caf", department="75")
    assert (department.numerator, department.denominator, department.value) == (4 * HOUR, 8 * HOUR, 0.5)


def test_window_volume_is_the_number_of_sites_scheduled_which_alert_rules_read() -> None:
    # the charter rules judge the opening rate only above a minimum of sites scheduled
    sites = [
        site("caf-a"),
        site("caf-b"),
        site("caf-c", hours=weekly(days=["saturday"])),
        site("caf-d", department="13"),
    ]
    state = partition(*sites)
    aggregator = Aggregator()
    figures = run(state, [counter(ts("2024-03-04T09:00:00+01:00"), "caf-a")], aggregator=aggregator)
    state.advance(ts("2024-03-04T12:00:00+01:00"))
    collect(state.flush(), 0, figures, aggregator)
    # Monday: caf-a, caf-b (Paris) and caf-d (Marseille) are scheduled; caf-c opens on Saturdays only
    for window in ("today", "7d", "1h"):
        network = figures.get("opening_rate", window, network="caf")
        assert network.details["sites_scheduled"] == 3, window
    paris = figures.get("opening_rate", "today", network="caf", department="75")
    assert (paris.numerator, paris.denominator, paris.details["sites_scheduled"]) == (3 * HOUR, 6 * HOUR, 2)
    one_site = figures.get("opening_rate", "today", network="caf", department="75", site_id="caf-b")
    assert (one_site.numerator, one_site.details["sites_scheduled"]) == (0, 1)


def test_live_counts_sites_open_now_among_those_scheduled_and_reports_the_stale_ones() -> None:
    config = IndicatorConfig(stale_after=2 * HOUR)
    saturdays = weekly(days=["saturday"])
    sites = [site(f"caf-{i}") for i in range(4)] + [
        site("caf-sat", hours=saturdays),
        site("caf-quiet", hours=saturdays),
    ]
    state = partition(*sites, config=config)
    figures = run(
        state,
        [
            counter(ts("2024-03-04T09:00:00+01:00"), "caf-0"),  # open, silent since 9:00: stale at 11:00
            counter(ts("2024-03-04T10:30:00+01:00"), "caf-1"),  # open
            counter(ts("2024-03-04T10:45:00+01:00"), "caf-2"),
            counter(ts("2024-03-04T10:50:00+01:00"), "caf-2", opened=False),  # closed
            counter(ts("2024-03-04T11:00:00+01:00"), "caf-sat"),  # open outside its schedule
            call(ts("2024-03-04T12:01:00+01:00"), "caf-3", ivr_only=True),  # caf-3: never a status
        ],
    )
    live = figures.get("opening_rate", "live", network="caf")
    # as of 12:00: scheduled now caf-0..3; open: caf-1 only (caf-0 stale since 11:00)
    assert (live.numerator, live.denominator) == (1, 4)
    # stale: caf-0, caf-3 (scheduled now: what the alert rules judge) and caf-quiet (not scheduled today)
    assert live.details == {"sites": 6, "sites_stale": 3, "sites_scheduled_stale": 2, "sites_open_unscheduled": 1}
    stale = figures.get("opening_rate", "live", network="caf", department="75", site_id="caf-0")
    assert stale.details["stale"] == 1
    assert stale.details["last_status_at"] == ts("2024-03-04T09:00:00+01:00")
    # opening time: caf-0 counts open 9:00-11:00 only, then stale
    morning = figures.get("opening_rate", "today", network="caf", department="75", site_id="caf-0")
    assert morning.numerator == pytest.approx(2 * HOUR)


def test_the_idle_clock_lets_time_pass_from_where_a_silent_stream_stands() -> None:
    now = ts("2024-03-04T14:00:00+01:00")
    # live: the last call was heard when it happened; 20 minutes of silence later it is 14:00
    assert idle_time(now - 1200, heard_at=now - 1200, now=now) == now
    # history published hours behind (a replay at 4x): silence moves it on by the silence only,
    # so the next events of that history are not late
    assert idle_time(now - 5 * HOUR, heard_at=now - 30, now=now) == now - 5 * HOUR + 30
    # never ahead of the wall clock; a stream that never had an event has no time yet
    assert idle_time(now + 600, heard_at=now - 60, now=now) == now
    assert idle_time(None, heard_at=now - 60, now=now) is None


def test_after_a_producer_failure_the_aggregates_are_all_published_again() -> None:
    state = partition(site("caf-a"), site("cpam-b", network="cpam"))
    aggregator = Aggregator()
    figures = run(state, [counter(ts("2024-03-04T09:00:00+01:00"), "caf-a")], aggregator=aggregator)
    state.advance(ts("2024-03-04T11:00:00+01:00"))
    collect(state.flush(), 0, figures, aggregator)
    assert aggregator.snapshots() == []  # nothing changed since the last flush
    aggregator.republish()  # what was sent may be lost: everything again, closed hours included
    again = aggregator.snapshots()
    scopes = {(s.network, s.department) for s in again}
    assert scopes == {("caf", "75"), ("caf", None), ("cpam", "75"), ("cpam", None), (None, "75"), (None, None)}
    nine = [
        s
        for s in again
        if (s.network, s.department, s.window) == ("caf", None, "hour") and s.indicator == "opening_rate"
    ]
    assert ts("2024-03-04T09:00:00+01:00") in {s.window_start for s in nine}
    assert aggregator.snapshots() == []


def test_a_registry_update_within_the_hour_keeps_what_the_site_accrued_before_it() -> None:
    state = partition(site("caf-1"))  # Monday to Friday 9:00-17:00, Paris
    run(state, [counter(ts("2024-03-04T08:50:00+01:00"), "caf-1"), call(ts("2024-03-04T09:21:00+01:00"), "caf-1")])
    # an announced closure later in the day: another schedule from now on
    afternoon = Closure(start="2024-03-04T16:00:00+01:00", end="2024-03-04T17:00:00+01:00", announced=True)
    state.register(compile_site(site("caf-1", closures=[afternoon])))
    figures = run(state, [call(ts("2024-03-04T09:56:00+01:00"), "caf-1")])
    hour = figures.get("opening_rate", "1h", network="caf", department="75", site_id="caf-1")
    # as of 9:55, since 8:55: scheduled and open since 9:00 (the counter opened at 8:50, before the schedule)
    assert hour.as_of == ts("2024-03-04T09:55:00+01:00")
    assert (hour.numerator, hour.denominator) == (55 * 60, 55 * 60)
