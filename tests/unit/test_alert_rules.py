"""Charter threshold rule: fire once under the threshold, resolve once past threshold + margin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from charter_alerts.domain.rules import AlertBook
from charter_contracts import IndicatorSnapshot, Scope

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def pickup(answered: int, offered: int, minute: int, network: str = "caf") -> IndicatorSnapshot:
    return IndicatorSnapshot.of(
        "pickup_rate", Scope(network=network), "1h", answered, offered, as_of=T0 + timedelta(minutes=minute)
    )


def test_a_network_under_85_percent_fires_once_and_resolves_once() -> None:
    book = AlertBook()
    transitions = [
        event
        for snapshot in [
            pickup(90, 100, 0),
            pickup(70, 100, 1),
            pickup(60, 100, 2),
            pickup(86, 100, 3),
            pickup(95, 100, 4),
        ]
        for event in book.observe(snapshot)
    ]
    assert [(e.status, e.value) for e in transitions] == [("firing", 0.7), ("resolved", 0.95)]
    firing, resolved = transitions
    assert firing.fingerprint == resolved.fingerprint
    assert firing.since == resolved.since == T0 + timedelta(minutes=1)
    assert "caf" in firing.summary_fr
    assert "70.0%" in firing.summary_en


def test_too_few_calls_are_not_judged() -> None:
    assert AlertBook().observe(pickup(10, 29, 0)) == []


def test_site_level_snapshots_are_not_network_alerts() -> None:
    snapshot = IndicatorSnapshot.of("pickup_rate", Scope(network="caf", site_id="caf-1"), "1h", 1, 100, as_of=T0)
    assert AlertBook().observe(snapshot) == []
