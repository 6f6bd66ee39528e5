"""The rules file on disk: a change is picked up, a bad change is refused and the old rules stay."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from charter_alerts.domain.rules import RulesError, ThresholdRule
from charter_alerts.rules_file import RulesFile
from tests.support.receivers import ALERTMANAGER_CONFIG

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "config" / "charter-rules.yaml"


def pickup_threshold(rules_file: RulesFile) -> float:
    rule = rules_file.status.rules.effective("pickup_rate_1h", "caf", None)
    assert isinstance(rule, ThresholdRule)
    return rule.threshold


def test_a_changed_file_is_reloaded_and_a_bad_one_refused_while_the_rules_in_force_stay(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(SHIPPED.read_text())
    rules_file = RulesFile(str(path))
    assert rules_file.check() == ("unchanged", None)

    path.write_text(
        SHIPPED.read_text().replace(
            "overrides: []", "overrides:\n  - network: caf\n    rules: {pickup_rate_1h: {threshold: 80%}}"
        )
    )
    outcome, rules = rules_file.check()
    assert outcome == "loaded"
    assert rules is not None
    assert pickup_threshold(rules_file) == pytest.approx(0.80)

    good = path.read_text()
    path.write_text(good.replace("version: 1", "version: one"))
    assert rules_file.check() == ("refused", None)
    assert rules_file.status.last_error is not None
    assert "version" in rules_file.status.last_error
    assert pickup_threshold(rules_file) == pytest.approx(0.80)
    assert rules_file.check() == ("unchanged", None)  # refused once, not again at every check

    path.unlink()
    assert rules_file.check() == ("refused", None)
    assert "cannot read the rules file" in (rules_file.status.last_error or "")

    path.write_text(good)  # back to the rules in force: nothing to load, no error left
    assert rules_file.check() == ("unchanged", None)
    assert rules_file.status.last_error is None


def test_the_service_refuses_to_start_on_an_invalid_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nthresholds: {p: {indicator: pickup_rate}}\n")
    with pytest.raises(RulesError, match=r"thresholds\.p\.window: Field required"):
        RulesFile(str(path))


def test_the_alertmanager_configuration_passes_amtool() -> None:
    amtool = shutil.which("amtool")
    assert amtool, "amtool comes with Debian's prometheus-alertmanager (deploy/install-system-deps.sh)"
    result = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER_CONFIG)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
