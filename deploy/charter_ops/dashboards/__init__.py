"""The charter's Grafana boards, as code (``charter dashboards``).

Three boards, built with grafana-foundation-sdk and written as JSON into
``deploy/grafana/dashboards/`` where Grafana's provisioning loads them: the national
overview, the network board (the alerts link to it) and the operations board. The
charter's thresholds come from the rules file, read with the alerts service's own model,
so a threshold changed there changes the colours here at the next ``charter dashboards``.
"""

from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from charter_alerts.domain.rules import RuleSet, parse_rules
from charter_ops.dashboards.kit import BoardsError, Charter
from charter_ops.dashboards.network import UID as NETWORK_UID
from charter_ops.dashboards.network import network_board
from charter_ops.dashboards.operations import operations_board
from charter_ops.dashboards.overview import overview
from charter_ops.observability import CHARTER_RULES, DEPLOY_DIR

DASHBOARDS_DIR = DEPLOY_DIR / "grafana" / "dashboards"

__all__ = ["DASHBOARDS_DIR", "BoardsError", "Charter", "build", "check", "render", "rules_from", "write"]


def rules_from(path: Path = CHARTER_RULES) -> RuleSet:
    """The charter rules file, validated as the alerts service validates it."""
    return parse_rules(path.read_text(encoding="utf-8"), str(path))


def build(rules: RuleSet) -> dict[str, model.Dashboard]:
    """Every board, by the file name it is written to."""
    charter = Charter.from_rules(rules)
    boards = {
        "charter-overview.json": overview(charter, NETWORK_UID).build(),
        "charter-network.json": network_board(charter).build(),
        "charter-operations.json": operations_board().build(),
    }
    for dashboard in boards.values():
        _number_panels(dashboard)
    return boards


def _number_panels(dashboard: model.Dashboard) -> None:
    """Stable panel ids (1, 2, … in board order), so that links to a panel survive regeneration."""
    for number, panel in enumerate(dashboard.panels or [], start=1):
        panel.id_val = number


def render(dashboard: model.Dashboard) -> str:
    """The board as Grafana's JSON model, keys sorted, as written to disk."""
    return json.dumps(dashboard, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(rules: RuleSet, directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """(Re)write every board into ``directory``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in build(rules).items():
        path = directory / name
        path.write_text(render(dashboard), encoding="utf-8")
        written.append(path)
    return written


def check(rules: RuleSet, directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """The board files of ``directory`` that differ from what the code generates (or are missing)."""
    stale = []
    for name, dashboard in build(rules).items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != render(dashboard):
            stale.append(path)
    return stale
