"""The charter rules file (SPEC section 5): thresholds, burn rates and their overrides.

Pure Python and pydantic: this module turns YAML text into a validated ``RuleSet`` and
answers "which rule applies to this network and department". Reading the file and
reloading it live are the adapters' business (``charter_alerts.rules_file``).

A rule judges one indicator at the network level and at the network x department
level. Ratios are written as ``0.97`` or ``"97 %"``; durations as ``600``, ``"10m"``,
``"1h30m"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from charter_contracts import IndicatorName, WindowName
from charter_contracts.types import DepartmentCode, NetworkCode

Level = Literal["network", "department"]
Severity = Literal["page", "ticket"]
#: What a threshold rule compares: the snapshot's value, or the share of the sites scheduled
#: open now that still send their counter status (SPEC 4: stale sites are alerted on).
Measure = Literal["value", "sites_reporting"]
#: Windows a rule may judge, shortest first ("live" is the opening rate's sites open now).
JUDGED_WINDOWS: tuple[WindowName, ...] = ("live", "15m", "1h", "today", "7d")
_WINDOW_ORDER = {window: rank for rank, window in enumerate(JUDGED_WINDOWS)}
_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_RULE_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class RulesError(ValueError):
    """The rules file cannot be used; the message says where and why."""


def _ratio(value: Any) -> Any:
    """``0.97``, ``97 %`` or ``"97%"`` -> 0.97."""
    if isinstance(value, str):
        text = value.strip().replace("\u202f", " ")
        if text.endswith("%"):
            try:
                return float(text[:-1].strip()) / 100
            except ValueError:
                raise ValueError(f"not a percentage: {value!r}") from None
    return value


def _duration(value: Any) -> Any:
    """``600``, ``"10m"``, ``"1h30m"``, ``"2d"`` -> timedelta."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a text such as 10m, 1h30m")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not match or not value.strip():
            raise ValueError(f"not a duration: {value!r} (write e.g. 90s, 10m, 1h30m, 2d)")
        parts = {unit: int(match[unit] or 0) for unit in "dhms"}
        return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
    return value


Ratio = Annotated[float, BeforeValidator(_ratio), Field(gt=0, le=1)]
Margin = Annotated[float, BeforeValidator(_ratio), Field(ge=0, lt=1)]
Duration = Annotated[timedelta, BeforeValidator(_duration), Field(ge=timedelta(0))]
RuleName = Annotated[str, Field(pattern=_RULE_NAME)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _RuleBase(_Strict):
    indicator: IndicatorName
    min_volume: float = Field(ge=0, description="Volume below which the indicator is not judged.")
    volume: str = Field(
        default="denominator",
        pattern=r"^(denominator|details\.[A-Za-z0-9_]+)$",
        description="Where the volume is read: the snapshot's denominator or one of its details.",
    )
    for_: Duration = Field(alias="for", description="How long (event time) a breach holds before it fires.")
    recovery_margin: Margin = Field(description="A firing alert resolves at threshold + margin.")
    levels: tuple[Level, ...] = ("network", "department")
    severity: Severity = "page"
    enabled: bool = True


class ThresholdRule(_RuleBase):
    """The indicator must stay at or above ``threshold`` over ``window``."""

    kind: Literal["threshold"] = "threshold"
    window: WindowName
    threshold: Ratio
    measure: Measure = Field(
        default="value",
        description="value: the indicator; sites_reporting: 1 - stale / scheduled sites (opening_rate live).",
    )

    @model_validator(mode="after")
    def _judgeable(self) -> Self:
        _check_window(self.indicator, self.window)
        if self.measure == "sites_reporting" and (self.indicator, self.window) != ("opening_rate", "live"):
            raise ValueError(
                "measure sites_reporting reads the live opening snapshots: indicator opening_rate, window live"
            )
        if self.threshold + self.recovery_margin > 1 + 1e-9:
            raise ValueError("threshold + recovery_margin above 100 %: the alert could never resolve")
        return self

    def breached(self, value: float) -> bool:
        return value < self.threshold

    def recovered(self, value: float) -> bool:
        return value >= self.threshold + self.recovery_margin - 1e-12


class BurnRateRule(_RuleBase):
    """Error budget spent ``factor`` times too fast over both a long and a short window.

    The budget is ``1 - objective``; the burn rate of a window is
    ``(1 - value) / (1 - objective)``. Both windows at or above ``factor`` means the
    value of both is below ``1 - factor * (1 - objective)`` (the trigger).
    """

    kind: Literal["burn_rate"] = "burn_rate"
    objective: Ratio
    long_window: WindowName
    short_window: WindowName
    factor: float = Field(ge=1)

    @model_validator(mode="after")
    def _judgeable(self) -> Self:
        _check_window(self.indicator, self.long_window)
        _check_window(self.indicator, self.short_window)
        if "live" in (self.long_window, self.short_window):
            raise ValueError("burn rates are measured over windows of time, not 'live'")
        if _WINDOW_ORDER[self.short_window] >= _WINDOW_ORDER[self.long_window]:
            raise ValueError(f"short_window {self.short_window} must be shorter than long_window {self.long_window}")
        budget = 1 - self.objective
        if budget <= 0:
            raise ValueError("an objective of 100 % leaves no error budget to burn")
        if self.trigger <= 0:
            raise ValueError(
                f"factor {self.factor:g} can never fire: a total outage burns a {budget:.0%} budget "
                f"at only {1 / budget:.1f}x"
            )
        if self.trigger + self.recovery_margin > 1 + 1e-9:
            raise ValueError("trigger + recovery_margin above 100 %: the alert could never resolve")
        return self

    @property
    def trigger(self) -> float:
        """The value below which both windows burn at ``factor`` or more."""
        return round(1 - self.factor * (1 - self.objective), 9)

    @property
    def windows(self) -> tuple[WindowName, WindowName]:
        return (self.long_window, self.short_window)

    def burn(self, value: float) -> float:
        return (1 - value) / (1 - self.objective)

    def breached(self, value: float) -> bool:
        return value < self.trigger

    def recovered(self, value: float) -> bool:
        return value >= self.trigger + self.recovery_margin - 1e-12


Rule = ThresholdRule | BurnRateRule


def _check_window(indicator: IndicatorName, window: WindowName) -> None:
    if window not in _WINDOW_ORDER:
        raise ValueError(f"window {window!r} cannot be judged; use one of {', '.join(JUDGED_WINDOWS)}")
    if window == "live" and indicator != "opening_rate":
        raise ValueError("only opening_rate has a live value (sites open now / sites scheduled open now)")


class RuleOverride(_Strict):
    """Fields a network or department may change; anything not given is inherited."""

    enabled: bool | None = None
    threshold: Ratio | None = None
    objective: Ratio | None = None
    factor: float | None = Field(default=None, ge=1)
    min_volume: float | None = Field(default=None, ge=0)
    for_: Duration | None = Field(default=None, alias="for")
    recovery_margin: Margin | None = None
    severity: Severity | None = None

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Override(_Strict):
    """Changes to some rules for one network, one department, or one network in one department."""

    network: NetworkCode | None = None
    department: DepartmentCode | None = None
    rules: dict[RuleName, RuleOverride]

    @model_validator(mode="after")
    def _scoped(self) -> Self:
        if self.network is None and self.department is None:
            raise ValueError("an override names a network, a department, or both")
        return self


class RulesDocument(_Strict):
    """The rules file as written (``version: 1``)."""

    version: Literal[1]
    thresholds: dict[RuleName, ThresholdRule] = Field(default_factory=dict)
    burn_rates: dict[RuleName, BurnRateRule] = Field(default_factory=dict)
    overrides: list[Override] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        both = set(self.thresholds) & set(self.burn_rates)
        if both:
            raise ValueError(f"rule names used twice: {', '.join(sorted(both))}")
        rules: dict[str, Rule] = {**self.thresholds, **self.burn_rates}
        seen: set[tuple[str | None, str | None]] = set()
        for number, override in enumerate(self.overrides):
            where = (override.network, override.department)
            if where in seen:
                raise ValueError(f"overrides[{number}]: a second override for {_where(*where)}")
            seen.add(where)
            for name, change in override.rules.items():
                if name not in rules:
                    raise ValueError(f"overrides[{number}] ({_where(*where)}): no rule named {name!r}")
                fields = change.given()
                wrong = set(fields) - _OVERRIDABLE[rules[name].kind]
                if wrong:
                    raise ValueError(
                        f"overrides[{number}] ({_where(*where)}): {', '.join(sorted(wrong))} "
                        f"does not apply to {rules[name].kind} rule {name!r}"
                    )
                try:
                    _apply(rules[name], fields)
                except ValidationError as exc:
                    raise ValueError(f"overrides[{number}] ({_where(*where)}) {name}: {_first_error(exc)}") from None
        return self


_COMMON = {"enabled", "min_volume", "for_", "recovery_margin", "severity"}
_OVERRIDABLE = {"threshold": _COMMON | {"threshold"}, "burn_rate": _COMMON | {"objective", "factor"}}


def _apply(rule: Rule, fields: Mapping[str, Any]) -> Rule:
    if not fields:
        return rule
    data = rule.model_dump()
    data.update(fields)
    return type(rule).model_validate(data)


def _where(network: str | None, department: str | None) -> str:
    if network and department:
        return f"network {network} in department {department}"
    return f"network {network}" if network else f"department {department}"


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    return f"{location}: {error['msg']}" if location else error["msg"]


class RuleSet:
    """The rules in force: defaults plus overrides, resolved per (network, department).

    Most specific wins, field by field: network x department, then department, then
    network, then the default.
    """

    def __init__(self, document: RulesDocument) -> None:
        self.document = document
        self.defaults: dict[str, Rule] = {**document.thresholds, **document.burn_rates}
        self._overrides = {(o.network, o.department): o for o in document.overrides}
        self._cache: dict[tuple[str, str, str | None], Rule] = {}

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.defaults.values())

    def names(self) -> list[str]:
        return list(self.defaults)

    def effective(self, name: str, network: str, department: str | None) -> Rule:
        """The rule ``name`` as it applies to ``network`` (and ``department``, if any)."""
        key = (name, network, department)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        fields: dict[str, Any] = {}
        scopes: list[tuple[str | None, str | None]] = [(network, None)]
        if department is not None:
            scopes += [(None, department), (network, department)]
        for scope in scopes:
            override = self._overrides.get(scope)
            if override is not None and name in override.rules:
                fields.update(override.rules[name].given())
        rule = _apply(self.defaults[name], fields)
        self._cache[key] = rule
        return rule

    def listening_to(self, indicator: str, window: str) -> list[Rule]:
        """Default rules that read snapshots of this indicator and window."""
        return [
            rule
            for rule in self.defaults.values()
            if rule.indicator == indicator
            and (rule.window == window if isinstance(rule, ThresholdRule) else window in rule.windows)
        ]

    def name_of(self, rule: Rule) -> str:
        for name, candidate in self.defaults.items():
            if candidate is rule:
                return name
        raise KeyError(rule)


def parse_rules(text: str, source: str = "rules file") -> RuleSet:
    """Validate the YAML text of a rules file; ``RulesError`` says what is wrong and where."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RulesError(f"{source}: expected a mapping with 'version: 1', 'thresholds', 'burn_rates', 'overrides'")
    try:
        return RuleSet(RulesDocument.model_validate(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}" for error in exc.errors()
        )
        raise RulesError(f"{source}: {problems}") from None


#: SPEC section 5 and the burn-rate tiers of the README, as a rules file.
DEFAULT_RULES_YAML = """\
version: 1
thresholds:
  opening_rate_live:
    indicator: opening_rate
    window: live
    threshold: 97%
    min_volume: 5
    for: 10m
    recovery_margin: 1%
  opening_rate_today:
    indicator: opening_rate
    window: today
    threshold: 97%
    min_volume: 5
    volume: details.sites_scheduled
    for: 30m
    recovery_margin: 0.5%
  sites_reporting_live:
    indicator: opening_rate
    window: live
    measure: sites_reporting
    threshold: 90%
    min_volume: 5
    for: 30m
    recovery_margin: 5%
    severity: ticket
  pickup_rate_1h:
    indicator: pickup_rate
    window: 1h
    threshold: 85%
    min_volume: 30
    for: 10m
    recovery_margin: 2%
  deadline_compliance_7d:
    indicator: deadline_compliance
    window: 7d
    threshold: 85%
    min_volume: 30
    for: 1h
    recovery_margin: 1%
burn_rates:
  pickup_rate_burn_fast:
    indicator: pickup_rate
    objective: 85%
    long_window: 1h
    short_window: 15m
    factor: 4
    min_volume: 30
    for: 2m
    recovery_margin: 5%
    severity: page
  pickup_rate_burn_slow:
    indicator: pickup_rate
    objective: 85%
    long_window: today
    short_window: 1h
    factor: 2
    min_volume: 30
    for: 15m
    recovery_margin: 5%
    severity: ticket
  opening_rate_burn_fast:
    indicator: opening_rate
    objective: 97%
    long_window: 1h
    short_window: 15m
    factor: 10
    min_volume: 5
    volume: details.sites_scheduled
    for: 2m
    recovery_margin: 5%
    severity: page
  opening_rate_burn_slow:
    indicator: opening_rate
    objective: 97%
    long_window: today
    short_window: 1h
    factor: 3
    min_volume: 5
    volume: details.sites_scheduled
    for: 15m
    recovery_margin: 2%
    severity: ticket
  deadline_compliance_burn_fast:
    indicator: deadline_compliance
    objective: 85%
    long_window: today
    short_window: 1h
    factor: 3
    min_volume: 30
    for: 15m
    recovery_margin: 5%
    severity: page
  deadline_compliance_burn_slow:
    indicator: deadline_compliance
    objective: 85%
    long_window: 7d
    short_window: today
    factor: 1.5
    min_volume: 30
    for: 1h
    recovery_margin: 2%
    severity: ticket
overrides: []
"""


def default_rules() -> RuleSet:
    """The rules in force when no rules file is configured."""
    return parse_rules(DEFAULT_RULES_YAML, "built-in rules")
