"""Ingest benchmarks on the real broker: events per second from the raw topics and over HTTPS."""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from benchmarks.harness import fresh_names, launcher, metric_sum, service_env
from benchmarks.workload import NETWORKS, Workload
from charter_contracts.topics import TopicNames
from charter_ingest import tokens
from charter_ops.process import ServiceProcess
from charter_runtime.kafka import contract_topics, ensure_topics, raw_topics

PARTITIONS = 3


def _accepted(text: str) -> float:
    return (metric_sum(text, "charter_ingest_events_accepted_total") or 0.0) + (
        metric_sum(text, "charter_ingest_events_rejected_total") or 0.0
    )


def _recent(events: int, network: str | None = None) -> Workload:
    """Events of the last hours (ingest refuses the future and what is older than its horizon)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    return Workload(sites=3000, events=events if network is None else events * len(NETWORKS), start=start)


def _topics(bootstrap: str, names: TopicNames) -> None:
    asyncio.run(
        ensure_topics(bootstrap, [*contract_topics(names, PARTITIONS), *raw_topics(names, NETWORKS, PARTITIONS)])
    )


def _service(bootstrap: str, names: TopicNames, work: Path, **extra: object) -> ServiceProcess:
    service = launcher(["ingest"], work / f"ingest-{names.prefix}log")
    service.env = service_env(
        bootstrap,
        names,
        PARTITIONS,
        CHARTER_INGEST_HTTP_PORT=service.port,
        CHARTER_INGEST_NETWORKS=",".join(NETWORKS),
        CHARTER_INGEST_RATE_LIMIT_EVENTS_PER_SECOND=0,
        **extra,
    )
    return service


def _wait(client: httpx.Client, service: ServiceProcess, expected: int, verify: bool = True) -> tuple[float, float]:
    """(first instant events were seen accepted, last), polling /metrics ten times a second."""
    first = None
    while True:
        now = time.perf_counter()
        done = _accepted(client.get(f"{service.url}/metrics", timeout=10).text)
        if first is None and done > 0:
            first = (now, done)
        if done >= expected:
            assert first is not None
            return now - first[0], done - first[1]
        time.sleep(0.1)


def over_kafka(bootstrap: str, work: Path, events: int) -> float:
    """Events per second from the raw topics to the canonical ones (validated, de-duplicated, written)."""
    names = fresh_names()
    _topics(bootstrap, names)
    workload = _recent(events)

    async def load() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=512 * 1024, acks=1)
        await producer.start()
        try:
            futures = []
            for kind, key, value in workload.records():
                network = value.split(b'"network":"', 1)[1].split(b'"', 1)[0].decode()
                topic = names.raw(network, kind)
                futures.append(await producer.send(topic, value, key=key))
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(load())
    service = _service(bootstrap, names, work)
    with httpx.Client() as client:
        service.start()
        try:
            seconds, done = _wait(client, service, events)
        finally:
            service.stop()
    return done / seconds if seconds else 0.0


def over_https(bootstrap: str, work: Path, events: int, *, batch: int = 1000, clients: int = 4) -> float:
    """Events per second posted to POST /v1/events over HTTPS (TLS served by ingest), acknowledged by Kafka."""
    names = fresh_names()
    _topics(bootstrap, names)
    cert, key = work / "cert.pem", work / "key.pem"
    if not cert.exists():
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
    token_path = work / "tokens.json"
    token, record = tokens.new_token("caf", datetime.now(UTC))
    tokens.save(token_path, tokens.TokenFile(tokens=[record]))
    workload = _recent(events, network="caf")
    bodies: list[bytes] = []
    chunk: list[bytes] = []
    for _, _, value in workload.records():
        if b'"network":"caf"' not in value:
            continue
        chunk.append(value)
        if len(chunk) == batch:
            bodies.append(b"\n".join(chunk))
            chunk = []
        if len(bodies) * batch >= events:
            break
    if chunk:
        bodies.append(b"\n".join(chunk))
    service = _service(
        bootstrap,
        names,
        work,
        CHARTER_INGEST_TLS_CERTFILE=cert,
        CHARTER_INGEST_TLS_KEYFILE=key,
        CHARTER_INGEST_TOKENS_FILE=token_path,
    )
    service.scheme, service.verify = "https", False
    url = service.url

    async def post_all() -> float:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
        queue = list(reversed(bodies))
        async with httpx.AsyncClient(base_url=url, verify=False, timeout=60) as client:

            async def worker() -> int:
                sent = 0
                while queue:
                    body = queue.pop()
                    answer = await client.post("/v1/events", content=body, headers=headers)
                    while answer.status_code == 503:  # Kafka slow to acknowledge: retry as a client must
                        await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
                        answer = await client.post("/v1/events", content=body, headers=headers)
                    answer.raise_for_status()
                    sent += int(answer.json()["accepted"])
                return sent

            await client.post("/v1/events", content=bodies[0].split(b"\n")[0], headers=headers)  # warm TLS
            began = time.perf_counter()
            accepted = sum(await asyncio.gather(*(worker() for _ in range(clients))))
            return accepted / (time.perf_counter() - began)

    service.start()
    try:
        rate = asyncio.run(post_all())
    finally:
        service.stop()
    return rate
