"""Seeded, deterministic network traffic over real sites (``charter simulate``).

The generator is pure (sites, seed and clock in, events out); publishing is a thin
adapter, so the same traffic can go live to Kafka or be checked in a test.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer

from charter_contracts import CallRecord, Event, Site
from charter_contracts.topics import TopicNames


@dataclass
class Simulator:
    """Calls to sites' lines; a degraded network answers far fewer of them."""

    sites: Sequence[Site]
    seed: int = 1
    degraded: frozenset[str] = frozenset()
    answer_probability: float = 0.92
    degraded_answer_probability: float = 0.55
    _rng: random.Random = field(init=False)
    _counter: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - simulation, not security

    def calls(self, at: datetime, count: int) -> Iterator[CallRecord]:
        """``count`` calls received around ``at``, on sites drawn at random."""
        for _ in range(count):
            site = self._rng.choice(self.sites)
            self._counter += 1
            received = at - timedelta(seconds=self._rng.uniform(0, 1))
            p_answer = self.degraded_answer_probability if site.network in self.degraded else self.answer_probability
            answered = None
            if self._rng.random() < p_answer:
                answered = received + timedelta(seconds=self._rng.expovariate(1 / 40))
                ended = answered + timedelta(seconds=self._rng.expovariate(1 / 240))
            else:
                ended = received + timedelta(seconds=self._rng.uniform(1, 300))
            local = ZoneInfo(site.timezone)
            yield CallRecord(
                type="call",
                event_id=f"sim-{self.seed}-{self._counter}",
                network=site.network,
                site_id=site.site_id,
                occurred_at=received.astimezone(local),
                received_at=received.astimezone(local),
                answered_at=answered.astimezone(local) if answered else None,
                ended_at=ended.astimezone(local),
                schema_version=1,
            )


def raw_bytes(event: Event) -> bytes:
    """JSON as a network would send it (local offsets kept, not normalised)."""
    return event.model_dump_json().encode()


async def run_live(
    simulator: Simulator,
    bootstrap_servers: str,
    names: TopicNames,
    rate: float,
    duration: float | None = None,
    report_every: float = 10.0,
) -> int:
    """Publish calls at ``rate`` events/s to the networks' raw topics; returns how many."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=True, acks="all", linger_ms=20)
    await producer.start()
    sent = 0
    started = last_report = time.monotonic()
    try:
        while duration is None or time.monotonic() - started < duration:
            tick = time.monotonic()
            batch = max(1, round(rate))
            futures = [
                await producer.send(names.raw(call.network, call.kind), raw_bytes(call), key=call.site_id.encode())
                for call in simulator.calls(datetime.now(UTC), batch)
            ]
            await asyncio.gather(*futures)
            sent += len(futures)
            if time.monotonic() - last_report >= report_every:
                print(
                    f"simulate: {sent} events sent ({sent / (time.monotonic() - started):.0f}/s)",
                    flush=True,
                )
                last_report = time.monotonic()
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    finally:
        await producer.stop()
    return sent
