"""Traffic for the fault tests, whose every alert is known in advance, and what a watcher reads of a run
in progress: how far each service got, so that a fault strikes in the middle of its work.

The traffic is CAF's twelve sites (one network: its raw partitions keep event-time order) over four
hours of a Monday, in chunks each big enough that a service takes seconds to get through one on a
loaded 2-core machine (the fault tests kill a service once it has done part of its chunk, and check
it had not finished):

- ``opening``: a first event on each stream of every site (see ``recovery.traffic``);
- ``steady`` (the first hour): counters, cases, and calls the voice server handled: no call offered
  to an agent, so the pickup rate is not judged;
- ``breach`` (the second hour): besides the same, the calling sites answer two calls a minute each and
  let two ring out: the pickup rate over any whole minutes is exactly 50 %, below the 85 % threshold;
- ``recovery`` (90 minutes): an hour and five minutes without a call offered (the breach leaves the
  one-hour window), then every call answered: the rate is exactly 100 % whenever it is judged again;
- ``https``: a quarter of an hour more of answered calls, sent over HTTPS.

Calls offered to agents arrive in the first ten seconds of their minute and end within it, so every
snapshot, whenever the indicators happen to flush, counts whole minutes. And they are offered only at
the **calling sites**, the CAF sites of one canonical partition (every department has some): a
network's or a department's hour is the sum of each partition's own last hour, each up to its own
partition's ``as_of`` (``charter_indicators.domain.aggregate``), and while the indicators catch up
the partitions are minutes of event time apart; with calls at the sites of several partitions, the
hour an alert is judged on would mix the breach of a lagging partition with the recovery of a leading
one, and the alert history would depend on how far apart they were at each flush (a clean run was
seen to resolve at 88.5 %, then fire a second episode at 84.9 %). With one calling partition the value
an alert fires with (0.50) and resolves with (1.00) follows from the events alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from charter_contracts import Site
from charter_contracts.topics import EventKind, TopicNames
from tests.support import events
from tests.support.recovery import KIND_OF, PARTITIONS, SITES, START, final_as_of

CAF_SITES = [s for s in SITES if s.network == "caf"]
MINUTE = timedelta(minutes=1)
#: Events of the background (voice-server calls, cases, counters) per site and minute, per chunk.
DENSITY = {"steady": 24, "breach": 20, "recovery": 15, "https": 1}
BREACH_START = START + 61 * MINUTE
BREACH_END = START + 121 * MINUTE
RECOVERY_START = START + 186 * MINUTE
END = START + 226 * MINUTE


@dataclass(frozen=True)
class Chunk:
    name: str
    events: list[dict[str, Any]]
    #: the national figures' ``as_of`` once this chunk and every one before it are counted
    as_of: datetime

    @property
    def ids(self) -> set[str]:
        return {p["event_id"] for p in self.events}


@dataclass(frozen=True)
class Traffic:
    opening: Chunk
    steady: Chunk
    breach: Chunk
    recovery: Chunk
    https: Chunk

    @property
    def chunks(self) -> list[Chunk]:
        return [self.opening, self.steady, self.breach, self.recovery, self.https]

    @property
    def as_of(self) -> datetime:
        return self.https.as_of

    def events(self) -> list[dict[str, Any]]:
        return [p for chunk in self.chunks for p in chunk.events]


def fault_traffic(seed: int = 11, sites: Sequence[Site] = CAF_SITES) -> Traffic:
    """The same events at every call (event ids included), so a module's runs compare event for event."""
    rng = random.Random(seed)
    ids = itertools.count(1)
    calling = {s.site_id for s in calling_sites(sites)}

    def first_events() -> list[dict[str, Any]]:
        payloads: list[dict[str, Any]] = []
        for s in sites:
            common: dict[str, Any] = {"site_id": s.site_id, "network": s.network}
            payloads += [
                events.counter(START, opened=False, event_id=f"f-{next(ids)}", **common),
                events.call(START, answered_after=None, ivr_only=True, event_id=f"f-{next(ids)}", **common),
                events.case(START, days=1, event_id=f"f-{next(ids)}", case_id=f"d-{next(ids)}", **common),
            ]
        return payloads

    def minutes(
        begin: datetime, end: datetime, density: int, offered: Callable[[datetime], tuple[int, int]]
    ) -> list[dict[str, Any]]:
        payloads: list[dict[str, Any]] = []
        minute = begin
        while minute < end:
            for s in sites:
                common: dict[str, Any] = {"site_id": s.site_id, "network": s.network}
                index = int((minute - START) / MINUTE)
                if index % 5 == 0:  # a counter opens every five minutes and closes three minutes later
                    payloads.append(events.counter(minute + timedelta(seconds=5), event_id=f"f-{next(ids)}", **common))
                elif index % 5 == 3:
                    payloads.append(
                        events.counter(minute + timedelta(seconds=5), opened=False, event_id=f"f-{next(ids)}", **common)
                    )
                for _ in range(density):
                    at = minute + timedelta(seconds=rng.uniform(0, 59))
                    if rng.random() < 0.75:
                        duration = rng.uniform(10, 90)
                        payloads.append(
                            events.call(
                                at,
                                answered_after=None,
                                ivr_only=True,
                                duration=duration,
                                event_id=f"f-{next(ids)}",
                                **common,
                            )
                        )
                    else:
                        procedure = rng.choice(["rsa", "carte-grise", "information", "autre"])
                        payloads.append(
                            events.case(
                                at,
                                days=rng.uniform(0, 30),
                                procedure=procedure,
                                event_id=f"f-{next(ids)}",
                                case_id=f"d-{next(ids)}",
                                **common,
                            )
                        )
                answered, abandoned = offered(minute) if s.site_id in calling else (0, 0)
                for _ in range(answered):  # answered after 5 s, over 15 s after it arrived
                    at = minute + timedelta(seconds=rng.uniform(0, 10))
                    payloads.append(events.call(at, answered_after=5, duration=10, event_id=f"f-{next(ids)}", **common))
                for _ in range(abandoned):  # rang 30 s, nobody answered (not a short abandon)
                    at = minute + timedelta(seconds=rng.uniform(0, 10))
                    payloads.append(
                        events.call(at, answered_after=None, duration=30, event_id=f"f-{next(ids)}", **common)
                    )
            minute += MINUTE
        return sorted(payloads, key=lambda p: p["occurred_at"])

    def recovering(minute: datetime) -> tuple[int, int]:
        return (4, 0) if minute >= RECOVERY_START else (0, 0)

    parts = {
        "opening": first_events(),
        "steady": minutes(START + MINUTE, BREACH_START, DENSITY["steady"], lambda _: (0, 0)),
        "breach": minutes(BREACH_START, BREACH_END, DENSITY["breach"], lambda _: (2, 2)),
        "recovery": minutes(BREACH_END, START + 211 * MINUTE, DENSITY["recovery"], recovering),
        "https": minutes(START + 211 * MINUTE, END, DENSITY["https"], recovering),
    }
    chunks: list[Chunk] = []
    so_far: list[list[dict[str, Any]]] = []
    for name, payloads in parts.items():
        so_far.append(payloads)
        chunks.append(Chunk(name, payloads, final_as_of(so_far)))
    return Traffic(*chunks)


def partition_of(site_id: str) -> int:
    """The canonical partition of a site (keyed by site_id, the default partitioner)."""
    every = list(range(PARTITIONS))
    return int(DefaultPartitioner()(site_id.encode(), every, every))


def calling_sites(sites: Sequence[Site] = CAF_SITES) -> list[Site]:
    """The sites calls are offered at: those of the partition that holds the most of ``sites``."""
    by_partition: dict[int, list[Site]] = {}
    for s in sites:
        by_partition.setdefault(partition_of(s.site_id), []).append(s)
    return max(by_partition.values(), key=len)


def counted_calls(payloads: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(answered, offered) over the calls the final figures count: calls offered to an agent (not the
    voice server's, not abandoned within 5 s) received and ended before their partition's final ``as_of``
    (each partition's part is complete up to its own; the nation sums the parts)."""
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for p in payloads:
        by_partition.setdefault(partition_of(p["site_id"]), []).append(p)
    answered = offered = 0
    for partition_payloads in by_partition.values():
        as_of = final_as_of([partition_payloads])
        for p in partition_payloads:
            if p["type"] != "call" or p.get("ivr_only"):
                continue
            received, ended = datetime.fromisoformat(p["received_at"]), datetime.fromisoformat(p["ended_at"])
            if p["answered_at"] is None and (ended - received).total_seconds() < 5:
                continue
            if received < as_of and ended < as_of:
                offered += 1
                answered += p["answered_at"] is not None
    return answered, offered


def counted_cases(payloads: Sequence[dict[str, Any]]) -> int:
    """Cases the final figures count: completed before their partition's final ``as_of``."""
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for p in payloads:
        by_partition.setdefault(partition_of(p["site_id"]), []).append(p)
    cases = 0
    for partition_payloads in by_partition.values():
        as_of = final_as_of([partition_payloads])
        cases += sum(
            1
            for p in partition_payloads
            if p["type"] == "case_completed" and datetime.fromisoformat(p["occurred_at"]) < as_of
        )
    return cases


def event_ids(records: Iterable[ConsumerRecord[bytes, bytes]]) -> list[str]:
    return [orjson.loads(r.value)["event_id"] for r in records if r.value is not None]


def ends(records: Iterable[ConsumerRecord[bytes, bytes]]) -> dict[tuple[str, int], int]:
    """The next offset of each topic-partition after ``records``."""
    found: dict[tuple[str, int], int] = {}
    for r in records:
        found[(r.topic, r.partition)] = max(found.get((r.topic, r.partition), 0), r.offset + 1)
    return found


def checkpoints(records: Iterable[ConsumerRecord[bytes, bytes]]) -> dict[int, dict[str, int]]:
    """The input offsets of each partition's latest complete checkpoint among ``records`` of the
    indicators' ``<group>.state`` topic (chunks under generation keys, then a head naming them)."""
    heads: dict[int, dict[str, Any]] = {}
    chunks: dict[str, bytes | None] = {}
    for r in records:
        key = (r.key or b"").decode()
        partition, _, rest = key.partition("|")
        if rest == "head":
            if r.value:
                heads[int(partition)] = orjson.loads(r.value)
        else:
            chunks[key] = r.value
    found: dict[int, dict[str, int]] = {}
    for partition, head in heads.items():
        keys = [f"{partition}|{head['generation']}|{head['writer']}|{i}" for i in range(int(head["chunks"]))]
        parts = [chunks.get(key) for key in keys]
        if all(part is not None for part in parts):
            document = orjson.loads(b"".join(p for p in parts if p is not None))
            found[partition] = {str(topic): int(offset) for topic, offset in document["offsets"].items()}
    return found


async def metrics_total(url: str, name: str) -> float:
    """The sum of a counter's samples over all its labels on a service's /metrics (0 when absent)."""
    async with httpx.AsyncClient(timeout=30) as http:
        text = (await http.get(f"{url}/metrics")).text
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def counted(url: str) -> int:
    """Events the indicators process counted since it started (every type)."""
    return int(await metrics_total(url, "charter_indicators_events_total"))


async def until(check: Callable[[], Any], what: str, timeout: float = 180.0, every: float = 0.1) -> None:
    """Poll ``check`` (a coroutine function returning a truth value) until it holds; fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting until {what}")
        await asyncio.sleep(every)


@dataclass
class Network:
    """A network's system publishing a chunk to its raw topics over Kafka as the events happen: a slice
    at a time, each sent until Kafka acknowledged all of it. A slice that fails is sent again whole
    (with a new producer: the broker may have gone), so part of it may reach Kafka twice; ingest
    refuses the copies. ``acknowledged``: the event ids Kafka acknowledged, in order."""

    bootstrap: str
    names: TopicNames
    payloads: Sequence[dict[str, Any]]
    slice_size: int = 100
    pause: float = 0.05
    acknowledged: list[str] = field(default_factory=list)
    #: the events of the slices that failed and were sent again
    resent: set[str] = field(default_factory=set)
    failures: int = 0

    async def run(self) -> None:
        producer: AIOKafkaProducer | None = None
        try:
            for start in range(0, len(self.payloads), self.slice_size):
                piece = self.payloads[start : start + self.slice_size]
                while True:
                    try:
                        if producer is None:
                            producer = AIOKafkaProducer(
                                bootstrap_servers=self.bootstrap,
                                enable_idempotence=True,
                                acks="all",
                                request_timeout_ms=10_000,
                            )
                            await producer.start()
                        await asyncio.wait_for(self._send(producer, piece), 30)
                        break
                    except (KafkaError, OSError, TimeoutError):
                        self.failures += 1
                        self.resent.update(p["event_id"] for p in piece)
                        if producer is not None:
                            with contextlib.suppress(Exception):
                                await producer.stop()
                        producer = None
                        await asyncio.sleep(1.0)
                self.acknowledged.extend(p["event_id"] for p in piece)
                await asyncio.sleep(self.pause)
        finally:
            if producer is not None:
                with contextlib.suppress(Exception):
                    await producer.stop()

    async def _send(self, producer: AIOKafkaProducer, piece: Sequence[dict[str, Any]]) -> None:
        futures = []
        for payload in piece:
            topic = self.names.raw(payload["network"], KIND_OF.get(payload["type"], EventKind.COUNTER_EVENTS))
            futures.append(await producer.send(topic, events.encode(payload), key=payload["site_id"].encode()))
        await asyncio.gather(*futures)
