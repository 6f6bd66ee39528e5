"""The whole path on the real broker, each service run as `charter <service>` in its own process."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import httpx
import pytest

from charter_contracts import AlertEvent, IndicatorSnapshot
from charter_contracts.topics import EventKind, TopicNames
from charter_ops.kafka.local import free_port
from tests.support import events
from tests.support.kafka import ServiceProcess, consume, create_topics, metric_value, produce, running, service_env
from tests.support.sites import publish_sites, site, weekly

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
            ["indicators"],
            # history from 2024: time passes with the events only, not with the wall clock
            {**env, "CHARTER_INDICATORS_HTTP_PORT": str(ports[1]), "CHARTER_INDICATORS_IDLE_SECONDS": "0"},
            ports[1],
            logs / "indicators.log",
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
    # the five CAF sites of Paris, open 8:00-18:00 on weekdays (T0 is a Monday, 10:00 in Paris)
    site_ids = ["caf-0", "caf-1", "caf-2", "caf-3", "caf-75-paris"]
    await publish_sites(kafka, names, [site(s, hours=weekly(clock(8), clock(18))) for s in site_ids])
    # 40 calls to CAF in ten minutes: 28 answered, 2 short abandons, 10 long abandons -> 28/38 = 73.7 % < 85 %
    calls = [events.call(T0 + timedelta(seconds=15 * i), event_id=f"c{i}", site_id=f"caf-{i % 4}") for i in range(28)]
    calls += [
        events.call(T0 + timedelta(minutes=8), answered_after=None, duration=2, event_id=f"s{i}") for i in range(2)
    ]
    calls += [
        events.call(T0 + timedelta(minutes=9), answered_after=None, duration=95, event_id=f"a{i}") for i in range(10)
    ]
    # the lines keep ringing: calls the voice server handles (outside the rate) move event time on
    calls += [
        events.call(T0 + timedelta(minutes=20), answered_after=None, ivr_only=True, event_id=f"v{s}", site_id=s)
        for s in site_ids
    ]
    ingest, indicators, alerts = services(kafka, names, logs)
    with running(ingest, indicators, alerts):
        await produce(
            kafka, names.raw("caf", EventKind.CALL_RECORDS), [(c["site_id"].encode(), events.encode(c)) for c in calls]
        )

        fired = await consume(kafka, names.alerts, until=lambda r: len(r) >= 1, timeout=90)
        alert = AlertEvent.model_validate_json(fired[0].value)
        assert (alert.status, alert.network, alert.indicator, alert.window) == ("firing", "caf", "pickup_rate", "1h")
        assert alert.value is not None
        assert alert.value < 0.85
        assert alert.threshold == 0.85

        def caf_hour(record: Any) -> IndicatorSnapshot | None:
            snapshot = IndicatorSnapshot.model_validate_json(record.value)
            wanted = (snapshot.indicator, snapshot.scope.key, snapshot.window) == ("pickup_rate", "caf/*/*", "1h")
            return snapshot if wanted else None

        snapshots = await consume(
            kafka,
            names.indicators,
            until=lambda r: any((s := caf_hour(x)) is not None and s.denominator == 38 for x in r),
        )
        last = next(s for x in reversed(snapshots) if (s := caf_hour(x)) is not None and s.denominator == 38)
        assert (last.numerator, last.denominator, last.details["raw_denominator"]) == (28, 38, 40)

        async with httpx.AsyncClient() as http:
            labels = {"network": "caf", "department": "", "window": "1h"}
            deadline = time.monotonic() + 30
            gauge = None
            while time.monotonic() < deadline and gauge != pytest.approx(28 / 38):
                gauge = metric_value(
                    (await http.get(f"{indicators.url}/metrics")).text, "charter_pickup_rate_ratio", labels
                )
                await asyncio.sleep(0.5)
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
