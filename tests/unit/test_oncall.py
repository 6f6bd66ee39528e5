"""`charter oncall`: the on-call stand-in that docker compose points Alertmanager's webhooks at."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from charter_ops.kafka.local import free_port
from tests.support.kafka import CHARTER

WEBHOOK = {
    "version": "4",
    "status": "firing",
    "receiver": "on-call",
    "groupLabels": {"network": "caf"},
    "alerts": [
        {"status": "firing", "labels": {"alertname": "pickup_rate_1h", "network": "caf", "severity": "page"}},
        {"status": "firing", "labels": {"alertname": "pickup_rate_burn_fast", "network": "caf"}},
    ],
}


def health(port: int) -> httpx.Response:
    """GET /health once the sink listens (it starts in a second or two)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "charter oncall never listened"
            time.sleep(0.2)


def test_it_prints_and_keeps_each_notification_and_answers_its_healthcheck(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "notifications.log"
    command = [CHARTER, "oncall", "--host", "127.0.0.1", "--port", str(port), "--log-file", str(log)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert health(port).status_code == 200
        posted = httpx.post(f"http://127.0.0.1:{port}/alertmanager/page", json=WEBHOOK, timeout=5)
        assert posted.status_code == 200
        assert httpx.post(f"http://127.0.0.1:{port}/alertmanager/page", content=b"{", timeout=5).status_code == 400
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    kept = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert kept == [{"receiver": "page", **WEBHOOK}]
    assert "page firing: caf pickup_rate_1h, pickup_rate_burn_fast" in out


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    port = free_port()
    first = subprocess.Popen([CHARTER, "oncall", "--port", str(port), "--log-file", str(tmp_path / "a.log")])
    try:
        health(port)
        second = subprocess.run(
            [CHARTER, "oncall", "--port", str(port), "--log-file", str(tmp_path / "b.log")],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        first.terminate()
        first.wait(timeout=10)
    assert second.returncode == 1
    assert second.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in second.stderr
