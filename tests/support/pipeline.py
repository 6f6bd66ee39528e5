"""The three services as processes on one set of topics, and traffic that makes an alert fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from charter_contracts.topics import TopicNames
from charter_ops.kafka.local import free_port
from tests.support import events
from tests.support.kafka import ServiceProcess, service_env

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
#: the five CAF sites of Paris the breach happens at (open 8:00-18:00 on weekdays; T0 is a Monday, 10:00 in Paris)
BREACH_SITES = ["caf-0", "caf-1", "caf-2", "caf-3", "caf-75-paris"]

# Ten minutes of calls cannot hold a breach for the charter's for-duration (10 min of event
# time): path tests judge the pickup rate at once.
IMMEDIATE_RULES = """
version: 1
thresholds:
  pickup_rate_1h: {indicator: pickup_rate, window: 1h, threshold: 85%, min_volume: 30, for: 0s, recovery_margin: 2%}
"""


def breach_calls() -> list[dict[str, Any]]:
    """40 calls to CAF in ten minutes: 28 answered, 2 short abandons, 10 long abandons -> 28/38 = 73.7 % < 85 %."""
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
        for s in BREACH_SITES
    ]
    return calls


def services(
    kafka: str, names: TopicNames, logs: Path, **env_of: dict[str, str]
) -> tuple[ServiceProcess, ServiceProcess, ServiceProcess]:
    """ingest, indicators and alerts (not started); ``env_of[service]`` adds to a service's environment."""
    env = service_env(kafka, names)
    rules = logs / "charter-rules.yaml"
    rules.write_text(IMMEDIATE_RULES)
    ports = free_port(), free_port(), free_port()
    return (
        ServiceProcess(
            ["ingest"],
            {**env, "CHARTER_INGEST_HTTP_PORT": str(ports[0]), **env_of.get("ingest", {})},
            ports[0],
            logs / "ingest.log",
        ),
        ServiceProcess(
            ["indicators"],
            # history from 2024: time passes with the events only, not with the wall clock
            {
                **env,
                "CHARTER_INDICATORS_HTTP_PORT": str(ports[1]),
                "CHARTER_INDICATORS_IDLE_SECONDS": "0",
                **env_of.get("indicators", {}),
            },
            ports[1],
            logs / "indicators.log",
        ),
        ServiceProcess(
            ["alerts"],
            {
                **env,
                "CHARTER_ALERTS_HTTP_PORT": str(ports[2]),
                "CHARTER_ALERTS_RULES_FILE": str(rules),
                **env_of.get("alerts", {}),
            },
            ports[2],
            logs / "alerts.log",
        ),
    )
