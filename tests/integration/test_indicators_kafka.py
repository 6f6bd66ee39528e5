"""Indicators on the real broker: the registry loaded with `charter sites load`, dead letters, the read API."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from charter_contracts import DeadLetter, IndicatorSnapshot, parse_event
from charter_contracts.topics import EventKind, TopicNames
from charter_ops.kafka.local import free_port
from tests.support import events
from tests.support.kafka import (
    CHARTER,
    ServiceProcess,
    consume,
    create_topics,
    metric_value,
    produce,
    running,
    service_env,
)
from tests.support.sites import site, weekly

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # Monday, 10:00 in Paris


def canonical(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    """An event as ingest writes it on a canonical topic (validated, UTC), keyed by site_id."""
    return payload["site_id"].encode(), parse_event(events.encode(payload)).model_dump_json().encode()


async def api(url: str, **params: str) -> list[IndicatorSnapshot]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/v1/indicators", params=params)
    response.raise_for_status()
    return [IndicatorSnapshot.model_validate(item) for item in response.json()]


async def wait_for(url: str, check: Any, timeout: float = 60, **params: str) -> list[IndicatorSnapshot]:
    deadline = time.monotonic() + timeout
    found: list[IndicatorSnapshot] = []
    while time.monotonic() < deadline:
        found = await api(url, **params)
        if check(found):
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"the API never answered what was expected for {params}: {found}")


async def test_registry_dead_letters_and_read_api_on_the_real_broker(kafka: str, names: TopicNames, logs: Path) -> None:
    await create_topics(kafka, names)
    env = service_env(kafka, names)
    registry = [
        site("caf-1").model_dump(mode="json"),
        site("caf-2", hours=weekly()).model_dump(mode="json"),
        site("cpam-13", network="cpam", department="13").model_dump(mode="json"),
        {"site_id": "caf-9", "network": "caf", "name": "no schedule", "department": "75", "timezone": "Europe/Paris"},
    ]
    path = logs / "sites.json"
    path.write_text(json.dumps(registry), encoding="utf-8")
    loaded = subprocess.run(  # noqa: ASYNC221 - the CLI as a user runs it
        [CHARTER, "sites", "load", str(path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "3 sites read, 1 rows not read" in loaded.stdout
    assert "row 4 (caf-9), not read: schedules" in loaded.stdout
    assert f"published 3 sites to {names.sites}" in loaded.stdout

    port = free_port()
    indicators = ServiceProcess(
        ["indicators"],
        {
            **env,
            "CHARTER_INDICATORS_HTTP_PORT": str(port),
            "CHARTER_INDICATORS_IDLE_SECONDS": "0",
            "CHARTER_INDICATORS_SITE_SNAPSHOT_SECONDS": "0",
        },
        port,
        logs / "indicators.log",
    )
    calls = [events.call(T0 + timedelta(seconds=20 * i), site_id="caf-1", event_id=f"c{i}") for i in range(6)]
    calls += [events.call(T0, site_id="caf-2", answered_after=None, duration=40, event_id="c-2")]
    calls += [events.call(T0, site_id="caf-404", event_id="unknown")]  # not in the registry
    # every site's line keeps ringing (voice server only): event time reaches 9:40 on every partition
    calls += [
        events.call(T0 + timedelta(minutes=40), site_id=s, network=n, ivr_only=True, answered_after=None)
        for s, n in (("caf-1", "caf"), ("caf-2", "caf"), ("cpam-13", "cpam"))
    ]
    calls += [events.call(T0 + timedelta(minutes=1), site_id="caf-1", event_id="late")]  # 39 min behind: late
    cases = [events.case(T0 + timedelta(minutes=3), site_id="cpam-13", network="cpam", days=d) for d in (2, 20)]
    cases += [events.case(T0 + timedelta(minutes=40), site_id="cpam-13", network="cpam", days=1)]
    with running(indicators):
        await produce(kafka, names.canonical(EventKind.CALL_RECORDS), [canonical(c) for c in calls])
        await produce(kafka, names.canonical(EventKind.CASE_COMPLETIONS), [canonical(c) for c in cases])

        letters = await consume(kafka, names.dead_letter, until=lambda r: len(r) >= 2)
        parsed = [DeadLetter.model_validate_json(r.value) for r in letters]
        by_reason = {letter.reason.value: letter for letter in parsed}
        assert set(by_reason) == {"unknown_site", "late"}
        assert "caf-404" in by_reason["unknown_site"].detail
        assert json.loads(by_reason["late"].payload)["event_id"] == "late"
        assert by_reason["late"].source_topic == names.canonical(EventKind.CALL_RECORDS)

        # the CAF network over the last hour, as of 9:39 UTC: 6 answered of 7 offered, the late call not counted
        network = await wait_for(
            indicators.url,
            lambda found: any(s.indicator == "pickup_rate" and s.denominator == 7 for s in found),
            network="caf",
            department="*",
            site="*",
            window="1h",
        )
        assert {s.indicator for s in network} == {"opening_rate", "pickup_rate", "deadline_compliance"}
        pickup = next(s for s in network if s.indicator == "pickup_rate")
        assert (pickup.numerator, pickup.denominator, pickup.as_of) == (6, 7, T0 + timedelta(minutes=39))
        one_site = await api(indicators.url, site="caf-2", indicator="pickup_rate", window="1h")
        assert [(s.scope.key, s.numerator, s.denominator) for s in one_site] == [("caf/75/caf-2", 0, 1)]
        departments = await wait_for(  # another partition of stage 2: published on its own tick
            indicators.url,
            lambda found: any(s.window == "today" and s.denominator == 2 for s in found),
            network="*",
            department="13",
            site="*",
            indicator="deadline_compliance",
        )
        today = next(s for s in departments if s.window == "today")
        assert (today.numerator, today.denominator) == (1, 2)  # 2 days within 15, 20 days not
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{indicators.url}/metrics")).text
            stale = (await http.get(f"{indicators.url}/v1/sites/stale", params={"network": "caf"})).json()
        assert metric_value(metrics, "charter_events_late_total", {"network": "caf", "type": "call"}) == 1
        assert metric_value(metrics, "charter_indicators_events_rejected_total", {"reason": "unknown_site"}) == 1
        assert metric_value(metrics, "charter_indicators_watermark_seconds") is not None
        assert {s["site_id"] for s in stale} >= {"caf-1"}  # no counter status ever: stale, not assumed open
