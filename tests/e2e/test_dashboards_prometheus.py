"""Every query of every board, against a real Prometheus that scraped the running services.

One stack for the whole module: ``charter stack --no-simulator`` on free ports (Kafka,
the three services, Prometheus and Alertmanager from Debian), then ``charter simulate
live`` from 08:55 (Paris) of a working day of the past week, so that sites open during
the run (ingest refuses events far in the future: simulated time stays behind the wall
clock): half an hour of backfill, DGFiP degraded from its start (its alerts fire), one event
in a hundred re-sent (ingest rejects the copies), at four times real speed.

Queries are interpolated as Grafana's Prometheus datasource would ($network, "All",
$__rate_interval from the provisioned scrape interval, $__range…) and sent to
/api/v1/query_range (range targets) or /api/v1/query (instant ones).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import httpx
import promql_parser
import pytest
import yaml

from charter_ops.dashboards import DASHBOARDS_DIR
from charter_ops.kafka.local import free_port
from charter_ops.observability import DEPLOY_DIR
from tests.support import grafana, polling
from tests.support.kafka import CHARTER

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]
SERVICES = ("ingest", "indicators", "alerts")
PARIS = ZoneInfo("Europe/Paris")
NETWORK = "dgfip"  # degraded, as an alert's link would select it; its calls go to a few call centres
DATASOURCES = DEPLOY_DIR / "grafana" / "provisioning" / "datasources" / "charter.yml"
DATA_TIMEOUT = 420.0


def simulated_morning(now: datetime) -> datetime:
    """08:55 in Paris on the latest working day at least three hours ago: the sites open just after."""
    day = (now - timedelta(hours=3)).astimezone(PARIS).date()
    while True:
        start = datetime.combine(day, clock(8, 55), PARIS)
        working = day.weekday() < 5 and day not in holidays.country_holidays("FR", years=day.year)
        if working and now - start >= timedelta(hours=3):
            return start
        day -= timedelta(days=1)


def scrape_interval() -> float:
    """The scrape interval Grafana is told about (the provisioned datasource's timeInterval)."""
    provisioned = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    prometheus = next(d for d in provisioned["datasources"] if d["type"] == "prometheus")
    text = str(prometheus["jsonData"]["timeInterval"])
    assert text.endswith("s")
    return float(text[:-1])


def boards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


@dataclass
class Stack:
    prometheus: str
    indicators: str
    log: Path
    simulator_log: Path
    scraping_since: float
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.prometheus}{path}", params=params, timeout=30)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"{response.status_code} {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def tail(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in (self.log, self.simulator_log)
        )


class PrometheusError(AssertionError):
    """Prometheus refused a query (it does not parse, or cannot run)."""


def wait_for(what: str, condition: Any, timeout: float, stack_log: Path) -> Any:
    """Poll every 2 s; a query Prometheus cannot answer yet counts as not yet."""
    tolerated = (httpx.HTTPError, PrometheusError, KeyError, ValueError)
    return polling.wait_for(what, condition, timeout, stack_log, every=2.0, tolerated=tolerated)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("boards")
    ports = {name: free_port() for name in (*SERVICES, "prometheus", "alertmanager", "oncall", "kafka", "controller")}
    env = {
        **os.environ,
        "CHARTER_KAFKA_PORT": str(ports["kafka"]),
        "CHARTER_KAFKA_CONTROLLER_PORT": str(ports["controller"]),
        "CHARTER_KAFKA_HOME": str(tmp / "kafka"),
        "CHARTER_PROMETHEUS_PORT": str(ports["prometheus"]),
        "CHARTER_ALERTMANAGER_PORT": str(ports["alertmanager"]),
        "CHARTER_ONCALL_PORT": str(ports["oncall"]),
        **{f"CHARTER_{name.upper()}_HTTP_PORT": str(ports[name]) for name in SERVICES},
    }
    env.pop("CHARTER_KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("CHARTER_KAFKA_TOPIC_PREFIX", None)
    log, simulator_log = tmp / "stack.out", tmp / "simulator.out"
    processes: list[subprocess.Popen[bytes]] = []
    with log.open("wb") as out:
        processes.append(
            subprocess.Popen(
                [CHARTER, "stack", "--no-simulator", "--run-dir", str(tmp / "run"), "--refresh", "30"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
    running = Stack(
        f"http://127.0.0.1:{ports['prometheus']}",
        f"http://127.0.0.1:{ports['indicators']}",
        log,
        simulator_log,
        0.0,
        processes,
    )
    try:

        def all_up() -> bool:
            up = {r["metric"]["job"]: r["value"][1] for r in running.api("/api/v1/query", query="up")["result"]}
            return all(up.get(name) == "1" for name in SERVICES)

        wait_for("Prometheus to scrape every service", all_up, 240, log)
        running.scraping_since = time.time()
        start = simulated_morning(datetime.now(UTC))
        simulate = [
            CHARTER, "simulate", "live", "--rate", "60", "--seed", "7", "--speed", "4", "--backfill", "30m",
            "--start", start.isoformat(), "--resend", "0.01",
            "--degrade", f"{NETWORK}@{(start - timedelta(minutes=30)).isoformat()}",
        ]  # fmt: skip
        with simulator_log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    simulate,
                    env={**env, "CHARTER_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{ports['kafka']}"},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        yield running
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def view(board: dict[str, Any], stack: Stack, chosen: dict[str, str]) -> grafana.Interpolation:
    """The board as a user sees it now: time range from the first scrape to now."""
    return grafana.Interpolation.for_view(
        board, chosen, range_seconds=time.time() - stack.scraping_since, scrape_seconds=scrape_interval()
    )


def run(stack: Stack, query: grafana.Query, interpolate: grafana.Interpolation) -> list[dict[str, Any]]:
    """What Grafana would get for one target: its series (raises PrometheusError if refused)."""
    expr = interpolate(query.expr)
    if query.instant:
        return list(stack.api("/api/v1/query", query=expr, time=time.time())["result"])
    end = time.time()
    step = interpolate("$__interval").removesuffix("s")
    data = stack.api("/api/v1/query_range", query=expr, start=stack.scraping_since, end=end, step=step)
    return list(data["result"])


def has_values(series: list[dict[str, Any]]) -> bool:
    samples = [s["value"] for s in series if "value" in s] + [v for s in series for v in s.get("values", [])]
    return any(not math.isnan(float(value)) for _, value in samples)


def choices(board: dict[str, Any], stack: Stack) -> dict[str, str]:
    """Each variable's value as Grafana would send it: the listed network, every department (All)."""
    chosen: dict[str, str] = {}
    for variable in grafana.variables(board):
        name = variable["name"]
        if variable["type"] == "datasource":
            chosen[name] = "prometheus"
        elif variable["type"] == "textbox":
            chosen[name] = str(variable["query"])
        elif variable["type"] == "query":
            options = options_of(variable, stack, chosen)
            assert options, f"variable {name} of {board['title']} lists nothing"
            if variable.get("includeAll"):
                chosen[name] = grafana.format_variable(variable, grafana.Selection(all=True), options)
            else:
                assert NETWORK in options, f"{name}: {options}"
                chosen[name] = grafana.format_variable(variable, grafana.Selection((NETWORK,)), options)
    return chosen


def options_of(variable: dict[str, Any], stack: Stack, chosen: dict[str, str]) -> list[str]:
    """label_values(selector, label), as Grafana asks Prometheus for it (series of the time range)."""
    selector, label = grafana.label_values_query(variable)
    interpolate = grafana.Interpolation(chosen)
    series = stack.api(
        "/api/v1/series", **{"match[]": interpolate(selector)}, start=stack.scraping_since, end=time.time()
    )
    return sorted({s[label] for s in series if label in s})


def test_every_query_on_every_board_parses_and_returns_data(stack: Stack) -> None:
    all_boards = boards()
    pending = {name: set(grafana.queries(board)) for name, board in all_boards.items()}
    assert sum(len(q) for q in pending.values()) > 60
    refused: dict[grafana.Query, str] = {}
    deadline = time.monotonic() + DATA_TIMEOUT
    while any(pending.values()) and time.monotonic() < deadline:
        for name, board in all_boards.items():
            try:
                interpolate = view(board, stack, choices(board, stack))
            except (AssertionError, PrometheusError):
                continue  # a variable lists nothing yet: no traffic counted yet
            for query in list(pending[name]):
                try:
                    if has_values(run(stack, query, interpolate)):
                        pending[name].discard(query)
                except PrometheusError as exc:
                    refused[query] = str(exc)
                    pending[name].discard(query)
        if any(pending.values()):
            time.sleep(5)
    assert not refused, "\n".join(f"{query}\n  -> {error}" for query, error in refused.items())
    missing = [str(query) for queries in pending.values() for query in sorted(queries, key=str)]
    assert not missing, "no data after {:.0f} s for:\n{}\n{}".format(DATA_TIMEOUT, "\n".join(missing), stack.tail())


def test_one_or_several_departments_chosen_every_network_board_query_still_runs(stack: Stack) -> None:
    board = boards()["charter-network.json"]
    department = next(v for v in grafana.variables(board) if v["name"] == "department")
    chosen = choices(board, stack)
    departments = options_of(department, stack, chosen)
    assert len(departments) > 50, departments
    for picked in ([departments[0]], departments[:3]):
        chosen["department"] = grafana.format_variable(department, grafana.Selection(tuple(picked)), departments)
        interpolate = view(board, stack, chosen)
        for query in grafana.queries(board):
            run(stack, query, interpolate)  # raises if Prometheus refuses it


def instant(stack: Stack, expr: str) -> dict[str, float]:
    result = stack.api("/api/v1/query", query=expr, time=time.time())["result"]
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}


def network_ratio_is_the_sum_of_its_departments(
    stack: Stack, ratio: str, numerator: str, denominator: str, window: str
) -> bool:
    exported = instant(stack, f'sum by (network) ({ratio}{{network!="",department="",window="{window}"}})')
    parts = instant(
        stack,
        f'sum by (network) ({numerator}{{network!="",department!="",window="{window}"}}) / '
        f'sum by (network) ({denominator}{{network!="",department!="",window="{window}"}})',
    )
    return len(exported) >= 5 and all(
        key in parts and math.isclose(value, parts[key], rel_tol=1e-9) for key, value in exported.items()
    )


def test_the_department_sums_the_board_shows_are_exactly_the_networks_exported_ratios(stack: Stack) -> None:
    # "All" departments on the network board = the parts of every department of the network, summed
    cases = {
        "charter_pickup_rate_ratio": ("charter_calls_answered", "charter_calls_offered", "1h"),
        "charter_opening_rate_ratio": ("charter_opening_open_seconds", "charter_opening_scheduled_seconds", "today"),
        "charter_deadline_compliance_ratio": ("charter_cases_within_deadline", "charter_cases_completed", "7d"),
    }
    for ratio, parts in cases.items():
        # the two levels are set one after the other: equal within a few scrapes
        wait_for(
            f"{ratio} per network = sum of its departments' parts",
            lambda ratio=ratio, parts=parts: network_ratio_is_the_sum_of_its_departments(stack, ratio, *parts),
            60,
            stack.log,
        )


def test_every_metric_the_boards_read_is_exported_and_counters_are_only_rated(stack: Stack) -> None:
    metadata = stack.api("/api/v1/metadata")
    types = {name: entries[0]["type"] for name, entries in metadata.items()}
    for board in boards().values():
        for query in grafana.queries(board):
            for node, parents in grafana.walk(grafana.parse(query.expr)):
                name = getattr(node, "name", None)
                if not isinstance(node, promql_parser.VectorSelector) or not name or name == "up":
                    continue
                family = name
                for suffix in grafana.COUNTER_SUFFIXES:
                    if name.endswith(suffix) and name.removesuffix(suffix) in types:
                        family = name.removesuffix(suffix)
                assert family in types, f"{query}: {name} is not exported by any service"
                if types[family] in {"counter", "histogram"}:
                    assert grafana.rated(parents), f"{query}: {types[family]} {name} outside rate/increase"


def test_the_links_to_the_read_api_show_the_sites_of_a_department(stack: Stack) -> None:
    board = boards()["charter-network.json"]
    chosen = {**choices(board, stack), "read_api": stack.indicators}
    interpolate = view(board, stack, chosen)
    departments = options_of(next(v for v in grafana.variables(board) if v["name"] == "department"), stack, chosen)
    department = departments[0]
    urls = grafana.links(board)
    api_urls = [url for url in urls if url.startswith("${read_api}")]
    assert len(api_urls) >= 3, urls
    for url in api_urls:
        concrete = interpolate(url, {"__data.fields.department": department, "__field.labels.department": department})
        response = httpx.get(concrete, timeout=30)
        assert response.status_code == 200, f"{concrete}: {response.status_code} {response.text[:300]}"
        body = response.json()
        assert isinstance(body, list)
        if "/v1/indicators" in concrete:
            sites = {s["scope"]["site_id"] for s in body if s["scope"]["site_id"]}
            assert sites, f"{concrete}: no site-level snapshot"
            assert {s["scope"]["department"] for s in body} == {department}
