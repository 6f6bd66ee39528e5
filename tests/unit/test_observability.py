"""Prometheus and Alertmanager configuration, checked by their own tools (Debian's promtool and amtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from charter_ops.observability import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    RULES_DIR,
    compose_prometheus_config,
    native_prometheus_config,
)

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
