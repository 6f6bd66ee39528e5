"""What a network's integrator does, end to end: `charter ingest` served over HTTPS, files published
with `charter publish` over HTTPS and over Kafka, and the endpoint fuzzed from its own OpenAPI document."""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from charter_contracts.topics import TopicNames
from charter_ingest import tokens
from charter_ops.kafka.local import free_port
from tests.support import events
from tests.support.kafka import ServiceProcess, charter, metric_value, service_env, unique_names

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
#: A throwaway self-signed certificate for 127.0.0.1, valid one day.
OPENSSL_SELF_SIGNED = [
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
]


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_: Any, value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


@dataclass
class Integration:
    service: ServiceProcess
    names: TopicNames
    token: str
    cafile: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def integration(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Integration]:
    home = tmp_path_factory.mktemp("integrators")
    cert, key = home / "cert.pem", home / "key.pem"
    subprocess.run(
        [*OPENSSL_SELF_SIGNED, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    token, record = tokens.new_token("caf", datetime.now(UTC))
    tokens.save(home / "tokens.json", tokens.TokenFile(tokens=[record]))
    names = unique_names()
    port = free_port()
    env = service_env(
        kafka,
        names,
        CHARTER_INGEST_NETWORKS="caf,cpam",
        CHARTER_INGEST_HTTP_PORT=port,
        CHARTER_INGEST_TOKENS_FILE=home / "tokens.json",
        CHARTER_INGEST_TLS_CERTFILE=cert,
        CHARTER_INGEST_TLS_KEYFILE=key,
    )
    service = ServiceProcess(["ingest"], env, port, home / "ingest.log", scheme="https", verify=str(cert))
    service.start(wait_healthy=90)
    try:
        yield Integration(service, names, token, str(cert), env)
    finally:
        service.stop()


def trusting(integration: Integration) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=integration.cafile)


def test_publish_over_https_reports_each_reject_with_its_line(integration: Integration, tmp_path: Path) -> None:
    lines = [
        json.dumps(events.call(AT, event_id="https-1")),
        json.dumps(events.call(AT, event_id="https-2", network="cpam")),
        '{"type": "call", "event_id": "https-3"',
        json.dumps(events.case(AT, event_id="https-4", deadline_days="fifteen")),
        json.dumps(events.counter(AT, event_id="https-5")),
    ]
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.ndjson"
    args = ["publish", str(path), "--network", "caf", "--url", integration.service.url]
    args += ["--token", integration.token, "--cacert", integration.cafile, "--rejects", str(rejects)]
    result = charter(*args, env={})
    assert result.returncode == 1, result.stderr
    assert "caf: 5 events read" in result.stderr
    assert "2 accepted" in result.stderr
    assert "3 rejected" in result.stderr
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["where"], r["reason"]) for r in written] == [
        ("line 2", "wrong_network"),
        ("line 3", "invalid_json"),
        ("line 4", "schema"),
    ]
    assert written[2]["detail"].startswith("deadline_days:")

    refused = charter(*args[:6], "--token", "chrt_0123456789ab_" + "a" * 43, "--cacert", integration.cafile, env={})
    assert refused.returncode == 2
    assert "401" in refused.stderr
    assert "invalid token" in refused.stderr


def test_publish_over_kafka_then_again_shows_ingests_verdicts(integration: Integration, tmp_path: Path) -> None:
    header = "type,event_id,network,site_id,occurred_at,schema_version,case_id,procedure,submitted_at,completed_at"
    rows = [
        f"case_completed,kafka-{n},caf,caf-{n % 3},2024-03-04T16:00:00+01:00,1,d{n},rsa,"
        "2024-02-20T09:00:00+01:00,2024-03-04T16:00:00+01:00"
        for n in range(6)
    ]
    path = tmp_path / "cases.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    env = {k: v for k, v in integration.env.items() if k.startswith("CHARTER_KAFKA")}
    first = charter("publish", str(path), "--network", "caf", env=env)
    assert first.returncode == 0, first.stderr
    assert "6 accepted, 0 rejected" in first.stderr
    again = charter("publish", str(path), "--network", "caf", env=env)
    assert again.returncode == 1
    assert "0 accepted, 6 rejected" in again.stderr
    assert "duplicate" in again.stderr
    wrong = charter("publish", str(path), "--network", "cpam", env=env)
    assert wrong.returncode == 1
    assert "wrong_network" in wrong.stderr
    assert "raw." not in wrong.stderr  # refused before anything was sent

    metrics = httpx.get(f"{integration.service.url}/metrics", verify=trusting(integration)).text
    counted = {"network": "caf", "type": "case_completed"}
    assert metric_value(metrics, "charter_ingest_events_accepted_total", counted) == 6
    assert metric_value(metrics, "charter_ingest_events_rejected_total", {"network": "caf", "reason": "duplicate"}) == 6


def test_the_endpoint_survives_fuzzing_from_its_own_openapi_document(integration: Integration) -> None:
    url = integration.service.url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", verify=integration.cafile)
    operation = schema["/v1/events"]["POST"]
    auth = {"Authorization": f"Bearer {integration.token}"}
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    seen: dict[int, int] = {}

    for mode, examples in ((schemathesis.GenerationMode.POSITIVE, 80), (schemathesis.GenerationMode.NEGATIVE, 80)):

        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: Any) -> None:
            response = case.call_and_validate(base_url=url, headers=auth, verify=integration.cafile, checks=checks)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1

        fuzz()

    assert 200 in seen  # valid bodies were judged event by event...
    assert set(seen) <= {200, 400, 401, 413, 415, 429}  # ...and nothing else than documented answers came back
    assert httpx.get(f"{url}/health", verify=trusting(integration)).json()["status"] == "ok"
