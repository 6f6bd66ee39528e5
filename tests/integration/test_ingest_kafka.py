"""Ingest on the real broker: bad input is dead-lettered, counted, and never stops the consumer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from charter_contracts.topics import EventKind, TopicNames
from charter_ingest.app import Ingest
from charter_ingest.settings import IngestSettings
from charter_runtime.http import build_app
from tests.support import events
from tests.support.kafka import consume, metric_value, produce

pytestmark = pytest.mark.kafka
AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
async def ingest(kafka: str, names: TopicNames) -> AsyncIterator[tuple[Ingest, httpx.AsyncClient]]:
    service = Ingest(
        IngestSettings(
            kafka_bootstrap_servers=kafka, kafka_topic_prefix=names.prefix, kafka_partitions=3, networks=("caf", "cpam")
        )
    )
    parts = service.parts()
    app = build_app(parts)
    async with app.router.lifespan_context(app):
        await parts.wait_ready(60)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
            yield service, client


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
