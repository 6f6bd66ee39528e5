"""Prometheus metrics of ingest; labels are bounded (networks of the config, event types, reasons)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

#: From a few milliseconds (live) to minutes (a backlog after an outage).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class IngestMetrics:
    """Counters of what came in and what happened to it, and how long it took."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "charter_ingest_events_accepted",
            "Events accepted and written to the canonical topics.",
            ["network", "type"],
            registry=registry,
        )
        self.rejected = Counter(
            "charter_ingest_events_rejected",
            "Events rejected (to charter.dead-letter, or in the HTTPS answer), by reason.",
            ["network", "reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "charter_ingest_latency_seconds",
            "From arrival (Kafka record timestamp of the raw record) to the canonical write acknowledged.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
