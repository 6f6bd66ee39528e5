"""A service's producer found out of sequence with the broker is replaced, on the real broker.

After sends failed during a broker outage, an idempotent producer's sequence numbers no longer
match the broker's: every later send to that partition fails with OutOfOrderSequenceNumber. Ingest
once stayed so after the 30 s outage of ``tests/e2e/test_faults.py``: its batch failed, was read
again and failed again, writing the call records that did go through anew at each round (200,000
copies in two minutes), and the partition's other streams never moved on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber
from faststream.kafka import KafkaBroker

from charter_contracts.topics import TopicNames
from charter_runtime.kafka import TopicSpec, confirm_all, ensure_topics, make_broker
from tests.support.kafka import read_all

pytestmark = [pytest.mark.kafka]


def producer_id(broker: KafkaBroker) -> Any:
    """The idempotent producer's id, which the broker's sequence numbers are kept under."""
    fast: Any = broker.config.broker_config.producer  # FastStream's wrapper, its aiokafka producer inside
    return fast._producer.producer._txn_manager.producer_id


async def test_an_acknowledgement_failing_out_of_sequence_replaces_the_producer_and_sends_go_through_again(
    kafka: str, names: TopicNames
) -> None:
    topic = f"{names.prefix}renewal"
    await ensure_topics(kafka, [TopicSpec(topic, 1)])
    broker = make_broker(kafka, client_id="test-renewal")
    await broker.connect()
    try:
        await confirm_all([await broker.publish(b"before", topic, no_confirm=True)], broker)
        before = producer_id(broker)
        failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failed.set_exception(OutOfOrderSequenceNumber())
        with pytest.raises(OutOfOrderSequenceNumber):  # raised, for the batch to be read again
            await asyncio.wait_for(confirm_all([failed], broker), 30)
        assert producer_id(broker) not in (before, -1)  # a new producer, with a producer id of its own
        await confirm_all([await broker.publish(b"after", topic, no_confirm=True)], broker)
    finally:
        await broker.stop()
    assert [r.value for r in await read_all(kafka, topic)] == [b"before", b"after"]
