"""`charter stack` (what `make run` runs), as a user runs it, on free ports: up, scraped, alerting, and gone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from charter_ops.kafka.local import free_port, port_open, process_alive
from tests.support.kafka import CHARTER, metric_value
from tests.support.polling import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SERVICES = ("ingest", "indicators", "alerts")


def descendants(root: int) -> set[int]:
    """Every live process under ``root`` (children of children included)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_the_native_stack_starts_is_scraped_and_stops_leaving_nothing(tmp_path: Path) -> None:
    ports = {name: free_port() for name in (*SERVICES, "prometheus", "alertmanager", "kafka", "controller")}
    env = {
        **os.environ,
        "CHARTER_KAFKA_PORT": str(ports["kafka"]),
        "CHARTER_KAFKA_CONTROLLER_PORT": str(ports["controller"]),
        "CHARTER_KAFKA_HOME": str(tmp_path / "kafka"),
        "CHARTER_PROMETHEUS_PORT": str(ports["prometheus"]),
        "CHARTER_ALERTMANAGER_PORT": str(ports["alertmanager"]),
        **{f"CHARTER_{name.upper()}_HTTP_PORT": str(ports[name]) for name in SERVICES},
    }
    env.pop("CHARTER_KAFKA_BOOTSTRAP_SERVERS", None)
    log = tmp_path / "stack.out"
    with log.open("wb") as out:
        stack = subprocess.Popen(
            [CHARTER, "stack", "--run-dir", str(tmp_path / "run"), "--rate", "10", "--refresh", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prometheus = f"http://127.0.0.1:{ports['prometheus']}"
    alertmanager = f"http://127.0.0.1:{ports['alertmanager']}"
    children: set[int] = set()
    try:

        def all_up() -> bool:
            # Prometheus answers 503 until its storage is open; that is "not yet", not a failure.
            answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": "up"}, timeout=3)
            answer.raise_for_status()
            result = answer.json()
            up = {r["metric"]["job"]: r["value"][1] for r in result["data"]["result"]}
            return all(up.get(name) == "1" for name in (*SERVICES, "prometheus", "alertmanager"))

        wait_for("Prometheus to scrape every service (up == 1)", all_up, 240, log)
        banner = wait_for("the URLs", lambda: "Ctrl-C stops everything" in log.read_text() and log.read_text(), 60, log)
        for name in (*SERVICES, "prometheus", "alertmanager"):
            assert f"http://127.0.0.1:{ports[name]}" in banner, f"the banner names the {name} URL"

        assert httpx.get(f"{alertmanager}/-/ready", timeout=3).status_code == 200
        status = httpx.get(f"{alertmanager}/api/v2/status", timeout=3).json()
        assert "network" in status["config"]["original"]
        managers = httpx.get(f"{prometheus}/api/v1/alertmanagers", timeout=3).json()["data"]["activeAlertmanagers"]
        assert [m["url"] for m in managers] == [f"{alertmanager}/api/v2/alerts"]
        rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=3).json()["data"]["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {"CharterServiceDown", "CharterConsumerLagHigh"}

        # simulated traffic flows through ingest: every service's /metrics passes promtool's lint
        ingest_metrics = f"http://127.0.0.1:{ports['ingest']}/metrics"
        wait_for(
            "simulated events accepted by ingest",
            lambda: (
                (metric_value(httpx.get(ingest_metrics, timeout=3).text, "charter_ingest_events_accepted_total") or 0)
                > 0
            ),
            120,
            log,
        )
        promtool = shutil.which("promtool")
        assert promtool is not None
        for name in SERVICES:
            text = httpx.get(f"http://127.0.0.1:{ports[name]}/metrics", timeout=3).text
            lint = subprocess.run(
                [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
            )
            assert lint.returncode == 0, f"{name}: {lint.stdout}{lint.stderr}"
        wait_for("the summary table", lambda: "national" in log.read_text(), 90, log)

        children = descendants(stack.pid)
        assert len(children) >= 7, "Kafka, three services, Prometheus, Alertmanager, simulator"
    finally:
        if stack.poll() is None:
            stack.send_signal(signal.SIGINT)
        try:
            code = stack.wait(120)
        except subprocess.TimeoutExpired:
            stack.kill()
            raise
    assert code == 0, log.read_text()[-4000:]
    assert "nothing left running" in log.read_text()
    left = [pid for pid in children if process_alive(pid)]
    assert left == [], f"processes left running: {left}"
    assert not any(port_open("127.0.0.1", port) for port in ports.values())
