"""Entry point of ingest: raw.<network>.* in, charter.* and charter.dead-letter out; POST /v1/events.

The subscriber decodes, delegates to ``domain.admit`` and to the partition's
de-duplication memory (``dedup``), and publishes. A batch is finished in this order, so
that nothing is lost and a crash at any point is recoverable:

1. canonical events and dead letters are written and acknowledged (acks=all);
2. the batch's new fingerprints are written to the de-duplication changelog and acknowledged;
3. they are applied to the memory; the handler returns and the offset is committed.

A crash after 2 redelivers records the memory already knows by their offset: they are
skipped silently. A crash between 1 and 2 re-writes that batch to the canonical topics
(at-least-once); nothing is ever lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from charter_contracts import DeadLetter, Event, EventKind, RejectReason
from charter_ingest.api import document_event_schemas, events_router
from charter_ingest.dedup import ChangelogRecord, PartitionBatch, PartitionMemory, Verdict, fingerprint
from charter_ingest.domain import Admitted, Limits, Rejected, admit, dead_letter_payload
from charter_ingest.intake import ARRIVAL_HEADER, HttpIntake
from charter_ingest.metrics import IngestMetrics
from charter_ingest.ratelimit import RateLimiter
from charter_ingest.settings import IngestSettings
from charter_ingest.tokens import TokenRegistry
from charter_runtime.http import ServiceParts, build_app
from charter_runtime.kafka import (
    RecordBatch,
    TopicSpec,
    batch_subscriber,
    confirm_all,
    contract_topics,
    make_broker,
    raw_topics,
)

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord
    from faststream.kafka import KafkaBroker

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Networks' events in (Kafka raw topics, or POST /v1/events), validated against contract v1, "
    "de-duplicated, written to the canonical charter.* topics keyed by site_id; rejects go to "
    "charter.dead-letter with their reason."
)
_LOG_APPEND_TIME = 1


class BrokerSink:
    """The HTTPS path's writes, through the service's own producer (idempotent, acks=all)."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker

    async def publish(self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str] | None = None) -> Any:
        """The send's acknowledgement; a producer it finds out of sequence is replaced (see ``confirm_all``)."""
        sent = await self.broker.publish(value, topic, key=key, headers=headers, no_confirm=True)
        return asyncio.ensure_future(confirm_all([sent], self.broker))


class _Reassigned(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells ingest which raw partitions its consumer owns now."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Memories are kept until the new assignment is known: most partitions come back."""

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.ingest.assigned(assigned)


class Ingest:
    """Wires the admission core and the de-duplication memory to Kafka and HTTP."""

    def __init__(self, settings: IngestSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self.limits = settings.limits
        self.broker = make_broker(
            settings.kafka_bootstrap_servers, client_id="charter-ingest", auth=settings.kafka_auth
        )
        self.names = names = settings.topics
        self.canonical = {
            kind: self.broker.publisher(
                names.canonical(kind),
                title=names.canonical(kind),
                description=f"Validated, de-duplicated {kind.value} (UTC timestamps), keyed by site_id.",
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
        self.memories: dict[TopicPartition, PartitionMemory] = {}
        self._to_restore: set[TopicPartition] = set()
        self._generation = 0
        self._changelog_partitions: dict[str, int] = {}
        # One consumer for every raw topic: one member per instance in the group, so an
        # instance joins (and a rebalance settles) in one round rather than one per stream.
        batch_subscriber(
            self.broker,
            *(names.raw(network, kind) for network in settings.networks for kind in EventKind),
            group_id=names.group(settings.group_id),
            handler=self.on_raw_batch,
            payload=Event,
            title="raw.<network>.<stream>",
            description=(
                "Events as networks send them (contract v1), keyed by site_id, on one topic per network and stream: "
                "raw.<network>.counter-events (counter_opened, counter_closed), raw.<network>.call-records (call), "
                "raw.<network>.case-completions (case_completed)."
            ),
            listener=_Reassigned(self),
        )
        self.tokens = TokenRegistry(settings.tokens_path)
        self.limiter = RateLimiter(
            settings.rate_limit_events_per_second,
            capacity=max(float(settings.max_request_events), settings.rate_limit_events_per_second),
        )
        self.intake = HttpIntake(
            names, self.limits, BrokerSink(self.broker), self.metrics, settings.publish_timeout_seconds
        )
        self._parts: ServiceParts | None = None

    def changelog_topic(self, kind: EventKind) -> str:
        """Internal topic where the de-duplication memory of one stream is kept (Kafka Streams style)."""
        return self.names.group(f"{self.settings.group_id}-dedup-{kind.value}-changelog")

    # -- Kafka path -------------------------------------------------------------------------

    def assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """A new assignment: forget partitions now owned by others, restore the new ones lazily."""
        now = set(assigned)
        for tp in [tp for tp in self.memories if tp not in now]:
            del self.memories[tp]
        self._to_restore = {tp for tp in now if tp not in self.memories}
        self._generation += 1

    async def on_raw_batch(self, records: RecordBatch) -> None:
        """Admit each record of a batch; return only when every output is acknowledged."""
        await self._restore_pending()
        now = datetime.now(UTC)
        pending: list[Any] = []
        accepted: list[tuple[ConsumerRecord[bytes, bytes], str, str]] = []
        batches: dict[TopicPartition, PartitionBatch] = {}
        for record in records:
            source = self.names.parse_raw(record.topic)
            if source is None:  # not subscribed to such topics; defensive
                continue
            network, kind = source
            value = record.value or b""
            arrival = _timestamp(record) if record.timestamp_type == _LOG_APPEND_TIME else now
            outcome = admit(value, network, kind, arrival=arrival, limits=self.limits)
            if isinstance(outcome, Rejected):
                pending.append(await self._reject(outcome, network, record))
                continue
            event = outcome.event
            tp = TopicPartition(record.topic, record.partition)
            batch = batches.get(tp)
            if batch is None:
                batch = batches[tp] = self._memory(tp).batch()
            verdict = batch.judge(
                fingerprint(network, event.event_id), int(event.occurred_at.timestamp()), record.offset
            )
            if verdict is Verdict.NEW:
                pending.append(await self._accept(outcome, network))
                accepted.append((record, network, event.type))
            elif verdict is Verdict.REDELIVERED:
                log.debug("%s:%s@%s already written; skipped", record.topic, record.partition, record.offset)
            else:
                rejection = _rejection(verdict, event, record, batch.watermark, self.settings.dedup_horizon_days)
                pending.append(await self._reject(rejection, network, record))
        await confirm_all(pending, self.broker)
        written = datetime.now(UTC).timestamp()
        for record, network, event_type in accepted:
            self.metrics.accepted.labels(network, event_type).inc()
            self.metrics.latency.observe(max(0.0, written - _arrived(record)))
        await self._remember(batches)

    async def _accept(self, outcome: Admitted, network: str) -> Any:
        event = outcome.event
        return await self.canonical[event.kind].publish(
            event.model_dump_json().encode(), key=event.site_id.encode(), no_confirm=True
        )

    async def _reject(self, outcome: Rejected, network: str, record: Any) -> Any:
        self.metrics.rejected.labels(network, outcome.reason.value).inc()
        log.info("rejected %s:%s@%s: %s", record.topic, record.partition, record.offset, outcome.detail)
        return await self.dead_letter.publish(
            dead_letter(outcome, network, record, self.limits.max_event_bytes).model_dump_json().encode(),
            key=record.key,
            no_confirm=True,
        )

    async def _remember(self, batches: dict[TopicPartition, PartitionBatch]) -> None:
        """Persist the batch's new fingerprints, then apply them (see the module's docstring)."""
        writes = []
        for tp, batch in batches.items():
            entries = batch.entries
            if not entries or batch.watermark is None:
                continue
            kind = self.names.parse_raw(tp.topic)[1]  # type: ignore[index]
            topic = self.changelog_topic(kind)
            # known from the restore that precedes every partition's first batch on a real
            # broker; only the in-memory test broker (no rebalance, no restore) falls back
            partitions = self._changelog_partitions.get(topic, self.settings.kafka_partitions)
            writes.append(
                await self.broker.publish(
                    ChangelogRecord.of(tp.partition, batch.watermark, entries).encode(),
                    topic,
                    key=tp.topic.encode(),
                    partition=tp.partition % partitions,
                    no_confirm=True,
                )
            )
        await confirm_all(writes, self.broker)
        for batch in batches.values():
            batch.commit()

    def _memory(self, tp: TopicPartition) -> PartitionMemory:
        memory = self.memories.get(tp)
        if memory is None:  # no rebalance listener ran (the in-memory test broker): start empty
            memory = self.memories[tp] = PartitionMemory(self.settings.dedup_horizon)
        return memory

    async def _restore_pending(self) -> None:
        """Before judging the first batch after an assignment, rebuild the memories it needs."""
        while self._to_restore:
            generation = self._generation
            wanted: dict[EventKind, set[TopicPartition]] = {}
            for tp in self._to_restore:
                source = self.names.parse_raw(tp.topic)
                if source is not None:
                    wanted.setdefault(source[1], set()).add(tp)
            restored: dict[TopicPartition, PartitionMemory] = {}
            for kind, tps in wanted.items():
                restored.update(await self.restore(kind, tps))
            if generation == self._generation:  # else reassigned meanwhile: restore anew
                self.memories.update(restored)
                self._to_restore = set()

    async def restore(self, kind: EventKind, tps: set[TopicPartition]) -> dict[TopicPartition, PartitionMemory]:
        """Read the stream's changelog partitions that hold ``tps``, up to their current end."""
        topic = self.changelog_topic(kind)
        started = asyncio.get_running_loop().time()
        partitions = await self._changelog_partition_count(topic)
        sources = sorted({TopicPartition(topic, tp.partition % partitions) for tp in tps})
        found: dict[TopicPartition, list[ChangelogRecord]] = {tp: [] for tp in tps}
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="charter-ingest-restore",
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            **self.settings.kafka_auth.options(),
        )
        await consumer.start()
        try:
            consumer.assign(sources)
            ends = await consumer.end_offsets(sources)
            # no group, so every position starts at the earliest offset; waiting for it (rather
            # than seeking) avoids racing the consumer's own initial offset reset
            remaining = {tp for tp in sources if await consumer.position(tp) < ends[tp]}
            while remaining:
                fetched = await consumer.getmany(*remaining, timeout_ms=1000)
                for source, rows in fetched.items():
                    for row in rows:
                        if row.offset >= ends[source] or row.key is None or row.value is None:
                            continue
                        record = ChangelogRecord.decode(row.value)
                        unit = TopicPartition(row.key.decode(), record.partition)
                        if unit in found:
                            found[unit].append(record)
                for source in list(remaining):
                    if await consumer.position(source) >= ends[source]:
                        remaining.discard(source)
        finally:
            await consumer.stop()
        memories = {tp: PartitionMemory.restore(self.settings.dedup_horizon, rows) for tp, rows in found.items()}
        log.info(
            "restored de-duplication memory of %d partitions (%d events) from %s in %.2fs",
            len(memories),
            sum(len(m.index) for m in memories.values()),
            topic,
            asyncio.get_running_loop().time() - started,
        )
        return memories

    async def _changelog_partition_count(self, topic: str) -> int:
        count = self._changelog_partitions.get(topic)
        if count is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.settings.kafka_bootstrap_servers, **self.settings.kafka_auth.options()
            )
            await admin.start()
            try:
                described = await admin.describe_topics([topic])
            finally:
                await admin.close()
            count = len(described[0]["partitions"]) if described and described[0]["partitions"] else 0
            if count == 0:
                raise RuntimeError(f"changelog topic {topic} is missing")
            self._changelog_partitions[topic] = count
        return count

    # -- assembly ---------------------------------------------------------------------------

    def changelog_topics(self) -> list[TopicSpec]:
        """One per stream, as many partitions as the raw topics; kept twice the horizon (by write time)."""
        retention_ms = int(self.settings.dedup_horizon.total_seconds() * 2 * 1000)
        config = {
            "cleanup.policy": "delete",
            "retention.ms": str(retention_ms),
            "segment.ms": str(min(retention_ms // 4, 24 * 3600 * 1000)),
        }
        return [
            TopicSpec(self.changelog_topic(kind), self.settings.kafka_partitions, config=dict(config))
            for kind in EventKind
        ]

    def parts(self) -> ServiceParts:
        if self._parts is None:
            partitions = self.settings.kafka_partitions
            topics_needed = (
                contract_topics(self.names, partitions)
                + raw_topics(self.names, self.settings.networks, partitions)
                + self.changelog_topics()
            )
            self._parts = ServiceParts(
                name="ingest",
                description=DESCRIPTION,
                broker=self.broker,
                registry=self.registry,
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                kafka_auth=self.settings.kafka_auth,
                topics=topics_needed,
                lag_interval_seconds=self.settings.lag_interval_seconds,
            )
            self._parts.routers = [events_router(self.settings, self.intake, self.tokens, self.limiter, self._ready)]
        return self._parts

    def _ready(self) -> bool:
        return self._parts is not None and self._parts.ready

    def app(self) -> FastAPI:
        """The ASGI app: HTTP endpoints plus the broker's lifecycle."""
        application = build_app(self.parts())
        document_event_schemas(application)
        return application


def _timestamp(record: Any) -> datetime:
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)


def _arrived(record: Any) -> float:
    """When the event arrived (unix seconds): the HTTPS request, else the raw record's timestamp."""
    arrived = float(record.timestamp) / 1000
    for name, value in record.headers or ():
        if name == ARRIVAL_HEADER:
            try:
                return min(arrived, int(value) / 1000)
            except ValueError:
                break
    return float(arrived)


def _rejection(verdict: Verdict, event: Event, record: Any, watermark: int | None, horizon_days: float) -> Rejected:
    if verdict is Verdict.DUPLICATE:
        return Rejected(
            RejectReason.DUPLICATE,
            f"event_id: {event.event_id!r} was accepted before on {record.topic} partition {record.partition}",
        )
    newest = datetime.fromtimestamp(watermark or 0, UTC).isoformat()
    return Rejected(
        RejectReason.TOO_OLD,
        f"occurred_at: {event.occurred_at.isoformat()} is more than {horizon_days:g} days before the newest "
        f"event of its partition ({newest}), beyond the de-duplication horizon",
    )


def dead_letter(outcome: Rejected, network: str | None, record: Any, max_payload_bytes: int = 65_536) -> DeadLetter:
    """The dead letter of a rejected Kafka record (a too large payload keeps its first bytes)."""
    raw, truncated = dead_letter_payload(record.value or b"", Limits(max_event_bytes=max_payload_bytes))
    payload, encoding = DeadLetter.encode_payload(raw)
    return DeadLetter(
        reason=outcome.reason,
        detail=(outcome.detail[: 2000 - len(truncated)] + truncated),
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
    return Ingest(settings or IngestSettings()).app()
