"""The indicators' batching producer, shared by the two stages and the clock, on the real broker."""

from __future__ import annotations

import asyncio

import pytest

from charter_contracts.topics import TopicNames
from charter_indicators.kafka_io import BulkProducer
from charter_runtime.kafka import TopicSpec, ensure_topics
from tests.support.kafka import read_all

pytestmark = [pytest.mark.kafka]


async def test_tasks_sending_and_flushing_at_once_deliver_every_record_once(kafka: str, names: TopicNames) -> None:
    topic = f"{names.prefix}producer-shared"
    await ensure_topics(kafka, [TopicSpec(topic, 1)])
    sink = BulkProducer(kafka, client_id="test-shared")
    await sink.start()
    payload = b"x" * 60_000  # a batch holds about eight: batches fill while other tasks send and flush

    async def stage(name: str) -> None:
        for i in range(60):
            await sink.send(topic, name.encode(), f"{name}-{i:03d}-".encode() + payload, 0)
            if i % 7 == 0:
                await asyncio.sleep(0)

    async def clock() -> None:
        for _ in range(20):
            await sink.flush()
            await asyncio.sleep(0)

    try:
        await asyncio.gather(stage("sites"), stage("aggregation"), stage("dead-letters"), clock())
        await sink.flush()
        assert not sink.broken
    finally:
        await sink.stop()
    records = await read_all(kafka, topic)
    labels = [bytes(r.value or b"").split(b"-x", 1)[0] for r in records]
    assert len(records) == 180, "every record once: none lost, none shipped twice"
    assert len(set(labels)) == 180
    for name in ("sites", "aggregation", "dead-letters"):  # each task's records in the order it sent them
        mine = [r.value for r in records if r.key == name.encode()]
        assert [bytes(v or b"")[: len(name) + 4] for v in mine] == [f"{name}-{i:03d}".encode() for i in range(60)]
