"""The whole path on the real broker, each service run as `charter <service>` in its own process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from charter_contracts import AlertEvent, IndicatorSnapshot
from charter_contracts.topics import EventKind, TopicNames
from charter_ops.kafka.local import free_port
from tests.support import events
from tests.support.kafka import ServiceProcess, consume, create_topics, metric_value, produce, running, service_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


# Ten minutes of calls cannot hold a breach for the charter's for-duration (10 min of event
# time): this path test judges the pickup rate at once.
IMMEDIATE_RULES = """
version: 1
thresholds:
  pickup_rate_1h: {indicator: pickup_rate, window: 1h, threshold: 85%, min_volume: 30, for: 0s, recovery_margin: 2%}
"""


def services(kafka: str, names: TopicNames, logs: Path) -> tuple[ServiceProcess, ServiceProcess, ServiceProcess]:
    env = service_env(kafka, names)
    rules = logs / "charter-rules.yaml"
    rules.write_text(IMMEDIATE_RULES)
    ports = free_port(), free_port(), free_port()
    return (
        ServiceProcess(["ingest"], {**env, "CHARTER_INGEST_HTTP_PORT": str(ports[0])}, ports[0], logs / "ingest.log"),
        ServiceProcess(
            ["indicators"], {**env, "CHARTER_INDICATORS_HTTP_PORT": str(ports[1])}, ports[1], logs / "indicators.log"
        ),
        ServiceProcess(
            ["alerts"],
            {**env, "CHARTER_ALERTS_HTTP_PORT": str(ports[2]), "CHARTER_ALERTS_RULES_FILE": str(rules)},
            ports[2],
            logs / "alerts.log",
        ),
    )


async def test_calls_in_one_end_a_firing_alert_out_the_other(kafka: str, names: TopicNames, logs: Path) -> None:
    await create_topics(kafka, names)
    # 40 calls to CAF in ten minutes: 28 answered, 2 short abandons, 10 long abandons -> 28/38 = 73.7 % < 85 %
    calls = [events.call(T0 + timedelta(seconds=15 * i), event_id=f"c{i}", site_id=f"caf-{i % 4}") for i in range(28)]
    calls += [
        events.call(T0 + timedelta(minutes=8), answered_after=None, duration=2, event_id=f"s{i}") for i in range(2)
    ]
    calls += [
        events.call(T0 + timedelta(minutes=9), answered_after=None, duration=95, event_id=f"a{i}") for i in range(10)
    ]
    ingest, indicators, alerts = services(kafka, names, logs)
    with running(ingest, indicators, alerts):
        await produce(
            kafka, names.raw("caf", EventKind.CALL_RECORDS), [(c["site_id"].encode(), events.encode(c)) for c in calls]
        )

        fired = await consume(kafka, names.alerts, until=lambda r: len(r) >= 1, timeout=90)
        alert = AlertEvent.model_validate_json(fired[0].value)
        assert (alert.status, alert.network, alert.indicator, alert.window) == ("firing", "caf", "pickup_rate", "1h")
        assert alert.value == pytest.approx(28 / 38)
        assert alert.threshold == 0.85

        snapshots = await consume(
            kafka,
            names.indicators,
            until=lambda r: any(IndicatorSnapshot.model_validate_json(x.value).denominator == 38 for x in r),
        )
        last = IndicatorSnapshot.model_validate_json(snapshots[-1].value)
        assert (last.numerator, last.denominator, last.details["raw_denominator"]) == (28, 38, 40)

        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{indicators.url}/metrics")).text
            gauge = metric_value(metrics, "charter_pickup_rate_ratio", {"network": "caf", "window": "1h"})
            assert gauge == pytest.approx(28 / 38)
            for service in (ingest, indicators, alerts):
                assert (await http.get(f"{service.url}/health")).json()["status"] == "ok"
                assert (await http.get(f"{service.url}/asyncapi.json")).status_code == 200


async def test_ingest_killed_mid_stream_loses_nothing(kafka: str, names: TopicNames, logs: Path) -> None:
    """Offsets are committed after the outputs are acknowledged: a crash re-delivers, never drops."""
    await create_topics(kafka, names)
    ingest, _, _ = services(kafka, names, logs)
    raw = names.raw("caf", EventKind.CASE_COMPLETIONS)
    total = 3000
    payloads = [events.case(T0, event_id=f"k{i}", site_id=f"caf-{i % 50}") for i in range(total)]
    await produce(kafka, raw, [(p["site_id"].encode(), events.encode(p)) for p in payloads])

    ingest.start()
    await consume(kafka, names.canonical(EventKind.CASE_COMPLETIONS), until=lambda r: len(r) >= 200, timeout=90)
    ingest.kill()
    ingest.start()
    try:
        out = await consume(
            kafka,
            names.canonical(EventKind.CASE_COMPLETIONS),
            until=lambda r: len({json.loads(x.value)["event_id"] for x in r}) >= total,
            timeout=120,
        )
    finally:
        ingest.stop()
    seen = {json.loads(x.value)["event_id"] for x in out}
    assert seen == {f"k{i}" for i in range(total)}
