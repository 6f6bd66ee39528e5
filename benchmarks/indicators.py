"""Indicators benchmarks on the real broker: sustained throughput, latency, recovery, long replay."""

from __future__ import annotations

import asyncio
import bisect
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from benchmarks.harness import fresh_names, have_py_spy, launcher, metric_sum, metrics, service_env
from benchmarks.workload import Workload, create_topics, produce
from charter_contracts.topics import TopicNames
from charter_ops.process import ServiceProcess

PARTITIONS = 3


@dataclass
class Throughput:
    events: int
    seconds: float
    rss_bytes: list[int]
    profile: Path | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def indicators_env(bootstrap: str, names: TopicNames, service: ServiceProcess, **extra: object) -> dict[str, str]:
    return service_env(
        bootstrap,
        names,
        PARTITIONS,
        CHARTER_INDICATORS_HTTP_PORT=service.port,
        CHARTER_INDICATORS_PROCEDURES_FILE="deploy/config/procedures.yaml",
        **extra,
    )


def counted(text: str) -> float:
    """Events the indicators have judged (counted, or rejected as late, duplicate, unknown)."""
    return (metric_sum(text, "charter_indicators_events_total") or 0.0) + (
        metric_sum(text, "charter_indicators_events_rejected_total") or 0.0
    )


def load(bootstrap: str, workload: Workload) -> tuple[TopicNames, int]:
    """Fresh topics holding the registry and every event of ``workload``."""
    names = fresh_names()

    async def run() -> int:
        await create_topics(bootstrap, names, PARTITIONS)
        return await produce(bootstrap, names, workload, PARTITIONS)

    return names, asyncio.run(run())


def replay(
    bootstrap: str,
    names: TopicNames,
    expected: int,
    work: Path,
    *,
    profile: bool = False,
    samples: int = 0,
    say: object = None,
) -> Throughput:
    """Start one indicators process on topics already loaded and time it through every event.

    Timed from the first event counted to the last (start-up and the registry load left out).
    ``samples``: resident memory taken that many times along the way (start, ..., end).
    """
    service = launcher(["indicators"], work / f"indicators-{names.prefix}log")
    service.env = indicators_env(bootstrap, names, service, CHARTER_INDICATORS_IDLE_SECONDS=0)
    rss: list[int] = []
    spy: subprocess.Popen[bytes] | None = None
    svg = work / "indicators-profile.txt"
    with httpx.Client() as client:
        service.start()
        try:
            first: tuple[float, float] | None = None
            marks = [expected * i / max(1, samples - 1) for i in range(samples)] if samples else []
            while True:
                now = time.perf_counter()
                done = counted(metrics(client, service.url))
                if first is None and done > 0:
                    first = (now, done)
                    py_spy = have_py_spy()
                    if profile and py_spy and service.process is not None:
                        spy = subprocess.Popen(
                            [py_spy, "record", "-p", str(service.process.pid), "-f", "raw", "-o", str(svg), "-r", "97"],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                while marks and done >= marks[0]:
                    marks.pop(0)
                    rss.append(service.rss_bytes())
                if done >= expected:
                    break
                if service.process is not None and service.process.poll() is not None:
                    raise RuntimeError(f"indicators exited:\n{service.log()}")
                time.sleep(0.1)
            assert first is not None
            seconds = now - first[0]
            events = int(done - first[1])
        finally:
            if spy is not None:
                spy.send_signal(2)
                try:
                    spy.wait(30)
                except subprocess.TimeoutExpired:
                    spy.kill()
            service.stop()
    return Throughput(events, seconds, rss, svg if spy is not None else None)


# -- latency ------------------------------------------------------------------------------


@dataclass
class Latency:
    to_topic: list[float]
    to_metrics: list[float]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(
    bootstrap: str, work: Path, *, sites: int, seconds: float, rate: int = 1000, minute_every: float = 5.0
) -> Latency:
    """Publish ``rate`` calls a second, event time running a minute every ``minute_every`` seconds (so that
    minutes close often enough to sample), grace 0; per closed minute A: publish of the first event at or
    after A (it completes A) -> the first national snapshot as of A on charter.indicators, and -> /metrics
    showing in the national ``charter_calls_offered{window="today"}`` every call that ended before A (a call
    counts once it has ended; these last ``CALL_SECONDS``, published when they end, as networks do)."""
    return asyncio.run(_latency(bootstrap, work, sites=sites, seconds=seconds, rate=rate, minute_every=minute_every))


async def _latency(
    bootstrap: str, work: Path, *, sites: int, seconds: float, rate: int, minute_every: float
) -> Latency:
    from datetime import timedelta  # noqa: PLC0415

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: PLC0415
    from aiokafka.partitioner import DefaultPartitioner  # noqa: PLC0415

    from benchmarks.workload import NETWORKS, _iso  # noqa: PLC0415
    from charter_contracts.topics import EventKind  # noqa: PLC0415

    names = fresh_names()
    workload = Workload(sites=sites, events=0)
    await create_topics(bootstrap, names, PARTITIONS)
    await produce(bootstrap, names, workload, PARTITIONS)
    service = launcher(["indicators"], work / f"indicators-latency-{names.prefix}log")
    service.env = indicators_env(
        bootstrap, names, service, CHARTER_INDICATORS_GRACE_SECONDS=0, CHARTER_INDICATORS_FLUSH_SECONDS=0.2
    )
    # yesterday from 08:00 Paris (07:00 UTC in winter, 06:00 in summer; the same local date in every
    # department), an hour at most: behind the wall clock, within one local day everywhere
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    start = datetime(yesterday.year, yesterday.month, yesterday.day, 7, tzinfo=UTC).timestamp()
    published: dict[float, float] = {}  # minute A -> wall time its first event was sent
    before: dict[float, int] = {}  # minute A -> calls ended before A
    received: list[float] = []
    seen_topic: dict[float, float] = {}
    seen_metrics: dict[float, float] = {}
    topic = names.canonical(EventKind.CALL_RECORDS)
    await asyncio.to_thread(service.start)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    consumer = AIOKafkaConsumer(
        names.indicators, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest"
    )
    await producer.start()
    await consumer.start()
    partitioner = DefaultPartitioner()
    national = b"*/*/*"  # scope key of the nation

    async def watch_topic() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    if record.key != national:
                        continue
                    data = orjson.loads(record.value)
                    if data.get("indicator") != "pickup_rate" or data.get("window") != "today":
                        continue
                    a = datetime.fromisoformat(data["as_of"]).timestamp()
                    for minute in published:
                        if minute <= a and minute not in seen_topic:
                            seen_topic[minute] = now

    async def watch_metrics() -> None:
        async with httpx.AsyncClient() as client:
            while True:
                text = (await client.get(f"{service.url}/metrics", timeout=10)).text
                now = time.perf_counter()
                value = None
                for line in text.splitlines():
                    if (
                        line.startswith("charter_calls_offered{")
                        and 'department=""' in line
                        and ('network=""' in line and 'window="today"' in line)
                    ):
                        value = float(line.rsplit(" ", 1)[1])
                if value is not None:
                    for minute, count in before.items():
                        if minute not in seen_metrics and value >= count:
                            seen_metrics[minute] = now
                await asyncio.sleep(0.02)

    watchers = [asyncio.create_task(watch_topic()), asyncio.create_task(watch_metrics())]
    try:
        await asyncio.sleep(2)  # consumers positioned
        sent = 0
        began = time.perf_counter()
        per_tick = max(1, rate // 50)
        total = int(seconds * rate)
        step = 60.0 / minute_every / rate
        while sent < total:
            due = began + sent / rate
            pause = due - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            for _ in range(per_tick):
                at = start + sent * step
                minute = at // 60 * 60
                if sent and minute not in published:  # the first event of minute A completes A
                    published[minute] = time.perf_counter()
                    before[minute] = bisect.bisect_left(received, minute - CALL_SECONDS)
                received.append(at)
                site = sent * 7919 % sites
                key = f"bench-{site}".encode()
                value = _answered_call(sent, NETWORKS[site % len(NETWORKS)], key.decode(), at, _iso)
                partition = partitioner(key, list(range(PARTITIONS)), list(range(PARTITIONS)))
                await producer.send(topic, value, key=key, partition=partition)
                sent += 1
        await producer.flush()
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline and (  # noqa: ASYNC110 - polls two watchers' progress
            len(seen_topic) < len(published) - 2 or len(seen_metrics) < len(published) - 2
        ):
            await asyncio.sleep(0.2)
    finally:
        for task in watchers:
            task.cancel()
        await consumer.stop()
        await producer.stop()
        await asyncio.to_thread(service.stop)
    # the first minutes are the service's warm-up (time starts for every site, caches fill), the last
    # ones are not complete (no later event): both are left out
    complete = sorted(published)[WARM_UP_MINUTES:-2]
    return Latency(
        [seen_topic[m] - published[m] for m in complete if m in seen_topic],
        [seen_metrics[m] - published[m] for m in complete if m in seen_metrics],
    )


#: Closed minutes of the latency run left out as the service's warm-up: 15 s, past the service's start-up
#: hold (a network's streams without events yet wait ``idle_seconds``, 10 s, after its first event) and
#: its first flushes over every site.
WARM_UP_MINUTES = 3
#: Calls of the latency run: answered after 2 s, ended 3 s later.
CALL_SECONDS = 5.0


def _answered_call(index: int, network: str, site_id: str, at: float, iso: object) -> bytes:
    from datetime import timedelta  # noqa: PLC0415

    import orjson  # noqa: PLC0415

    moment = datetime.fromtimestamp(at, UTC)
    answered = moment + timedelta(seconds=2)
    return orjson.dumps(
        {
            "event_id": f"bl-{index}",
            "network": network,
            "site_id": site_id,
            "occurred_at": iso(moment),  # type: ignore[operator]
            "schema_version": 1,
            "type": "call",
            "received_at": iso(moment),  # type: ignore[operator]
            "answered_at": iso(answered),  # type: ignore[operator]
            "ended_at": iso(answered + timedelta(seconds=CALL_SECONDS - 2)),  # type: ignore[operator]
            "ivr_only": False,
        }
    )


# -- recovery -----------------------------------------------------------------------------


@dataclass
class Recovery:
    restored: float  # restart -> every partition's state loaded from its checkpoint
    resumed: float  # restart -> events counted again and figures published
    checkpoint_bytes: int


def recovery(bootstrap: str, workload: Workload, work: Path) -> Recovery:
    """Half the events through one process, a checkpoint, SIGKILL; the other half published, a new process:
    time from its start to every partition restored from its checkpoint, and to events counted again."""
    import re  # noqa: PLC0415

    names = fresh_names()
    half = workload.events // 2

    async def publish(events: slice, registry: bool) -> int:
        if registry:
            await create_topics(bootstrap, names, PARTITIONS)
        return await produce(bootstrap, names, workload, PARTITIONS, events=events, registry=registry)

    loaded = asyncio.run(publish(slice(0, half), True))
    first = launcher(["indicators"], work / f"indicators-crash-{names.prefix}log")
    extra = {"CHARTER_INDICATORS_IDLE_SECONDS": 0, "CHARTER_INDICATORS_CHECKPOINT_SECONDS": 2}
    first.env = indicators_env(bootstrap, names, first, **extra)
    checkpoints = re.compile(r"partition \d+: \d+ sites, checkpoint \d+")
    with httpx.Client() as client:
        first.start()
        try:
            while counted(metrics(client, first.url)) < loaded:
                time.sleep(0.25)
            time.sleep(5)  # at least one checkpoint after every event of the first half
        finally:
            first.kill()
        asyncio.run(publish(slice(half, None), False))  # what the restarted process has to read
        second = launcher(["indicators"], work / f"indicators-restart-{names.prefix}log")
        second.env = indicators_env(bootstrap, names, second, **extra)
        began = time.perf_counter()
        restored = resumed = None
        second.start()
        try:
            while resumed is None or restored is None:
                text = second.log_path.read_text(errors="replace")
                if restored is None and len(checkpoints.findall(text)) >= PARTITIONS:
                    restored = time.perf_counter() - began
                if resumed is None:
                    page = metrics(client, second.url)
                    if counted(page) > 0 and (metric_sum(page, "charter_indicators_watermark_seconds") or 0) > 0:
                        resumed = time.perf_counter() - began
                if time.perf_counter() - began > 120:
                    raise RuntimeError(f"indicators did not recover within 120 s:\n{second.log()}")
                time.sleep(0.05)
        finally:
            second.stop()
    size = asyncio.run(_state_bytes(bootstrap, f"{names.group('charter-indicators')}.state"))
    return Recovery(restored, resumed, size)


async def _state_bytes(bootstrap: str, topic: str) -> int:
    from aiokafka import TopicPartition  # noqa: PLC0415

    from charter_indicators.kafka_io import read_to_end  # noqa: PLC0415

    records, _ = await read_to_end(bootstrap, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    latest: dict[bytes, int] = {}
    for record in records:
        latest[record.key or b""] = len(record.value or b"")
    return sum(latest.values())


# -- state memory -------------------------------------------------------------------------


@dataclass
class StateMemory:
    sites: int
    events: int
    bytes_total: int
    bytes_registry: int

    @property
    def per_site(self) -> float:
        return self.bytes_total / self.sites

    @property
    def per_site_events(self) -> float:
        return (self.bytes_total - self.bytes_registry) / self.sites


def deep_size(root: object, exclude: tuple[object, ...] = ()) -> int:
    """Bytes of every object reachable from ``root`` (each counted once), modules, types and code left out."""
    import gc  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import types  # noqa: PLC0415

    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType, types.MethodType)
    seen = {id(item) for item in exclude}
    total = 0
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, skip):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        stack.extend(gc.get_referents(item))
        if isinstance(item, dict):  # the collector does not visit a dict's string keys (they make no cycle)
            stack.extend(item)
    return total


def state_memory(sites: int, events: int, flush_every: int = 5) -> StateMemory:
    """The domain state of one partition holding ``sites`` sites after ``events`` events (every object
    reachable from it), flushed every ``flush_every`` minutes of event time as the service would in a
    replay, so that it is the steady state: the last hour of minutes, seven local days, the log of the hour."""
    from charter_indicators.decoding import decode_event  # noqa: PLC0415
    from charter_indicators.domain.networks import Partition  # noqa: PLC0415
    from charter_indicators.domain.partition import IndicatorConfig  # noqa: PLC0415
    from charter_indicators.domain.schedule import compile_site  # noqa: PLC0415
    from charter_indicators.procedures import load_rules  # noqa: PLC0415

    # a working morning from 08:00 in Paris, at the national density: the sites open (schedule edges,
    # opening time accruing) during the hour the state is measured in; at night the opening part is idle
    workload = Workload(
        sites=sites,
        events=events,
        per_minute=max(1, 2_000 * sites // 10_000),
        start=datetime(2024, 3, 4, 7, tzinfo=UTC),
    )
    config = IndicatorConfig(rules=load_rules("deploy/config/procedures.yaml"))
    state = Partition(0, config)  # one state per network of the partition, as the service keeps them
    for site in workload.site_records():
        state.register(compile_site(site))
    states = [network for _, network in state.states()]
    for network in states:
        network.flush()
    shared = (config,)  # the settings, not per-site state
    registered = deep_size(state, shared)
    minute = None
    for _, _, value in workload.records():
        event = decode_event(value)
        state.apply(event)
        m = event.t // (60 * flush_every)
        if m != minute:
            minute = m
            for network in states:
                network.progress()
                network.flush(site_snapshots=False)
    for network in states:
        network.progress()
        network.flush(site_snapshots=False)
    return StateMemory(sites, events, deep_size(state, shared), registered)
