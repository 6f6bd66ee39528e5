"""Charter threshold rules over indicator snapshots (SPEC section 5).

A rule judges one indicator on one window once the volume is large enough; an alert
fires once per breach and resolves once the value recovers past threshold + margin.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from charter_contracts import AlertEvent, AlertStatus, IndicatorName, IndicatorSnapshot, WindowName


@dataclass(frozen=True)
class ThresholdRule:
    """The indicator must stay at or above ``threshold`` on ``window``."""

    name: str
    indicator: IndicatorName
    window: WindowName
    threshold: float
    min_volume: float
    recovery_margin: float = 0.02

    def applies_to(self, snapshot: IndicatorSnapshot) -> bool:
        scope = snapshot.scope
        return (
            snapshot.indicator == self.indicator
            and snapshot.window == self.window
            and scope.network is not None
            and scope.site_id is None
        )


DEFAULT_RULES = (ThresholdRule("pickup_rate_1h", "pickup_rate", "1h", threshold=0.85, min_volume=30),)


def fingerprint(rule: ThresholdRule, network: str, department: str | None) -> str:
    """Stable id of an alert: the same rule on the same place is the same alert."""
    text = f"{rule.name}|{network}|{department or '*'}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class _Episode:
    number: int
    since: datetime


@dataclass
class AlertBook:
    """Which alerts are firing; turns snapshots into firing/resolved transitions."""

    rules: tuple[ThresholdRule, ...] = DEFAULT_RULES
    dashboard_base_url: str = "http://127.0.0.1:3000"
    _firing: dict[str, _Episode] = field(default_factory=dict)
    _episodes: dict[str, int] = field(default_factory=dict)

    def observe(self, snapshot: IndicatorSnapshot) -> list[AlertEvent]:
        """Transitions caused by one snapshot (usually none)."""
        events = []
        for rule in self.rules:
            if rule.applies_to(snapshot):
                event = self._judge(rule, snapshot)
                if event is not None:
                    events.append(event)
        return events

    def _judge(self, rule: ThresholdRule, snapshot: IndicatorSnapshot) -> AlertEvent | None:
        network = snapshot.scope.network
        assert network is not None
        department = snapshot.scope.department
        key = fingerprint(rule, network, department)
        value = snapshot.value
        if value is None or snapshot.denominator < rule.min_volume:
            return None
        firing = self._firing.get(key)
        if firing is None and value < rule.threshold:
            number = self._episodes.get(key, 0) + 1
            self._episodes[key] = number
            self._firing[key] = _Episode(number, snapshot.as_of)
            return self._event(rule, snapshot, key, "firing", number, snapshot.as_of)
        if firing is not None and value >= rule.threshold + rule.recovery_margin:
            del self._firing[key]
            return self._event(rule, snapshot, key, "resolved", firing.number, firing.since)
        return None

    def _event(
        self,
        rule: ThresholdRule,
        snapshot: IndicatorSnapshot,
        key: str,
        status: AlertStatus,
        number: int,
        since: datetime,
    ) -> AlertEvent:
        network = snapshot.scope.network or ""
        where = network if snapshot.scope.department is None else f"{network} ({snapshot.scope.department})"
        value = snapshot.value or 0.0
        verb_fr = "sous le seuil" if status == "firing" else "revenu au-dessus du seuil"
        verb_en = "below threshold" if status == "firing" else "back above threshold"
        return AlertEvent(
            fingerprint=key,
            episode=number,
            status=status,
            rule=rule.name,
            indicator=rule.indicator,
            network=network,
            department=snapshot.scope.department,
            window=rule.window,
            value=snapshot.value,
            threshold=rule.threshold,
            since=since,
            at=snapshot.as_of,
            summary_fr=f"{where} : {rule.indicator} {value:.1%} {verb_fr} de {rule.threshold:.0%} ({rule.window})",
            summary_en=f"{where}: {rule.indicator} {value:.1%} {verb_en} {rule.threshold:.0%} ({rule.window})",
            dashboard_url=f"{self.dashboard_base_url}/d/charter-network?var-network={network}",
        )
