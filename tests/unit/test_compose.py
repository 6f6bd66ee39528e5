"""docker-compose.yml: valid compose, complete start order, and true to the services' settings.

No Docker engine here, so the file is checked against the compose specification and
against the code it deploys: every CHARTER_* variable is a real setting, every port is
the one the service listens on, Prometheus scrapes what runs, Grafana reads what is mounted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.core import TyperGroup

from charter_ops.cli import app
from charter_ops.config_doc import env_rows
from charter_ops.kafka.local import KAFKA_VERSION
from charter_ops.observability import (
    COMPOSE_ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    SERVICES,
    compose_alertmanager_config,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def port_mapping(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    mapping = {}
    for entry in service.get("ports", []):
        host, container = str(entry).split(":")[-2:]
        mapping[int(container)] = int(host)
    return mapping


def test_the_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_whole_stack_is_there_and_starts_in_order(compose: dict[str, Any]) -> None:
    stack = services(compose)
    assert set(stack) >= {
        "kafka",
        "ingest",
        "indicators",
        "alerts",
        "simulator",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    for name, service in stack.items():
        depends = service.get("depends_on", {})
        targets = depends if isinstance(depends, list) else list(depends)
        assert set(targets) <= set(stack), f"{name} depends on a service that does not exist"
        if isinstance(depends, dict):
            for target, condition in depends.items():
                if condition.get("condition") == "service_healthy":
                    assert "healthcheck" in stack[target], f"{name} waits for {target} to be healthy: it has no check"
        if name != "simulator":  # the simulator serves nothing to check
            assert "healthcheck" in service, f"{name} has no healthcheck"
    for charter_service in ("ingest", "indicators", "alerts"):
        assert stack[charter_service]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert set(stack["simulator"]["depends_on"]) == {"ingest", "indicators", "alerts"}
    assert stack["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}", "the same Kafka as our jars"
    env = stack["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, "KRaft, one node"


def charter_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services(compose).items() if s.get("image") == "charter:local"}


def test_the_services_are_built_from_the_dockerfile_and_run_charter_commands(compose: dict[str, Any]) -> None:
    built = charter_services(compose)
    assert set(built) == {"ingest", "indicators", "alerts", "simulator", "oncall"}
    assert all(s["build"] == "." for s in built.values())
    group = typer.main.get_command(app)
    for name, service in built.items():
        resolved: Any = group
        for word in service["command"]:
            if not isinstance(resolved, TyperGroup):
                break
            assert word in resolved.commands, f"{name}: charter has no command {word!r}"
            resolved = resolved.commands[word]
        assert not isinstance(resolved, TyperGroup), f"{name}: {service['command']} is not a complete command"
        assert resolved.name == name or name == "simulator"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["charter"]' in dockerfile
    assert re.search(r"^FROM python:3\.11-", dockerfile, re.MULTILINE), "the Python of pyproject's requires-python"
    uv = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert uv is not None
    assert f"uv=={uv[1]}" in dockerfile, "the uv of the Makefile"


def test_every_charter_variable_is_a_real_setting_of_its_service(compose: dict[str, Any]) -> None:
    variables: dict[str, set[str]] = {}
    for variable, owners, _, _ in env_rows():
        variables[variable] = set(owners.split(", "))
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    simulate = group.commands["simulate"]
    assert isinstance(simulate, TyperGroup)
    simulator_vars = {p.envvar for p in simulate.commands["live"].params if isinstance(p.envvar, str)}
    for name, service in charter_services(compose).items():
        for variable in service.get("environment", {}):
            if not variable.startswith("CHARTER_"):
                continue
            if name == "simulator":
                assert variable in simulator_vars, f"simulator: {variable} is not an option of charter simulate live"
            else:
                assert name in variables.get(variable, set()), f"{name}: {variable} is not one of its settings"


def settings_in_compose(compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The service's settings as the container would read them."""
    with monkeypatch.context() as patch:
        for variable in [v for v in os.environ if v.startswith("CHARTER_")]:
            patch.delenv(variable)
        for variable, value in services(compose)[service]["environment"].items():
            patch.setenv(variable, str(value))
        return SERVICES[service]()


def test_ports_kafka_address_and_health_checks_match_the_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = services(compose)
    kafka_env = stack["kafka"]["environment"]
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    for name in SERVICES:
        settings = settings_in_compose(compose, name, monkeypatch)
        assert settings.http_host == "0.0.0.0", f"{name} must listen beyond its container's loopback"
        assert settings.http_port in port_mapping(stack[name]), f"{name}: the published port is not its HTTP port"
        assert f"127.0.0.1:{settings.http_port}/health" in " ".join(stack[name]["healthcheck"]["test"])
        assert f"//{settings.kafka_bootstrap_servers}" in advertised, f"{name} must reach a listener Kafka advertises"
    assert stack["simulator"]["environment"]["CHARTER_KAFKA_BOOTSTRAP_SERVERS"] in advertised
    assert port_mapping(stack["kafka"])[9092] == 9092, "host clients use the default 127.0.0.1:9092"
    assert "HOST://localhost:9092" in advertised


def test_prometheus_scrapes_the_services_where_they_listen_and_alerts_to_alertmanager(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = services(compose)
    prometheus = stack["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert f"--config.file=/etc/prometheus/{PROMETHEUS_CONFIG.name}" in prometheus["command"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    for name in SERVICES:
        settings = settings_in_compose(compose, name, monkeypatch)
        assert targets[name] == [f"{name}:{settings.http_port}"]
    alertmanager_port = int(next(a for a in stack["alertmanager"]["command"] if "listen-address" in a).split(":")[-1])
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        f"alertmanager:{alertmanager_port}"
    ]
    assert alertmanager_port in port_mapping(stack["alertmanager"])
    for pattern in config["rule_files"]:
        local = ROOT / "deploy" / "prometheus" / Path(pattern).relative_to("/etc/prometheus")
        assert list(local.parent.glob(local.name)), f"{pattern} matches no rule file"
    assert "./deploy/alertmanager/compose:/etc/alertmanager:ro" in stack["alertmanager"]["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in stack["alertmanager"]["command"]
    assert (ROOT / "deploy" / "alertmanager" / "alertmanager.yml").exists()


def test_grafana_has_the_prometheus_datasource_and_the_dashboards_folder(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/charter.yml").read_text())
    prometheus = next(d for d in datasources["datasources"] if d["type"] == "prometheus")
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["isDefault"]
    assert "9090" in " ".join(services(compose)["prometheus"]["command"])
    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/charter.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == mounts["./deploy/grafana/dashboards"]
    assert (ROOT / "deploy/grafana/dashboards").is_dir()
    for service in services(compose).values():
        for volume in service.get("volumes", []):
            if volume.startswith("./"):
                assert (ROOT / volume.split(":")[0]).exists(), f"{volume}: nothing to mount"


def test_the_alerts_service_notifies_alertmanager_and_reads_a_shipped_rules_file(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = services(compose)
    settings = settings_in_compose(compose, "alerts", monkeypatch)
    alertmanager_port = int(next(a for a in stack["alertmanager"]["command"] if "listen-address" in a).split(":")[-1])
    assert settings.alertmanager_url == f"http://alertmanager:{alertmanager_port}"
    assert stack["alerts"]["depends_on"]["alertmanager"]["condition"] == "service_healthy"
    assert settings.rules_file.startswith("/app/"), "the image holds the repository under /app"
    assert (ROOT / settings.rules_file.removeprefix("/app/")).is_file()
    assert "COPY deploy deploy" in (ROOT / "Dockerfile").read_text()


def test_alertmanager_pages_the_oncall_service_where_it_listens(compose: dict[str, Any]) -> None:
    stack = services(compose)
    mount = next(v for v in stack["alertmanager"]["volumes"] if v.endswith(":/etc/alertmanager:ro"))
    assert ROOT / mount.split(":")[0].removeprefix("./") == COMPOSE_ALERTMANAGER_CONFIG.parent
    assert COMPOSE_ALERTMANAGER_CONFIG.read_text(encoding="utf-8") == compose_alertmanager_config(), (
        "regenerate: .venv/bin/python -c 'from charter_ops.observability import write_compose_config; "
        "write_compose_config()'"
    )
    command = stack["oncall"]["command"]
    port = int(command[command.index("--port") + 1])
    assert command[command.index("--host") + 1] == "0.0.0.0", "reachable from the alertmanager container"
    assert port_mapping(stack["oncall"]) == {port: port}
    config = yaml.safe_load(COMPOSE_ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    urls = [hook["url"] for receiver in config["receivers"] for hook in receiver["webhook_configs"]]
    assert urls == [f"http://oncall:{port}/alertmanager/page", f"http://oncall:{port}/alertmanager/ticket"]
    assert stack["alertmanager"]["depends_on"]["oncall"]["condition"] == "service_healthy"
