"""Test helpers around the real broker: produce, read back, and run services as processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from charter_contracts.topics import TopicNames
from charter_ops.kafka.local import LocalKafka, free_port
from charter_ops.process import CHARTER, ServiceProcess
from charter_runtime.kafka import NO_AUTH, KafkaAuth, TopicSpec, contract_topics, ensure_topics, raw_topics

__all__ = ["CHARTER", "ServiceProcess"]


def charter(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``charter ARGS`` as a user types it, with ``env`` over this process's environment; stderr kept."""
    return subprocess.run(
        [CHARTER, *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@contextlib.contextmanager
def local_broker(home: Path, **options: Any) -> Iterator[LocalKafka]:
    """A real broker of its own on free ports, tied to the test process, stopped however the test ends."""
    broker = LocalKafka(home=home, port=free_port(), controller_port=free_port(), **options)
    broker.up(tie_to_parent=True)
    try:
        yield broker
    finally:
        broker.down()


def unique_names() -> TopicNames:
    """Topic names no other test uses: tests stay independent on one broker."""
    return TopicNames(prefix=f"t{uuid.uuid4().hex[:10]}.")


async def create_topics(
    bootstrap: str,
    names: TopicNames,
    partitions: int = 3,
    networks: Iterable[str] = ("caf", "cpam"),
    extra: Iterable[TopicSpec] = (),
    auth: KafkaAuth = NO_AUTH,
) -> None:
    """The contract topics and the raw topics of ``networks``, as the services would create them."""
    specs = [*contract_topics(names, partitions), *raw_topics(names, networks, partitions), *extra]
    await ensure_topics(bootstrap, specs, auth=auth)


async def produce(
    bootstrap: str, topic: str, values: Iterable[tuple[bytes | None, bytes]], auth: KafkaAuth = NO_AUTH
) -> None:
    """Send (key, value) pairs and wait until Kafka acknowledged all of them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", **auth.options())
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 60.0,
    auth: KafkaAuth = NO_AUTH,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning until ``until(records)`` holds; fail on timeout."""
    consumer = _reader(bootstrap, topic, auth)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s reading {topic}: got {len(records)} records")
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


def _reader(bootstrap: str, topic: str, auth: KafkaAuth) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        **auth.options(),
    )


async def read_all(
    bootstrap: str, topic: str, settle: float = 1.5, auth: KafkaAuth = NO_AUTH
) -> list[ConsumerRecord[bytes, bytes]]:
    """Everything on a topic once nothing new arrived for ``settle`` seconds."""
    consumer = _reader(bootstrap, topic, auth)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            batch = await consumer.getmany(timeout_ms=300)
            for partition_records in batch.values():
                records.extend(partition_records)
                quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return records


class Tail:
    """Topics read from the beginning as they grow, without a consumer group: what a watcher sees so far.

    ``async with Tail(bootstrap, topic, ...) as tail``, then ``await tail.read()`` as often as
    needed; ``tail.records`` holds everything read up to then, in each partition's order.
    """

    def __init__(self, bootstrap: str, *topics: str, auth: KafkaAuth = NO_AUTH) -> None:
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            **auth.options(),
        )
        self.records: list[ConsumerRecord[bytes, bytes]] = []

    async def __aenter__(self) -> Tail:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def read(self, timeout_ms: int = 200) -> list[ConsumerRecord[bytes, bytes]]:
        """What arrived since the last read (nothing new within ``timeout_ms``: an empty list)."""
        new: list[ConsumerRecord[bytes, bytes]] = []
        while True:
            batch = await self.consumer.getmany(timeout_ms=timeout_ms)
            if not batch:
                break
            for partition_records in batch.values():
                new.extend(partition_records)
            timeout_ms = 0  # drain what is already fetched, then return
        self.records.extend(new)
        return new


async def group_assignment(bootstrap: str, group: str, auth: KafkaAuth = NO_AUTH) -> dict[str, set[tuple[str, int]]]:
    """The partitions each member of a consumer group holds now (member id -> (topic, partition)), as the
    group coordinator knows it; empty while the group is rebalancing or has no member."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **auth.options())
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    held: dict[str, set[tuple[str, int]]] = {}
    for response in responses:
        for described in response.to_object()["groups"]:
            if described["group"] != group or described["state"] != "Stable":
                continue
            for member in described["members"]:
                raw = member["member_assignment"]
                assignment = ConsumerProtocolMemberAssignment.decode(raw) if raw else None
                held[member["member_id"]] = (
                    {(tp.topic, tp.partition) for tp in assignment.partitions()} if assignment else set()
                )
    return held


@contextlib.contextmanager
def running(*services: ServiceProcess) -> Iterator[tuple[ServiceProcess, ...]]:
    """Start services, and stop them however the test ends."""
    started: list[ServiceProcess] = []
    try:
        for service in services:
            started.append(service.start(wait_healthy=0))
        for service in started:
            service.wait_healthy(90)
        yield services
    finally:
        for service in started:
            service.stop()


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of one sample in a Prometheus text exposition, or None if absent."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return float(sample.value)
    return None


def service_env(bootstrap: str, names: TopicNames, **extra: Any) -> dict[str, str]:
    env = {
        "CHARTER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CHARTER_KAFKA_TOPIC_PREFIX": names.prefix,
        "CHARTER_KAFKA_PARTITIONS": "3",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env
