"""Consumer lag of a service, exported as ``charter_kafka_consumer_lag_messages{service,topic}``.

Lag is what operators watch first: how many messages a service still has to process.
It is sampled in the background, cheaply: every ``interval`` seconds one ListOffsets
request per consumer (the end offsets of the partitions assigned to it), compared with
the consumer's own position (the next record it hands to the handler). Each instance
reports the partitions it owns, summed per topic; Prometheus sums the instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger(__name__)

LAG_METRIC = "charter_kafka_consumer_lag_messages"


class ConsumerLag:
    """Samples the lag of the consumers of one service into a gauge."""

    def __init__(self, service: str, registry: CollectorRegistry, interval: float = 15.0) -> None:
        self.service = service
        self.interval = interval
        self.gauge = Gauge(
            LAG_METRIC,
            "Messages on the topic not yet processed by this service's consumer group (summed over partitions).",
            ["service", "topic"],
            registry=registry,
        )
        self._subscribers: list[object] = []
        self._topics: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def watch(self, subscriber: object) -> None:
        """Report the lag of this FastStream Kafka subscriber's consumer (``.consumer``, set while it runs)."""
        self._subscribers.append(subscriber)

    async def sample(self) -> dict[str, int]:
        """Measure once and update the gauge; returns topic -> lag (for tests and logs)."""
        lag: dict[str, int] = defaultdict(int)
        for subscriber in self._subscribers:
            consumer: Any = getattr(subscriber, "consumer", None)
            if consumer is None:
                continue
            assigned = list(consumer.assignment())
            if not assigned:
                continue
            ends = await consumer.end_offsets(assigned)
            for tp in assigned:
                try:
                    async with asyncio.timeout(2.0):  # not wait_for: on 3.11 it can swallow a cancellation
                        position = await consumer.position(tp)
                except (TimeoutError, KafkaError):  # no position yet (just assigned) or being revoked
                    continue
                lag[tp.topic] += max(0, ends.get(tp, position) - position)
        for topic in self._topics - set(lag):
            with contextlib.suppress(KeyError):
                self.gauge.remove(self.service, topic)
        for topic, value in lag.items():
            self.gauge.labels(self.service, topic).set(value)
        self._topics = set(lag)
        return dict(lag)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sample()
            except Exception as exc:  # a metrics sampler must never stop the service
                log.debug("consumer lag not sampled: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._stopping.wait()

    async def start(self) -> None:
        """Start sampling in the background (an ``on_started`` hook of ``build_app``)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name=f"{self.service}-consumer-lag")

    async def stop(self) -> None:
        """Stop sampling (an ``on_stopping`` hook); never blocks the service's shutdown for long."""
        if self._task is not None:
            self._stopping.set()
            _, running = await asyncio.wait({self._task}, timeout=5.0)
            for task in running:  # stuck in a Kafka call: cancel it
                task.cancel()
            self._task = None
