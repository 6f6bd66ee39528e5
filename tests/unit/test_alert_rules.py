"""The charter rules file: SPEC defaults, overrides, and clear refusals of bad files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from charter_alerts.domain.rules import BurnRateRule, RulesError, ThresholdRule, default_rules, parse_rules

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "config" / "charter-rules.yaml"


def test_the_shipped_rules_file_is_the_built_in_defaults_of_the_spec() -> None:
    shipped = parse_rules(SHIPPED.read_text(), str(SHIPPED))
    assert shipped.document == default_rules().document
    rules = shipped.defaults
    expected = {
        "opening_rate_live": ("opening_rate", "live", 0.97, 5),
        "opening_rate_today": ("opening_rate", "today", 0.97, 5),
        "pickup_rate_1h": ("pickup_rate", "1h", 0.85, 30),
        "deadline_compliance_7d": ("deadline_compliance", "7d", 0.85, 30),
    }
    for name, (indicator, window, threshold, volume) in expected.items():
        rule = rules[name]
        assert isinstance(rule, ThresholdRule)
        assert (rule.indicator, rule.window, rule.min_volume) == (indicator, window, volume)
        assert rule.threshold == pytest.approx(threshold)
        assert rule.for_ > timedelta(0)
        assert rule.recovery_margin > 0


def test_a_total_outage_can_fire_every_burn_rate_rule() -> None:
    for rule in default_rules():
        if isinstance(rule, BurnRateRule):
            assert rule.breached(0.0), rule
            assert 0 < rule.trigger < rule.objective


def test_overrides_apply_most_specific_first_field_by_field() -> None:
    rules = parse_rules(
        """
version: 1
thresholds:
  pickup_rate_1h: {indicator: pickup_rate, window: 1h, threshold: 85%, min_volume: 30, for: 10m, recovery_margin: 2%}
overrides:
  - network: caf
    rules: {pickup_rate_1h: {threshold: 80%, for: 5m}}
  - department: "973"
    rules: {pickup_rate_1h: {min_volume: 10}}
  - network: caf
    department: "973"
    rules: {pickup_rate_1h: {threshold: 0.7}}
"""
    )

    def view(network: str, department: str | None) -> tuple[float, float, timedelta]:
        rule = rules.effective("pickup_rate_1h", network, department)
        assert isinstance(rule, ThresholdRule)
        return (round(rule.threshold, 4), rule.min_volume, rule.for_)

    assert view("cpam", None) == (0.85, 30, timedelta(minutes=10))
    assert view("caf", None) == (0.80, 30, timedelta(minutes=5))
    assert view("caf", "75") == (0.80, 30, timedelta(minutes=5))
    assert view("cpam", "973") == (0.85, 10, timedelta(minutes=10))
    assert view("caf", "973") == (0.70, 10, timedelta(minutes=5))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nthresholds: [", "not valid YAML"),
        ("- a list", "expected a mapping"),
        ("version: 2", "version"),
        (
            "version: 1\nthresholds:\n  p: {indicator: pickup_rate, window: live, threshold: 85%, min_volume: 30,"
            " for: 10m, recovery_margin: 2%}",
            "only opening_rate has a live value",
        ),
        (
            "version: 1\nthresholds:\n  p: {indicator: pickup_rate, window: 1h, threshold: 185%, min_volume: 30,"
            " for: 10m, recovery_margin: 2%}",
            "thresholds.p.threshold",
        ),
        (
            "version: 1\nthresholds:\n  p: {indicator: pickup_rate, window: 1h, threshold: 85%, min_volume: 30,"
            " for: ten minutes, recovery_margin: 2%}",
            "not a duration",
        ),
        (
            "version: 1\nthresholds:\n  p: {indicator: pickup_rate, window: 1h, threshold: 85%, min_volume: 30,"
            " for: 10m, recovery_margin: 2%, colour: red}",
            "colour",
        ),
        (
            "version: 1\nburn_rates:\n  b: {indicator: pickup_rate, objective: 85%, long_window: 1h,"
            " short_window: 15m, factor: 14.4, min_volume: 30, for: 2m, recovery_margin: 5%}",
            "a total outage burns a 15% budget at only 6.7x",
        ),
        (
            "version: 1\nburn_rates:\n  b: {indicator: pickup_rate, objective: 85%, long_window: 15m,"
            " short_window: 1h, factor: 2, min_volume: 30, for: 2m, recovery_margin: 5%}",
            "must be shorter than long_window",
        ),
        ("version: 1\noverrides:\n  - network: caf\n    rules: {nope: {threshold: 80%}}", "no rule named 'nope'"),
        (
            "version: 1\nthresholds:\n  p: {indicator: pickup_rate, window: 1h, threshold: 85%, min_volume: 30,"
            " for: 10m, recovery_margin: 2%}\noverrides:\n  - network: caf\n    rules: {p: {factor: 3}}",
            "factor does not apply to threshold rule 'p'",
        ),
        (
            "version: 1\nthresholds:\n  p: {indicator: pickup_rate, window: 1h, threshold: 85%, min_volume: 30,"
            " for: 10m, recovery_margin: 2%}\noverrides:\n  - rules: {p: {threshold: 80%}}",
            "names a network, a department, or both",
        ),
        (
            "version: 1\nthresholds:\n  p: {indicator: pickup_rate, window: 1h, threshold: 85%, min_volume: 30,"
            " for: 10m, recovery_margin: 2%}\noverrides:\n  - department: '20'\n    rules: {p: {threshold: 80%}}",
            "department",
        ),
    ],
)
def test_an_invalid_rules_file_is_refused_with_a_message_saying_where(text: str, message: str) -> None:
    with pytest.raises(RulesError) as refused:
        parse_rules(text, "rules.yaml")
    assert str(refused.value).startswith("rules.yaml: ")
    assert message in str(refused.value)
