"""Entry point of indicators: canonical events in, snapshots on charter.indicators and gauges out."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge

from charter_contracts import KIND_PAYLOADS, CallRecord, EventKind, IndicatorSnapshot, Scope
from charter_indicators.domain.pickup import RollingPickup, count_call
from charter_indicators.settings import IndicatorsSettings
from charter_runtime.http import ServiceParts, build_app
from charter_runtime.kafka import RecordBatch, batch_subscriber, confirm_all, contract_topics, make_broker

log = logging.getLogger(__name__)

DESCRIPTION = "Charter indicators computed live from the canonical events, in event time."
_HOUR = timedelta(hours=1)


class Indicators:
    """Wires the indicator arithmetic to Kafka and Prometheus."""

    def __init__(self, settings: IndicatorsSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.pickup_rate = Gauge(
            "charter_pickup_rate_ratio",
            "Calls answered by an agent / calls offered (short abandons excluded).",
            ["network", "department", "window"],
            registry=self.registry,
        )
        self.broker = make_broker(settings.kafka_bootstrap_servers, client_id="charter-indicators")
        names = settings.topics
        self.snapshots = self.broker.publisher(
            names.indicators,
            title=names.indicators,
            description="Indicator snapshots, keyed by scope.",
            schema=IndicatorSnapshot,
        )
        batch_subscriber(
            self.broker,
            names.canonical(EventKind.CALL_RECORDS),
            group_id=names.group(settings.group_id),
            handler=self.on_calls,
            payload=KIND_PAYLOADS[EventKind.CALL_RECORDS],
        )
        self._pickup: dict[str, RollingPickup] = {}
        self._as_of: datetime | None = None

    async def on_calls(self, records: RecordBatch) -> None:
        """Count each call in its network's window, then publish the networks touched."""
        touched: set[str] = set()
        for record in records:
            call = CallRecord.model_validate_json(record.value or b"")
            window = self._pickup.setdefault(call.network, RollingPickup(_HOUR))
            window.add(call.received_at, count_call(call, self.settings.short_abandon_seconds))
            touched.add(call.network)
            if self._as_of is None or call.received_at > self._as_of:
                self._as_of = call.received_at
        if self._as_of is None:
            return
        pending = []
        for network in sorted(touched):
            counts = self._pickup[network].total(self._as_of)
            snapshot = IndicatorSnapshot.of(
                "pickup_rate",
                Scope(network=network),
                "1h",
                numerator=counts.answered,
                denominator=counts.offered,
                as_of=self._as_of,
                window_start=self._as_of - _HOUR,
                details={"raw_denominator": counts.raw_offered, "ivr_only": counts.ivr_only},
            )
            if snapshot.value is not None:
                self.pickup_rate.labels(network, "", "1h").set(snapshot.value)
            pending.append(
                await self.snapshots.publish(
                    snapshot.model_dump_json().encode(),
                    key=snapshot.scope.key.encode(),
                    no_confirm=True,
                )
            )
        await confirm_all(pending)

    def parts(self) -> ServiceParts:
        return ServiceParts(
            name="indicators",
            description=DESCRIPTION,
            broker=self.broker,
            registry=self.registry,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            topics=contract_topics(self.settings.topics, self.settings.kafka_partitions),
        )


def create_app(settings: IndicatorsSettings | None = None) -> FastAPI:
    """The indicators service as an ASGI app."""
    return build_app(Indicators(settings or IndicatorsSettings()).parts())
