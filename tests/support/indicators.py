"""Driving the indicators' pure core in tests: sites, domain events, and the figures it publishes."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from charter_contracts import Site
from charter_indicators.domain.aggregate import Aggregator
from charter_indicators.domain.events import Call, Case, CounterChange, DomainEvent
from charter_indicators.domain.partition import FlushResult, IndicatorConfig, PartitionState
from charter_indicators.domain.schedule import compile_site
from charter_indicators.domain.snapshots import SnapshotValue

_ids = itertools.count(1)
Key = tuple[str, str | None, str | None, str | None, str, float | None]


def ts(text: str) -> float:
    """Epoch seconds of an RFC 3339 instant written with its offset."""
    return datetime.fromisoformat(text).timestamp()


def counter(
    at: float, site_id: str, opened: bool = True, *, network: str = "caf", counter_id: str = "g1"
) -> CounterChange:
    return CounterChange(f"k{next(_ids)}", network, site_id, at, opened, counter_id)


def call(
    at: float,
    site_id: str,
    *,
    answered_after: float | None = 20.0,
    duration: float = 180.0,
    ivr_only: bool = False,
    network: str = "caf",
    event_id: str | None = None,
) -> Call:
    answered = at + answered_after if answered_after is not None else None
    return Call(event_id or f"c{next(_ids)}", network, site_id, at, answered, (answered or at) + duration, ivr_only)


def case(
    completed: float,
    site_id: str,
    *,
    submitted: float,
    procedure: str = "rsa",
    deadline_days: int | None = None,
    network: str = "caf",
) -> Case:
    return Case(f"d{next(_ids)}", network, site_id, completed, submitted, procedure, deadline_days)


def partition(*sites: Site, config: IndicatorConfig | None = None, number: int = 0) -> PartitionState:
    state = PartitionState(number, config or IndicatorConfig())
    for site in sites:
        state.register(compile_site(site))
    return state


def key(snapshot: SnapshotValue) -> Key:
    return (
        snapshot.indicator,
        snapshot.network,
        snapshot.department,
        snapshot.site_id,
        snapshot.window,
        snapshot.window_start,
    )


class Figures:
    """The latest published value of every (indicator, scope, window, window start)."""

    def __init__(self) -> None:
        self.latest: dict[Key, SnapshotValue] = {}

    def add(self, snapshots: Iterable[SnapshotValue]) -> None:
        for snapshot in snapshots:
            self.latest[key(snapshot)] = snapshot

    def get(
        self,
        indicator: str,
        window: str,
        *,
        network: str | None = None,
        department: str | None = None,
        site_id: str | None = None,
        start: float | None = None,
    ) -> SnapshotValue:
        found = [
            s
            for (i, n, d, site, w, st), s in self.latest.items()
            if (i, n, d, site, w) == (indicator, network, department, site_id, window)
            and (start is None or st == start)
        ]
        assert found, f"no {indicator} {window} snapshot for {network}/{department}/{site_id} (start {start})"
        return max(found, key=lambda s: (s.window_start or 0, s.as_of))

    def values(self) -> dict[Key, tuple[Any, ...]]:
        return {
            k: (s.numerator, s.denominator, s.as_of, tuple(sorted(s.details.items()))) for k, s in self.latest.items()
        }


def run(
    state: PartitionState,
    events: Iterable[DomainEvent],
    *,
    figures: Figures | None = None,
    aggregator: Aggregator | None = None,
) -> Figures:
    """Apply events, flush once time reached the last of them; site snapshots and aggregates into ``figures``.

    "Time reached the last event" is what the service's clock does once every stream is read
    up to date and quiet: the watermark moves to the latest event minus the grace period.
    """
    figures = figures or Figures()
    latest = None
    for event in events:
        state.apply(event)
        latest = event.t if latest is None else max(latest, event.t)
    state.progress()
    if latest is not None:
        state.advance(latest - state.config.grace)
    collect(state.flush(), state.partition, figures, aggregator)
    return figures


def collect(result: FlushResult, source: int, figures: Figures, aggregator: Aggregator | None = None) -> Aggregator:
    """Site snapshots into ``figures``; partial sums into an aggregator whose snapshots go there too."""
    figures.add(result.snapshots)
    aggregator = aggregator or Aggregator()
    for scope, payload in result.partials.items():
        aggregator.update(scope, source, payload)
    if result.as_of is not None and result.advanced:
        aggregator.update_progress(source, result.as_of)
    figures.add(aggregator.snapshots())
    return aggregator
