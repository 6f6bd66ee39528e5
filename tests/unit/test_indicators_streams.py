"""The indicators' stage 1 with fakes for Kafka: a replay that outruns the clock's pauses asks
for a flush, and the flush brings the minutes kept in memory back to the last hour."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from charter_indicators.app import Indicators
from charter_indicators.domain.partition import IndicatorConfig
from charter_indicators.encoding import encode_partial, encode_progress
from charter_indicators.kafka_io import Checkpoint
from charter_indicators.metrics import IndicatorMetrics
from charter_indicators.service import Aggregation, SiteStreams, Topics
from charter_indicators.settings import IndicatorsSettings
from tests.support import events
from tests.support.pipeline import T0
from tests.support.sites import site

TOPICS = Topics("counters", "calls", "cases", "sites", "dead-letter", "indicators", "latest", "partials", "state")
GAP = 1800.0


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class FakeSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        self.sent.append((topic, value))

    async def flush(self) -> None:
        return None

    async def partitions(self, topic: str) -> list[int]:
        return [0, 1, 2]


class FakeStore:
    def __init__(self) -> None:
        self.saved: dict[int, tuple[int, bytes]] = {}

    async def load(self, partition: int) -> Checkpoint | None:
        if partition not in self.saved:
            return None
        generation, document = self.saved[partition]
        return Checkpoint(generation, orjson.loads(document))

    async def save(self, partition: int, generation: int, document: bytes) -> None:
        self.saved[partition] = (generation, document)


class Calls:
    """The calls topic of partition 0, as the consumer would hand it over."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def add(self, minutes: range) -> list[Record]:
        batch = [
            Record(
                "calls",
                0,
                len(self.records) + i,
                b"caf-1",
                events.encode(events.call(T0 + timedelta(minutes=m), site_id="caf-1")),
            )
            for i, m in enumerate(minutes)
        ]
        self.records += batch
        return batch


async def _registry(partition: int) -> tuple[list[Any], int]:
    return [Record("sites", partition, 0, b"caf-1", site("caf-1").model_dump_json().encode())], 1


def _streams(
    calls: Calls,
    sink: FakeSink,
    store: FakeStore | None = None,
    metrics: IndicatorMetrics | None = None,
    highwater: Any = None,
    **options: Any,
) -> SiteStreams:
    settings: dict[str, Any] = {"idle_seconds": 0, "site_snapshot_seconds": 0, "max_flush_gap": GAP, **options}
    return SiteStreams(
        IndicatorConfig(),
        TOPICS,
        sink,
        store or FakeStore(),
        _registry,
        metrics or IndicatorMetrics(CollectorRegistry()),
        highwater or (lambda topic, p: len(calls.records) if topic == "calls" else 0),
        **settings,
    )


def _site_snapshots(sink: FakeSink) -> list[dict[str, Any]]:
    documents = [orjson.loads(value) for topic, value in sink.sent if topic == "indicators" and value]
    return [d for d in documents if d["scope"]["site_id"] and d["window"] not in ("hour", "day")]


async def test_live_a_minute_closing_is_worth_a_flush_and_the_flush_answers_it() -> None:
    calls, sink = Calls(), FakeSink()
    streams = _streams(calls, sink)
    await streams.assign([0])
    await streams.handle(calls.add(range(3)))
    await streams.tick()
    assert not streams.minute_closed()
    await streams.handle(calls.add(range(3, 4)))  # a call a minute later: the watermark passes a minute
    assert streams.minute_closed()
    await streams.tick()
    assert not streams.minute_closed()

    # a replay (records still to read on the topic) leaves the flushes to the clock's pacing
    batch = calls.add(range(4, 10))
    await streams.handle(batch[:3])
    assert not streams.minute_closed()
    await streams.handle(batch[3:])
    assert streams.minute_closed()


async def test_a_replay_past_the_flush_gap_asks_for_a_flush_and_the_flush_keeps_only_the_last_hour() -> None:
    calls, sink = Calls(), FakeSink()
    streams = _streams(calls, sink)
    await streams.assign([0])
    await streams.handle(calls.add(range(20)))
    assert not streams.behind()  # 20 minutes of event time: the clock's pause decides

    await streams.handle(calls.add(range(20, 200)))  # three hours more, read faster than the clock flushes
    assert streams.behind()
    state = streams.partitions[0]
    assert state.minutes_held() == 200  # every minute's calls wait for the next flush

    await streams.tick()
    assert not streams.behind()
    # the 1-hour window's 60 minutes, and the two the grace period still holds back
    assert state.minutes_held() == 62
    assert any(topic == "indicators" for topic, _ in sink.sent)  # and the figures went out


async def test_a_checkpoint_saves_each_partition_with_the_offsets_it_covers_and_returns_them_to_commit() -> None:
    calls, sink, store = Calls(), FakeSink(), FakeStore()
    streams = _streams(calls, sink, store)
    await streams.assign([0, 1])
    await streams.handle(calls.add(range(30)))
    commits = await streams.checkpoint()
    assert commits[("calls", 0)] == 30
    assert sorted(store.saved) == [0, 1]
    generation, document = store.saved[0]
    assert generation == 1
    assert orjson.loads(document)["offsets"]["calls"] == 30

    restored = _streams(calls, FakeSink(), store)
    await restored.assign([0])
    assert restored.partitions[0].watermark == streams.partitions[0].watermark


async def test_a_round_of_site_snapshots_due_when_no_minute_closed_goes_out_with_the_next_minute() -> None:
    """Live, most ticks find no closed minute: the sites' round must wait for one, not be skipped."""
    calls, sink = Calls(), FakeSink()
    now = [1000.0]
    streams = _streams(calls, sink, site_snapshot_seconds=30, clock=lambda: now[0])
    await streams.assign([0])
    await streams.handle(calls.add(range(3)))
    await streams.tick()  # the first round, with the first minutes
    assert _site_snapshots(sink)

    sink.sent.clear()
    now[0] += 31  # the next round is due, but no minute closed since the last flush
    await streams.tick()
    assert not _site_snapshots(sink)
    now[0] += 1
    await streams.handle(calls.add(range(3, 4)))  # a minute closes a second later
    await streams.tick()
    assert {d["scope"]["site_id"] for d in _site_snapshots(sink)} == {"caf-1"}


async def test_a_checkpoint_of_an_older_version_is_set_aside_and_the_partition_rebuilt_from_its_topics() -> None:
    calls, sink, store = Calls(), FakeSink(), FakeStore()
    older = {"state": {"partition": 0, "sites": {}}, "offsets": {"calls": 40}, "writer": "old"}
    store.saved[0] = (7, orjson.dumps(older))
    streams = _streams(calls, sink, store)
    seeks = await streams.assign([0])
    assert seeks[("calls", 0)] is None  # from the start of the topic, not from offset 40
    await streams.handle(calls.add(range(3)))
    await streams.checkpoint()
    generation, document = store.saved[0]
    assert generation == 8
    assert orjson.loads(document)["offsets"]["calls"] == 3


async def test_a_round_over_many_sites_goes_out_a_slice_per_tick_and_covers_every_site_once() -> None:
    names = [f"caf-{i}" for i in range(1200)]  # scheduled at T0: each has opening figures to publish

    async def registry(partition: int) -> tuple[list[Any], int]:
        records = [
            Record("sites", partition, i, n.encode(), site(n).model_dump_json().encode()) for i, n in enumerate(names)
        ]
        return records, len(records)

    calls, sink = Calls(), FakeSink()
    streams = SiteStreams(
        IndicatorConfig(),
        TOPICS,
        sink,
        FakeStore(),
        registry,
        IndicatorMetrics(CollectorRegistry()),
        lambda topic, p: len(calls.records) if topic == "calls" else 0,
        idle_seconds=0,
        site_snapshot_seconds=30,
        max_flush_gap=GAP,
        clock=lambda: 1000.0,
    )
    await streams.assign([0])
    await streams.handle(calls.add(range(3)))
    slices = []
    for _ in range(4):
        sink.sent.clear()
        await streams.tick()
        slices.append([d["scope"]["site_id"] for d in _site_snapshots(sink) if d["window"] == "live"])
    assert [len(s) for s in slices] == [500, 500, 200, 0]
    assert sorted(site_id for chunk in slices for site_id in chunk) == sorted(names)


async def test_calls_are_judged_late_on_their_end_and_dead_lettered_with_the_reason() -> None:
    calls, sink, registry = Calls(), FakeSink(), CollectorRegistry()
    streams = _streams(calls, sink, metrics=IndicatorMetrics(registry))
    await streams.assign([0])
    await streams.handle(calls.add(range(10)))  # answered calls of three minutes, received a minute apart

    def record(offset: int, received: int, duration: float) -> Record:
        payload = events.call(T0 + timedelta(minutes=received), site_id="caf-1", answered_after=None, duration=duration)
        return Record("calls", 0, offset, b"caf-1", events.encode(payload))

    # received five minutes before the latest call, but ended after it: still going on, counted
    still_going = record(10, 4, 480.0)
    # received and ended well before: late
    over = record(11, 2, 10.0)
    calls.records += [still_going, over]
    await streams.handle([still_going, over])
    letters = [orjson.loads(value) for topic, value in sink.sent if topic == "dead-letter" and value]
    assert [(letter["reason"], letter["source_offset"]) for letter in letters] == [("late", 11)]
    assert letters[0]["detail"].startswith("ended_at is before the watermark")
    assert registry.get_sample_value("charter_indicators_events_total", {"type": "call"}) == 11
    assert streams.offsets[0]["calls"] == 12  # both read, one counted, one dead-lettered


async def _caf_and_msa(partition: int) -> tuple[list[Any], int]:
    """A registry of two sites of two networks (caf-1, msa-1)."""
    return [
        Record("sites", partition, i, f"{n}-1".encode(), site(f"{n}-1", network=n).model_dump_json().encode())
        for i, n in enumerate(("caf", "msa"))
    ], 2


def _two_networks(sink: FakeSink, registry: CollectorRegistry, highwater: Any) -> SiteStreams:
    return SiteStreams(
        IndicatorConfig(),
        TOPICS,
        sink,
        FakeStore(),
        _caf_and_msa,
        IndicatorMetrics(registry),
        highwater,
        idle_seconds=0,
        site_snapshot_seconds=0,
        max_flush_gap=GAP,
    )


async def test_a_network_whose_backlog_is_read_after_another_networks_is_counted_not_late() -> None:
    """Ingest reads every network's raw topics at once: after an outage or a backfill, a small
    network's whole backlog can reach the canonical topic before a large one's first minutes.
    Each network is judged on its own event time, so neither is late."""
    sink, registry = FakeSink(), CollectorRegistry()
    backlog: list[Record] = []
    for network in ("msa", "caf"):  # MSA's half hour first, then CAF's
        for m in range(30):
            payload = events.call(T0 + timedelta(minutes=m), network=network, site_id=f"{network}-1")
            backlog.append(Record("calls", 0, len(backlog), f"{network}-1".encode(), events.encode(payload)))

    streams = _two_networks(sink, registry, lambda topic, p: len(backlog) if topic == "calls" else 0)
    await streams.assign([0])
    for start in range(0, len(backlog), 7):  # batches as the consumer hands them over, flushing in between
        await streams.handle(backlog[start : start + 7])
        await streams.tick()

    assert not [value for topic, value in sink.sent if topic == "dead-letter"]
    assert registry.get_sample_value("charter_indicators_events_total", {"type": "call"}) == 60
    progress = [orjson.loads(v) for topic, v in sink.sent if topic == "partials" and v and b'"as_of"' in v]
    assert {p["source"] for p in progress} == {"0/caf", "0/msa"}  # each network's figures on its own time
    last = {p["source"]: p["as_of"] for p in progress}
    assert last["0/caf"] == last["0/msa"]  # both read to their last minute, less the grace period


async def test_a_network_silent_in_a_replay_is_moved_on_once_the_others_are_the_flush_gap_ahead() -> None:
    """A network that stops publishing must not hold the national figures (the earliest source) for good."""
    sink = FakeSink()
    records: list[Record] = []

    def add(network: str, minutes: range) -> list[Record]:
        batch = [
            Record(
                "calls",
                0,
                len(records) + i,
                f"{network}-1".encode(),
                events.encode(events.call(T0 + timedelta(minutes=m), network=network, site_id=f"{network}-1")),
            )
            for i, m in enumerate(minutes)
        ]
        records.extend(batch)
        return batch

    # always more to read: a replay
    streams = _two_networks(sink, CollectorRegistry(), lambda topic, p: len(records) + 1 if topic == "calls" else 0)
    await streams.assign([0])
    await streams.handle(add("msa", range(10)) + add("caf", range(10)))
    await streams.handle(add("caf", range(10, 100)))  # MSA says nothing more
    partition = streams.partitions[0]
    caf, msa = partition.networks["caf"].watermark, partition.networks["msa"].watermark
    assert msa == caf - GAP  # moved on, GAP behind CAF, not stuck at its 10th minute


async def test_a_stream_with_records_unread_and_none_of_the_network_holds_it_for_the_flush_gap_only() -> None:
    """Cases not read yet may hold CAF's cases: its time waits. But a network that never sends
    cases (the cases topic carrying other networks' records) must not hold a replay for good."""
    calls, sink = Calls(), FakeSink()
    cases_unread = 5  # the cases topic has records not read yet (of other networks, as it turns out)
    streams = _streams(
        calls,
        sink,
        highwater=lambda topic, p: len(calls.records) if topic == "calls" else cases_unread if topic == "cases" else 0,
    )
    await streams.assign([0])
    await streams.handle(calls.add(range(20)))
    assert streams.partitions[0].watermark == -float("inf")  # the cases may still come: held
    await streams.handle(calls.add(range(20, 40)))  # 39 minutes of calls: more than the gap (30)
    assert streams.partitions[0].watermark == (T0 + timedelta(minutes=39)).timestamp() - IndicatorConfig().grace


async def _partial_sums_of_stage_one() -> list[Record]:
    """The partial sums stage 1 publishes over 90 calls and three flushes, as stage 2 reads them."""
    calls, sink = Calls(), FakeSink()
    streams = _streams(calls, sink)
    await streams.assign([0])
    for start in range(0, 90, 30):
        await streams.handle(calls.add(range(start, start + 30)))
        await streams.tick()
    values = [value for topic, value in sink.sent if topic == "partials" and value]
    return [Record("partials", 0, offset, None, value) for offset, value in enumerate(values)]


async def test_stage_two_rebuilt_after_a_restart_leaves_out_a_batch_read_before_the_seek_and_loses_nothing() -> None:
    """On assignment, stage 2 reads the compacted partial sums again from their first offset. A batch
    the consumer read before seeking back (from where it stood) must not end the rebuild early nor
    push out what comes from the start (it used to: a closed hour of one source went missing from a
    department's sum after the indicators were killed and restarted)."""
    records = await _partial_sums_of_stage_one()
    assert len(records) > 4

    reference = Aggregation(TOPICS, FakeSink(), IndicatorMetrics(CollectorRegistry()))
    await reference.assign({0: len(records)}, {0: 0})
    await reference.handle(records)

    restarted = Aggregation(TOPICS, FakeSink(), IndicatorMetrics(CollectorRegistry()))
    await restarted.assign({0: len(records)}, {0: 0})
    await restarted.handle(records[-2:])  # read from the old position, before the seek to offset 0
    assert 0 in restarted.catching_up  # not taken for the end of the rebuild
    await restarted.handle(records)  # from the first offset, after the seek
    assert 0 not in restarted.catching_up
    built, expected = restarted.aggregators[0], reference.aggregators[0]
    assert built.as_of == expected.as_of is not None
    assert {scope: sorted(entry.hours) for scope, entry in built.scopes.items()} == {
        scope: sorted(entry.hours) for scope, entry in expected.scopes.items()
    }
    assert [s.numerator for s in built.snapshots()] == [s.numerator for s in expected.snapshots()]


async def test_stage_two_rebuilt_from_partial_sums_the_cleaner_compacted_loses_nothing_and_catches_up() -> None:
    """The partial sums are compacted: after a while their first records are gone and the first one
    read is past the log's start offset. The rebuild starts at the first record there is (it used to
    wait for the start offset itself, skipping every record, and stage 2 never published again after
    a restart). Should the cleaner remove that record too between the lookup and the read, the
    offsets going back down after a batch read before the seek tell where the rebuild starts."""
    records = await _partial_sums_of_stage_one()
    first = 3  # cleaned away: offsets 0 to 2, superseded by later records of the same keys
    kept = records[first:]

    reference = Aggregation(TOPICS, FakeSink(), IndicatorMetrics(CollectorRegistry()))
    await reference.assign({0: len(records)}, {0: first})
    await reference.handle(kept)
    assert 0 not in reference.catching_up  # caught up: publishing again
    assert reference.aggregators[0].as_of is not None

    raced = Aggregation(TOPICS, FakeSink(), IndicatorMetrics(CollectorRegistry()))
    await raced.assign({0: len(records)}, {0: first})
    await raced.handle(kept[-2:])  # read before the seek, from where the consumer stood
    await raced.handle(kept[1:])  # after the seek, the record at ``first`` cleaned away meanwhile
    assert 0 not in raced.catching_up
    assert [s.numerator for s in raced.aggregators[0].snapshots()] == [
        s.numerator for s in reference.aggregators[0].snapshots()
    ]


async def test_a_stream_without_events_holds_a_network_for_the_idle_period_after_it_is_first_heard_of() -> None:
    """Ingest writes the canonical topics one after the other: the first cases may come a moment
    after calls of later minutes. They are not late; a stream still silent after the idle period is
    left out (a network may send no cases at all)."""
    calls, sink = Calls(), FakeSink()
    wall = [1000.0]
    streams = _streams(calls, sink, idle_seconds=10.0, clock=lambda: wall[0])
    await streams.assign([0])
    await streams.handle(calls.add(range(10)))
    state = streams.partitions[0]
    assert state.watermark == -float("inf")  # counters and cases not heard of yet: held

    wall[0] += 3.0
    case = events.case(T0 + timedelta(minutes=1), site_id="caf-1")
    await streams.handle([Record("cases", 0, 0, b"caf-1", events.encode(case))])
    assert not [value for topic, value in sink.sent if topic == "dead-letter"]  # counted, not late

    wall[0] += 10.0  # the counters stream stays silent: left out, time moves on
    await streams.tick()
    assert state.watermark == (T0 + timedelta(minutes=1)).timestamp() - IndicatorConfig().grace


async def test_stage_two_publishes_a_closing_minute_once_every_source_reached_it() -> None:
    """Live, the 24 sources of a minute report within a few hundred milliseconds: the scopes go out once,
    when the last one has, instead of being summed again at each report (which held back the report
    that completes the minute). A revision while every source is at the same minute goes out at once;
    what sources ahead sent while another stays behind, once it has waited ``refresh_seconds``."""
    sink, now = FakeSink(), [0.0]
    aggregation = Aggregation(
        TOPICS, sink, IndicatorMetrics(CollectorRegistry()), refresh_seconds=5.0, clock=lambda: now[0]
    )
    await aggregation.assign({0: 0})
    parts = {"w": {"1h": [0.0, 0.0, 3.0]}, "live": [], "hour": {}, "day": {}}
    offset = iter(range(1000))

    def partial(source: str, department: str) -> Record:
        return Record("partials", 0, next(offset), None, encode_partial(source, ("caf", department), parts))

    def progress(source: str, as_of: float) -> Record:
        return Record("partials", 0, next(offset), None, encode_progress(source, as_of))

    def published() -> set[tuple[str | None, float]]:
        documents = [orjson.loads(value) for _, value in sink.sent if value]
        sink.sent.clear()
        return {(d["scope"]["department"], datetime.fromisoformat(d["as_of"]).timestamp()) for d in documents}

    as_of = T0.timestamp()
    assert await aggregation.handle([partial(s, d) for s in ("0/caf", "1/caf") for d in ("75", "13")]) is False
    assert await aggregation.handle([progress("0/caf", as_of), progress("1/caf", as_of)]) is True
    await aggregation.tick()
    assert published() == {("75", as_of), ("13", as_of)}

    # source 0 reaches the next minute, source 1 not yet: nothing goes out
    await aggregation.handle([partial("0/caf", "75"), progress("0/caf", as_of + 60)])
    await aggregation.tick()
    assert published() == set()
    # source 1 too: the minute goes out, every scope once
    assert await aggregation.handle([partial("1/caf", "75"), progress("1/caf", as_of + 60)]) is True
    await aggregation.tick()
    assert published() == {("75", as_of + 60), ("13", as_of + 60)}

    # every source at the same minute: a revision goes out at once
    await aggregation.handle([partial("0/caf", "13")])
    await aggregation.tick()
    assert published() == {("13", as_of + 60)}
    # a minute closing and a source that stays behind: what the others sent waits refresh_seconds, no more
    await aggregation.handle([partial("0/caf", "75"), progress("0/caf", as_of + 120)])
    await aggregation.tick()
    now[0] += 4.0
    await aggregation.tick()
    assert published() == set()
    now[0] += 1.5
    await aggregation.tick()
    assert published() == {("75", as_of + 60)}


async def test_the_sums_of_sources_ahead_of_a_minute_that_never_closes_go_out_without_waiting_for_a_flush() -> None:
    """The end of a backlog: one source reached a later minute, the others' streams went quiet and never
    will. What it sent goes out ``refresh_seconds`` after it came, on stage 2's own timer: the clock that
    flushes stage 1 is paced after a backlog (up to half a minute between flushes) and, here, never ticks.
    The fault tests read the final figures a few seconds after the nation's last minute; they used to
    miss the last minute of the partition ahead."""
    indicators = Indicators(IndicatorsSettings(kafka_bootstrap_servers="127.0.0.1:1"))  # never connected
    sink = FakeSink()
    indicators.aggregation = Aggregation(TOPICS, sink, IndicatorMetrics(CollectorRegistry()), refresh_seconds=0.2)
    await indicators.aggregation.assign({0: 0})
    offsets = iter(range(1000))

    def partial(source: str, calls: float) -> Record:
        parts = {"w": {"1h": [0.0, 0.0, calls]}, "live": [], "hour": {}, "day": {}}
        return Record("partials", 0, next(offsets), None, encode_partial(source, ("caf", "75"), parts))

    def progress(source: str, as_of: float) -> Record:
        return Record("partials", 0, next(offsets), None, encode_progress(source, as_of))

    def published() -> list[float]:
        calls = [orjson.loads(value)["denominator"] for topic, value in sink.sent if topic == "indicators" and value]
        sink.sent.clear()
        return calls

    as_of = T0.timestamp()
    await indicators.on_partials([partial(s, 3.0) for s in ("0/caf", "1/caf")] + [progress("0/caf", as_of)])
    await indicators.on_partials([progress("1/caf", as_of)])
    assert 6.0 in published()  # a new minute: out at once
    await indicators.on_partials([partial("1/caf", 5.0), progress("1/caf", as_of + 60)])  # 0/caf stays behind
    assert published() == []  # held while the minute may still close
    await asyncio.sleep(0.5)
    assert 8.0 in published()  # out after refresh_seconds, with no flush of stage 1
    await indicators._stopping()
