"""The terminal summary of `make run` reads the catalogue's metrics as the services export them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from rich.console import Console

from charter_ops.summary import Summary, read_rows


def exposition() -> tuple[str, str, str]:
    indicators, alerts, ingest = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    labels = ["network", "department", "window"]
    opening = Gauge("charter_opening_rate_ratio", "h", labels, registry=indicators)
    pickup = Gauge("charter_pickup_rate_ratio", "h", labels, registry=indicators)
    deadline = Gauge("charter_deadline_compliance_ratio", "h", labels, registry=indicators)
    sites_open = Gauge("charter_sites_open", "h", ["network", "department"], registry=indicators)
    scheduled = Gauge("charter_sites_scheduled_open", "h", ["network", "department"], registry=indicators)
    for department, is_open, planned in (("75", 10, 10), ("13", 2, 8)):
        sites_open.labels("caf", department).set(is_open)
        scheduled.labels("caf", department).set(planned)
    sites_open.labels("cpam", "75").set(20)
    scheduled.labels("cpam", "75").set(20)
    opening.labels("caf", "", "today").set(0.62)
    opening.labels("caf", "", "1h").set(0.99)  # another window: not the one shown
    opening.labels("caf", "75", "today").set(0.99)  # a department: not the network figure
    pickup.labels("caf", "", "1h").set(0.41)
    pickup.labels("cpam", "", "1h").set(0.93)
    pickup.labels("", "", "1h").set(0.80)
    deadline.labels("cpam", "", "7d").set(0.97)
    firing = Gauge("charter_alerts_firing", "h", ["network", "rule"], registry=alerts)
    firing.labels("caf", "pickup_rate_1h").set(1)
    firing.labels("caf", "opening_rate_live").set(1)
    firing.labels("cpam", "pickup_rate_1h").set(0)
    accepted = Counter("charter_ingest_events_accepted", "h", ["network", "type"], registry=ingest)
    accepted.labels("caf", "call").inc(300)
    accepted.labels("caf", "case_completed").inc(700)
    accepted.labels("cpam", "call").inc(50)
    return (generate_latest(indicators).decode(), generate_latest(alerts).decode(), generate_latest(ingest).decode())


def test_each_network_shows_its_three_indicators_and_alerts_with_a_national_row() -> None:
    rows = {row.network: row for row in read_rows(*exposition())}
    assert list(rows) == ["caf", "cpam", ""]
    caf, cpam, national = rows["caf"], rows["cpam"], rows[""]
    assert (caf.sites_open, caf.sites_scheduled, caf.opening_live) == (12, 18, 12 / 18)
    assert (caf.opening_today, caf.pickup_1h, caf.deadline_7d) == (0.62, 0.41, None)
    assert (caf.events, caf.alerts_firing) == (1000, 2)
    assert (cpam.pickup_1h, cpam.deadline_7d, cpam.alerts_firing) == (0.93, 0.97, 0)
    assert (national.pickup_1h, national.sites_open, national.sites_scheduled, national.events) == (0.80, 32, 38, 1050)
    assert national.alerts_firing == 2


def test_alerts_counted_from_transitions_when_the_service_exports_only_those() -> None:
    registry = CollectorRegistry()
    transitions = Counter("charter_alert_transitions", "h", ["network", "rule", "status"], registry=registry)
    transitions.labels("caf", "pickup_rate_1h", "firing").inc(2)
    transitions.labels("caf", "pickup_rate_1h", "resolved").inc(1)
    rows = {row.network: row for row in read_rows("", generate_latest(registry).decode(), "")}
    assert rows["caf"].alerts_firing == 1


def test_the_table_marks_breaches_and_shows_dashes_for_what_is_not_exported() -> None:
    summary = Summary()
    rows = read_rows(*exposition())
    summary.table(rows, at=0.0, title="first")
    rows[0].events += 50
    console = Console(width=140, record=True, color_system=None)
    console.print(summary.table(rows, at=10.0, title="charter"))
    text = console.export_text()
    caf = next(line for line in text.splitlines() if "caf" in line)
    for shown in ("12/18", "41.0%", "62.0%", "2 firing"):
        assert shown in caf
    assert "—" in caf, "no deadline figure for caf: a dash, not zero"
    assert "5.0" in caf, "50 more events in 10 s"
    assert "national" in text
