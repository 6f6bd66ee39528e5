"""Where simulated traffic goes: Kafka raw topics (live or as fast as possible) or NDJSON files.

Adapters around the pure generator. Events are encoded as networks send them (local
times with their offset); the site registry goes to the compacted ``charter.sites``
topic keyed by site_id, or to ``sites.ndjson`` beside the event files.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import math
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Protocol, cast

import orjson
from aiokafka import AIOKafkaProducer

from charter_contracts import EVENT_KINDS
from charter_contracts.topics import TopicNames
from charter_ops.simulator.generator import Payload, TrafficGenerator
from charter_ops.simulator.networks import SimSite
from charter_runtime.kafka import NO_AUTH, KafkaAuth, TopicSpec, ensure_topics, raw_topics


def encode(payload: Payload) -> bytes:
    """One event as JSON bytes, exactly as a network would publish it."""
    return orjson.dumps(payload)


def site_records(registry: Iterable[SimSite]) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of each registry entry for ``charter.sites``."""
    for entry in registry:
        yield entry.site.site_id.encode(), entry.site.model_dump_json().encode()


class Sink(Protocol):
    """Takes the registry, then events in publication order."""

    async def start(self, networks: Iterable[str]) -> None:
        """Prepare the destinations of ``networks`` (topics, files)."""

    async def write_sites(self, registry: Iterable[SimSite]) -> int:
        """Publish the site registry; returns how many sites."""

    async def write(self, batch: Sequence[Payload]) -> None:
        """Store a batch; return once it is durable (acknowledged by Kafka, or written)."""

    async def stop(self) -> None:
        """Flush and release."""


@dataclass
class KafkaSink:
    """Publishes to ``raw.<network>.*`` keyed by site_id, and the registry to ``charter.sites``."""

    bootstrap_servers: str
    names: TopicNames = field(default_factory=TopicNames)
    partitions: int = 6
    auth: KafkaAuth = NO_AUTH
    _producer: AIOKafkaProducer | None = None

    async def start(self, networks: Iterable[str]) -> None:
        """Create the topics the simulator writes to if missing, and connect."""
        specs = [*raw_topics(self.names, networks, self.partitions), TopicSpec(self.names.sites, self.partitions, True)]
        await ensure_topics(self.bootstrap_servers, specs, auth=self.auth)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            enable_idempotence=True,
            acks="all",
            linger_ms=20,
            max_batch_size=256 * 1024,
            compression_type="gzip",
            **self.auth.options(),
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def write_sites(self, registry: Iterable[SimSite]) -> int:
        assert self._producer is not None
        futures = [await self._producer.send(self.names.sites, value, key=key) for key, value in site_records(registry)]
        await asyncio.gather(*futures)
        return len(futures)

    async def write(self, batch: Sequence[Payload]) -> None:
        assert self._producer is not None
        send = self._producer.send
        futures = [
            await send(
                self.names.raw(event["network"], EVENT_KINDS[event["type"]]),
                encode(event),
                key=event["site_id"].encode(),
            )
            for event in batch
        ]
        await asyncio.gather(*futures)


@dataclass
class FileSink:
    """NDJSON files for replay: ``<network>.ndjson`` per network and ``sites.ndjson``."""

    directory: Path
    compress: bool = False
    _files: dict[str, IO[bytes]] = field(default_factory=dict)

    @property
    def suffix(self) -> str:
        return ".ndjson.gz" if self.compress else ".ndjson"

    def _open(self, name: str) -> IO[bytes]:
        path = self.directory / f"{name}{self.suffix}"
        if self.compress:
            return cast(IO[bytes], gzip.open(path, "wb", compresslevel=1))
        return path.open("wb")

    async def start(self, networks: Iterable[str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for network in networks:
            self._files[network] = self._open(network)

    async def write_sites(self, registry: Iterable[SimSite]) -> int:
        count = 0
        with self._open("sites") as handle:
            for _, value in site_records(registry):
                handle.write(value + b"\n")
                count += 1
        return count

    async def write(self, batch: Sequence[Payload]) -> None:
        files = self._files
        for event in batch:
            files[event["network"]].write(orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE))

    async def stop(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def paths(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{self.suffix}"))


@dataclass
class Tally:
    """What was published, for the summary a user reads at the end."""

    events: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    sites: int = 0

    def add(self, batch: Sequence[Payload]) -> None:
        self.events += len(batch)
        for event in batch:
            self.by_type[event["type"]] = self.by_type.get(event["type"], 0) + 1

    def summary(self) -> str:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.by_type.items()))
        return f"{self.events} events ({kinds or 'none'}), {self.sites} sites"


Progress = Callable[[float, Tally], None]


async def run_history(
    generator: TrafficGenerator,
    registry: Sequence[SimSite],
    sink: Sink,
    start: datetime,
    end: datetime,
    progress: Progress | None = None,
    batch_size: int = 5000,
) -> Tally:
    """Every event of [start, end), as fast as the sink takes them; memory stays flat."""
    tally = Tally()
    await sink.start(generator.networks)
    try:
        tally.sites = await sink.write_sites(registry)
        batch: list[Payload] = []
        span = max(1.0, end.timestamp() - start.timestamp())
        first = start.timestamp()
        for emit_at, event in generator.events(start, end):
            batch.append(event)
            if len(batch) >= batch_size:
                await sink.write(batch)
                tally.add(batch)
                batch = []
                if progress is not None:
                    progress(min(1.0, (emit_at - first) / span), tally)
        if batch:
            await sink.write(batch)
            tally.add(batch)
        if progress is not None:
            progress(1.0, tally)
    finally:
        await sink.stop()
    return tally


@dataclass
class SimulatedClock:
    """Simulated time: ``start`` when the run begins, then ``speed`` simulated seconds per second."""

    start: datetime
    speed: float = 1.0
    _origin: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return self.start.timestamp() + (time.monotonic() - self._origin) * self.speed

    def seconds_until(self, instant: float) -> float:
        return max(0.0, (instant - self.now()) / self.speed)


async def run_live(
    generator: TrafficGenerator,
    registry: Sequence[SimSite],
    sink: Sink,
    clock: SimulatedClock,
    duration: timedelta | None = None,
    report: Callable[[str], None] | None = None,
    report_every: float = 10.0,
    backfill: timedelta = timedelta(0),
) -> Tally:
    """Publish each event when the simulated clock reaches its publication time.

    ``backfill`` first publishes, at once and in event-time order, what the networks
    published during that much time before the clock's start, as if the simulator had
    been running: rolling windows are full from the first minute instead of filling up.
    Calls in progress at the start, and late events, are published when they are due.
    Scenarios count from the clock's start.
    Runs until ``duration`` of simulated time has passed (what would be published later,
    such as late events, is not) or until SIGTERM/SIGINT.
    """
    tally = Tally()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    end = None if duration is None else clock.start + duration
    stop_at = math.inf if end is None else end.timestamp()
    live_from = clock.start.timestamp()
    await sink.start(generator.networks)
    try:
        tally.sites = await sink.write_sites(registry)
        if report:
            report(f"simulate: {tally.sites} sites published to the registry")
        if backfill > timedelta(0):
            # in event-time order, as a replay would be: windows are complete as soon as it is done
            batch: list[Payload] = []
            for emit_at, event in generator.events(
                clock.start - backfill, clock.start, origin=clock.start, order="occurred"
            ):
                if emit_at <= live_from and not stop.is_set():
                    batch.append(event)
                if len(batch) >= 5000:
                    await _write(sink, batch, tally)
                    batch = []
            await _write(sink, batch, tally)
            if report:
                report(f"simulate: {tally.events} events of the last {backfill} published (backfill)")
        started = last_report = time.monotonic()
        live = (
            item
            for item in generator.events(clock.start - backfill, end, origin=clock.start)
            if item[0] > live_from or backfill == timedelta(0)
        )
        upcoming = next(live, None)
        while upcoming is not None and upcoming[0] < stop_at and not stop.is_set():
            batch = []
            now = clock.now()
            while upcoming is not None and upcoming[0] <= now and upcoming[0] < stop_at and len(batch) < 5000:
                batch.append(upcoming[1])
                upcoming = next(live, None)
            await _write(sink, batch, tally)
            if report and time.monotonic() - last_report >= report_every:
                elapsed = time.monotonic() - started
                at = datetime.fromtimestamp(clock.now(), UTC).isoformat(timespec="seconds")
                report(f"simulate: {tally.events} events sent ({tally.events / elapsed:.1f}/s), simulated time {at}")
                last_report = time.monotonic()
            if upcoming is not None and upcoming[0] > clock.now():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(0.5, clock.seconds_until(upcoming[0])))
    finally:
        await sink.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
    return tally


async def _write(sink: Sink, batch: list[Payload], tally: Tally) -> None:
    if batch:
        await sink.write(batch)
        tally.add(batch)


def stderr_report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe_span(start: datetime, end: datetime) -> str:
    return f"{start.isoformat(timespec='minutes')} → {end.isoformat(timespec='minutes')}"
