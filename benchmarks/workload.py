"""The benchmark workload: seeded canonical events over many sites, produced fast.

Events are the canonical JSON that ingest writes (UTC timestamps), built directly as
bytes so that loading millions of them does not dominate the run; a unit test checks
that they validate against the contract models.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer

from charter_contracts import Schedule, Site, TimeRange, WeeklyHours
from charter_contracts.sites import department_timezone
from charter_contracts.topics import EventKind, TopicNames
from charter_runtime.kafka import contract_topics, ensure_topics

NETWORKS = ("caf", "cpam", "france-travail", "dgfip", "msa", "cnav", "ants", "france-services")
DEPARTMENTS = [f"{n:02d}" for n in range(1, 96) if n != 20] + ["2A", "2B", "971", "972", "973", "974", "976"]
PROCEDURES = ("rsa", "prime-activite", "carte-grise", "aah", "retraite")
_DAY = WeeklyHours(
    **{
        day: [TimeRange(start="08:30", end="12:00"), TimeRange(start="13:30", end="17:00")]
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
    }
)


@dataclass(frozen=True)
class Workload:
    """``events`` calls and cases (about 4:1) over ``sites`` sites, ``per_minute`` events a minute of event time.

    The default density is the national average of a year's replay (about a billion events a
    year, 1,900 a minute); the live daytime peak is several times denser.
    """

    sites: int
    events: int
    per_minute: int = 2_000
    seed: int = 7
    start: datetime = datetime(2024, 3, 4, tzinfo=UTC)

    def site_records(self) -> list[Site]:
        records = []
        for index in range(self.sites):
            network = NETWORKS[index % len(NETWORKS)]
            department = DEPARTMENTS[(index // len(NETWORKS)) % len(DEPARTMENTS)]
            records.append(
                Site(
                    site_id=f"bench-{index}",
                    network=network,
                    name=f"Bench site {index}",
                    department=department,
                    timezone=department_timezone(department),
                    schedules=[Schedule(effective_from=date(2020, 1, 1), weekly=_DAY)],
                )
            )
        return records

    def records(self) -> Iterator[tuple[EventKind, bytes, bytes]]:
        """(stream, key, value) in roughly event-time order, deterministic for a seed."""
        rng = random.Random(self.seed)
        step = 60.0 / self.per_minute
        for index in range(self.events):
            site = rng.randrange(self.sites)
            network = NETWORKS[site % len(NETWORKS)]
            at = self.start + timedelta(seconds=index * step + rng.uniform(0, step))
            key = f"bench-{site}".encode()
            if index % 5:
                yield EventKind.CALL_RECORDS, key, _call(index, network, key.decode(), at, rng)
            else:
                yield EventKind.CASE_COMPLETIONS, key, _case(index, network, key.decode(), at, rng)


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if at.microsecond else at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _call(index: int, network: str, site_id: str, at: datetime, rng: random.Random) -> bytes:
    at = at.replace(microsecond=0)
    roll = rng.random()
    answered = None
    if roll < 0.03:
        ended = at + timedelta(seconds=rng.randint(20, 90))
        ivr = True
    else:
        ivr = False
        if roll < 0.85:
            answered = at + timedelta(seconds=rng.randint(1, 240))
            ended = answered + timedelta(seconds=rng.randint(30, 900))
        else:
            ended = at + timedelta(seconds=rng.randint(1, 300))
    return orjson.dumps(
        {
            "event_id": f"bc-{index}",
            "network": network,
            "site_id": site_id,
            "occurred_at": _iso(at),
            "schema_version": 1,
            "type": "call",
            "received_at": _iso(at),
            "answered_at": _iso(answered) if answered else None,
            "ended_at": _iso(ended),
            "ivr_only": ivr,
        }
    )


def _case(index: int, network: str, site_id: str, at: datetime, rng: random.Random) -> bytes:
    at = at.replace(microsecond=0)
    submitted = at - timedelta(days=rng.uniform(0.5, 25))
    return orjson.dumps(
        {
            "event_id": f"bk-{index}",
            "network": network,
            "site_id": site_id,
            "occurred_at": _iso(at),
            "schema_version": 1,
            "type": "case_completed",
            "case_id": f"dossier-{index}",
            "procedure": PROCEDURES[index % len(PROCEDURES)],
            "submitted_at": _iso(submitted.replace(microsecond=0)),
            "completed_at": _iso(at),
            "deadline_days": None,
        }
    )


async def create_topics(bootstrap: str, names: TopicNames, partitions: int) -> None:
    """The contract topics, created exactly as the services create them."""
    await ensure_topics(bootstrap, contract_topics(names, partitions))


async def produce(
    bootstrap: str,
    names: TopicNames,
    workload: Workload,
    partitions: int,
    *,
    events: slice = slice(None),
    registry: bool = True,
    headers: list[tuple[str, bytes]] | None = None,
) -> int:
    """Publish the registry then the ``events`` of the workload (all by default), batched per partition,
    each record with ``headers`` if given; returns the event count."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=512 * 1024, acks=1)
    await producer.start()
    try:
        if registry:
            pending = [
                await producer.send(names.sites, site.model_dump_json().encode(), key=site.site_id.encode())
                for site in workload.site_records()
            ]
            await asyncio.gather(*pending)
        batches: dict[tuple[str, int], object] = {}
        futures = []
        count = 0
        partitioner = producer._partitioner  # same murmur2 partitioning as every keyed send
        for kind, key, value in itertools.islice(workload.records(), events.start, events.stop):
            topic = names.canonical(kind)
            partition = partitioner(key, list(range(partitions)), list(range(partitions)))
            batch = batches.get((topic, partition))
            if batch is None:
                batch = batches[(topic, partition)] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # type: ignore[attr-defined]
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[(topic, partition)] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers)
            count += 1
        for (topic, partition), batch in batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return count
