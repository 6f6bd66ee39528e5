"""Recoverable state: every alert's record and every delivery done, on a compacted topic.

The state topic (``charter.alerts-state``, compacted, keyed) holds two kinds of record:

- ``alert/<fingerprint>``: the ``AlertRecord`` after its last transition;
- ``delivered/<receiver>/<idempotency key>``: a notification that receiver acknowledged.

On start the service reads the whole state topic, then ``charter.alerts`` (whose events
may be one step ahead of the records if the process died between the two writes), and
keeps for each alert whichever is further along. Only then does it judge snapshots.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from charter_alerts.domain.book import AlertBook, AlertRecord
from charter_contracts import AlertEvent

log = logging.getLogger(__name__)

ALERT_PREFIX = "alert/"
DELIVERED_PREFIX = "delivered/"


def alert_key(fingerprint: str) -> bytes:
    return f"{ALERT_PREFIX}{fingerprint}".encode()


def delivered_key(receiver: str, key: str) -> bytes:
    return f"{DELIVERED_PREFIX}{receiver}/{key}".encode()


def delivered_value(receiver: str, key: str) -> bytes:
    return json.dumps({"receiver": receiver, "idempotency_key": key, "at": time.time()}).encode()


@dataclass
class Restored:
    """What start-up recovered, for the log and the tests."""

    records: int = 0
    events: int = 0
    deliveries: dict[str, set[str]] = field(default_factory=dict)
    skipped: int = 0


async def partitions_of(bootstrap: str, topics: Iterable[str]) -> list[TopicPartition]:
    """The partitions of existing ``topics`` (from the cluster's metadata)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    partitions = []
    for topic in described:
        leaderless = [p["partition"] for p in topic["partitions"] if p["error_code"] or p["leader"] < 0]
        if topic["error_code"] or leaderless or not topic["partitions"]:
            # A topic just created may have no leader yet: the caller retries.
            raise KafkaError(f"{topic['topic']} not readable yet (error {topic['error_code']}, no leader {leaderless})")
        partitions += [TopicPartition(topic["topic"], p["partition"]) for p in topic["partitions"]]
    return sorted(partitions)


async def read_topics(bootstrap: str, topics: Iterable[str]) -> list[tuple[str, bytes | None, bytes | None]]:
    """Every record of ``topics`` up to their current end, partition by partition in order."""
    partitions = await partitions_of(bootstrap, topics)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        out: list[tuple[str, bytes | None, bytes | None]] = []
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                out.extend((tp.topic, r.key, r.value) for r in records if r.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


async def restore(bootstrap: str, state_topic: str, alerts_topic: str, book: AlertBook) -> Restored:
    """Rebuild the book and the deliveries done from the state topic, then ``charter.alerts``."""
    restored = Restored()
    state = await read_topics(bootstrap, [state_topic])
    latest: dict[bytes, bytes | None] = {}
    for _, key, value in state:
        if key is not None:
            latest[key] = value
    for key, value in latest.items():
        if value is None:
            continue
        text = key.decode(errors="replace")
        try:
            if text.startswith(ALERT_PREFIX):
                book.restore(AlertRecord.model_validate_json(value))
                restored.records += 1
            elif text.startswith(DELIVERED_PREFIX):
                receiver, _, idem = text[len(DELIVERED_PREFIX) :].partition("/")
                restored.deliveries.setdefault(receiver, set()).add(idem)
        except ValidationError as exc:
            restored.skipped += 1
            log.warning("alerts state: unreadable record %s skipped: %s", text, exc.errors()[0]["msg"])
    for _, _, value in await read_topics(bootstrap, [alerts_topic]):
        try:
            book.restore_event(AlertEvent.model_validate_json(value or b""))
            restored.events += 1
        except ValidationError:
            restored.skipped += 1
    return restored
