"""Traffic of 24 sites over two hours whose end state is known, and reading that end state back:
for the runs that must end exactly like a single clean run (recovery, scale-out, faults)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka.partitioner import DefaultPartitioner

from charter_contracts import IndicatorSnapshot, Site, parse_event
from charter_contracts.topics import EventKind, TopicNames
from charter_ops.kafka.local import free_port
from tests.support import events
from tests.support.kafka import ServiceProcess, consume, metric_value, produce, read_all, service_env
from tests.support.sites import site

START = datetime(2024, 3, 4, 7, 0, tzinfo=UTC)  # Monday 8:00 in Paris, 3:00 in Guadeloupe
PARTITIONS = 3
GRACE = timedelta(seconds=60)
SITES = [
    site(f"{network}-{department}-{i}", network=network, department=department)
    for network in ("caf", "cpam")
    for department in ("75", "13", "57", "971")
    for i in range(3)
]
KIND_OF = {"call": EventKind.CALL_RECORDS, "case_completed": EventKind.CASE_COMPLETIONS}


def traffic(seed: int = 7, sites: Sequence[Site] = SITES) -> list[list[dict[str, Any]]]:
    """A first event on each stream of every site, then three chunks of 40 minutes of traffic; each chunk
    later in event time than the last.

    The first events all happen at START: a partition's watermark follows the earliest of its
    streams that have events, so until a stream's first event is read the others could run ahead
    of it (a real deployment sees this only on its very first events).
    """
    rng = random.Random(seed)
    opening = []
    for s in sites:
        opening += [
            events.counter(START, opened=False, site_id=s.site_id, network=s.network),
            events.call(START, answered_after=None, ivr_only=True, site_id=s.site_id, network=s.network),
            events.case(START, days=1, site_id=s.site_id, network=s.network),
        ]
    chunks = [opening]
    for chunk in range(3):
        payloads: list[dict[str, Any]] = []
        begin = START + timedelta(minutes=1 + 40 * chunk)
        for s in sites:
            common: dict[str, Any] = {"site_id": s.site_id, "network": s.network}
            opened = begin + timedelta(minutes=rng.uniform(0, 10))
            payloads.append(events.counter(opened, **common))
            payloads.append(events.counter(opened + timedelta(minutes=rng.uniform(5, 25)), opened=False, **common))
            for _ in range(rng.randint(5, 25)):
                at = begin + timedelta(seconds=rng.uniform(0, 40 * 60 - 1))
                answered = rng.choice([None, rng.uniform(0, 120), rng.uniform(0, 30)])
                payloads.append(events.call(at, answered_after=answered, duration=rng.uniform(1, 300), **common))
            for _ in range(rng.randint(1, 6)):
                at = begin + timedelta(seconds=rng.uniform(0, 40 * 60 - 1))
                procedure = rng.choice(["rsa", "carte-grise", "information", "autre"])
                payloads.append(events.case(at, days=rng.uniform(0, 30), procedure=procedure, **common))
        chunks.append(sorted(payloads, key=lambda p: p["occurred_at"]))
    return chunks


def final_as_of(chunks: Sequence[Sequence[dict[str, Any]]]) -> datetime:
    """Event time the run ends at: each network of each partition is complete up to the earliest of
    its three streams' latest event, minus grace, to the minute; the nation up to the earliest of them."""
    partitioner = DefaultPartitioner()
    latest: dict[tuple[int, str, str], datetime] = {}
    for payload in (p for chunk in chunks for p in chunk):
        partition = partitioner(payload["site_id"].encode(), list(range(PARTITIONS)), list(range(PARTITIONS)))
        stream = KIND_OF.get(payload["type"], EventKind.COUNTER_EVENTS).value
        at = datetime.fromisoformat(payload["occurred_at"])
        source = (partition, payload["network"], stream)
        latest[source] = max(latest.get(source, at), at)
    end = min(latest.values()) - GRACE
    return end.replace(second=0, microsecond=0).astimezone(UTC)


async def publish(kafka: str, names: TopicNames, chunk: Sequence[dict[str, Any]]) -> None:
    """As ingest writes them: validated, canonical (UTC), keyed by site_id, on the topic of their kind."""
    by_topic: dict[str, list[tuple[bytes, bytes]]] = {}
    for payload in chunk:
        kind = KIND_OF.get(payload["type"], EventKind.COUNTER_EVENTS)
        record = (payload["site_id"].encode(), parse_event(events.encode(payload)).model_dump_json().encode())
        by_topic.setdefault(names.canonical(kind), []).append(record)
    await asyncio.gather(*(produce(kafka, topic, records) for topic, records in by_topic.items()))


async def publish_in_slices(
    kafka: str, names: TopicNames, chunk: Sequence[dict[str, Any]], size: int = 20, pause: float = 0.1
) -> None:
    """``publish``, a slice of ``size`` events at a time, ``pause`` seconds apart: traffic streaming in."""
    for start in range(0, len(chunk), size):
        await publish(kafka, names, chunk[start : start + size])
        await asyncio.sleep(pause)


#: Indicators that publish every change and save their state every second.
INDICATORS_ENV = {
    "CHARTER_INDICATORS_IDLE_SECONDS": "0",  # 2024 history: time passes with the events only
    "CHARTER_INDICATORS_SITE_SNAPSHOT_SECONDS": "0",
    "CHARTER_INDICATORS_FLUSH_SECONDS": "0.5",
    "CHARTER_INDICATORS_CHECKPOINT_SECONDS": "1",
}


async def publish_raw(kafka: str, names: TopicNames, chunk: Sequence[dict[str, Any]]) -> None:
    """As a network publishes them: to its raw topics, keyed by site_id (ingest has their fate in hand)."""
    by_topic: dict[str, list[tuple[bytes, bytes]]] = {}
    for payload in chunk:
        kind = KIND_OF.get(payload["type"], EventKind.COUNTER_EVENTS)
        topic = names.raw(payload["network"], kind)
        by_topic.setdefault(topic, []).append((payload["site_id"].encode(), events.encode(payload)))
    await asyncio.gather(*(produce(kafka, topic, records) for topic, records in by_topic.items()))


def instance(kafka: str, names: TopicNames, logs: Path, name: str) -> ServiceProcess:
    port = free_port()
    env = service_env(kafka, names, CHARTER_INDICATORS_HTTP_PORT=port, **INDICATORS_ENV)
    return ServiceProcess(["indicators"], env, port, logs / f"{name}.log")


async def finished(kafka: str, names: TopicNames, as_of: datetime) -> dict[Any, Any]:
    """Once the national figures reach ``as_of``, everything published, reduced to what a user sees last."""

    def national_done(records: list[Any]) -> bool:
        for record in records:
            s = IndicatorSnapshot.model_validate_json(record.value)
            if s.scope.key == "*/*/*" and s.window == "1h" and s.as_of == as_of:
                return True
        return False

    await consume(kafka, names.indicators, until=national_done, timeout=120)
    latest: dict[Any, Any] = {}
    for record in await read_all(kafka, names.indicators, settle=3.0):
        s = IndicatorSnapshot.model_validate_json(record.value)
        if s.window in ("hour", "day"):
            key: tuple[Any, ...] = (s.indicator, s.scope.key, s.window, s.window_start)
        else:  # rolling and live: a site's figures are published when they change
            key = (s.indicator, s.scope.key, s.window)
        shown_as_of = s.as_of if s.scope.site_id is None and s.window not in ("hour", "day") else None
        latest[key] = (
            s.numerator,
            s.denominator,
            s.value,
            shown_as_of,
            orjson.dumps(s.details, option=orjson.OPT_SORT_KEYS),
        )
    return latest


async def counted(url: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{url}/metrics")).text
    return sum(
        metric_value(text, "charter_indicators_events_total", {"type": t}) or 0 for t in ("call", "case_completed")
    )
