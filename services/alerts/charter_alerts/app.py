"""Entry point of alerts: indicator snapshots in, alert lifecycle events on charter.alerts out."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from charter_alerts.domain.rules import AlertBook
from charter_alerts.settings import AlertsSettings
from charter_contracts import AlertEvent, IndicatorSnapshot
from charter_runtime.http import ServiceParts, build_app
from charter_runtime.kafka import RecordBatch, batch_subscriber, confirm_all, contract_topics, make_broker

log = logging.getLogger(__name__)

DESCRIPTION = "Charter rules over indicator snapshots; alerts fire once per breach and resolve once."


class Alerts:
    """Wires the charter rules to Kafka."""

    def __init__(self, settings: AlertsSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.transitions = Counter(
            "charter_alert_transitions",
            "Alert lifecycle transitions published, by rule and status.",
            ["network", "rule", "status"],
            registry=self.registry,
        )
        self.book = AlertBook(dashboard_base_url=settings.grafana_url)
        self.broker = make_broker(settings.kafka_bootstrap_servers, client_id="charter-alerts")
        names = settings.topics
        self.alerts = self.broker.publisher(
            names.alerts,
            title=names.alerts,
            description="Alert lifecycle, keyed by fingerprint.",
            schema=AlertEvent,
        )
        batch_subscriber(
            self.broker,
            names.indicators,
            group_id=names.group(settings.group_id),
            handler=self.on_snapshots,
            payload=IndicatorSnapshot,
        )

    async def on_snapshots(self, records: RecordBatch) -> None:
        """Judge each snapshot; publish the transitions before the batch is committed."""
        pending = []
        for record in records:
            snapshot = IndicatorSnapshot.model_validate_json(record.value or b"")
            for event in self.book.observe(snapshot):
                log.warning("alert %s: %s", event.status, event.summary_en)
                self.transitions.labels(event.network, event.rule, event.status).inc()
                pending.append(
                    await self.alerts.publish(
                        event.model_dump_json().encode(),
                        key=event.fingerprint.encode(),
                        no_confirm=True,
                    )
                )
        await confirm_all(pending)

    def parts(self) -> ServiceParts:
        return ServiceParts(
            name="alerts",
            description=DESCRIPTION,
            broker=self.broker,
            registry=self.registry,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            topics=contract_topics(self.settings.topics, self.settings.kafka_partitions),
        )


def create_app(settings: AlertsSettings | None = None) -> FastAPI:
    """The alerts service as an ASGI app."""
    return build_app(Alerts(settings or AlertsSettings()).parts())
