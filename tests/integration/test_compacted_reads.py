"""Reading a compacted topic from its first record, on the real broker with its log cleaner.

Stage 2 rebuilds its scopes from the compacted ``<group>.partials`` on every assignment, and waited
for the record at the log's start offset before taking any in. Once the cleaner has removed the
first records (superseded by later ones of the same keys: within about twenty minutes of traffic),
that record never comes, and after a restart stage 2 never published again.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from charter_contracts.topics import TopicNames
from charter_indicators.kafka_io import first_offsets
from charter_runtime.kafka import TopicSpec, ensure_topics
from tests.support.kafka import produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
#: segments roll at once and the cleaner takes any of them (it wakes every 15 s, the broker's default)
QUICK_COMPACTION = {"segment.ms": "100", "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0"}


async def first_of(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    return (await first_offsets(consumer, await consumer.end_offsets([tp])))[tp]


async def test_the_first_offset_of_a_compacted_partition_is_that_of_its_first_record_left(
    kafka: str, names: TopicNames
) -> None:
    topic = f"{names.prefix}compacted"
    await ensure_topics(kafka, [TopicSpec(topic, 1, compacted=True, config=QUICK_COMPACTION)])
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        assert await first_of(consumer, tp) == 0  # empty: its end
        deadline = time.monotonic() + 120
        n = 0
        while True:  # the same keys again and again, each write rolling a segment: the cleaner has work
            await produce(kafka, topic, [(f"scope-{n % 3}".encode(), f"{n}".encode())])
            n += 1
            first = await first_of(consumer, tp)
            if first > 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert first > 0, "the cleaner removed nothing in 120 s"
        assert (await consumer.beginning_offsets([tp]))[tp] == 0  # the log still starts at 0
        consumer.seek(tp, 0)
        batch = await consumer.getmany(tp, timeout_ms=5000)
        after = await first_of(consumer, tp)  # the cleaner may have run again meanwhile
        assert first <= batch[tp][0].offset <= after  # what a reader from the start gets first
    finally:
        await consumer.stop()
