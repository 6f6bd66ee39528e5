"""Ingest's subscriber, in memory (FastStream's TestKafkaBroker): it routes, it never stops."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from faststream.kafka import TestKafkaBroker
from prometheus_client import generate_latest

from charter_contracts.topics import EventKind
from charter_ingest.app import Ingest
from charter_ingest.settings import IngestSettings
from tests.support import events
from tests.support.kafka import metric_value

AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


async def test_good_events_go_canonical_and_bad_ones_to_dead_letter_with_reason() -> None:
    ingest = Ingest(IngestSettings(networks=("caf",)))
    names = ingest.names
    canonical: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []

    @ingest.broker.subscriber(names.canonical(EventKind.CALL_RECORDS))
    async def _canonical(body: dict[str, Any]) -> None:
        canonical.append(body)

    @ingest.broker.subscriber(names.dead_letter)
    async def _dead(body: dict[str, Any]) -> None:
        dead.append(body)

    async with TestKafkaBroker(ingest.broker) as broker:
        raw = names.raw("caf", EventKind.CALL_RECORDS)
        await broker.publish(b"{not json", raw)
        await broker.publish(events.encode(events.call(AT, network="cpam")), raw)
        await broker.publish(events.encode(events.call(AT, event_id="ok-1")), raw, key=b"caf-75-paris")

    assert [body["event_id"] for body in canonical] == ["ok-1"]
    assert canonical[0]["received_at"] == "2024-03-04T09:00:00Z"
    by_reason = {body["reason"]: body for body in dead}
    assert sorted(by_reason) == ["invalid_json", "wrong_network"]
    assert by_reason["invalid_json"]["payload"] == "{not json"
    assert by_reason["wrong_network"]["source_topic"] == raw
    text = generate_latest(ingest.registry).decode()
    assert metric_value(text, "charter_ingest_events_rejected_total", {"network": "caf", "reason": "invalid_json"}) == 1
    assert metric_value(text, "charter_ingest_events_accepted_total", {"network": "caf", "type": "call"}) == 1
