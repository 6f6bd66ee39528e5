"""The boards as code: in sync with their JSON, as Grafana's own models and linter see them, charter-coloured."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard
from grafana_foundation_sdk.models.dashboard import Panel as PanelModel

from charter_alerts.settings import AlertsSettings
from charter_ops.dashboards import DASHBOARDS_DIR, BoardsError, Charter, build, check, render, rules_from
from charter_ops.observability import CHARTER_RULES
from tests.support import grafana
from tests.support.kafka import CHARTER

BOARD_FILES = ("charter-overview.json", "charter-network.json", "charter-operations.json")


def board(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DASHBOARDS_DIR / name).read_text(encoding="utf-8"))
    return loaded


def charter_threshold_of(panel: dict[str, Any]) -> float | None:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    greens = [s["value"] for s in steps if s["color"] == "green" and s["value"] is not None]
    return greens[0] if greens else None


def test_the_checked_in_boards_are_what_the_code_generates() -> None:
    assert sorted(p.name for p in DASHBOARDS_DIR.glob("*.json")) == sorted(BOARD_FILES)
    assert check(rules_from()) == [], "run `charter dashboards` and commit the result"
    result = subprocess.run([CHARTER, "dashboards", "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_charter_dashboards_writes_the_boards_and_check_names_a_stale_one(tmp_path: Path) -> None:
    written = subprocess.run(
        [CHARTER, "dashboards", "--out", str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(Path(p).name for p in written) == sorted(BOARD_FILES)
    for name in BOARD_FILES:
        assert (tmp_path / name).read_text() == (DASHBOARDS_DIR / name).read_text()
    edited = tmp_path / "charter-network.json"
    edited.write_text(edited.read_text().replace("Worst departments", "Best departments"))
    stale = subprocess.run(
        [CHARTER, "dashboards", "--check", "--out", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert stale.returncode == 1
    assert "charter-network.json" in stale.stderr
    assert "charter-overview.json" not in stale.stderr


@pytest.mark.parametrize("name", BOARD_FILES)
def test_each_board_survives_a_round_trip_through_the_sdk_models_unchanged(name: str) -> None:
    plugins.register_default_plugins()
    original = board(name)
    model = Dashboard.from_json(copy.deepcopy(original))
    assert json.loads(json.dumps(model, cls=JSONEncoder)) == original
    # and the panels are decoded as what they are, not as opaque bags
    shown = [p for p in model.panels or [] if isinstance(p, PanelModel)]
    assert {type(p.options).__module__ for p in shown} <= {
        "grafana_foundation_sdk.models.stat",
        "grafana_foundation_sdk.models.timeseries",
        "grafana_foundation_sdk.models.table",
        "grafana_foundation_sdk.models.bargauge",
    }
    targets = [t for p in shown for t in p.targets or []]
    assert targets
    assert {type(t).__module__ for t in targets} == {"grafana_foundation_sdk.models.prometheus"}


@pytest.mark.parametrize("name", BOARD_FILES)
def test_each_board_passes_the_dashboard_linter_rules(name: str) -> None:
    assert grafana.lint(board(name)) == []


def broken(name: str, change: Any) -> list[str]:
    dashboard = board(name)
    change(dashboard)
    return grafana.lint(dashboard)


def first_panel(dashboard: dict[str, Any], kind: str = "timeseries") -> dict[str, Any]:
    return next(p for p in grafana.panels(dashboard) if p["type"] == kind)


def set_expr(dashboard: dict[str, Any], expr: str) -> None:
    first_panel(dashboard)["targets"][0]["expr"] = expr


def test_the_linter_rules_catch_what_grafanas_linter_catches() -> None:
    ops = "charter-operations.json"

    def hard_coded(d: dict[str, Any]) -> None:
        first_panel(d)["targets"][0]["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}

    assert any("hard-coded datasource 'P1809F7CD0C75ACF3'" in p for p in broken(ops, hard_coded))
    assert any(
        "no valid unit" in p for p in broken(ops, lambda d: first_panel(d)["fieldConfig"]["defaults"].pop("unit"))
    )
    assert any(
        "no valid unit ('events/s')" in p
        for p in broken(ops, lambda d: first_panel(d)["fieldConfig"]["defaults"].update(unit="events/s"))
    )
    assert any("no title or no description" in p for p in broken(ops, lambda d: first_panel(d).pop("description")))
    assert any(
        "rate() window is not $__rate_interval" in p
        for p in broken(ops, lambda d: set_expr(d, "sum(rate(charter_ingest_events_accepted_total[5m]))"))
    )
    assert any(
        "increase() window is not $__rate_interval" in p
        for p in broken(ops, lambda d: set_expr(d, "sum(increase(charter_ingest_events_accepted_total[$__range]))"))
    ), "a range target may not total over $__range (an instant one may)"
    assert any(
        "counter charter_ingest_events_accepted_total outside rate" in p
        for p in broken(ops, lambda d: set_expr(d, "sum(charter_ingest_events_accepted_total)"))
    )
    assert any(
        "counter charter_ingest_latency_seconds_bucket outside rate" in p
        for p in broken(
            ops, lambda d: set_expr(d, "histogram_quantile(0.9, sum by (le) (charter_ingest_latency_seconds_bucket))")
        )
    )
    assert any(
        "ratio charter_pickup_rate_ratio aggregated" in p
        for p in broken(ops, lambda d: set_expr(d, 'avg(charter_pickup_rate_ratio{window="1h"})'))
    ), "averages of ratios are never exact"
    assert any("does not parse" in p for p in broken(ops, lambda d: set_expr(d, "sum(rate(x[$__rate_interval])")))
    assert any(
        "datasource variables" in p
        for p in broken(
            ops,
            lambda d: d["templating"].update(list=[v for v in d["templating"]["list"] if v["type"] != "datasource"]),
        )
    )
    assert any(
        "not refreshed when the time range changes" in p
        for p in broken(
            ops, lambda d: next(v for v in d["templating"]["list"] if v["type"] == "query").update(refresh=1)
        )
    )
    assert any("editable" in p for p in broken(ops, lambda d: d.update(editable=True)))


def test_thresholds_are_the_charters_from_the_rules_file() -> None:
    rules = rules_from()
    charter = Charter.from_rules(rules)
    assert (charter.opening_rate, charter.pickup_rate, charter.deadline_compliance) == (0.97, 0.85, 0.85)
    assert (charter.opening_min_sites, charter.pickup_min_calls, charter.deadline_min_cases) == (5, 30, 30)
    overview = board("charter-overview.json")
    by_title = {p["title"]: p for p in grafana.panels(overview)}
    assert charter_threshold_of(by_title["Opening rate now"]) == 0.97
    assert charter_threshold_of(by_title["Pickup rate, last hour"]) == 0.85
    assert charter_threshold_of(by_title["Deadline compliance, 7 days"]) == 0.85


def test_a_threshold_changed_in_the_rules_file_recolours_the_boards(tmp_path: Path) -> None:
    text = CHARTER_RULES.read_text(encoding="utf-8")
    edited = text.replace(
        "    window: 1h\n    threshold: 85%\n    min_volume: 30",
        "    window: 1h\n    threshold: 90%\n    min_volume: 60",
    )
    assert edited != text
    path = tmp_path / "rules.yaml"
    path.write_text(edited, encoding="utf-8")
    boards = {name: json.loads(render(d)) for name, d in build(rules_from(path)).items()}
    network = {p["title"]: p for p in grafana.panels(boards["charter-network.json"])}
    assert charter_threshold_of(network["Pickup rate, last hour"]) == 0.90
    assert charter_threshold_of(network["Deadline compliance, 7 days"]) == 0.85
    worst = network["Worst departments: pickup rate, last hour"]
    assert ">= 60)" in worst["targets"][0]["expr"], "the minimum volume to judge comes from the rules too"
    assert "at least 60 calls" in worst["description"]


def test_a_rules_file_without_an_indicator_cannot_colour_the_boards(tmp_path: Path) -> None:
    document = yaml.safe_load(CHARTER_RULES.read_text(encoding="utf-8"))
    for kind in ("thresholds", "burn_rates"):
        document[kind] = {n: r for n, r in document[kind].items() if r["indicator"] != "deadline_compliance"}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(BoardsError, match="deadline_compliance"):
        build(rules_from(path))
    result = subprocess.run(
        [CHARTER, "dashboards", "--rules", str(path), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "no enabled rule on deadline_compliance" in result.stderr
    assert not list(tmp_path.glob("*.json")), "nothing written"


def test_the_network_board_is_where_the_alerts_link_to() -> None:
    network = board("charter-network.json")
    assert network["uid"] == AlertsSettings.model_fields["grafana_dashboard_uid"].default
    names = {v["name"]: v for v in grafana.variables(network)}
    assert {"datasource", "network", "department"} <= set(names)
    # an alert on a whole network passes no var-department: the default is every department
    assert names["department"]["current"]["value"] == "$__all"
    assert names["department"]["allValue"] == ".+"
    assert names["department"]["multi"] is True


def test_aggregates_above_the_exported_level_are_sums_of_parts() -> None:
    for name in BOARD_FILES:
        for query in grafana.queries(board(name)):
            used = grafana.metric_names(query.expr)
            if 'department=~"$department"' in query.expr:
                assert not any(m.endswith("_ratio") for m in used), f"{query}: ratios are not exported per department"
