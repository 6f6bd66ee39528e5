"""Kafka adapters of indicators: a batching producer, the checkpoint store, reading a partition.

The service publishes many small records per flush (snapshots, partial sums): sending
them through the framework's per-message publish costs ~60 µs each on this machine,
aiokafka's record batches ~8 µs. The producer is idempotent with ``acks=all`` like every
producer of the product, and ``flush`` returns only once Kafka acknowledged everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from charter_runtime.kafka import NO_AUTH, KafkaAuth

log = logging.getLogger(__name__)

#: Checkpoint chunks stay below Kafka's default 1 MiB record limit.
CHUNK_BYTES = 900_000


class UndeliveredError(RuntimeError):
    """Records were queued but their sending was interrupted: they may not have reached Kafka."""


class BulkProducer:
    """Queues records per topic-partition in record batches; ``flush`` sends them and awaits the acks."""

    def __init__(self, bootstrap_servers: str, client_id: str, auth: KafkaAuth = NO_AUTH) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.auth = auth
        self._started: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._keys: dict[tuple[str, bytes], int] = {}  # murmur2 in Python costs more than the send
        self._batches: dict[tuple[str, int], Any] = {}
        self._sent: list[asyncio.Future[Any]] = []
        self.records = 0
        #: A send or a delivery failed since the last start: what is queued may be lost.
        self.broken = False
        # One queue per topic-partition: batches enter the producer in the order they were
        # closed (compacted topics keep the last record of a key: order matters).
        self._slot_locks: dict[tuple[str, int], asyncio.Lock] = {}

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._started is None:
            raise RuntimeError("BulkProducer used before start()")
        return self._started

    async def start(self) -> None:
        """Connect (the client must be created inside the running event loop)."""
        if self._started is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_batch_size=512 * 1024,
            max_request_size=4 * 1024 * 1024,
            **self.auth.options(),
        )
        await producer.start()
        self._started = producer
        self.broken = False

    async def stop(self) -> None:
        if self._started is not None:
            await self._started.stop()
            self._started = None

    async def partitions(self, topic: str) -> list[int]:
        """Partition numbers of a topic (cached)."""
        known = self._partitions.get(topic)
        if known is None:
            known = sorted(await self._producer.partitions_for(topic))
            self._partitions[topic] = known
        return known

    def partition_for(self, topic: str, key: bytes) -> int:
        """The partition Kafka's default partitioner gives ``key`` (the topic's partitions must be known)."""
        slot = (topic, key)
        cached = self._keys.get(slot)
        if cached is None:
            if len(self._keys) > 500_000:
                self._keys.clear()
            partitions = self._partitions[topic]
            cached = self._keys[slot] = self._partitioner(key, partitions, partitions)
        return cached

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        """Queue one record (``value`` None is a tombstone).

        Several tasks share the producer (the two stages, the clock): a full batch leaves
        ``_batches`` before the await that ships it, so no other task ships it a second
        time or appends to it, and the next batch of the slot is whatever is there after.
        """
        if partition is None:
            if topic not in self._partitions:
                await self.partitions(topic)
            partition = self.partition_for(topic, key or b"")
        slot = (topic, partition)
        while True:
            batch = self._batches.get(slot)
            fresh = batch is None
            if batch is None:
                batch = self._batches[slot] = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is not None:
                break
            if fresh:
                raise ValueError(f"record of {len(value or b'')} bytes does not fit in a batch for {topic}")
            del self._batches[slot]
            await self._ship(slot, batch)
        self.records += 1

    async def _ship(self, slot: tuple[str, int], batch: Any) -> None:
        # Registered before the await: a flush running meanwhile waits for this batch too.
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sent.append(acked)
        batch.close()
        lock = self._slot_locks.get(slot)
        if lock is None:
            lock = self._slot_locks[slot] = asyncio.Lock()
        try:
            async with lock:
                delivery = await self._producer.send_batch(batch, slot[0], partition=slot[1])
        except BaseException as exc:
            self.broken = True
            # the batch may not have left: the next flush fails (no state is saved over outputs not known
            # to be delivered), with an error of its own rather than the cancellation of the task that sent
            # it (a shutdown cancelling the clock mid-send failed on that CancelledError when saving state)
            acked.set_exception(exc if isinstance(exc, Exception) else UndeliveredError(f"sending to {slot} stopped"))
            raise
        delivery.add_done_callback(lambda done: self._settle(acked, done))

    def _settle(self, acked: asyncio.Future[None], delivery: asyncio.Future[Any]) -> None:
        if acked.done():
            return
        if delivery.cancelled():
            acked.cancel()
        elif (error := delivery.exception()) is not None:
            self.broken = True
            acked.set_exception(error)
        else:
            acked.set_result(None)

    async def flush(self) -> None:
        """Send everything queued and wait until Kafka acknowledged all of it.

        On failure the producer is dropped (``running`` turns False) and must be started again:
        after batches failed, as during a broker outage, an idempotent producer's sequence
        numbers no longer match the broker's (OutOfOrderSequenceNumber on every later send);
        a new producer gets a new producer id. The caller republishes from its checkpoints.
        """
        try:
            batches, self._batches = self._batches, {}
            for slot, batch in batches.items():
                await self._ship(slot, batch)
            sent, self._sent = self._sent, []
            if sent:
                results = await asyncio.gather(*sent, return_exceptions=True)
                failed = [r for r in results if isinstance(r, BaseException)]
                if failed:
                    raise failed[0]
        except Exception:
            await self.stop_quietly()
            raise

    @property
    def running(self) -> bool:
        """False before ``start`` and after a failed flush."""
        return self._started is not None

    async def stop_quietly(self) -> None:
        """Drop the producer whatever state it is in (its pending sends are abandoned)."""
        producer, self._started = self._started, None
        for pending in self._sent:
            if not pending.done():
                pending.cancel()
        self._batches, self._sent = {}, []
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 10)
            except Exception as exc:  # the broker may be away: the client is dropped anyway
                log.info("stopping a failed producer: %s", exc)


async def first_offsets(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The offset of each partition's first record, given their end offsets (the end when it holds none).

    On a compacted topic this is past the log's start offset (``beginning_offsets``) once the
    cleaner removed the first records: a reader that waits for the start offset itself to come
    back waits for ever. Kafka's lookup by timestamp finds the first record that is there.
    """
    found = await consumer.offsets_for_times(dict.fromkeys(ends, 0))
    return {tp: end if found.get(tp) is None else found[tp].offset for tp, end in ends.items()}


async def read_to_end(
    bootstrap_servers: str,
    partitions: Iterable[TopicPartition],
    timeout: float = 120.0,
    auth: KafkaAuth = NO_AUTH,
) -> tuple[list[Any], dict[TopicPartition, int]]:
    """Every record of some partitions, from the beginning to their end offset at call time."""
    wanted = list(partitions)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        **auth.options(),
    )
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(wanted)
        remaining = {tp for tp in wanted if ends[tp] > 0}
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {sorted(map(str, remaining))} took more than {timeout}s")
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, items in batch.items():
                records.extend(r for r in items if r.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return records, ends


@dataclass
class Checkpoint:
    """The state of one partition and the input offsets it covers."""

    generation: int
    document: dict[str, Any]


class CheckpointStore:
    """Partition checkpoints on the compacted ``<group>.state`` topic, partition for partition.

    A checkpoint is written as chunks under keys of its own generation, then a head record
    naming the generation; only then are the previous generation's chunks deleted
    (tombstones). A reader takes the latest head and its chunks: a crash while writing
    leaves the previous checkpoint whole.
    """

    def __init__(self, bootstrap_servers: str, topic: str, producer: BulkProducer) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.producer = producer
        #: Chunk keys name their writer too: two instances can never mix their chunks.
        self.writer = uuid.uuid4().hex[:12]
        self._previous: dict[int, list[bytes]] = {}

    @staticmethod
    def _chunk_key(partition: int, generation: int, writer: str, index: int) -> bytes:
        return f"{partition}|{generation}|{writer}|{index}".encode()

    async def load(self, partition: int) -> Checkpoint | None:
        records, _ = await read_to_end(
            self.bootstrap_servers, [TopicPartition(self.topic, partition)], auth=self.producer.auth
        )
        head: dict[str, Any] | None = None
        chunks: dict[bytes, bytes | None] = {}
        prefix = f"{partition}|".encode()
        for record in records:
            key = record.key or b""
            if not key.startswith(prefix):
                continue
            if key == prefix + b"head":
                head = orjson.loads(record.value) if record.value else None
            else:
                chunks[key] = record.value
        if head is None:
            return None
        generation, count, writer = int(head["generation"]), int(head["chunks"]), str(head["writer"])
        keys = [self._chunk_key(partition, generation, writer, i) for i in range(count)]
        parts = [chunks.get(key) for key in keys]
        if any(part is None for part in parts):
            log.error("checkpoint of partition %s generation %s is incomplete; starting over", partition, generation)
            return None
        self._previous[partition] = keys
        document: dict[str, Any] = orjson.loads(b"".join(p for p in parts if p is not None))
        return Checkpoint(generation, document)

    async def save(self, partition: int, generation: int, document: bytes) -> None:
        """Write a checkpoint and wait for Kafka's acknowledgement; then drop the previous one."""
        chunks = [document[i : i + CHUNK_BYTES] for i in range(0, len(document), CHUNK_BYTES)] or [b""]
        keys = [self._chunk_key(partition, generation, self.writer, i) for i in range(len(chunks))]
        for key, chunk in zip(keys, chunks, strict=True):
            await self.producer.send(self.topic, key, chunk, partition)
        await self.producer.flush()
        head = {"generation": generation, "chunks": len(chunks), "writer": self.writer, "saved_at": time.time()}
        await self.producer.send(self.topic, f"{partition}|head".encode(), orjson.dumps(head), partition)
        await self.producer.flush()
        for key in self._previous.get(partition, []):
            await self.producer.send(self.topic, key, None, partition)
        self._previous[partition] = keys
