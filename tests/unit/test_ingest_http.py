"""POST /v1/events against bad input, in memory: every request gets the answer an integrator can act on.

Kafka is replaced by a fake sink here (what is written, whether it is acknowledged); the
same endpoint on the real broker is tested in tests/integration/test_ingest_https.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest

from charter_contracts import DeadLetter, EventKind
from charter_ingest import tokens
from charter_ingest.app import Ingest
from charter_ingest.intake import ARRIVAL_HEADER
from charter_ingest.settings import IngestSettings
from tests.support import events
from tests.support.kafka import metric_value

AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


@dataclass
class FakeKafka:
    """Records what the endpoint writes; acknowledges at once, or never (Kafka away)."""

    acknowledge: bool = True
    written: list[tuple[str, bytes | None, bytes, dict[str, str] | None]] = field(default_factory=list)

    async def publish(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str] | None = None
    ) -> asyncio.Future[None]:
        self.written.append((topic, key, value, headers))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.acknowledge:
            future.set_result(None)
        return future

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(value) for t, _, value, _ in self.written if t == topic]


@dataclass
class Endpoint:
    client: httpx.AsyncClient
    ingest: Ingest
    kafka: FakeKafka
    caf: str
    cpam: str
    tokens_file: Path

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.caf}"}

    async def post(self, body: Any = None, *, content: bytes | None = None, **headers: str) -> httpx.Response:
        if content is None:
            content = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        return await self.client.post("/v1/events", content=content, headers={**self.auth(), **headers})

    def metric(self, name: str, **labels: str) -> float | None:
        return metric_value(generate_latest(self.ingest.registry).decode(), name, labels)


def make_endpoint(tmp_path: Path, **overrides: Any) -> Endpoint:
    path = tmp_path / "tokens.json"
    caf, caf_record = tokens.new_token("caf", datetime.now(UTC))
    cpam, cpam_record = tokens.new_token("cpam", datetime.now(UTC))
    tokens.save(path, tokens.TokenFile(tokens=[caf_record, cpam_record]))
    settings = IngestSettings(
        networks=("caf", "cpam"),
        tokens_file=str(path),
        publish_timeout_seconds=0.3,
        max_request_bytes=200_000,
        max_request_events=50,
        max_event_bytes=4096,
        **overrides,
    )
    ingest = Ingest(settings)
    kafka = FakeKafka()
    ingest.intake.sink = kafka
    ingest.parts()._ready.set()
    app = ingest.app()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://i")
    return Endpoint(client, ingest, kafka, caf, cpam, path)


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    made = make_endpoint(tmp_path)
    async with made.client:
        yield made


def one_of_each(network: str = "caf") -> list[dict[str, Any]]:
    return [
        events.counter(AT, network=network, site_id="caf-1"),
        events.counter(AT + timedelta(hours=8), opened=False, network=network, site_id="caf-1"),
        events.call(AT, network=network, site_id="caf-2"),
        events.case(AT, network=network, site_id="caf-3"),
    ]


async def test_every_event_type_is_accepted_and_written_to_the_networks_raw_topic(endpoint: Endpoint) -> None:
    batch = one_of_each()
    answer = await endpoint.post(batch)
    assert answer.status_code == 200
    report = answer.json()
    assert (report["network"], report["accepted"], report["rejected"]) == ("caf", 4, 0)
    assert [r["event_id"] for r in report["results"]] == [e["event_id"] for e in batch]
    names = endpoint.ingest.names
    written = [(topic, key) for topic, key, _, _ in endpoint.kafka.written]
    assert written == [
        (names.raw("caf", kind), site.encode())
        for kind, site in [
            (EventKind.COUNTER_EVENTS, "caf-1"),
            (EventKind.COUNTER_EVENTS, "caf-1"),
            (EventKind.CALL_RECORDS, "caf-2"),
            (EventKind.CASE_COMPLETIONS, "caf-3"),
        ]
    ]
    assert all(headers and ARRIVAL_HEADER in headers for *_, headers in endpoint.kafka.written)
    assert json.loads(endpoint.kafka.written[2][2]) == batch[2]  # the event as sent, not re-shaped


async def test_ndjson_is_accepted_and_a_malformed_line_rejects_only_that_event(endpoint: Endpoint) -> None:
    good = events.call(AT)
    body = json.dumps(good).encode() + b'\n\n{"type": "call", "event_id": \n' + json.dumps(events.case(AT)).encode()
    answer = await endpoint.post(content=body, **{"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted"]
    assert results[1]["reason"] == "invalid_json"
    assert results[1]["detail"].startswith("Invalid JSON")


async def test_a_body_that_is_not_a_json_array_is_refused_whole(endpoint: Endpoint) -> None:
    broken = await endpoint.post(content=b'[{"type": "call",', **{"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["error"] == "invalid_json"
    assert "line 1 column" in broken.json()["detail"]
    an_object = await endpoint.post(events.call(AT))
    assert an_object.status_code == 400
    assert "expected a JSON array" in an_object.json()["detail"]
    assert (await endpoint.post([])).json() == {"error": "empty", "detail": "the body holds no event"}
    latin1_body = '[{"site_id": "café"}]'.encode("latin-1")
    latin1 = await endpoint.post(content=latin1_body, **{"Content-Type": "application/json"})
    assert (latin1.status_code, latin1.json()["error"]) == (400, "invalid_json")
    assert endpoint.kafka.written == []


async def test_wrong_types_missing_and_extra_fields_are_rejected_per_event_with_the_field(endpoint: Endpoint) -> None:
    no_counter = {k: v for k, v in events.counter(AT).items() if k != "counter_id"}
    batch = [
        events.call(AT, answered_at=42),
        no_counter,
        events.case(AT, patient_name="Jean Dupont"),
        "not an object",
        events.call(AT),
    ]
    answer = await endpoint.post(batch)
    results = answer.json()["results"]
    assert [(r["status"], r["reason"]) for r in results] == [("rejected", "schema")] * 4 + [("accepted", None)]
    assert results[0]["detail"].startswith("answered_at:")
    assert results[1]["detail"] == "counter_id: Field required"
    assert results[2]["detail"] == "patient_name: Extra inputs are not permitted"
    assert results[3]["event_id"] is None
    letters = [DeadLetter.model_validate(d) for d in endpoint.kafka.on(endpoint.ingest.names.dead_letter)]
    assert [(d.reason, d.network, d.source_topic) for d in letters] == [("schema", "caf", None)] * 4
    assert "Jean Dupont" in letters[2].payload  # the dead letter keeps what was sent, to be fixed at the source
    assert endpoint.metric("charter_ingest_events_rejected_total", network="caf", reason="schema") == 4


async def test_a_token_of_one_network_never_publishes_another_networks_events(endpoint: Endpoint) -> None:
    answer = await endpoint.post(one_of_each("cpam"))
    assert answer.json()["accepted"] == 0
    assert {r["reason"] for r in answer.json()["results"]} == {"wrong_network"}
    assert [topic for topic, *_ in endpoint.kafka.written] == [endpoint.ingest.names.dead_letter] * 4
    own = await endpoint.post(one_of_each("cpam"), Authorization=f"Bearer {endpoint.cpam}")
    assert own.json()["accepted"] == 4


async def test_the_same_event_twice_in_one_request_is_accepted_once(endpoint: Endpoint) -> None:
    event = events.call(AT)
    results = (await endpoint.post([event, events.case(AT), event])).json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted", "rejected"]
    assert results[2]["reason"] == "duplicate"
    assert results[2]["detail"] == f"event_id: {event['event_id']!r} is also event 0 of this request"


async def test_huge_payloads_are_refused_with_413_or_per_event_as_too_large(endpoint: Endpoint) -> None:
    body = json.dumps([events.call(AT, event_id=f"c{i}") for i in range(800)]).encode()
    assert len(body) > 200_000
    whole = await endpoint.post(content=body, **{"Content-Type": "application/json"})
    assert (whole.status_code, whole.json()["error"]) == (413, "too_large")
    assert "200000 bytes" in whole.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while streaming
        for _ in range(30):
            yield b" " * 10_000

    streamed = await endpoint.client.post(
        "/v1/events", content=chunks(), headers={**endpoint.auth(), "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413

    many = await endpoint.post([events.call(AT, event_id=f"m{i}") for i in range(51)])
    assert (many.status_code, many.json()["error"]) == (413, "too_large")
    assert "more than 50 events" in many.json()["detail"]

    big_event = events.call(AT, site_id="x" * 5000)
    per_event = await endpoint.post([big_event, events.call(AT)])
    assert [r["reason"] for r in per_event.json()["results"]] == ["too_large", None]
    letter = DeadLetter.model_validate(endpoint.kafka.on(endpoint.ingest.names.dead_letter)[0])
    assert len(letter.payload) == 4096
    assert "truncated to its first 4096 of" in letter.detail
    assert (
        endpoint.kafka.on(endpoint.ingest.names.raw("caf", EventKind.CALL_RECORDS))[0]["event_id"]
        == (per_event.json()["results"][1]["event_id"])
    )


async def test_bad_missing_expired_and_unserved_tokens_are_refused(endpoint: Endpoint, tmp_path: Path) -> None:
    batch = [events.call(AT)]
    missing = await endpoint.client.post("/v1/events", json=batch)
    assert (missing.status_code, missing.json()["error"]) == (401, "unauthorized")
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="charter"'
    bad = await endpoint.post(batch, Authorization="Bearer chrt_0123456789ab_" + "a" * 43)
    assert (bad.status_code, bad.json()["detail"]) == (401, "invalid token")
    assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    basic = await endpoint.post(batch, Authorization="Basic Y2FmOmNhZg==")
    assert basic.status_code == 401

    content = tokens.load(endpoint.tokens_file)
    expired, expired_record = tokens.new_token("caf", datetime.now(UTC) - timedelta(days=2), timedelta(days=1))
    msa, msa_record = tokens.new_token("msa", datetime.now(UTC))
    tokens.save(endpoint.tokens_file, tokens.TokenFile(tokens=[*content.tokens, expired_record, msa_record]))
    answer = await endpoint.post(batch, Authorization=f"Bearer {expired}")
    assert (answer.status_code, answer.json()["detail"]) == (401, f"token {expired_record.id} is expired")
    unserved = await endpoint.post(batch, Authorization=f"Bearer {msa}")
    assert (unserved.status_code, unserved.json()["error"]) == (403, "forbidden")
    assert endpoint.kafka.written == []


async def test_other_media_types_and_encodings_are_refused(endpoint: Endpoint) -> None:
    text = await endpoint.post(content=b"type=call", **{"Content-Type": "text/plain"})
    assert (text.status_code, text.json()["error"]) == (415, "unsupported_media_type")
    gzip = await endpoint.post(content=b"\x1f\x8b", **{"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert gzip.status_code == 415


async def test_the_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    endpoint = make_endpoint(tmp_path, rate_limit_events_per_second=10.0)
    async with endpoint.client:
        burst = [events.call(AT, event_id=f"r{i}") for i in range(50)]
        assert (await endpoint.post(burst)).status_code == 200
        limited = await endpoint.post([events.call(AT)])
        assert (limited.status_code, limited.json()["error"]) == (429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1
        other = await endpoint.post([events.call(AT, network="cpam")], Authorization=f"Bearer {endpoint.cpam}")
        assert other.status_code == 200


async def test_kafka_not_acknowledging_answers_503_with_retry_after_and_counts_nothing(endpoint: Endpoint) -> None:
    endpoint.kafka.acknowledge = False
    answer = await endpoint.post([events.call(AT), events.call(AT, network="cpam")])
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["error"] == "kafka_unavailable"
    assert "send the request again" in answer.json()["detail"]
    assert endpoint.metric("charter_ingest_events_rejected_total", network="caf", reason="wrong_network") is None


async def test_before_kafka_is_connected_the_answer_is_503(tmp_path: Path) -> None:
    endpoint = make_endpoint(tmp_path)
    endpoint.ingest.parts()._ready.clear()
    async with endpoint.client:
        answer = await endpoint.post([events.call(AT)])
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
    assert endpoint.kafka.written == []


async def test_an_internal_error_answers_500_without_a_stack_trace(endpoint: Endpoint) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals /srv/charter/app.py line 12")

    endpoint.kafka.publish = broken  # type: ignore[method-assign]
    answer = await endpoint.post([events.call(AT)])
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal", "detail": "internal error; see the service log"}
    assert "Traceback" not in answer.text
    assert "secret internals" not in answer.text


async def test_the_openapi_document_describes_the_endpoint_and_the_event_schemas(endpoint: Endpoint) -> None:
    document = (await endpoint.client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/events"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert {"200", "400", "401", "403", "413", "415", "429", "503"} <= set(operation["responses"])
    assert operation["security"] == [{"networkToken": []}]
    assert {"CallRecord", "CaseCompleted", "CounterOpened", "CounterClosed", "Event"} <= set(
        document["components"]["schemas"]
    )
    assert (await endpoint.client.get("/docs")).status_code == 200
