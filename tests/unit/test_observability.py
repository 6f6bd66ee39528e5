"""Prometheus and Alertmanager configuration, checked by their own tools (Debian's promtool and amtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import yaml

from charter_ops.kafka.local import free_port
from charter_ops.observability import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    RULES_DIR,
    alertmanager_config_for,
    compose_prometheus_config,
    native_prometheus_config,
)
from charter_ops.oncall import OnCallSink

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is missing: `make setup` installs it (deploy/install-system-deps.sh)"
    return path


def check(*command: str, cwd: Path | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_the_checked_in_compose_config_is_the_generated_one() -> None:
    assert PROMETHEUS_CONFIG.read_text(encoding="utf-8") == compose_prometheus_config(), (
        "regenerate: .venv/bin/python -c 'from charter_ops.observability import write_compose_config; "
        "write_compose_config()'"
    )


def test_prometheus_accepts_both_configs_and_their_rules(tmp_path: Path) -> None:
    # the compose config names its rules by their path in the container: lay them out the same way
    (tmp_path / "rules").mkdir()
    for rule_file in RULES_DIR.glob("*.yml"):
        shutil.copy(rule_file, tmp_path / "rules" / rule_file.name)
    compose = tmp_path / "prometheus.yml"
    compose.write_text(compose_prometheus_config().replace("/etc/prometheus/rules", str(tmp_path / "rules")))
    out = check(tool("promtool"), "check", "config", str(compose))
    assert "4 rules found" in out

    native = tmp_path / "native.yml"
    native.write_text(native_prometheus_config({"ingest": 19001, "indicators": 19002, "alerts": 19003}, 19093, 19090))
    out = check(tool("promtool"), "check", "config", str(native))
    assert "SUCCESS" in out
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"]
        for job in yaml.safe_load(native.read_text())["scrape_configs"]
    }
    assert targets["indicators"] == ["127.0.0.1:19002"]
    assert targets["prometheus"] == ["127.0.0.1:19090"]


def test_operational_rules_pass_promtool_check_and_their_unit_tests() -> None:
    check(tool("promtool"), "check", "rules", *map(str, sorted(RULES_DIR.glob("*.yml"))))
    out = check(tool("promtool"), "test", "rules", "operations_test.yml", cwd=ROOT / "tests" / "rules")
    assert "SUCCESS" in out


def test_alertmanager_config_passes_amtool_and_groups_by_network() -> None:
    out = check(tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))
    assert "SUCCESS" in out
    route = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())["route"]
    assert "network" in route["group_by"]


def test_the_native_stack_sends_alertmanager_webhooks_to_its_sink_and_keeps_the_routes(tmp_path: Path) -> None:
    written = tmp_path / "alertmanager.yml"
    written.write_text(alertmanager_config_for("http://127.0.0.1:19095"))
    check(tool("amtool"), "check-config", str(written))
    original, local = yaml.safe_load(ALERTMANAGER_CONFIG.read_text()), yaml.safe_load(written.read_text())
    assert local["route"] == original["route"]
    urls = [hook["url"] for receiver in local["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert urls
    assert all(url.startswith("http://127.0.0.1:19095/alertmanager/") for url in urls)


def test_the_on_call_sink_keeps_every_notification(tmp_path: Path) -> None:
    sink = OnCallSink(free_port(), tmp_path / "notifications.log").start()
    try:
        body = {
            "status": "firing",
            "groupLabels": {"network": "caf"},
            "alerts": [{"status": "firing", "labels": {"alertname": "pickup_rate_1h", "network": "caf"}}],
        }
        assert httpx.post(f"{sink.url}/alertmanager/page", json=body, timeout=5).status_code == 200
        assert httpx.post(f"{sink.url}/alertmanager/page", content=b"not json", timeout=5).status_code == 400
    finally:
        sink.stop()
    [notification] = sink.last()
    assert (notification.receiver, notification.status, notification.network) == ("page", "firing", "caf")
    assert "caf pickup_rate_1h" in notification.describe()
    logged = (tmp_path / "notifications.log").read_text().splitlines()
    assert len(logged) == 1
    assert '"receiver": "page"' in logged[0]
