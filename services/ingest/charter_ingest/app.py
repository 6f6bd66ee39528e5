"""Entry point of ingest: raw.<network>.* in, charter.* and charter.dead-letter out.

The subscriber only decodes, delegates to ``domain.admit`` and publishes. It awaits
Kafka's acknowledgement of every output of a batch before returning, and only then is
the batch's offset committed, so a crash re-delivers rather than loses.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from charter_contracts import KIND_PAYLOADS, DeadLetter, Event, EventKind
from charter_ingest.domain import Admitted, Rejected, admit
from charter_ingest.metrics import IngestMetrics
from charter_ingest.settings import IngestSettings
from charter_runtime.http import ServiceParts, build_app
from charter_runtime.kafka import (
    RecordBatch,
    batch_subscriber,
    confirm_all,
    contract_topics,
    make_broker,
    raw_topics,
)

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Networks' events in (Kafka raw topics), validated against contract v1, written to the "
    "canonical charter.* topics keyed by site_id; rejects go to charter.dead-letter with their reason."
)


class Ingest:
    """Wires the admission core to Kafka."""

    def __init__(self, settings: IngestSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self.broker = make_broker(settings.kafka_bootstrap_servers, client_id="charter-ingest")
        self.names = names = settings.topics
        self.canonical = {
            kind: self.broker.publisher(
                names.canonical(kind),
                title=names.canonical(kind),
                description=f"Validated, canonical {kind.value} (UTC timestamps), keyed by site_id.",
                schema=Event,
            )
            for kind in EventKind
        }
        self.dead_letter = self.broker.publisher(
            names.dead_letter,
            title=names.dead_letter,
            description="Rejected messages: the payload as sent, its source and the reason.",
            schema=DeadLetter,
        )
        for kind in EventKind:
            batch_subscriber(
                self.broker,
                *(names.raw(network, kind) for network in settings.networks),
                group_id=names.group(settings.group_id),
                handler=self.on_raw_batch,
                payload=KIND_PAYLOADS[kind],
                title=f"raw.<network>.{kind.value}",
                description=f"{kind.value} as networks send them, one topic per network (contract v1).",
            )

    async def on_raw_batch(self, records: RecordBatch) -> None:
        """Admit each record of a batch; return only when every output is acknowledged."""
        pending = []
        for record in records:
            source = self.names.parse_raw(record.topic)
            if source is None:  # not subscribed to such topics; defensive
                continue
            network, kind = source
            outcome = admit(record.value or b"", network, kind)
            pending.append(await self._publish(outcome, network, record))
        await confirm_all(pending)

    async def _publish(self, outcome: Admitted | Rejected, network: str, record: Any) -> Any:
        if isinstance(outcome, Admitted):
            event = outcome.event
            self.metrics.accepted.labels(network, event.type).inc()
            return await self.canonical[event.kind].publish(
                event.model_dump_json().encode(), key=event.site_id.encode(), no_confirm=True
            )
        self.metrics.rejected.labels(network, outcome.reason.value).inc()
        log.info("rejected %s:%s@%s: %s", record.topic, record.partition, record.offset, outcome.detail)
        return await self.dead_letter.publish(
            dead_letter(outcome, network, record).model_dump_json().encode(),
            key=record.key,
            no_confirm=True,
        )

    def parts(self) -> ServiceParts:
        partitions = self.settings.kafka_partitions
        topics_needed = contract_topics(self.names, partitions) + raw_topics(
            self.names, self.settings.networks, partitions
        )
        return ServiceParts(
            name="ingest",
            description=DESCRIPTION,
            broker=self.broker,
            registry=self.registry,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            topics=topics_needed,
        )


def dead_letter(outcome: Rejected, network: str | None, record: Any) -> DeadLetter:
    """The dead letter of a rejected Kafka record."""
    payload, encoding = DeadLetter.encode_payload(record.value or b"")
    return DeadLetter(
        reason=outcome.reason,
        detail=outcome.detail[:2000],
        network=network,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        payload=payload,
        payload_encoding=encoding,
        rejected_at=datetime.now(UTC),
    )


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    """The ingest service as an ASGI app (used by ``charter ingest`` and the tests)."""
    return build_app(Ingest(settings or IngestSettings()).parts())
