"""The indicators' batching producer under concurrent senders: every record shipped once, in one batch only.

The clock's flush and the event handler's dead letters send through the same producer. A full
batch used to stay queued while it was being shipped, so a second sender saw it full too and
shipped it again: aiokafka then failed every later send ("'BatchBuilder' object has no attribute
'_builder'") and the service restored from its checkpoints over and over during fast replays.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from charter_indicators.kafka_io import BulkProducer, UndeliveredError


class FakeBatch:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[bytes] = []
        self.closed = False

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: None) -> object | None:
        if self.closed or len(self.records) >= self.capacity:
            return None
        self.records.append(value or b"")
        return object()

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """Ships slowly (an await in send_batch, as aiokafka waits for room in its queue)."""

    def __init__(self) -> None:
        self.shipped: list[FakeBatch] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch(capacity=3)

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> asyncio.Future[Any]:
        await asyncio.sleep(0.001)
        self.shipped.append(batch)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_concurrent_senders_ship_each_batch_once_and_every_record() -> None:
    producer = BulkProducer("unused:9092", client_id="test")
    fake = FakeProducer()
    producer._started = fake

    async def sender(name: str) -> None:
        for i in range(50):
            await producer.send("topic", b"k", f"{name}-{i}".encode(), partition=0)

    await asyncio.gather(sender("flush"), sender("dead-letter"), sender("checkpoint"))
    await producer.flush()

    assert len({id(batch) for batch in fake.shipped}) == len(fake.shipped)
    shipped = [record for batch in fake.shipped for record in batch.records]
    assert sorted(shipped) == sorted(
        f"{name}-{i}".encode() for name in ("flush", "dead-letter", "checkpoint") for i in range(50)
    )
    assert producer.records == 150


class StuckProducer(FakeProducer):
    """Never gets room for a batch (a broker that stopped answering)."""

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> asyncio.Future[Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def stop(self) -> None:
        return None


async def test_a_flush_cancelled_mid_send_fails_the_next_flush_with_an_error_of_its_own() -> None:
    """At shutdown the clock is cancelled in the middle of a flush, then the state is saved: that
    save's flush must fail (the records may not have left, so no checkpoint over them) with an
    ordinary error the shutdown handles, not with the clock's CancelledError (which made the
    service's shutdown fail)."""
    producer = BulkProducer("unused:9092", client_id="test")
    producer._started = StuckProducer()
    await producer.send("topic", b"k", b"v", partition=0)
    clock = asyncio.create_task(producer.flush())
    await asyncio.sleep(0.01)
    clock.cancel()
    with pytest.raises(asyncio.CancelledError):
        await clock

    with pytest.raises(UndeliveredError):
        await producer.flush()
    assert not producer.running  # dropped: the next start gets a new producer id
