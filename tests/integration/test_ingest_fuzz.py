"""Bad input, fuzzed, on the real broker: hypothesis-generated events (valid, broken field by field,
with extra fields) and raw byte strings on the three raw topics of every default network and on
POST /v1/events. Every message is accepted or dead-lettered with a reason, an event carrying a field
outside the contract is rejected as ``schema``, the consumers keep going, and the counts reconcile
(in = accepted + rejected) from the topics and from the metrics. A request refused as a whole (400,
413) is not an event in: it is answered, and leaves nothing on the topics or in the counters."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from charter_contracts.topics import EventKind, TopicNames
from charter_ingest.intake import split_body
from charter_ingest.settings import DEFAULT_NETWORKS
from tests.support import events
from tests.support.ingest import ingest_settings, running_ingest, token_file
from tests.support.kafka import consume, create_topics, produce, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
NETWORKS = DEFAULT_NETWORKS  # every network ingest serves out of the box, each of its three raw topics
PERSONAL = ("caller_phone", "name", "email", "nir")  # fields a contract never carries
AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
T = TypeVar("T")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=6,
)


#: The event types each raw stream carries, as the fuzzer names them.
STREAM_TYPES = {
    EventKind.COUNTER_EVENTS: ("open", "close"),
    EventKind.CALL_RECORDS: ("call",),
    EventKind.CASE_COMPLETIONS: ("case",),
}


@st.composite
def event(draw: st.DrawFn, network: str | None = None, kind: EventKind | None = None) -> dict[str, Any]:
    """A valid event (of ``network`` and of a type of ``kind``'s stream, else any), then perhaps broken:
    a field dropped, retyped, or one added."""
    network = network or draw(st.sampled_from(NETWORKS))
    at = AT + timedelta(minutes=draw(st.integers(0, 600)))
    common: dict[str, Any] = {"network": network, "site_id": f"{network}-{draw(st.integers(0, 9))}"}
    common["event_id"] = f"fz-{draw(st.integers(0, 5000))}"  # a narrow range: some ids come twice
    event_type = draw(st.sampled_from(STREAM_TYPES[kind] if kind else ("open", "close", "call", "case")))
    if event_type == "call":
        answered = draw(st.none() | st.floats(0, 300))
        payload = events.call(at, answered_after=answered, **common)
    elif event_type == "case":
        payload = events.case(at, days=draw(st.floats(0, 60)), **common)
    else:
        payload = events.counter(at, opened=event_type == "open", **common)
    mutation = draw(st.sampled_from(("none", "none", "drop", "retype", "extra")))
    field = draw(st.sampled_from(sorted(payload)))
    if mutation == "drop":
        del payload[field]
    elif mutation == "retype":
        payload[field] = draw(json_values)
    elif mutation == "extra":  # e.g. personal data a contract never carries
        payload[draw(st.sampled_from(PERSONAL))] = draw(json_values)
    return payload


@st.composite
def raw_record(draw: st.DrawFn) -> tuple[tuple[str, EventKind], bytes | None, bytes]:
    """(network, stream) of a raw topic, a key, and a message: mostly an event of the topic's own network
    and stream, else one of any network or type, or anything at all."""
    network, kind = draw(st.sampled_from([(network, kind) for network in NETWORKS for kind in EventKind]))
    key = draw(st.one_of(st.none(), st.binary(max_size=20), st.sampled_from([f"{network}-1".encode(), b"caf-2"])))
    message = draw(
        st.one_of(
            event(network, kind).map(events.encode),
            event(network, kind).map(events.encode),
            event(network).map(events.encode),  # perhaps of another stream
            event().map(events.encode),  # perhaps of another network
            st.binary(max_size=300),  # anything at all, not even UTF-8
            json_values.map(lambda v: json.dumps(v).encode()),
        )
    )
    return (network, kind), key, message


posted_event = st.one_of(event("caf"), event("caf"), event())  # the token is CAF's
request_body = st.one_of(
    st.lists(posted_event, min_size=1, max_size=12).map(lambda items: json.dumps(items).encode()),
    st.lists(posted_event, min_size=1, max_size=12).map(lambda items: "\n".join(json.dumps(i) for i in items).encode()),
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
)


def generated(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """``count`` examples of a strategy, the same on every run (derandomised: CI is reproducible)."""
    drawn: list[T] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: T) -> None:
        drawn.append(example)

    collect()
    return drawn


async def outputs(kafka: str, names: TopicNames, sent: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Events on the canonical topics and the dead letters, once they account for ``sent`` (or 60 s passed)."""
    deadline = time.monotonic() + 60
    while True:
        written = [
            json.loads(r.value) for kind in EventKind for r in await read_all(kafka, names.canonical(kind), settle=0.3)
        ]
        dead = [json.loads(r.value) for r in await read_all(kafka, names.dead_letter, settle=0.3)]
        if len(written) + len(dead) >= sent or time.monotonic() > deadline:
            return written, dead


def carries_personal(message: bytes) -> bool:
    """A JSON object with one of the fields a contract never carries (what the fuzzer adds)."""
    try:
        data = json.loads(message.decode("utf-8"))
    except ValueError:
        return False
    return isinstance(data, dict) and any(key in data for key in PERSONAL)


def counted(text: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def test_fuzzed_raw_topics_and_endpoint_every_message_accepted_or_dead_lettered(
    kafka: str, names: TopicNames, tmp_path: Path
) -> None:
    await create_topics(kafka, names, networks=NETWORKS)
    path, token = token_file(tmp_path)
    auth = {"Authorization": f"Bearer {token}"}
    records = generated(raw_record(), 300)
    bodies = generated(request_body, 60)
    # every raw topic is fuzzed: one it missed (the derandomised examples can vary with the session) gets
    # an example of its own network and stream
    covered = {topic for topic, _, _ in records}
    for missing in [(n, k) for n in NETWORKS for k in EventKind if (n, k) not in covered]:
        records.append((missing, f"{missing[0]}-1".encode(), events.encode(generated(event(*missing), 1)[0])))
    assert {(network, kind) for (network, kind), _, _ in records} == {(n, k) for n in NETWORKS for k in EventKind}
    # and one valid event of each network, so that whatever the examples, every network must flow through
    for n in NETWORKS:
        valid = events.case(AT, network=n, site_id=f"{n}-1", event_id=f"fz-valid-{n}")
        records.append(((n, EventKind.CASE_COMPLETIONS), f"{n}-1".encode(), events.encode(valid)))
    settings = ingest_settings(kafka, names, tokens_file=str(path), networks=NETWORKS)
    async with running_ingest(settings) as (ingest, client):
        by_topic: dict[str, list[tuple[bytes | None, bytes]]] = {}
        for (network, kind), key, value in records:
            by_topic.setdefault(names.raw(network, kind), []).append((key, value))
        for topic, values in by_topic.items():
            await produce(kafka, topic, values)

        posted = 0  # events the endpoint judged one by one
        refused_whole = 0  # requests refused as a whole: not events in, counted nowhere (see the end)
        personal_posted: list[dict[str, Any]] = []  # verdicts on events carrying a field outside the contract
        for index, body in enumerate(bodies):
            media = "application/x-ndjson" if index % 2 else "application/json"
            answer = await client.post("/v1/events", content=body, headers={**auth, "Content-Type": media})
            assert answer.status_code in (200, 400, 413), answer.text  # never a 500, never a stack trace
            verdict = answer.json()
            if answer.status_code == 200:
                assert len(verdict["results"]) == verdict["accepted"] + verdict["rejected"]
                assert all(r["status"] == "accepted" or r["reason"] for r in verdict["results"])
                posted += len(verdict["results"])
                items = split_body(body, media, settings.max_request_events)  # what each result's index names
                personal_posted += [
                    r for r, item in zip(verdict["results"], items, strict=True) if carries_personal(item)
                ]
            else:  # refused whole, and said why
                assert verdict["error"] in ("invalid_json", "empty", "too_large")
                assert "Traceback" not in answer.text
                refused_whole += 1

        # a valid event after all that: the consumers are still running
        last = events.case(AT, event_id="fz-after-the-storm", site_id="caf-1")
        await produce(kafka, names.raw("caf", EventKind.CASE_COMPLETIONS), [(b"caf-1", events.encode(last))])
        canonical = names.canonical(EventKind.CASE_COMPLETIONS)
        await consume(kafka, canonical, until=lambda r: any(b"fz-after-the-storm" in x.value for x in r))

        sent = len(records) + posted + 1
        written, dead = await outputs(kafka, names, sent)
        metrics = generate_latest(ingest.registry).decode()
        health = await client.get("/health")

    assert health.status_code == 200
    assert all(d["detail"] for d in dead)  # every reject says why (the reason is a contract enum)
    reasons = {d["reason"] for d in dead}
    assert {"invalid_json", "schema", "duplicate", "wrong_network", "wrong_topic"} <= reasons

    # an event carrying a field outside the contract (a phone number, a name...) never gets in: over
    # Kafka each is dead-lettered as schema, payload and all; over HTTPS each is answered schema
    personal_raw = Counter(value.decode() for _, _, value in records if carries_personal(value))
    schema_letters = Counter(d["payload"] for d in dead if d["source_topic"] is not None and d["reason"] == "schema")
    assert sum(personal_raw.values()) > 10
    assert {payload: schema_letters[payload] for payload in personal_raw} == personal_raw
    assert len(personal_posted) > 5
    assert {(r["status"], r["reason"]) for r in personal_posted} == {("rejected", "schema")}

    assert {e["network"] for e in written} == set(NETWORKS)  # every network's events flow through
    assert refused_whole > 0  # ...and they are in neither side below: no dead letter, no counter
    assert len(written) + len(dead) == sent  # from the topics: in = accepted + rejected
    accepted = counted(metrics, "charter_ingest_events_accepted_total")
    rejected = counted(metrics, "charter_ingest_events_rejected_total")
    assert (accepted, rejected) == (len(written), len(dead))  # from the metrics, the same
