"""The whole path on the real broker, each service run as `charter <service>` in its own process."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import time as clock
from pathlib import Path
from typing import Any

import httpx
import pytest

from charter_contracts import AlertEvent, IndicatorSnapshot
from charter_contracts.topics import EventKind, TopicNames
from tests.support import events
from tests.support.kafka import consume, create_topics, metric_value, produce, running
from tests.support.pipeline import BREACH_SITES, T0, breach_calls, services
from tests.support.sites import publish_sites, site, weekly

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_calls_in_one_end_a_firing_alert_out_the_other(kafka: str, names: TopicNames, logs: Path) -> None:
    await create_topics(kafka, names)
    await publish_sites(kafka, names, [site(s, hours=weekly(clock(8), clock(18))) for s in BREACH_SITES])
    calls = breach_calls()
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
