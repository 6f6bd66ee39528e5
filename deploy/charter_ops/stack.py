"""The whole product on one machine, without Docker (``charter stack``, behind ``make run``).

Starts the local Kafka, the three services and the traffic simulator as child
processes, prints where to look and a short live summary, and stops everything it
started on Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from charter_ops.kafka.local import LocalKafka, default_home


@dataclass
class Child:
    """One process of the stack, with its log file."""

    name: str
    command: list[str]
    log: Path
    health_url: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own entry point
            self.command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        handle.close()

    def healthy(self) -> bool:
        if self.health_url is None:
            return True
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.health_url, timeout=1).status_code == 200
        return False

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


SERVICE_PORTS = {"ingest": 8001, "indicators": 8002, "alerts": 8003}


def _charter() -> str:
    return str(Path(sys.executable).parent / "charter")


def summary(indicators_url: str, alerts_url: str) -> str:
    """One screen: pickup rate per network and alerts fired, read from the services' /metrics."""
    lines = []
    try:
        rates = _samples(httpx.get(f"{indicators_url}/metrics", timeout=2).text, "charter_pickup_rate_ratio")
        alerts = _samples(httpx.get(f"{alerts_url}/metrics", timeout=2).text, "charter_alert_transitions_total")
    except httpx.HTTPError as exc:
        return f"(services not answering: {exc})"
    for labels, value in sorted(rates, key=lambda item: item[0].get("network", "")):
        if labels.get("department") or labels.get("window") != "1h":
            continue
        mark = "BREACH" if value < 0.85 else "ok"
        lines.append(f"  {labels['network']:<18} pickup rate (1h) {value:6.1%}  {mark}")
    fired = sum(v for labels, v in alerts if labels.get("status") == "firing")
    resolved = sum(v for labels, v in alerts if labels.get("status") == "resolved")
    lines.append(f"  alerts: {fired:.0f} fired, {resolved:.0f} resolved")
    return "\n".join(lines)


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def run_stack(rate: float, degrade: Sequence[str], run_dir: Path, refresh: float = 10.0) -> int:
    """Run until interrupted; returns the exit code."""
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    kafka = LocalKafka(home=default_home())
    print(f"Starting Apache Kafka (KRaft) at {kafka.bootstrap_servers}...", flush=True)
    was_running = kafka.status().running
    kafka.up()
    env = {**os.environ, "CHARTER_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    children = [
        Child(name, [_charter(), name], logs / f"{name}.log", f"http://127.0.0.1:{port}/health")
        for name, port in SERVICE_PORTS.items()
    ]
    simulate = [_charter(), "simulate", "--rate", str(rate)]
    for network in degrade:
        simulate += ["--degrade", network]
    children.append(Child("simulate", simulate, logs / "simulate.log"))

    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Explicit handlers: a stack started from a script may inherit SIGINT as ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for child in children[:3]:
            child.start(env)
        deadline = time.monotonic() + 90
        while not all(c.healthy() for c in children[:3]):
            dead = [c.name for c in children[:3] if not c.running()]
            if stopping:
                return 130
            if dead or time.monotonic() > deadline:
                print(f"error: {', '.join(dead) or 'services'} did not start; see {logs}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        load_registry(kafka.bootstrap_servers)
        children[3].start(env)
        print(_banner(kafka.bootstrap_servers, logs, rate, degrade), flush=True)
        next_summary = time.monotonic() + refresh
        while not stopping:
            time.sleep(0.2)
            if time.monotonic() < next_summary:
                continue
            next_summary += refresh
            for child in children:
                if not child.running():
                    print(f"error: {child.name} stopped; see {child.log}", file=sys.stderr)
                    return 1
            print(
                time.strftime("%H:%M:%S"), "\n" + summary("http://127.0.0.1:8002", "http://127.0.0.1:8003"), flush=True
            )
    finally:
        print("\nStopping...", flush=True)
        for child in reversed(children):
            child.stop()
        if not was_running:
            kafka.down()
        print("Stopped.", flush=True)
    return 0


def load_registry(bootstrap_servers: str) -> None:
    """The simulator's sites must be in the registry (charter.sites) for indicators to count them."""
    import asyncio  # noqa: PLC0415

    from charter_contracts.topics import TopicNames  # noqa: PLC0415
    from charter_ops.sites import publish_sites, read_france_services_csv  # noqa: PLC0415

    names = TopicNames(os.environ.get("CHARTER_KAFKA_TOPIC_PREFIX", ""))
    sites = read_france_services_csv().sites
    asyncio.run(publish_sites(sites, bootstrap_servers, names))
    print(f"Loaded {len(sites)} France services sites into {names.sites}.", flush=True)


def _banner(bootstrap: str, logs: Path, rate: float, degrade: Sequence[str]) -> str:
    return "\n".join(
        [
            "",
            "charter is running. Where to look:",
            f"  Kafka                {bootstrap}",
            "  ingest               http://127.0.0.1:8001/docs  (OpenAPI)   /asyncapi  /metrics  /health",
            "  indicators           http://127.0.0.1:8002/metrics           /asyncapi  /health",
            "  alerts               http://127.0.0.1:8003/metrics           /asyncapi  /health",
            f"  simulator            {rate:g} events/s, degraded: {', '.join(degrade) or 'none'}",
            f"  logs                 {logs}",
            "Ctrl-C stops everything.",
            "",
        ]
    )
