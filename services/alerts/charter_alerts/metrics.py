"""Prometheus metrics of alerts (catalogue: firing, transitions, notifications; plus rules reloads).

Labels are bounded: networks, rule names, statuses, receivers, outcomes. Departments
never become labels.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from charter_alerts.domain.book import AlertRecord


class AlertsMetrics:
    """The alerts service's metrics in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.firing = Gauge(
            "charter_alerts_firing",
            "Alerts firing now, by network and rule (1 for the network alert, plus 1 per department firing).",
            ["network", "rule"],
            registry=registry,
        )
        self.transitions = Counter(
            "charter_alert_transitions",
            "Alert lifecycle transitions (pending, firing, resolved), by network and rule.",
            ["network", "rule", "status"],
            registry=registry,
        )
        self.notifications = Counter(
            "charter_alert_notifications",
            "Notification attempts by receiver: delivered, failed (retried later) or duplicate (not sent again).",
            ["receiver", "outcome"],
            registry=registry,
        )
        self.rules_ok = Gauge(
            "charter_alerts_rules_last_reload_successful",
            "1 if the last load of the rules file succeeded, 0 if it was refused (the previous rules stay).",
            registry=registry,
        )
        self.rules_loaded_at = Gauge(
            "charter_alerts_rules_last_reload_success_timestamp_seconds",
            "When the rules in force were loaded (unix seconds).",
            registry=registry,
        )
        self.rules_reloads = Counter(
            "charter_alerts_rules_reloads",
            "Loads of the rules file, by outcome (loaded, refused).",
            ["outcome"],
            registry=registry,
        )
        self._shown: set[tuple[str, str]] = set()

    def show_firing(self, records: Iterable[AlertRecord]) -> None:
        """Set the firing gauge from the alerts' state (series that stop firing go to 0)."""
        counts = Tally((r.network, r.rule) for r in records if r.status == "firing")
        for labels in self._shown - set(counts):
            self.firing.labels(*labels).set(0)
        for labels, count in counts.items():
            self.firing.labels(*labels).set(count)
        self._shown |= set(counts)
