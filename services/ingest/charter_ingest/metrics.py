"""Prometheus metrics of ingest; labels are bounded (networks of the config, event types, reasons)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class IngestMetrics:
    """Counters of what came in and what happened to it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "charter_ingest_events_accepted",
            "Events accepted and written to the canonical topics.",
            ["network", "type"],
            registry=registry,
        )
        self.rejected = Counter(
            "charter_ingest_events_rejected",
            "Messages rejected to charter.dead-letter, by reason.",
            ["network", "reason"],
            registry=registry,
        )
