"""Bad input, fuzzed, on the real broker: hypothesis-generated events (valid, broken field by field,
with extra fields) and raw byte strings on every raw topic and on POST /v1/events. Every message is
accepted or dead-lettered with a reason, the consumers keep going, and the counts reconcile
(in = accepted + rejected) from the topics and from the metrics."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from charter_contracts.topics import EventKind, TopicNames
from tests.support import events
from tests.support.ingest import ingest_settings, running_ingest, token_file
from tests.support.kafka import consume, create_topics, produce, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
NETWORKS = ("caf", "cpam")
AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
T = TypeVar("T")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def event(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event of any type, then perhaps broken: a field dropped, retyped, or one added."""
    network = draw(st.sampled_from(NETWORKS))
    at = AT + timedelta(minutes=draw(st.integers(0, 600)))
    common: dict[str, Any] = {"network": network, "site_id": f"{network}-{draw(st.integers(0, 9))}"}
    common["event_id"] = f"fz-{draw(st.integers(0, 5000))}"  # a narrow range: some ids come twice
    kind = draw(st.sampled_from(("open", "close", "call", "case")))
    if kind == "call":
        answered = draw(st.none() | st.floats(0, 300))
        payload = events.call(at, answered_after=answered, **common)
    elif kind == "case":
        payload = events.case(at, days=draw(st.floats(0, 60)), **common)
    else:
        payload = events.counter(at, opened=kind == "open", **common)
    mutation = draw(st.sampled_from(("none", "none", "drop", "retype", "extra")))
    field = draw(st.sampled_from(sorted(payload)))
    if mutation == "drop":
        del payload[field]
    elif mutation == "retype":
        payload[field] = draw(json_values)
    elif mutation == "extra":  # e.g. personal data a contract never carries
        payload[draw(st.sampled_from(("caller_phone", "name", "email", "nir")))] = draw(json_values)
    return payload


messages = st.one_of(
    event().map(events.encode),
    event().map(events.encode),
    st.binary(max_size=300),  # anything at all, not even UTF-8
    json_values.map(lambda v: json.dumps(v).encode()),
)
raw_record = st.tuples(
    st.sampled_from([(network, kind) for network in NETWORKS for kind in EventKind]),
    st.one_of(st.none(), st.binary(max_size=20), st.sampled_from([b"caf-1", b"cpam-2"])),
    messages,
)
request_body = st.one_of(
    st.lists(event(), min_size=1, max_size=12).map(lambda items: json.dumps(items).encode()),
    st.lists(event(), min_size=1, max_size=12).map(lambda items: "\n".join(json.dumps(i) for i in items).encode()),
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


async def outputs(kafka: str, names: TopicNames, sent: int) -> tuple[int, list[dict[str, Any]]]:
    """Records on the canonical topics and the dead letters, once they account for ``sent`` (or 60 s passed)."""
    deadline = time.monotonic() + 60
    while True:
        written = sum([len(await read_all(kafka, names.canonical(kind), settle=0.3)) for kind in EventKind])
        dead = [json.loads(r.value) for r in await read_all(kafka, names.dead_letter, settle=0.3)]
        if written + len(dead) >= sent or time.monotonic() > deadline:
            return written, dead


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
    records = generated(raw_record, 300)
    bodies = generated(request_body, 60)
    async with running_ingest(ingest_settings(kafka, names, tokens_file=str(path))) as (ingest, client):
        by_topic: dict[str, list[tuple[bytes | None, bytes]]] = {}
        for (network, kind), key, value in records:
            by_topic.setdefault(names.raw(network, kind), []).append((key, value))
        for topic, values in by_topic.items():
            await produce(kafka, topic, values)

        posted = 0  # events the endpoint judged one by one
        for index, body in enumerate(bodies):
            media = "application/x-ndjson" if index % 2 else "application/json"
            answer = await client.post("/v1/events", content=body, headers={**auth, "Content-Type": media})
            assert answer.status_code in (200, 400, 413), answer.text  # never a 500, never a stack trace
            verdict = answer.json()
            if answer.status_code == 200:
                assert len(verdict["results"]) == verdict["accepted"] + verdict["rejected"]
                assert all(r["status"] == "accepted" or r["reason"] for r in verdict["results"])
                posted += len(verdict["results"])
            else:  # refused whole, and said why
                assert verdict["error"] in ("invalid_json", "empty", "too_large")
                assert "Traceback" not in answer.text

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
    assert {"invalid_json", "schema", "duplicate", "wrong_network"} <= reasons
    assert written > 0
    assert written + len(dead) == sent  # from the topics: in = accepted + rejected
    accepted = counted(metrics, "charter_ingest_events_accepted_total")
    rejected = counted(metrics, "charter_ingest_events_rejected_total")
    assert (accepted, rejected) == (written, len(dead))  # from the metrics, the same
