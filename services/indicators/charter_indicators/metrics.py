"""Prometheus metrics of indicators (the agreed metrics catalogue, README "Metrics").

Labels are ``network``, ``department`` and ``window``, an empty value meaning "aggregated
over"; site-level figures are never labels (they are on the topic and the API). A scope
is exported by the one instance that aggregates it, and its series are removed when the
instance hands the scope over, so Prometheus never sees a scope twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from charter_indicators.domain.partition import ROLLING, ScopeKey
from charter_indicators.domain.snapshots import DEADLINE, OPENING, PICKUP, SnapshotValue

_PARTS = ("network", "department", "window")
_PROCEDURE_MEDIAN = "processing_median_seconds."


class ScopeGauge:
    """A gauge of the aggregated scopes: its series and their values, rendered only when they change.

    A national deployment exports tens of thousands of these series; prometheus_client formats
    every sample at every scrape (0.3 s on the event loop for 25,000 series, each time Prometheus
    or a dashboard asks). Each series' text up to its value is made once, and the whole family
    is rendered again only after a change.
    """

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.labels = labels
        self._header = f"# HELP {name} {_escape_help(documentation)}\n# TYPE {name} gauge\n"
        self._values: dict[tuple[str, ...], float] = {}
        self._prefixes: dict[tuple[str, ...], str] = {}
        self._text: str | None = self._header

    def set(self, labels: tuple[str, ...], value: float) -> None:
        value = float(value)
        if self._values.get(labels) != value:
            self._values[labels] = value
            self._text = None

    def remove(self, labels: tuple[str, ...]) -> None:
        if self._values.pop(labels, None) is not None:
            self._prefixes.pop(labels, None)
            self._text = None

    def value(self, labels: tuple[str, ...]) -> float | None:
        return self._values.get(labels)

    def render(self) -> str:
        text = self._text
        if text is None:
            lines = [self._header]
            prefixes = self._prefixes
            for labels, value in self._values.items():
                prefix = prefixes.get(labels)
                if prefix is None:
                    pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in zip(self.labels, labels, strict=True))
                    prefix = prefixes[labels] = f"{self.name}{{{pairs}}} "
                lines.append(f"{prefix}{_number(value)}\n")
            text = self._text = "".join(lines)
        return text


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class IndicatorMetrics:
    """The gauges of the aggregated scopes and the service's operational counters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.scope_gauges: list[ScopeGauge] = []

        def gauge(name: str, text: str, labels: tuple[str, ...] = _PARTS) -> ScopeGauge:
            family = ScopeGauge(name, text, labels)
            self.scope_gauges.append(family)
            return family

        self.open_seconds = gauge("charter_opening_open_seconds", "Seconds sites were open within their schedule.")
        self.scheduled_seconds = gauge("charter_opening_scheduled_seconds", "Seconds sites were scheduled open.")
        self.calls_offered = gauge("charter_calls_offered", "Calls offered to agents (short abandons excluded).")
        self.calls_answered = gauge("charter_calls_answered", "Calls answered by an agent.")
        self.cases_completed = gauge("charter_cases_completed", "Cases completed.")
        self.cases_within = gauge("charter_cases_within_deadline", "Cases completed within their deadline.")
        live = ("network", "department")
        self.sites_open = gauge("charter_sites_open", "Sites open now, among those scheduled open now.", live)
        self.sites_scheduled = gauge("charter_sites_scheduled_open", "Sites scheduled open now.", live)
        self.sites_stale = gauge("charter_sites_stale", "Sites with no counter status for too long.", live)
        self.opening_rate = gauge("charter_opening_rate_ratio", "Seconds open / seconds scheduled (live: sites).")
        self.pickup_rate = gauge("charter_pickup_rate_ratio", "Calls answered / calls offered (short abandons out).")
        self.pickup_raw = gauge("charter_pickup_raw_rate_ratio", "Calls answered / calls offered incl. short abandons.")
        self.service_level = gauge("charter_service_level_ratio", "Calls answered within 60 s / calls offered.")
        self.abandonment = gauge("charter_abandonment_rate_ratio", "Calls abandoned / calls offered.")
        self.wait_mean = gauge("charter_call_wait_mean_seconds", "Mean wait before an agent answered.")
        self.wait_p90 = gauge("charter_call_wait_p90_seconds", "90th percentile of the wait before answer.")
        self.deadline = gauge("charter_deadline_compliance_ratio", "Cases within deadline / cases with a deadline.")
        self.without_deadline = gauge("charter_cases_without_deadline", "Cases completed that had no deadline.")
        self.processing_median = gauge(
            "charter_case_processing_median_seconds",
            "Median time from submission to completion, per procedure.",
            ("network", "procedure", "window"),
        )
        self.late = Counter(
            "charter_events_late",
            "Events later than the grace period: not counted, sent to the dead-letter topic.",
            ["network", "type"],
            registry=registry,
        )
        self.events = Counter(
            "charter_indicators_events", "Events counted in the indicators.", ["type"], registry=registry
        )
        self.rejected = Counter(
            "charter_indicators_events_rejected",
            "Events not counted, by reason (late, duplicate, unknown_site, schema).",
            ["reason"],
            registry=registry,
        )
        self.watermark = Gauge(
            "charter_indicators_watermark_seconds",
            "Event time (unix seconds) the state of this instance is complete up to.",
            registry=registry,
        )
        self._series: dict[ScopeKey, set[tuple[ScopeGauge, tuple[str, ...]]]] = {}

    def scope_exposition(self) -> bytes:
        """The scope gauges in Prometheus' text format (served after the registry's own metrics)."""
        return "".join(family.render() for family in self.scope_gauges).encode()

    def exposition(self) -> bytes:
        """Everything this service exports, as ``/metrics`` serves it."""
        return generate_latest(self.registry) + self.scope_exposition()

    def observe(self, snapshots: Iterable[SnapshotValue]) -> None:
        """Export the aggregated scopes' snapshots (site-level ones are ignored)."""
        for s in snapshots:
            if s.site_id is not None or (s.window not in ROLLING and s.window != "live"):
                continue
            scope = (s.network, s.department)
            parts = (s.network or "", s.department or "", s.window)
            national_or_network = s.department is None
            if s.indicator == OPENING and s.window == "live":
                live = parts[:2]
                self._set(scope, self.sites_open, live, s.numerator)
                self._set(scope, self.sites_scheduled, live, s.denominator)
                self._set(scope, self.sites_stale, live, s.details.get("sites_stale"))
                if national_or_network:
                    self._set(scope, self.opening_rate, parts, s.value)
            elif s.indicator == OPENING:
                self._set(scope, self.open_seconds, parts, s.numerator)
                self._set(scope, self.scheduled_seconds, parts, s.denominator)
                if national_or_network:
                    self._set(scope, self.opening_rate, parts, s.value)
            elif s.indicator == PICKUP:
                self._set(scope, self.calls_offered, parts, s.denominator)
                self._set(scope, self.calls_answered, parts, s.numerator)
                if national_or_network:
                    self._set(scope, self.pickup_rate, parts, s.value)
                    self._set(scope, self.pickup_raw, parts, s.details.get("raw_rate"))
                    self._set(scope, self.service_level, parts, s.details.get("service_level"))
                    self._set(scope, self.abandonment, parts, s.details.get("abandonment_rate"))
                    self._set(scope, self.wait_mean, parts, s.details.get("wait_mean_seconds"))
                    self._set(scope, self.wait_p90, parts, s.details.get("wait_p90_seconds"))
            elif s.indicator == DEADLINE:
                self._set(scope, self.cases_completed, parts, s.details.get("cases_completed"))
                self._set(scope, self.cases_within, parts, s.numerator)
                if national_or_network:
                    self._set(scope, self.deadline, parts, s.value)
                    self._set(scope, self.without_deadline, parts, s.details.get("cases_without_deadline"))
                    self._procedures(scope, s)

    def _procedures(self, scope: ScopeKey, s: SnapshotValue) -> None:
        seen = set()
        for key, value in s.details.items():
            if key.startswith(_PROCEDURE_MEDIAN):
                procedure = key[len(_PROCEDURE_MEDIAN) :]
                seen.add(procedure)
                self._set(scope, self.processing_median, (s.network or "", procedure, s.window), value)
        for gauge, labels in list(self._series.get(scope, ())):
            if gauge is self.processing_median and labels[2] == s.window and labels[1] not in seen:
                self._set(scope, gauge, labels, None)

    def _set(self, scope: ScopeKey, gauge: ScopeGauge, labels: tuple[str, ...], value: Any) -> None:
        series = self._series.setdefault(scope, set())
        if value is None:
            if (gauge, labels) in series:
                gauge.remove(labels)
                series.discard((gauge, labels))
            return
        gauge.set(labels, value)
        series.add((gauge, labels))

    def forget(self, scopes: Iterable[ScopeKey]) -> None:
        """Remove every series of scopes this instance no longer aggregates."""
        for scope in scopes:
            for gauge, labels in self._series.pop(scope, set()):
                gauge.remove(labels)

    def count(self, counted: dict[str, int], late: dict[tuple[str, str], int], rejected: dict[str, int]) -> None:
        """Add one batch's counts (counted per batch, not per event)."""
        for kind, n in counted.items():
            self.events.labels(kind).inc(n)
        for (network, kind), n in late.items():
            self.late.labels(network, kind).inc(n)
        for reason, n in rejected.items():
            self.rejected.labels(reason).inc(n)
