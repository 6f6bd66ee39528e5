"""Faults a national deployment sees, on the whole path: services killed (SIGKILL) mid-stream and
restarted end with the indicator snapshots and the alert history of a clean run over the same events;
the broker stopped for 30 s is reported while it lasts, the services reconnect by themselves, and
nothing acknowledged is lost or written twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from charter_contracts import AlertEvent
from charter_contracts.topics import EventKind, TopicNames
from charter_ops.kafka.local import LocalKafka
from tests.support.ingest import token_file
from tests.support.kafka import (
    ServiceProcess,
    consume,
    create_topics,
    local_broker,
    read_all,
    running,
    unique_names,
)
from tests.support.pipeline import services
from tests.support.recovery import INDICATORS_ENV, PARTITIONS, SITES, final_as_of, finished, publish_raw, traffic
from tests.support.sites import publish_sites

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
CAF_SITES = [s for s in SITES if s.network == "caf"]  # one network: its raw partitions keep event-time order
OUTAGE_SECONDS = 30.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of this module's own: it is stopped mid-test, the session's is shared."""
    with local_broker(tmp_path_factory.mktemp("faults")) as kafka:
        yield kafka


def pipeline(bootstrap: str, names: TopicNames, logs: Path, tokens: Path) -> tuple[ServiceProcess, ...]:
    return services(
        bootstrap,
        names,
        logs,
        ingest={
            "CHARTER_INGEST_NETWORKS": "caf,cpam",
            "CHARTER_INGEST_TOKENS_FILE": str(tokens),
            "CHARTER_INGEST_PUBLISH_TIMEOUT_SECONDS": "3",
            "CHARTER_INGEST_RETRY_AFTER_SECONDS": "1",
        },
        indicators=INDICATORS_ENV,
    )


async def post(url: str, token: str, chunk: Sequence[dict[str, Any]]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(f"{url}/v1/events", json=list(chunk), headers={"Authorization": f"Bearer {token}"})


async def post_until_accepted(url: str, token: str, chunk: Sequence[dict[str, Any]]) -> list[str]:
    """What an integrator does: on 503, wait Retry-After and send the same request again."""
    deadline = time.monotonic() + 180
    while True:
        answer = await post(url, token, chunk)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        assert answer.status_code == 503, answer.text
        await asyncio.sleep(float(answer.headers["Retry-After"]))
    assert answer.status_code == 200, answer.text
    return [r["event_id"] for r in answer.json()["results"] if r["status"] == "accepted"]


async def health(url: str) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        try:
            return (await http.get(f"{url}/health")).status_code
        except httpx.HTTPError:
            return 0


async def until_all_unhealthy(urls: Sequence[str], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        codes = [await health(url) for url in urls]
        if all(code == 503 for code in codes) or time.monotonic() > deadline:
            return codes
        await asyncio.sleep(0.5)


def alert_history(records: Sequence[Any]) -> dict[str, list[str]]:
    """Each alert's transitions, in order (values and instants depend on when figures were flushed)."""
    history: dict[str, list[str]] = {}
    for record in records:
        alert = AlertEvent.model_validate_json(record.value)
        history.setdefault(record.key.decode(), []).append(alert.status)
    return history


async def canonical_ids(bootstrap: str, names: TopicNames) -> Counter[str]:
    ids: Counter[str] = Counter()
    for kind in EventKind:
        ids.update(json.loads(r.value)["event_id"] for r in await read_all(bootstrap, names.canonical(kind), 1.0))
    return ids


async def setup_run(bootstrap: str, tmp_path: Path, name: str) -> tuple[TopicNames, tuple[ServiceProcess, ...]]:
    names = unique_names()
    await create_topics(bootstrap, names, partitions=PARTITIONS)
    await publish_sites(bootstrap, names, CAF_SITES)
    (tmp_path / name).mkdir()
    return names, pipeline(bootstrap, names, tmp_path / name, tmp_path / "tokens.json")


async def assert_each_event_written_once(bootstrap: str, names: TopicNames, chunks: Sequence[Sequence[Any]]) -> None:
    sent = {p["event_id"] for chunk in chunks for p in chunk}
    written = await canonical_ids(bootstrap, names)
    assert set(written) == sent  # nothing lost
    assert [i for i, n in written.items() if n > 1] == []  # nothing written twice
    dead = [json.loads(r.value) for r in await read_all(bootstrap, names.dead_letter, settle=0.5)]
    assert {d["reason"] for d in dead} <= {"duplicate"}  # only the copies a crash or a retry replayed, refused


@pytest.fixture(scope="module")
async def clean_run(broker: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[Any, Any], Any]:
    """What a run without faults ends with (the traffic every test of the module sends)."""
    bootstrap = broker.bootstrap_servers
    chunks = traffic(seed=11, sites=CAF_SITES)
    tmp_path = tmp_path_factory.mktemp("clean")
    _, token = token_file(tmp_path)
    clean_names, services = await setup_run(bootstrap, tmp_path, "clean")
    ingest = services[0]
    with running(*services):
        for chunk in chunks[:3]:
            await publish_raw(bootstrap, clean_names, chunk)
        await post_until_accepted(ingest.url, token, chunks[3])  # the last chunk over HTTPS
        clean = await finished(bootstrap, clean_names, final_as_of(chunks))
        clean_alerts = alert_history(await read_all(bootstrap, clean_names.alerts, settle=3.0))
    return clean, clean_alerts


async def test_ingest_indicators_and_alerts_killed_mid_stream_end_like_a_clean_run(
    broker: LocalKafka, tmp_path: Path, clean_run: tuple[dict[Any, Any], Any]
) -> None:
    bootstrap = broker.bootstrap_servers
    chunks = traffic(seed=11, sites=CAF_SITES)
    as_of = final_as_of(chunks)
    _, token = token_file(tmp_path)
    clean, clean_alerts = clean_run

    faulty_names, services = await setup_run(bootstrap, tmp_path, "faulty")
    ingest = services[0]
    with running(*services):
        for chunk, victim in zip(chunks[:3], services, strict=True):
            await publish_raw(bootstrap, faulty_names, chunk)
            victim.kill()  # SIGKILL while the chunk streams through: no goodbye
            victim.start()
        await post_until_accepted(ingest.url, token, chunks[3])
        faulty = await finished(bootstrap, faulty_names, as_of)
        faulty_alerts = alert_history(await read_all(bootstrap, faulty_names.alerts, settle=3.0))

    await assert_each_event_written_once(bootstrap, faulty_names, chunks)
    assert len(clean) > 200
    assert faulty == clean  # every snapshot a user sees last
    assert clean_alerts  # the breach fired alerts
    assert faulty_alerts == clean_alerts  # each alert fired (and resolved) exactly as in the clean run


async def test_the_broker_stopped_30s_is_reported_then_the_services_reconnect_and_lose_nothing(
    broker: LocalKafka, tmp_path: Path, clean_run: tuple[dict[Any, Any], Any]
) -> None:
    bootstrap = broker.bootstrap_servers
    chunks = traffic(seed=11, sites=CAF_SITES)
    _, token = token_file(tmp_path)
    names, services = await setup_run(bootstrap, tmp_path, "outage")
    ingest, indicators, alerts = services
    with running(*services):
        for chunk in chunks[:3]:
            await publish_raw(bootstrap, names, chunk)

        published = len(await read_all(bootstrap, names.indicators, settle=1.0))
        await asyncio.to_thread(broker.down)
        stopped = time.monotonic()
        assert await until_all_unhealthy([s.url for s in services]) == [503, 503, 503]  # while it lasts
        refused = await post(ingest.url, token, chunks[3])
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["error"] == "kafka_unavailable"
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        await asyncio.to_thread(broker.up, tie_to_parent=True)

        acknowledged = await post_until_accepted(ingest.url, token, chunks[3])
        for service in services:
            service.wait_healthy(120)  # reconnected by themselves: nobody restarted them
        assert set(acknowledged) == {p["event_id"] for p in chunks[3]}
        await consume(  # every event reaches the canonical topics
            bootstrap,
            names.canonical(EventKind.CALL_RECORDS),
            until=lambda r: len(r) >= sum(1 for c in chunks for p in c if p["type"] == "call"),
            timeout=120,
        )
        # figures are published again after the outage, up to the last event, as in a clean run
        await consume(bootstrap, names.indicators, until=lambda r: len(r) > published, timeout=120)
        assert await finished(bootstrap, names, final_as_of(chunks)) == clean_run[0]
        assert indicators.process is not None
        assert alerts.process is not None
        assert indicators.process.poll() is None
        assert alerts.process.poll() is None
    await assert_each_event_written_once(bootstrap, names, chunks)
