"""Records per second a batch consumer reads from the real broker: aiokafka alone, ``batch_subscriber``
(FastStream's batch subscriber and its batch parser), and the same with a parser that passes
aiokafka's records through.

Run: PYTHONPATH=. .venv/bin/python -m benchmarks.batch_consumption [--events 400000] [--repeat 3]

A LocalKafka of its own (``benchmarks.harness.broker``), the seeded workload loaded on the
canonical topics (``benchmarks.indicators.load``: 3 partitions, the site registry included;
then the same records again, each with the two headers FastStream's publisher adds, as ingest
writes them); each variant reads every record of the four topics the indicators read, from
the start, in a consumer group of its own, and only counts them, committing after each batch
as the services' at-least-once subscribers do. Timed from the first batch to the last record;
the best of ``--repeat`` runs, the variants taking turns. Prints figures; judges nothing.

Where FastStream's per-record cost goes (faststream 0.7.8): ``BatchSubscriber.get_msg`` joins
the partitions' lists into one tuple (C, negligible); ``AioKafkaBatchParser.parse_batch`` then
builds, for every record, a dict of its headers with each value decoded, and a list of the
values: that is the per-record work, plus the garbage collections its allocations bring. Its
default decoder would build a message per record and decode each body as JSON, but the
services' decoder hands the records over untouched (``_undecoded``). The rest of a batch's
path (context, middlewares, the ack policy's commit or rewind) costs the same whatever the
batch's size. The pass-through parser removes the per-record work: 1.04x to 1.24x over
``batch_subscriber`` in five runs on a 2-core machine (400,000 events: about 1.2x in batches of
10,000, the indicators' size, and 1.05x in batches of 1,000, where the commit after each batch
dominates), under the 1.3x that would justify carrying it in ``batch_subscriber``, so it lives
here only. What still separates FastStream from aiokafka alone (1.5x in batches of 10,000) is
not per-record work of FastStream's: its path costs about 0.2 ms a batch, but aiokafka's own
``getmany`` took longer under FastStream's consume loop, in garbage collection (with the
collector off, the three variants came within 1.2x of one another).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.message import FAKE_CONSUMER

from benchmarks.harness import broker, fresh_names, machine
from benchmarks.indicators import PARTITIONS, load
from benchmarks.workload import Workload, create_topics, produce
from charter_contracts.topics import EventKind, TopicNames
from charter_runtime.kafka import BatchHandler, batch_subscriber, make_broker


@dataclass
class Count:
    """Records counted and when: from the first batch to the last record."""

    expected: int
    records: int = 0
    first: tuple[float, int] | None = None  # (time, records) at the end of the first batch
    last: float = 0.0
    batches: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, batch: Sequence[Any]) -> None:
        self.records += len(batch)
        self.batches += 1
        now = time.perf_counter()
        if self.first is None:
            self.first = (now, self.records)
        self.last = now
        if self.records >= self.expected:
            self.done.set()

    @property
    def rate(self) -> float:
        assert self.first is not None
        seconds = self.last - self.first[0]
        return (self.records - self.first[1]) / seconds if seconds > 0 else 0.0


async def raw_getmany(bootstrap: str, topics: Sequence[str], count: Count, max_records: int) -> None:
    """aiokafka alone: ``getmany`` and a commit per batch."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while not count.done.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
            records = [record for part in batches.values() for record in part]
            if records:
                count.add(records)
                await consumer.commit()
    finally:
        await consumer.stop()


def pass_through_subscriber(
    broker: KafkaBroker, *topic_names: str, group_id: str, handler: BatchHandler, payload: Any, max_records: int
) -> Any:
    """``batch_subscriber`` with a parser of its own: one message for the batch, aiokafka's records untouched.

    FastStream's batch parser (``AioKafkaBatchParser.parse_batch``) builds, per record, a dict
    of its headers (each value decoded) and a list of the values, before the handler sees
    the records. This parser makes the message (FastStream's own class, with the consumer, so
    the ack policies commit and rewind as before) in O(1): the records are its body and raw
    message. Measured here, not adopted (see the module's docstring).
    """
    subscriber = batch_subscriber(
        broker, *topic_names, group_id=group_id, handler=handler, payload=payload, max_records=max_records
    )

    async def parse(records: tuple[ConsumerRecord[bytes, bytes], ...]) -> Any:
        first, last = records[0], records[-1]
        return subscriber.parser.msg_class(
            body=records,
            raw_message=records,
            message_id=f"{first.offset}-{last.offset}-{first.timestamp}",
            consumer=subscriber.consumer or FAKE_CONSUMER,
        )

    for call in subscriber.calls:  # the handler batch_subscriber registered: parse with ours instead
        call.item_parser = parse
    return subscriber


Subscribe = Callable[..., Any]


async def through_faststream(
    bootstrap: str, topics: Sequence[str], count: Count, max_records: int, subscribe: Subscribe
) -> None:
    """A FastStream broker with one batch subscriber whose handler counts the records."""
    app = make_broker(bootstrap, client_id="bench")

    async def handler(records: Sequence[Any]) -> None:
        count.add(records)

    subscribe(
        app,
        *topics,
        group_id=f"bench-fs-{uuid.uuid4().hex[:8]}",
        handler=handler,
        payload=bytes,
        max_records=max_records,
    )
    await app.start()
    try:
        await count.done.wait()
    finally:
        await app.stop()


Variant = Callable[[str, Sequence[str], Count, int], Awaitable[None]]


def variants() -> dict[str, Variant]:
    async def current(bootstrap: str, topics: Sequence[str], count: Count, max_records: int) -> None:
        await through_faststream(bootstrap, topics, count, max_records, batch_subscriber)

    async def pass_through(bootstrap: str, topics: Sequence[str], count: Count, max_records: int) -> None:
        await through_faststream(bootstrap, topics, count, max_records, pass_through_subscriber)

    return {
        "aiokafka getmany + commit, no framework": raw_getmany,
        "batch_subscriber (FastStream's batch parser)": current,
        "batch_subscriber with a pass-through parser": pass_through,
    }


async def measure(variant: Variant, bootstrap: str, topics: Sequence[str], expected: int, max_records: int) -> Count:
    count = Count(expected)
    await asyncio.wait_for(variant(bootstrap, topics, count, max_records), timeout=600)
    return count


INGEST_HEADERS = [("content-type", b""), ("correlation_id", b"3f2b8c1e-5d4a-4e2b-9c7d-0a1b2c3d4e5f")]


def load_with_headers(bootstrap: str, workload: Workload) -> tuple[TopicNames, int]:
    """The same records on fresh topics, each with the headers FastStream's publisher adds (ingest writes so)."""
    names = fresh_names()

    async def run() -> int:
        await create_topics(bootstrap, names, PARTITIONS)
        return await produce(bootstrap, names, workload, PARTITIONS, headers=INGEST_HEADERS)

    return names, asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--sites", type=int, default=6_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-records", type=int, action="append", help="batch size(s); default 1,000 and 10,000")
    parser.add_argument(
        "--no-headers", action="store_true", help="only the records as benchmarks.indicators loads them"
    )
    args = parser.parse_args()
    sizes = args.max_records or [1_000, 10_000]

    with tempfile.TemporaryDirectory(prefix="charter-bench-") as work, broker(Path(work)) as bootstrap:
        workload = Workload(sites=args.sites, events=args.events)
        loads = [("records as loaded by benchmarks.indicators.load (no headers)", load(bootstrap, workload))]
        if not args.no_headers:
            loads.append(
                (
                    "the same records with the two headers ingest's publisher adds",
                    load_with_headers(bootstrap, workload),
                )
            )
        print("records read from the real broker, records/s (best of", args.repeat, "runs)")
        print(f"machine: {machine()}")
        for what, (names, events) in loads:
            topics = [*(names.canonical(kind) for kind in EventKind), names.sites]
            expected = events + args.sites
            print(f"{what}: {expected:,} ({events:,} events and {args.sites:,} sites) on {len(topics)} topics")
            for max_records in sizes:
                best: dict[str, Count] = {}
                for _ in range(args.repeat):
                    for label, variant in variants().items():
                        count = asyncio.run(measure(variant, bootstrap, topics, expected, max_records))
                        if label not in best or count.rate > best[label].rate:
                            best[label] = count
                width = max(len(label) for label in best)
                print(f"  max_records={max_records:,}")
                baseline = best["batch_subscriber (FastStream's batch parser)"].rate
                for label, count in best.items():
                    print(
                        f"    {label:<{width}}  {count.rate:>10,.0f}  "
                        f"({count.rate / baseline:.2f}x; {count.records / count.batches:,.0f} records a batch)"
                    )


if __name__ == "__main__":
    main()
