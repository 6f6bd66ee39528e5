"""Service layer of indicators: the two stages, between the pure domain and Kafka.

Stage 1 (``SiteStreams``) owns the partitions of the site-keyed topics this instance was
assigned: it applies their events to the per-partition state, publishes per-site
snapshots and per-scope partial sums, and checkpoints each partition's state with the
input offsets it covers (then, and only then, are the offsets committed).

Stage 2 (``Aggregation``) owns partitions of the partial-sums topic, i.e. a share of the
scopes: it sums the latest partial of every source partition, publishes the scopes'
snapshots and exports them to Prometheus.

Both talk to Kafka through small ports (``Sink``, ``Store``), so tests can use fakes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from charter_contracts import DeadLetter, RejectReason, Site
from charter_indicators.decoding import UndecodableError, decode_event
from charter_indicators.domain.aggregate import Aggregator
from charter_indicators.domain.calendar import idle_time, minute_floor
from charter_indicators.domain.events import Call, Case, Outcome
from charter_indicators.domain.networks import Partition, source_id
from charter_indicators.domain.partition import (
    CALLS,
    CASES,
    COUNTERS,
    FlushResult,
    IndicatorConfig,
    ScopeKey,
    SiteState,
)
from charter_indicators.domain.schedule import compile_site
from charter_indicators.domain.snapshots import SnapshotValue
from charter_indicators.encoding import (
    SnapshotEncoder,
    decode_internal,
    encode_partial,
    encode_progress,
    latest_key,
    partial_key,
    progress_key,
    scope_key,
    snapshot_key,
)
from charter_indicators.kafka_io import Checkpoint
from charter_indicators.metrics import IndicatorMetrics

log = logging.getLogger(__name__)

#: How long stage 2 holds back the scopes whose parts changed while their minute did not (seconds).
REFRESH_SECONDS = 1.0
#: Scopes one slice of stage 2's publishing sums (a few milliseconds each).
SCOPE_SLICE = 50
#: Sites whose current windows one tick publishes (a round over all of them spans several ticks).
ROUND_SLICE = 500


class Sink(Protocol):
    """Where outputs go: queued, then acknowledged all at once by ``flush``."""

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None: ...

    async def flush(self) -> None: ...

    async def partitions(self, topic: str) -> list[int]: ...


class Store(Protocol):
    """Partition checkpoints."""

    async def load(self, partition: int) -> Checkpoint | None: ...

    async def save(self, partition: int, generation: int, document: bytes) -> None: ...


#: Reads the whole registry partition: (records, end offset).
SitesReader = Callable[[int], Awaitable[tuple[list[Any], int]]]
#: The end offset of a topic-partition as last seen by the consumer (None: not known yet).
Highwater = Callable[[str, int], int | None]


@dataclass(frozen=True)
class Topics:
    """The topics indicators reads and writes (under the environment's prefix)."""

    counters: str
    calls: str
    cases: str
    sites: str
    dead_letter: str
    indicators: str
    latest: str
    partials: str
    state: str

    @property
    def canonical(self) -> tuple[str, str, str]:
        return (self.counters, self.calls, self.cases)

    def stream(self, topic: str) -> str:
        """The partition state's name of the stream a canonical topic carries."""
        return {self.counters: COUNTERS, self.calls: CALLS, self.cases: CASES}[topic]


def scope_partition(scope: ScopeKey, partitions: int) -> int:
    """Partition of the partial-sums topic that aggregates ``scope`` (stable across processes)."""
    return zlib.crc32(scope_key(scope[0], scope[1]).encode()) % partitions


class SiteStreams:
    """Stage 1: per-partition state of the site-keyed topics this instance owns."""

    def __init__(
        self,
        config: IndicatorConfig,
        topics: Topics,
        sink: Sink,
        store: Store,
        read_sites: SitesReader,
        metrics: IndicatorMetrics,
        highwater: Highwater,
        *,
        idle_seconds: float,
        site_snapshot_seconds: float,
        max_flush_gap: float = 7200.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.topics = topics
        self.sink = sink
        self.store = store
        self.read_sites = read_sites
        self.metrics = metrics
        self.highwater = highwater
        self.idle_seconds = idle_seconds
        self.site_snapshot_seconds = site_snapshot_seconds
        self.max_flush_gap = max_flush_gap
        self.clock = clock
        self.partitions: dict[int, Partition] = {}
        self.offsets: dict[int, dict[str, int]] = {}
        self.generations: dict[int, int] = {}
        #: when each partition was assigned, and each network last heard of on each of its
        #: topic-partitions since (wall clock): the idle clock
        self.assigned: dict[int, float] = {}
        self.heard: dict[tuple[int, str], dict[str, float]] = {}
        #: when each network was first heard of on a partition since it was assigned
        self.first_heard: dict[tuple[int, str], float] = {}
        self.lock = asyncio.Lock()
        self.saving = asyncio.Lock()
        self.encoder = SnapshotEncoder()
        self.writer = uuid.uuid4().hex[:8]
        #: each partition's round of its sites' current windows: the sites still to publish, when it
        #: started (wall clock) and as of when
        self._rounds: dict[int, list[SiteState]] = {}
        self._round_started: dict[int, float] = {}
        self._round_as_of: dict[int, float | None] = {}

    # -- assignment -------------------------------------------------------------------

    async def assign(self, partitions: Iterable[int]) -> dict[tuple[str, int], int | None]:
        """Restore each partition (registry, then checkpoint); returns where to seek (None: beginning)."""
        seeks: dict[tuple[str, int], int | None] = {}
        async with self.lock:
            for p in sorted(set(partitions) - set(self.partitions)):
                state = Partition(p, self.config, max_lag=self.max_flush_gap)
                records, sites_end = await self.read_sites(p)
                for record in records:
                    self._registry(state, record)
                checkpoint = await self.store.load(p)
                if checkpoint is not None and not Partition.loadable(checkpoint.document["state"]):
                    log.warning(
                        "partition %s: checkpoint %s is of another version; the partition is rebuilt from its topics",
                        p,
                        checkpoint.generation,
                    )
                    self.generations[p] = checkpoint.generation
                    checkpoint = None
                offsets: dict[str, int] = {}
                if checkpoint is not None:
                    state.load(checkpoint.document["state"])
                    offsets = {str(k): int(v) for k, v in checkpoint.document["offsets"].items()}
                    self.generations[p] = checkpoint.generation
                offsets[self.topics.sites] = sites_end
                for topic in self.topics.canonical:
                    seeks[(topic, p)] = offsets.get(topic)
                seeks[(self.topics.sites, p)] = sites_end
                self.partitions[p] = state
                self.offsets[p] = offsets
                self.assigned[p] = self.clock()
                for topic in self.topics.canonical:
                    self.heard[(p, topic)] = {}
                log.info(
                    "partition %s: %d sites, %s, watermark %s",
                    p,
                    len(state.all_sites()),
                    f"checkpoint {checkpoint.generation}" if checkpoint else "no checkpoint",
                    state.watermark,
                )
        return seeks

    def start_at(self, topic: str, partition: int, offset: int) -> None:
        """The consumer starts reading a topic-partition at ``offset`` (records before it are not ours)."""
        offsets = self.offsets.get(partition)
        if offsets is not None and offsets.get(topic, -1) < offset:
            offsets[topic] = offset

    async def revoke(self, partitions: Iterable[int]) -> dict[tuple[str, int], int]:
        """Checkpoint and drop partitions handed to another instance; returns the offsets to commit."""
        gone = set(partitions) & set(self.partitions)
        if not gone:
            return {}
        commits = await self.checkpoint(gone)
        async with self.lock:
            for p in gone:
                self.partitions.pop(p, None)
                self.offsets.pop(p, None)
                self._rounds.pop(p, None)
                self._round_started.pop(p, None)
                self._round_as_of.pop(p, None)
                self.assigned.pop(p, None)
                for key in [key for key in self.first_heard if key[0] == p]:
                    del self.first_heard[key]
                for topic in self.topics.canonical:
                    self.heard.pop((p, topic), None)
        return commits

    # -- records ----------------------------------------------------------------------

    async def handle(self, records: Sequence[Any]) -> None:
        """Apply a batch of records: registry updates first, then events (late and unknown ones reported)."""
        async with self.lock:
            counted: Counter[str] = Counter()
            late: Counter[tuple[str, str]] = Counter()
            rejected: Counter[str] = Counter()
            now = self.clock()
            sites_topic = self.topics.sites
            for record in records:
                if record.topic == sites_topic:
                    p = record.partition
                    owner = self.partitions.get(p)
                    if owner is None or record.offset < self.offsets[p].get(sites_topic, 0):
                        continue
                    self._registry(owner, record)
                    self.offsets[p][sites_topic] = record.offset + 1
            # records of one topic-partition come together: it is looked up once a run, and its
            # offset written at the end of the run (the lock keeps checkpoints out meanwhile)
            topic: str | None = None
            partition = -1
            state: Partition | None = None
            offsets: dict[str, int] = {}
            heard: dict[str, float] = {}
            first = 0
            last = -1
            calls = cases = 0
            decode = decode_event
            for record in records:
                if record.partition != partition or record.topic != topic:
                    if last >= 0 and topic is not None:
                        offsets[topic] = last + 1
                    topic, partition, last = record.topic, record.partition, -1
                    state = None if topic == sites_topic else self.partitions.get(partition)
                    if state is not None:
                        offsets = self.offsets[partition]
                        first = offsets.get(topic, 0)
                        heard = self.heard[(partition, topic)]
                offset = record.offset
                if state is None or offset < first:
                    continue
                last = offset
                try:
                    event = decode(record.value or b"")
                except UndecodableError as exc:
                    rejected["schema"] += 1
                    await self._dead_letter(record, RejectReason.SCHEMA, str(exc), None)
                    continue
                heard[event.network] = now
                outcome = state.apply(event)
                kind = event.__class__
                if outcome is Outcome.ACCEPTED:
                    if kind is Call:
                        calls += 1
                    elif kind is Case:
                        cases += 1
                    else:
                        counted[event.type] += 1
                    continue
                rejected[outcome.value] += 1
                if outcome is Outcome.LATE:
                    late[(event.network, event.type)] += 1
                    judged = "ended_at" if kind is Call else "occurred_at"
                    watermark = _iso(state.watermark_of(event.network))
                    await self._dead_letter(
                        record,
                        RejectReason.LATE,
                        f"{judged} is before the watermark {watermark} "
                        f"(grace {self.config.grace:g} s), or the call lasted longer than "
                        f"{self.config.max_call:g} s: not counted"
                        if kind is Call
                        else f"{judged} is before the watermark {watermark} "
                        f"(grace {self.config.grace:g} s): not counted",
                        event.network,
                    )
                elif outcome is Outcome.UNKNOWN_SITE:
                    site = state.site(event.site_id)
                    detail = (
                        f"site_id: {event.site_id!r} belongs to network {site.info.network!r} in the site registry"
                        if site is not None
                        else f"site_id: {event.site_id!r} is not in the site registry (charter.sites)"
                    )
                    await self._dead_letter(record, RejectReason.UNKNOWN_SITE, detail, event.network)
            if last >= 0 and topic is not None:
                offsets[topic] = last + 1
            if calls:
                counted["call"] += calls
            if cases:
                counted["case_completed"] += cases
            self._progress(now)
            self.metrics.count(counted, late, rejected)

    def behind(self) -> bool:
        """Event time ran more than ``max_flush_gap`` past a partition's last flush: a replay
        outpaces the clock's pauses, and minutes would pile up in memory until the next flush."""
        for partition in self.partitions.values():
            for state in partition.networks.values():
                flushed = state.as_of if state.as_of is not None else state.origin
                if flushed is not None and state.watermark - flushed > self.max_flush_gap:
                    return True
        return False

    def minute_closed(self) -> bool:
        """Live, a partition's watermark reached a minute whose figures are not out yet: worth a flush now.

        Live means read up to date: a replay (records still to read) leaves the flushes to the pacing.
        """
        return any(
            state.as_of is not None and minute_floor(state.watermark) > state.as_of and self._read_up_to_date(p)
            for p, partition in self.partitions.items()
            for state in partition.networks.values()
        )

    def _read_up_to_date(self, p: int) -> bool:
        return not any(self._unread(p, topic) for topic in self.topics.canonical)

    def _unread(self, p: int, topic: str) -> bool:
        """Records of the topic-partition not read yet (or its end not known yet)."""
        end = self.highwater(topic, p)
        return end is None or self.offsets[p].get(topic, 0) < end

    def _progress(self, now: float) -> None:
        """Advance each network's watermark, in each partition, from where each of its streams stands.

        A stream is behind while its topic-partition has records not read yet (whichever network
        they are of); read up to date, a network's stream silent for ``idle_seconds`` follows
        the wall clock from its latest event. A network's stream that never had an event holds
        its time for ``idle_seconds`` after the network is first heard of, even read up to date:
        ingest writes the three canonical topics one after the other, and the first cases used
        to be late against calls written a moment before them.
        """
        for p, partition in self.partitions.items():
            unread = [topic for topic in self.topics.canonical if self._unread(p, topic)]
            behind = [self.topics.stream(topic) for topic in unread]
            for network, state in partition.networks.items():
                clock = {}
                waiting = behind
                first = self.first_heard.get((p, network))
                if first is None and any(network in self.heard[(p, topic)] for topic in self.topics.canonical):
                    first = self.first_heard[(p, network)] = now
                starting = first is not None and now - first < self.idle_seconds
                for topic in self.topics.canonical:
                    if topic in unread:
                        continue
                    stream = self.topics.stream(topic)
                    if starting and stream not in state.stream_max:
                        waiting = [*waiting, stream]
                        continue
                    last = self.heard[(p, topic)].get(network, self.assigned[p])
                    moved = idle_time(state.stream_max.get(stream), last, now)
                    if self.idle_seconds and now - last >= self.idle_seconds and moved is not None:
                        clock[stream] = moved
                state.progress(waiting, clock, hold=self.max_flush_gap)
            partition.keep_up()

    def _registry(self, state: Partition, record: Any) -> None:
        if record.value is None:
            state.unregister((record.key or b"").decode())
            return
        try:
            site = Site.model_validate_json(record.value)
        except ValidationError as exc:
            log.warning("ignoring invalid registry record %s@%s: %s", record.partition, record.offset, exc)
            return
        state.register(compile_site(site))

    async def _dead_letter(self, record: Any, reason: RejectReason, detail: str, network: str | None) -> None:
        payload, encoding = DeadLetter.encode_payload(record.value or b"")
        letter = DeadLetter(
            reason=reason,
            detail=detail[:2000],
            network=network,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            payload=payload,
            payload_encoding=encoding,
            rejected_at=datetime.now(UTC),
        )
        await self.sink.send(self.topics.dead_letter, record.key, letter.model_dump_json().encode())

    # -- time -------------------------------------------------------------------------

    async def tick(self) -> None:
        """Let time pass on idle partitions, bring figures up to date, publish, wait for the acks.

        Each partition's sites publish their current windows every ``site_snapshot_seconds``,
        in slices of ``ROUND_SLICE`` sites, one slice per tick: a round over thousands of sites
        never holds back the next minute's figures.
        """
        now = self.clock()
        async with self.lock:
            self._progress(now)
            for p, state in sorted(self.partitions.items()):
                for network, network_state in state.states():
                    await self._publish(source_id(p, network), network_state.flush(site_snapshots=False))
                due = now - self._round_started.get(p, -float("inf")) >= self.site_snapshot_seconds
                # a round is worth starting once figures moved on (a minute closed) since the last one
                if due and p not in self._rounds and state.as_of != self._round_as_of.get(p):
                    self._rounds[p] = state.all_sites()
                    self._round_started[p], self._round_as_of[p] = now, state.as_of
        if self._rounds:
            await self.sink.flush()  # the partial sums leave before a slice of site snapshots is made
        async with self.lock:
            for p in sorted(self._rounds):
                pending = self._rounds[p]
                owner = self.partitions.get(p)
                if owner is None:  # restored meanwhile: its next round starts afresh
                    del self._rounds[p]
                    continue
                chunk = [site for site in pending[:ROUND_SLICE] if owner.site(site.info.site_id) is site]
                for snapshot in owner.site_snapshots(chunk):
                    await self._snapshot(snapshot)
                if len(pending) > ROUND_SLICE:
                    self._rounds[p] = pending[ROUND_SLICE:]
                else:
                    del self._rounds[p]
            as_of = [s.as_of for s in self.partitions.values() if s.as_of is not None]
            if as_of:
                self.metrics.watermark.set(min(as_of))
        await self.sink.flush()

    async def _publish(self, source: str, result: FlushResult) -> None:
        """The partial sums first (what the nation and networks wait for), then the sites' closed buckets."""
        if result.advanced:
            partitions = await self.sink.partitions(self.topics.partials)
            for scope, payload in result.partials.items():
                q = partitions[scope_partition(scope, len(partitions))]
                key, value = partial_key(source, scope), encode_partial(source, scope, payload)
                await self.sink.send(self.topics.partials, key, value, q)
            assert result.as_of is not None
            progress = encode_progress(source, result.as_of)
            for q in partitions:
                await self.sink.send(self.topics.partials, progress_key(source), progress, q)
        for snapshot in result.snapshots:
            await self._snapshot(snapshot)

    async def _snapshot(self, snapshot: SnapshotValue) -> None:
        value = self.encoder.encode(snapshot)
        await self.sink.send(self.topics.indicators, snapshot_key(snapshot), value)
        await self.sink.send(self.topics.latest, latest_key(snapshot), value)

    async def checkpoint(self, partitions: Iterable[int] | None = None) -> dict[tuple[str, int], int]:
        """Save the state of partitions with the offsets it covers; returns those offsets, to commit.

        The state is captured under the lock (consistent with its offsets); everything
        published before it, dead letters included, is acknowledged before the checkpoint
        is written, so a restart never skips an output.
        """
        commits: dict[tuple[str, int], int] = {}
        async with self.saving:
            wanted = set(self.partitions if partitions is None else partitions)
            # one partition at a time: a document is tens of megabytes during a replay, and three
            # at once made the process's peak (and so its resident memory) that much higher
            for p in sorted(wanted):
                async with self.lock:
                    if p not in self.partitions:
                        continue
                    offsets = dict(self.offsets[p])
                    state = {"state": self.partitions[p].dump(), "offsets": offsets, "writer": self.writer}
                    document = orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS)
                await self.sink.flush()
                generation = self.generations.get(p, 0) + 1
                await self.store.save(p, generation, document)
                self.generations[p] = generation
                del document
                commits.update({(topic, p): offset for topic, offset in offsets.items()})
            return commits


class Aggregation:
    """Stage 2: the scopes of the partial-sums partitions this instance owns."""

    def __init__(
        self,
        topics: Topics,
        sink: Sink,
        metrics: IndicatorMetrics,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topics = topics
        self.sink = sink
        self.metrics = metrics
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        #: since when scopes whose parts alone changed have been waiting (None: none is)
        self._held_since: float | None = None
        self.aggregators: dict[int, Aggregator] = {}
        self.catching_up: dict[int, int] = {}
        #: partitions being read again from their first offset: records read before the consumer
        #: went back there (offsets above it) are left out, they come again in order
        self.rebuilding: dict[int, int] = {}
        #: the last offset of such records, per partition being read again
        self._read_before_seek: dict[int, int] = {}
        self.encoder = SnapshotEncoder()
        self.lock = asyncio.Lock()

    async def assign(self, ends: dict[int, int], starts: dict[int, int] | None = None) -> None:
        """Start owning partitions; they are read from ``starts`` (the first offsets) up to ``ends``
        before publishing. Call before the consumer seeks to ``starts``: a batch it read before
        the seek is then left out rather than mixed into (or lost from) the rebuilt scopes."""
        sources = len(await self.sink.partitions(self.topics.calls))
        async with self.lock:
            for q, end in ends.items():
                self.aggregators[q] = Aggregator(sources)
                start = (starts or {}).get(q, 0)
                self._read_before_seek.pop(q, None)
                if end > start:
                    self.catching_up[q] = end
                    self.rebuilding[q] = start
                else:
                    self.catching_up.pop(q, None)
                    self.rebuilding.pop(q, None)

    async def revoke(self, partitions: Iterable[int]) -> None:
        async with self.lock:
            for q in partitions:
                aggregator = self.aggregators.pop(q, None)
                self.catching_up.pop(q, None)
                self.rebuilding.pop(q, None)
                self._read_before_seek.pop(q, None)
                if aggregator is not None:
                    self.metrics.forget(list(aggregator.scopes))

    async def handle(self, records: Sequence[Any]) -> bool:
        """Take partial sums and progress in; True when a scope's figures became complete for a
        later minute (every source partition reported it): worth publishing without waiting."""
        async with self.lock:
            before = {q: aggregator.as_of for q, aggregator in self.aggregators.items()}
            for record in records:
                q = record.partition
                aggregator = self.aggregators.get(q)
                if aggregator is None:
                    continue
                start = self.rebuilding.get(q)
                if start is not None:
                    before_seek = self._read_before_seek.get(q, -1)
                    # the seek has taken effect at the first record (or, should the cleaner have removed
                    # that one meanwhile, when the offsets go back down)
                    if record.offset > start and record.offset > before_seek:
                        self._read_before_seek[q] = record.offset
                        continue  # read before the seek back to the first offset: it comes again, in order
                    del self.rebuilding[q]
                    self._read_before_seek.pop(q, None)
                if record.value is not None:
                    data = decode_internal(record.value)
                    source = data["source"]
                    if not isinstance(source, str):
                        pass  # a partition's sums over all its networks, from before networks had their own time
                    elif "parts" in data:
                        aggregator.update((data["network"], data["department"]), source, data["parts"])
                    else:
                        aggregator.update_progress(source, float(data["as_of"]))
                end = self.catching_up.get(q)
                if end is not None and record.offset + 1 >= end:
                    del self.catching_up[q]
            new_minute = any(
                q not in self.catching_up and aggregator.as_of is not None and aggregator.as_of != before.get(q)
                for q, aggregator in self.aggregators.items()
            )
            if not new_minute and self._held_since is None and self._waiting():
                self._held_since = self.clock()  # held from now: ``due_in`` counts refresh_seconds from here
            return new_minute

    def _waiting(self) -> list[Aggregator]:
        """The aggregators, read up to date, with scopes waiting to go out."""
        return [a for q, a in self.aggregators.items() if q not in self.catching_up and a.due()]

    def due_in(self) -> float | None:
        """Seconds before the scopes left waiting by ``handle`` must go out (None: none waits).

        A revision while every source is at the same minute is due at once; what sources ahead sent
        while a minute is closing, ``refresh_seconds`` after it came. The caller ticks then: the
        stage-1 clock's next flush can be far off (its pacing spaces flushes out after a backlog, up
        to half a minute), and a source that stays behind (its streams went quiet) never closes the
        minute, so the figures of the sources ahead would wait for that flush.
        """
        waiting = self._waiting()
        if not waiting:
            return None
        if any(not a.closing for a in waiting) or self._held_since is None:
            return 0.0
        return max(0.0, self._held_since + self.refresh_seconds - self.clock())

    async def republish(self) -> None:
        """Publish every scope again at the next tick (after the producer lost what it queued)."""
        async with self.lock:
            for aggregator in self.aggregators.values():
                aggregator.republish()

    async def tick(self) -> None:
        """Publish the scopes that changed (of the partitions read up to date) and export them.

        Those whose minute moved on go out at once, and so do changes while every source is
        at the same minute (a revision, a registry change). While a minute is closing (some
        sources reached it, others not yet) the scopes whose parts alone changed wait, at
        most ``refresh_seconds``: the sources report one after the other within a few
        hundred milliseconds, and the scopes are summed once all have, not again at each
        report; a source that stays behind holds nothing for longer than that.
        """
        refresh = self._held_since is not None and self.clock() - self._held_since >= self.refresh_seconds
        # the nation and the networks first, out before the departments are even computed
        for ranks in ((0, 1), (2, 3)):
            for q in sorted(self.aggregators):
                while True:
                    async with self.lock:
                        aggregator = self.aggregators.get(q)
                        if aggregator is None or q in self.catching_up:
                            break
                        only_new = aggregator.closing and not refresh
                        snapshots = aggregator.snapshots(ranks, new_minute_only=only_new, limit=SCOPE_SLICE)
                        self.metrics.observe(snapshots)
                        for snapshot in snapshots:
                            value = self.encoder.encode(snapshot)
                            await self.sink.send(self.topics.indicators, snapshot_key(snapshot), value)
                            await self.sink.send(self.topics.latest, latest_key(snapshot), value)
                        if not aggregator.due(ranks, new_minute_only=only_new):
                            break
                    # a slice at a time: events, and the partial sums that complete a minute, go in between
                    await asyncio.sleep(0)
            if ranks == (0, 1):
                await self.sink.flush()
        async with self.lock:
            held = any(aggregator.due() for q, aggregator in self.aggregators.items() if q not in self.catching_up)
            if not held:
                self._held_since = None
            elif self._held_since is None or refresh:
                self._held_since = self.clock()
        await self.sink.flush()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat() if t != -float("inf") else "-inf"
