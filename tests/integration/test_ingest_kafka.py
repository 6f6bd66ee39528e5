"""Ingest on the real broker: bad input is dead-lettered, counted, and never stops the consumer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from charter_contracts.topics import EventKind, TopicNames
from charter_ingest.app import Ingest
from tests.support import events
from tests.support.ingest import ingest_settings, running_ingest
from tests.support.kafka import consume, metric_value, produce, read_all

pytestmark = pytest.mark.kafka
AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
async def ingest(kafka: str, names: TopicNames) -> AsyncIterator[tuple[Ingest, httpx.AsyncClient]]:
    async with running_ingest(ingest_settings(kafka, names)) as running:
        yield running


async def test_bad_messages_go_to_dead_letter_and_good_ones_still_flow(
    kafka: str, names: TopicNames, ingest: tuple[Ingest, httpx.AsyncClient]
) -> None:
    _, client = ingest
    raw = names.raw("caf", EventKind.CALL_RECORDS)
    await produce(
        kafka,
        raw,
        [
            (b"caf-1", b"\xff\xfe not even utf-8"),
            (b"caf-1", b'{"type": "call"'),
            (b"caf-1", events.encode(events.call(AT, answered_at="2024-03-04T08:00:00Z", event_id="bad-order"))),
            (b"caf-1", events.encode(events.call(AT, event_id="good-1", site_id="caf-1"))),
            (b"caf-2", events.encode(events.call(AT, event_id="good-2", site_id="caf-2"))),
        ],
    )
    canonical = await consume(kafka, names.canonical(EventKind.CALL_RECORDS), until=lambda r: len(r) >= 2)
    dead = await consume(kafka, names.dead_letter, until=lambda r: len(r) >= 3)

    assert sorted(json.loads(r.value)["event_id"] for r in canonical) == ["good-1", "good-2"]
    assert {r.key for r in canonical} == {b"caf-1", b"caf-2"}  # keyed by site_id
    letters = [json.loads(r.value) for r in dead]
    assert [(d["reason"], d["source_topic"], d["network"]) for d in letters] == [
        ("invalid_json", raw, "caf"),
        ("invalid_json", raw, "caf"),
        ("schema", raw, "caf"),
    ]
    assert letters[0]["payload_encoding"] == "base64"
    assert letters[2]["detail"] == "answered_at: must not be before received_at"
    assert [d["source_offset"] for d in letters] == [0, 1, 2]

    metrics = (await client.get("/metrics")).text
    assert metric_value(metrics, "charter_ingest_events_rejected_total", {"reason": "invalid_json"}) == 2
    assert metric_value(metrics, "charter_ingest_events_rejected_total", {"reason": "schema"}) == 1
    assert metric_value(metrics, "charter_ingest_events_accepted_total", {"network": "caf"}) == 2


async def test_offsets_are_committed_once_the_batch_is_written(
    kafka: str, names: TopicNames, ingest: tuple[Ingest, httpx.AsyncClient]
) -> None:
    raw = names.raw("cpam", EventKind.CASE_COMPLETIONS)
    payloads = [events.encode(events.case(AT, network="cpam", site_id=f"cpam-{i}")) for i in range(50)]
    await produce(kafka, raw, [(None, p) for p in payloads])
    await consume(kafka, names.canonical(EventKind.CASE_COMPLETIONS), until=lambda r: len(r) >= 50)

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        for _ in range(40):
            offsets = await admin.list_consumer_group_offsets(names.group("charter-ingest"))
            committed = sum(meta.offset for tp, meta in offsets.items() if tp.topic == raw)
            if committed == 50:
                break
            await asyncio.sleep(0.25)
    finally:
        await admin.close()
    assert committed == 50


async def test_health_and_asyncapi_are_served(ingest: tuple[Ingest, httpx.AsyncClient]) -> None:
    _, client = ingest
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json() == {"service": "ingest", "status": "ok", "kafka": True}
    document = (await client.get("/asyncapi.json")).json()
    assert "CallRecord" in document["components"]["schemas"]
    assert any(name.endswith("charter.dead-letter") for name in document["channels"])


def letters(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


async def test_a_replayed_batch_is_written_once_and_its_copies_dead_lettered_as_duplicates(
    kafka: str, names: TopicNames, ingest: tuple[Ingest, httpx.AsyncClient]
) -> None:
    _, client = ingest
    raw = names.raw("caf", EventKind.COUNTER_EVENTS)
    batch = [events.counter(AT, opened=i % 2 == 0, site_id=f"caf-{i % 3}", event_id=f"k{i}") for i in range(12)]
    records = [(e["site_id"].encode(), events.encode(e)) for e in batch]
    await produce(kafka, raw, records)
    await produce(kafka, raw, records)  # the network re-sends the whole batch

    dead = await consume(kafka, names.dead_letter, until=lambda r: len(r) >= 12)
    canonical = await read_all(kafka, names.canonical(EventKind.COUNTER_EVENTS))
    assert sorted(json.loads(r.value)["event_id"] for r in canonical) == sorted(e["event_id"] for e in batch)
    assert {d["reason"] for d in letters(dead)} == {"duplicate"}
    assert all(d["source_topic"] == raw and d["network"] == "caf" for d in letters(dead))
    assert sorted(json.loads(d["payload"])["event_id"] for d in letters(dead)) == sorted(e["event_id"] for e in batch)
    metrics = (await client.get("/metrics")).text
    assert metric_value(metrics, "charter_ingest_events_rejected_total", {"reason": "duplicate"}) == 12
    for event_type in ("counter_opened", "counter_closed"):
        accepted = metric_value(metrics, "charter_ingest_events_accepted_total", {"network": "caf", "type": event_type})
        assert accepted == 6


async def test_time_bounds_and_huge_payloads_are_dead_lettered_and_the_stream_goes_on(
    kafka: str, names: TopicNames, ingest: tuple[Ingest, httpx.AsyncClient]
) -> None:
    _, client = ingest
    raw = names.raw("cpam", EventKind.CALL_RECORDS)
    site = b"cpam-13"  # one key, one partition: the events share a watermark
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    await produce(
        kafka,
        raw,
        [
            (site, events.encode(events.call(AT, network="cpam", site_id="cpam-13", event_id="now"))),
            (site, events.encode(events.call(AT - timedelta(days=15), network="cpam", event_id="stale"))),
            (site, events.encode(events.call(AT - timedelta(days=13), network="cpam", event_id="late-but-fine"))),
            (site, events.encode(events.call(tomorrow, network="cpam", event_id="tomorrow"))),
            (site, b'{"type": "call", "padding": "' + b"x" * 300_000 + b'"}'),
            (site, events.encode(events.call(AT, network="cpam", event_id="after-the-huge-one"))),
        ],
    )
    dead = letters(await consume(kafka, names.dead_letter, until=lambda r: len(r) >= 3))
    canonical = await consume(kafka, names.canonical(EventKind.CALL_RECORDS), until=lambda r: len(r) >= 3)
    assert sorted(json.loads(r.value)["event_id"] for r in canonical) == ["after-the-huge-one", "late-but-fine", "now"]
    by_reason = {d["reason"]: d for d in dead}
    assert sorted(by_reason) == ["in_future", "too_large", "too_old"]
    assert json.loads(by_reason["too_old"]["payload"])["event_id"] == "stale"
    assert "more than 14 days before the newest event of its partition" in by_reason["too_old"]["detail"]
    assert json.loads(by_reason["in_future"]["payload"])["event_id"] == "tomorrow"
    huge = by_reason["too_large"]
    assert len(huge["payload"]) == 65_536
    assert huge["detail"] == (
        "the event is 300031 bytes; at most 65536 bytes are accepted "
        "(payload truncated to its first 65536 of 300031 bytes)"
    )
    metrics = (await client.get("/metrics")).text
    for reason in ("in_future", "too_large", "too_old"):
        assert metric_value(metrics, "charter_ingest_events_rejected_total", {"network": "cpam", "reason": reason}) == 1
    assert metric_value(metrics, "charter_ingest_latency_seconds_count") == 3


async def test_de_duplication_survives_an_ingest_restart(kafka: str, names: TopicNames) -> None:
    raw = names.raw("caf", EventKind.CASE_COMPLETIONS)
    batch = [events.case(AT, site_id=f"caf-{i % 5}", event_id=f"r{i}") for i in range(40)]
    records = [(e["site_id"].encode(), events.encode(e)) for e in batch]
    settings = ingest_settings(kafka, names)
    async with running_ingest(settings):
        await produce(kafka, raw, records)
        await consume(kafka, names.canonical(EventKind.CASE_COMPLETIONS), until=lambda r: len(r) >= 40)

    async with running_ingest(settings) as (_, client):  # a new process: nothing in memory
        fresh = events.case(AT, site_id="caf-9", event_id="new")
        await produce(kafka, raw, [*records, (b"caf-9", events.encode(fresh))])
        dead = await consume(kafka, names.dead_letter, until=lambda r: len(r) >= 40)
        canonical = await consume(kafka, names.canonical(EventKind.CASE_COMPLETIONS), until=lambda r: len(r) >= 41)
        metrics = (await client.get("/metrics")).text
    assert {d["reason"] for d in letters(dead)} == {"duplicate"}
    expected = sorted([*(e["event_id"] for e in batch), "new"])
    assert sorted(json.loads(r.value)["event_id"] for r in canonical) == expected
    assert metric_value(metrics, "charter_ingest_events_rejected_total", {"reason": "duplicate"}) == 40


async def test_consumer_lag_is_exported_per_topic(
    kafka: str, names: TopicNames, ingest: tuple[Ingest, httpx.AsyncClient]
) -> None:
    service, client = ingest
    raw = names.raw("caf", EventKind.CALL_RECORDS)
    await produce(kafka, raw, [(b"caf-1", events.encode(events.call(AT, event_id="lag-1")))])
    await consume(kafka, names.canonical(EventKind.CALL_RECORDS), until=lambda r: len(r) >= 1)
    for _ in range(40):
        lag = service.parts().lag
        assert lag is not None
        sampled = await lag.sample()
        if raw in sampled:
            break
        await asyncio.sleep(0.25)
    assert sampled[raw] == 0
    metrics = (await client.get("/metrics")).text
    assert metric_value(metrics, "charter_kafka_consumer_lag_messages", {"service": "ingest", "topic": raw}) == 0
