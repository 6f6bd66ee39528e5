"""Entry point of indicators: canonical events and the site registry in; snapshots, gauges and an API out.

Wiring only: the subscribers hand records to the service layer (``service.py``), the
rebalance listeners restore and save partition state, and a clock task lets time pass,
publishes and checkpoints. The arithmetic is in ``domain/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from faststream import AckPolicy
from prometheus_client import CollectorRegistry

from charter_contracts import DeadLetter, Event, IndicatorSnapshot, Site
from charter_contracts.topics import EventKind
from charter_indicators.api import indicators_router
from charter_indicators.domain.partition import IndicatorConfig
from charter_indicators.kafka_io import BulkProducer, CheckpointStore, first_offsets, read_to_end
from charter_indicators.metrics import IndicatorMetrics
from charter_indicators.pacing import FlushPacer
from charter_indicators.procedures import load_rules
from charter_indicators.readmodel import LatestReader, LatestSnapshots
from charter_indicators.service import Aggregation, SiteStreams, Topics
from charter_indicators.settings import IndicatorsSettings
from charter_runtime.http import ServiceParts, build_app
from charter_runtime.kafka import TopicSpec, batch_subscriber, contract_topics, make_broker

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Charter indicators computed live from the canonical events, in event time: opening rate, "
    "pickup rate and deadline compliance per site, department, network and nationally."
)
#: Internal compacted topics: small segments so that compaction keeps them small.
_COMPACTED = {"segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1", "delete.retention.ms": "600000"}


def internal_topics(settings: IndicatorsSettings) -> Topics:
    names = settings.topics
    group = names.group(settings.group_id)
    return Topics(
        counters=names.canonical(EventKind.COUNTER_EVENTS),
        calls=names.canonical(EventKind.CALL_RECORDS),
        cases=names.canonical(EventKind.CASE_COMPLETIONS),
        sites=names.sites,
        dead_letter=names.dead_letter,
        indicators=names.indicators,
        latest=f"{group}.latest",
        partials=f"{group}.partials",
        state=f"{group}.state",
    )


#: The longest wait between two flushes, however costly the last one was (seconds).
MAX_FLUSH_PAUSE = 30.0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        assigned: Callable[[set[TopicPartition]], Awaitable[None]],
        revoked: Callable[[set[TopicPartition]], Awaitable[None]],
    ) -> None:
        self._assigned = assigned
        self._revoked = revoked

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._assigned(assigned)


class Indicators:
    """Wires the indicator stages to Kafka, Prometheus and HTTP."""

    def __init__(
        self,
        settings: IndicatorsSettings,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = IndicatorMetrics(self.registry)
        self.config = IndicatorConfig(
            grace=settings.grace_seconds,
            stale_after=settings.stale_after_seconds,
            short_abandon=settings.short_abandon_seconds,
            service_level=settings.service_level_seconds,
            max_call=settings.max_call_seconds,
            rules=load_rules(settings.procedures_file),
        )
        self.topics = topics = internal_topics(settings)
        bootstrap = settings.kafka_bootstrap_servers
        auth = settings.kafka_auth
        self.sink = BulkProducer(bootstrap, client_id="charter-indicators", auth=auth)
        self.store = CheckpointStore(bootstrap, topics.state, self.sink)
        self.sites = SiteStreams(
            self.config,
            topics,
            self.sink,
            self.store,
            self._read_sites,
            self.metrics,
            self._highwater,
            idle_seconds=settings.idle_seconds,
            site_snapshot_seconds=settings.site_snapshot_seconds,
            max_flush_gap=settings.max_flush_gap_seconds,
            clock=clock,
        )
        self.aggregation = Aggregation(topics, self.sink, self.metrics)
        self.model = LatestSnapshots()
        self.reader = LatestReader(bootstrap, topics.latest, self.model, self.sink.partitions, auth)
        self.broker = make_broker(bootstrap, client_id="charter-indicators", auth=auth)
        self._document_outputs()
        group = settings.topics.group(settings.group_id)
        self.site_subscriber = batch_subscriber(
            self.broker,
            *topics.canonical,
            topics.sites,
            group_id=group,
            handler=self.on_events,
            payload=Event | Site,
            max_records=settings.max_records,
            ack_policy=AckPolicy.MANUAL,
            listener=_Listener(self._sites_assigned, self._sites_revoked),
            partition_assignment_strategy=(RangePartitionAssignor,),
            title="charter.* (canonical events and site registry)",
            description="Canonical events and charter.sites, co-partitioned by site_id; offsets are "
            "committed once the partition state covering them is saved.",
        )
        self.partials_subscriber = batch_subscriber(
            self.broker,
            topics.partials,
            group_id=f"{group}.aggregate",
            handler=self.on_partials,
            payload=dict[str, Any],
            max_records=settings.max_records,
            listener=_Listener(self._partials_assigned, self._partials_revoked),
            title=topics.partials,
            description="Internal: per-partition partial sums of each scope, summed into the scope's figures.",
        )
        self._producer_started = False
        self._producer_lock = asyncio.Lock()
        self._clock_task: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._flush_now = asyncio.Event()
        self._flushed = asyncio.Event()
        self._pacer = FlushPacer(settings.flush_seconds, max_pause=MAX_FLUSH_PAUSE)
        self._closing = False
        self._unrestored: set[int] = set()

    def _document_outputs(self) -> None:
        names = self.settings.topics
        self.broker.publisher(
            names.indicators,
            title=names.indicators,
            description="Indicator snapshots (contract v1), keyed by scope.",
            schema=IndicatorSnapshot,
        )
        self.broker.publisher(
            names.dead_letter,
            title=names.dead_letter,
            description="Events not counted: late (beyond the grace period) or for a site not in the registry.",
            schema=DeadLetter,
        )

    async def _start_producer(self) -> None:
        async with self._producer_lock:
            if not self.sink.running:  # not yet, or dropped after a failed flush
                await self.sink.start()
                self._producer_started = True

    def _highwater(self, topic: str, partition: int) -> int | None:
        consumer = self.site_subscriber.consumer
        if consumer is None:
            return None
        end: int | None = consumer.highwater(TopicPartition(topic, partition))
        return end

    async def _read_sites(self, partition: int) -> tuple[list[Any], int]:
        tp = TopicPartition(self.topics.sites, partition)
        records, ends = await read_to_end(self.settings.kafka_bootstrap_servers, [tp], auth=self.settings.kafka_auth)
        return records, ends[tp]

    # -- stage 1 ----------------------------------------------------------------------

    async def on_events(self, records: Any) -> None:
        """Canonical events and registry records of the partitions this instance owns."""
        if self._closing:
            return
        try:
            await self.sites.handle(records)
            if self.sites.behind():
                # backpressure: the next batch waits for the flush (a consumer with prefetched records
                # never yields to the clock otherwise); bounded, should the clock be stuck elsewhere
                self._flushed.clear()
                self._flush_now.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flushed.wait(), MAX_FLUSH_PAUSE)
            elif self.sites.minute_closed():
                # live (read up to date), a minute closed: its figures go out now. The pacing protects a
                # backlog's throughput; with nothing to read there is nothing to protect
                self._flush_now.set()
        except Exception:
            log.exception("failed to process a batch; restoring the partitions from their checkpoints")
            await self._recover()

    async def _sites_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._closing:
            return
        await self._start_producer()
        partitions = {tp.partition for tp in assigned if tp.topic == self.topics.calls}
        state_partitions = await self.sink.partitions(self.topics.state)
        missing = sorted(p for p in partitions if p not in state_partitions)
        if missing:
            raise RuntimeError(
                f"{self.topics.state} has no partition {missing}: it must have as many partitions as "
                f"{self.topics.calls}"
            )
        seeks = await self.sites.assign(partitions)
        await self._seek(seeks, assigned)

    async def _seek(self, seeks: dict[tuple[str, int], int | None], assigned: Iterable[TopicPartition]) -> None:
        consumer = self.site_subscriber.consumer
        owned = set(assigned)
        wanted = {TopicPartition(topic, p): offset for (topic, p), offset in seeks.items()}
        wanted = {tp: offset for tp, offset in wanted.items() if tp in owned}
        # Where no checkpoint says, start at the log start (a broker request). Not
        # seek_to_beginning(): inside a rebalance callback it waits for the fetcher, which
        # does not run until the callback returns.
        fresh = [tp for tp, offset in wanted.items() if offset is None]
        starts = await consumer.beginning_offsets(fresh) if fresh else {}
        for tp, offset in wanted.items():
            position = offset if offset is not None else starts[tp]
            consumer.seek(tp, position)
            self.sites.start_at(tp.topic, tp.partition, position)

    async def _sites_revoked(self, revoked: set[TopicPartition]) -> None:
        if self._closing:
            return
        partitions = {tp.partition for tp in revoked if tp.topic == self.topics.calls}
        self._unrestored -= partitions
        await self._commit(await self.sites.revoke(partitions))

    async def _recover(self) -> None:
        """Reload the owned partitions from their checkpoints and rewind the consumer to them.

        A partition dropped here stays owed (``_unrestored``) until a reload succeeds: with the
        broker down the reload fails, and the clock retries it until the broker is back.
        """
        if self.sink.broken or not self.sink.running:
            # a failed idempotent producer refuses every later send: a new one, and what the
            # old one had queued is published again (stage 1 replays from its checkpoints)
            log.warning("the producer failed: reconnecting; the partitions replay from their checkpoints")
            await self.sink.stop_quietly()
            await self._start_producer()
            await self.aggregation.republish()
        consumer = self.site_subscriber.consumer
        if consumer is None:
            return
        assigned = {tp.partition for tp in consumer.assignment() if tp.topic == self.topics.calls}
        owned = (set(self.sites.partitions) | self._unrestored) & assigned
        async with self.sites.lock:
            for p in owned:
                self.sites.partitions.pop(p, None)
        self._unrestored = owned
        await self._seek(await self.sites.assign(owned), consumer.assignment())
        if owned:
            log.info("partitions %s restored from their checkpoints", sorted(owned))
        self._unrestored = set()

    async def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        consumer = self.site_subscriber.consumer
        if not offsets or consumer is None:
            return
        try:
            await consumer.commit({TopicPartition(topic, p): offset for (topic, p), offset in offsets.items()})
        except (KafkaError, AssertionError) as exc:  # a rebalance took the partitions meanwhile
            log.info("offsets not committed (%s); the saved state keeps them", exc)

    # -- stage 2 ----------------------------------------------------------------------

    async def on_partials(self, records: Any) -> None:
        """Partial sums of the scopes this instance aggregates."""
        if self._closing:
            return
        if await self.aggregation.handle(records):
            # every source reached a later minute: publish now rather than at the clock's next tick
            # (which waits for the next flush of stage 1: one more flush cycle of latency)
            await self.aggregation.tick()
        self._refresh_when_due()

    def _refresh_when_due(self) -> None:
        """Scopes left waiting (a revision, the sums of sources ahead of a closing minute) go out when
        due, on a timer of stage 2's own: the clock's pacing can hold its next tick back for up to
        ``MAX_FLUSH_PAUSE`` after a backlog, and a source whose streams went quiet never closes the minute."""
        if self._closing or (self._refresh is not None and not self._refresh.done()):
            return  # one timer at a time: the scopes' scan in ``due_in`` is not done for every batch
        delay = self.aggregation.due_in()
        if delay is None:
            return
        self._refresh = asyncio.create_task(self._refresh_after(delay), name="indicators-stage2-refresh")

    async def _refresh_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._closing:
            return
        try:
            await self.aggregation.tick()
        except Exception:  # the producer failed: the clock's next flush reconnects and publishes again
            log.exception("stage 2 could not publish the scopes due; the next flush tries again")
            return
        self._refresh = None
        self._refresh_when_due()  # more came while it ticked

    async def _partials_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._closing or not assigned:
            return
        # the group can be assigned before the service's start-up hook has run: the aggregation
        # reads its checkpoints through the producer's metadata, so start it here too
        await self._start_producer()
        consumer = self.partials_subscriber.consumer
        tps = sorted(assigned, key=lambda tp: tp.partition)
        ends = await consumer.end_offsets(tps)
        starts = await first_offsets(consumer, ends)  # not the log's start: compaction cleans it away
        # the scopes first, then the seek: a batch read meanwhile (from where the consumer stood) is
        # left out; handled into the old scopes and then replaced, it used to lose the records from the
        # start it held (a closed hour of one source missing from a department's sum after a restart)
        await self.aggregation.assign({tp.partition: ends[tp] for tp in tps}, {tp.partition: starts[tp] for tp in tps})
        for tp in tps:
            consumer.seek(tp, starts[tp])  # compacted: the scopes are rebuilt from the start

    async def _partials_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.aggregation.revoke({tp.partition for tp in revoked})

    # -- the clock --------------------------------------------------------------------

    async def _run_clock(self) -> None:
        settings = self.settings
        next_checkpoint = time.monotonic() + settings.checkpoint_seconds
        pause = settings.flush_seconds
        while True:
            # the pause ends early when event time ran far ahead of the last flush (``behind``) or, live,
            # when a minute closed (``minute_closed``)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), pause)
            self._flush_now.clear()
            try:
                await self._start_producer()
                if self._unrestored:  # a reload failed (the broker was away): try again
                    await self._recover()
                started = time.process_time()
                await self.sites.tick()
                self._flushed.set()
                await self.aggregation.tick()
                # flushes get a fifth of the time: live at once, in a replay spaced out (see pacing.py)
                pause = self._pacer.after_flush(time.process_time() - started, time.monotonic())
                if time.monotonic() >= next_checkpoint:
                    await self._commit(await self.sites.checkpoint())
                    next_checkpoint = time.monotonic() + settings.checkpoint_seconds
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("publishing failed; restoring the partitions from their checkpoints")
                await asyncio.sleep(1)
                with contextlib.suppress(Exception):
                    await self._recover()

    async def _started(self) -> None:
        await self._start_producer()
        await self.reader.start()
        self._clock_task = asyncio.create_task(self._run_clock(), name="indicators-clock")

    async def _stopping(self) -> None:
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
        self._closing = True
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        self._flushed.set()  # a batch waiting for the clock's flush goes on: no clock any more
        if self._producer_started:
            with contextlib.suppress(Exception):
                await self._commit(await self.sites.checkpoint())
        await self.reader.stop()
        if self._producer_started:
            await self.sink.stop()

    def parts(self) -> ServiceParts:
        partitions = self.settings.kafka_partitions
        compacted = dict(_COMPACTED)
        topics = [
            *contract_topics(self.settings.topics, partitions),
            TopicSpec(self.topics.state, partitions, compacted=True, config=compacted),
            TopicSpec(self.topics.partials, partitions, compacted=True, config=compacted),
            TopicSpec(self.topics.latest, partitions, compacted=True, config=compacted),
        ]
        return ServiceParts(
            name="indicators",
            description=DESCRIPTION,
            broker=self.broker,
            registry=self.registry,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            kafka_auth=self.settings.kafka_auth,
            topics=topics,
            routers=[indicators_router(self.model)],
            on_started=[self._started],
            on_stopping=[self._stopping],
            lag_interval_seconds=self.settings.lag_interval_seconds,
            exposition=self.metrics.scope_exposition,
        )


def create_app(settings: IndicatorsSettings | None = None) -> FastAPI:
    """The indicators service as an ASGI app."""
    return build_app(Indicators(settings or IndicatorsSettings()).parts())
