"""The one-screen summary of ``charter stack``: the three indicators per network, from /metrics.

Read straight from the services' Prometheus endpoints (metric names of the catalogue),
so it works even before Prometheus has scraped anything. A figure a service does not
export (yet) shows as a dash, never as zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table
from rich.text import Text

OPENING_THRESHOLD = 0.97
PICKUP_THRESHOLD = 0.85
DEADLINE_THRESHOLD = 0.85
NATIONAL = ""

Sample = tuple[dict[str, str], float]


def samples(text: str) -> dict[str, list[Sample]]:
    """Samples of a text exposition by sample name (``_total`` included); unreadable text gives none."""
    found: dict[str, list[Sample]] = defaultdict(list)
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found[sample.name].append((dict(sample.labels), float(sample.value)))
    except ValueError:
        return {}
    return found


@dataclass
class NetworkRow:
    """What the summary shows for one network (``network == ""``: national)."""

    network: str
    sites_open: float | None = None
    sites_scheduled: float | None = None
    opening_today: float | None = None
    pickup_1h: float | None = None
    deadline_7d: float | None = None
    events: float = 0.0
    alerts_firing: int = 0

    @property
    def opening_live(self) -> float | None:
        if self.sites_open is None or not self.sites_scheduled:
            return None
        return self.sites_open / self.sites_scheduled


def _ratio(found: Mapping[str, list[Sample]], name: str, window: str) -> dict[str, float]:
    """Network-level (department="") values of one ratio on one window, by network ("" = national)."""
    return {
        labels.get("network", ""): value
        for labels, value in found.get(name, [])
        if labels.get("window") == window and not labels.get("department")
    }


def _sum_by_network(found: Mapping[str, list[Sample]], name: str, **match: str) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for labels, value in found.get(name, []):
        if all(labels.get(k) == v for k, v in match.items()) and labels.get("network"):
            totals[labels["network"]] += value
    return dict(totals)


def read_rows(indicators: str, alerts: str, ingest: str) -> list[NetworkRow]:
    """Rows per network, sorted, then the national row, from the three services' /metrics."""
    ind, alr, ing = samples(indicators), samples(alerts), samples(ingest)
    sites_open = _sum_by_network(ind, "charter_sites_open")
    sites_scheduled = _sum_by_network(ind, "charter_sites_scheduled_open")
    opening = _ratio(ind, "charter_opening_rate_ratio", "today")
    pickup = _ratio(ind, "charter_pickup_rate_ratio", "1h")
    deadline = _ratio(ind, "charter_deadline_compliance_ratio", "7d")
    events = _sum_by_network(ing, "charter_ingest_events_accepted_total")
    if "charter_alerts_firing" in alr:
        firing = _sum_by_network(alr, "charter_alerts_firing")
    else:  # services that only count transitions: firing minus resolved
        fired = _sum_by_network(alr, "charter_alert_transitions_total", status="firing")
        resolved = _sum_by_network(alr, "charter_alert_transitions_total", status="resolved")
        firing = {n: fired.get(n, 0) - resolved.get(n, 0) for n in fired}
    networks = sorted(
        {n for source in (sites_open, opening, pickup, deadline, events, firing) for n in source if n != NATIONAL}
    )
    rows = [
        NetworkRow(
            network=n,
            sites_open=sites_open.get(n),
            sites_scheduled=sites_scheduled.get(n),
            opening_today=opening.get(n),
            pickup_1h=pickup.get(n),
            deadline_7d=deadline.get(n),
            events=events.get(n, 0.0),
            alerts_firing=round(firing.get(n, 0)),
        )
        for n in networks
    ]
    rows.append(
        NetworkRow(
            network=NATIONAL,
            sites_open=sum(sites_open.values()) if sites_open else None,
            sites_scheduled=sum(sites_scheduled.values()) if sites_scheduled else None,
            opening_today=opening.get(NATIONAL),
            pickup_1h=pickup.get(NATIONAL),
            deadline_7d=deadline.get(NATIONAL),
            events=sum(events.values()),
            alerts_firing=sum(r.alerts_firing for r in rows),
        )
    )
    return rows


def _cell(value: float | None, threshold: float) -> Text:
    if value is None:
        return Text("—", style="dim")
    return Text(f"{value:6.1%}", style="green" if value >= threshold else "bold red")


@dataclass
class Summary:
    """Keeps the previous reading to show event rates."""

    _previous: dict[str, float] = field(default_factory=dict)
    _previous_at: float | None = None

    def table(self, rows: Iterable[NetworkRow], at: float, title: str) -> Table:
        table = Table(title=title, title_justify="left", expand=False)
        table.add_column("network")
        table.add_column("sites open now", justify="right")
        table.add_column(f"opening today (≥{OPENING_THRESHOLD:.0%})", justify="right")
        table.add_column(f"pickup 1h (≥{PICKUP_THRESHOLD:.0%})", justify="right")
        table.add_column(f"deadlines 7d (≥{DEADLINE_THRESHOLD:.0%})", justify="right")
        table.add_column("events/s", justify="right")
        table.add_column("alerts", justify="right")
        elapsed = None if self._previous_at is None else max(1e-6, at - self._previous_at)
        current: dict[str, float] = {}
        for row in rows:
            current[row.network] = row.events
            rate = "—" if elapsed is None else f"{(row.events - self._previous.get(row.network, 0.0)) / elapsed:.1f}"
            live = row.opening_live
            sites = "—" if live is None else f"{row.sites_open:.0f}/{row.sites_scheduled:.0f} {live:6.1%}"
            alerts = Text(f"{row.alerts_firing} firing", style="bold red") if row.alerts_firing else Text("0")
            table.add_row(
                Text(row.network or "national", style="bold" if not row.network else ""),
                Text(sites, style="dim" if live is None else ("green" if live >= OPENING_THRESHOLD else "bold red")),
                _cell(row.opening_today, OPENING_THRESHOLD),
                _cell(row.pickup_1h, PICKUP_THRESHOLD),
                _cell(row.deadline_7d, DEADLINE_THRESHOLD),
                rate,
                alerts,
            )
        self._previous, self._previous_at = current, at
        return table
