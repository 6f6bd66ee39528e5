"""POST /v1/events on the real broker: accepted means on Kafka, re-sent means counted once, a stopped
broker means 503 and nothing lost."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from charter_contracts.topics import EventKind, TopicNames
from charter_ingest import tokens
from charter_ops.kafka.local import LocalKafka, free_port
from tests.support import events
from tests.support.ingest import ingest_settings, running_ingest
from tests.support.kafka import consume, metric_value, read_all

pytestmark = pytest.mark.kafka
AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def token_file(tmp_path: Path, network: str = "caf") -> tuple[Path, str]:
    path = tmp_path / "tokens.json"
    token, record = tokens.new_token(network, datetime.now(UTC))
    tokens.save(path, tokens.TokenFile(tokens=[record]))
    return path, token


def at_least(count: int) -> Callable[[list[Any]], bool]:
    return lambda records: len(records) >= count


def one_of_each(tag: str) -> list[dict[str, Any]]:
    local = AT.astimezone(ZoneInfo("America/Cayenne"))  # sent in local time, stored in UTC
    return [
        events.counter(local, site_id="caf-973", event_id=f"{tag}-open"),
        events.counter(local + timedelta(hours=8), opened=False, site_id="caf-973", event_id=f"{tag}-close"),
        events.call(local, site_id="caf-973", event_id=f"{tag}-call"),
        events.case(local, site_id="caf-75", event_id=f"{tag}-case"),
    ]


async def test_accepted_events_reach_the_canonical_topics_once_however_often_they_are_sent(
    kafka: str, names: TopicNames, tmp_path: Path
) -> None:
    path, token = token_file(tmp_path)
    batch = one_of_each("h")
    auth = {"Authorization": f"Bearer {token}"}
    async with running_ingest(ingest_settings(kafka, names, tokens_file=str(path))) as (_, client):
        first = await client.post("/v1/events", json=batch, headers=auth)
        assert (first.status_code, first.json()["accepted"]) == (200, 4)
        ndjson = b"\n".join(json.dumps(e).encode() for e in batch)
        ndjson_headers = {**auth, "Content-Type": "application/x-ndjson"}
        again = await client.post("/v1/events", content=ndjson, headers=ndjson_headers)
        assert again.json()["accepted"] == 4  # recorded again on the raw topic; de-duplicated downstream

        dead = await consume(kafka, names.dead_letter, until=lambda r: len(r) >= 4)
        counters = await consume(kafka, names.canonical(EventKind.COUNTER_EVENTS), until=lambda r: len(r) >= 2)
        calls = await read_all(kafka, names.canonical(EventKind.CALL_RECORDS))
        cases = await read_all(kafka, names.canonical(EventKind.CASE_COMPLETIONS))
        metrics = (await client.get("/metrics")).text

    assert sorted(json.loads(r.value)["event_id"] for r in counters) == ["h-close", "h-open"]
    assert [(r.key, json.loads(r.value)["received_at"]) for r in calls] == [(b"caf-973", "2024-03-04T09:00:00Z")]
    assert [r.key for r in cases] == [b"caf-75"]
    assert sorted(json.loads(json.loads(r.value)["payload"])["event_id"] for r in dead) == sorted(
        e["event_id"] for e in batch
    )
    assert {json.loads(r.value)["reason"] for r in dead} == {"duplicate"}
    assert metric_value(metrics, "charter_ingest_events_rejected_total", {"network": "caf", "reason": "duplicate"}) == 4
    assert metric_value(metrics, "charter_ingest_events_accepted_total", {"network": "caf", "type": "call"}) == 1
    assert metric_value(metrics, "charter_ingest_latency_seconds_count") == 4


async def test_a_stopped_broker_answers_503_then_recovers_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    """A private broker (the session's is shared), stopped and started again under ingest's feet."""
    broker = LocalKafka(home=tmp_path / "kafka", port=free_port(), controller_port=free_port())
    broker.up(tie_to_parent=True)
    names = TopicNames("")
    path, token = token_file(tmp_path)
    auth = {"Authorization": f"Bearer {token}"}
    settings = ingest_settings(
        broker.bootstrap_servers, names, tokens_file=str(path), publish_timeout_seconds=3.0, retry_after_seconds=1
    )
    acknowledged: list[str] = []
    try:
        async with running_ingest(settings) as (_, client):
            before = one_of_each("before")
            answer = await client.post("/v1/events", json=before, headers=auth)
            assert answer.status_code == 200
            acknowledged += [r["event_id"] for r in answer.json()["results"] if r["status"] == "accepted"]

            await asyncio.to_thread(broker.down)
            during = one_of_each("during")
            refused = await client.post("/v1/events", json=during, headers=auth)
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1"
            assert refused.json()["error"] == "kafka_unavailable"
            assert (await client.get("/health")).status_code == 503

            await asyncio.to_thread(broker.up, tie_to_parent=True)
            deadline = time.monotonic() + 120
            while True:  # what a client does: wait Retry-After, send the same request again
                answer = await client.post("/v1/events", json=during, headers=auth)
                if answer.status_code == 200 or time.monotonic() > deadline:
                    break
                assert answer.status_code == 503
                await asyncio.sleep(float(answer.headers["Retry-After"]))
            assert answer.status_code == 200
            acknowledged += [r["event_id"] for r in answer.json()["results"] if r["status"] == "accepted"]

            expected = {EventKind.COUNTER_EVENTS: 4, EventKind.CALL_RECORDS: 2, EventKind.CASE_COMPLETIONS: 2}
            written: Counter[str] = Counter()
            for kind, count in expected.items():
                topic = names.canonical(kind)
                await consume(broker.bootstrap_servers, topic, until=at_least(count), timeout=120)
                written.update(json.loads(r.value)["event_id"] for r in await read_all(broker.bootstrap_servers, topic))
    finally:
        await asyncio.to_thread(broker.down)
    assert len(acknowledged) == 8
    assert sorted(written) == sorted(acknowledged)  # nothing acknowledged is lost...
    assert set(written.values()) == {1}  # ...and a request sent twice (503, then 200) is counted once
