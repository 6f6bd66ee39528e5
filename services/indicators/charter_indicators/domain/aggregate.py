"""Exact aggregates over partitions: the sum of the latest partial of every source.

A source is a network of a partition (``networks.source_id``; each network of a partition
has its own event time). Each publishes, per scope (department of a network, network,
department, nation), the parts of its own sites. A scope's figures are the element-wise
sum of the latest parts of every source, so the result does not depend on how many
instances share the partitions. The aggregate is complete up to the earliest ``as_of``
of the sources (each part is complete up to its own source's ``as_of``).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from charter_contracts.sites import department_timezone
from charter_indicators.domain.calendar import DAY, HOUR, MINUTE, local_days
from charter_indicators.domain.partition import BUCKET_HORIZON, ROLLING, ScopeKey
from charter_indicators.domain.parts import GROUP_WIDTH, LIVE_WIDTH, add_into, zeros
from charter_indicators.domain.snapshots import (
    DEADLINE,
    INDICATORS,
    OPENING,
    SnapshotValue,
    build,
    is_empty,
    opening_live,
)

_PARIS = "Europe/Paris"
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
Source = int | str
#: parts as received, trailing zeros left out, in C doubles: an aggregator holds a vector per
#: source, scope, window and bucket (millions in a replay), and a Python float is 24 bytes
Vector: TypeAlias = "array[float]"
Vectors: TypeAlias = "dict[Source, Vector]"


@dataclass
class _Procedure:
    rolling: dict[Source, dict[str, Vector]] = field(default_factory=dict)
    hours: dict[float, Vectors] = field(default_factory=dict)
    days: dict[int, Vectors] = field(default_factory=dict)


@dataclass
class _Scope:
    """The latest parts of every source partition for one scope."""

    rolling: dict[Source, dict[str, Vector]] = field(default_factory=dict)
    live: dict[Source, Vector] = field(default_factory=dict)
    hours: dict[float, Vectors] = field(default_factory=dict)
    days: dict[int, Vectors] = field(default_factory=dict)
    procedures: dict[str, _Procedure] = field(default_factory=dict)
    dirty_hours: set[float] = field(default_factory=set)
    dirty_days: set[int] = field(default_factory=set)
    dirty: bool = True
    emitted_as_of: float | None = None
    #: buckets before these are final for every source and were dropped: later copies are ignored
    pruned_hours: float = -1.0
    pruned_days: int = -1


class Aggregator:
    """Scopes summed over source partitions; ``snapshots`` returns what changed since last asked."""

    def __init__(self, sources: int | None = None) -> None:
        """``sources``: how many partitions there are, when known (to drop final buckets early)."""
        self.scopes: dict[ScopeKey, _Scope] = {}
        self.progress: dict[Source, float] = {}
        self.sources = sources

    @property
    def as_of(self) -> float | None:
        """Complete up to: the earliest ``as_of`` among the source partitions."""
        return min(self.progress.values()) if self.progress else None

    @property
    def closing(self) -> bool:
        """Some sources reached a later minute than the others: that minute is closing."""
        return bool(self.progress) and max(self.progress.values()) > min(self.progress.values())

    def update_progress(self, source: Source, as_of: float) -> None:
        """A source partition reached ``as_of``."""
        if as_of > self.progress.get(source, -1.0):
            self.progress[source] = as_of

    def update(self, scope: ScopeKey, source: Source, payload: dict[str, Any]) -> None:
        """The latest parts of ``scope`` from partition ``source`` (replaces its previous ones)."""
        entry = self.scopes.get(scope)
        if entry is None:
            entry = self.scopes[scope] = _Scope()
        entry.rolling[source] = {name: _vector(vector) for name, vector in payload["w"].items()}
        entry.live[source] = _vector(payload["live"])
        for hour, vector in payload["hour"].items():
            if float(hour) >= entry.pruned_hours:
                entry.hours.setdefault(float(hour), {})[source] = _vector(vector)
                entry.dirty_hours.add(float(hour))
        for day, vector in payload["day"].items():
            if int(day) >= entry.pruned_days:
                entry.days.setdefault(int(day), {})[source] = _vector(vector)
                entry.dirty_days.add(int(day))
        for label, part in (payload.get("procs") or {}).items():
            procedure = entry.procedures.setdefault(label, _Procedure())
            procedure.rolling[source] = {name: _vector(vector) for name, vector in part["w"].items()}
            for hour, vector in part["hour"].items():
                if float(hour) >= entry.pruned_hours:
                    procedure.hours.setdefault(float(hour), {})[source] = _vector(vector)
            for day, vector in part["day"].items():
                if int(day) >= entry.pruned_days:
                    procedure.days.setdefault(int(day), {})[source] = _vector(vector)
        entry.dirty = True

    def republish(self) -> None:
        """Publish every scope again at the next ``snapshots`` (what was sent may have been lost)."""
        for entry in self.scopes.values():
            entry.dirty = True
            entry.dirty_hours.update(entry.hours)
            entry.dirty_days.update(entry.days)

    def forget(self, keep: Callable[[ScopeKey], bool]) -> list[ScopeKey]:
        """Drop the scopes no longer owned; returns them (their gauges must go too)."""
        dropped = [scope for scope in self.scopes if not keep(scope)]
        for scope in dropped:
            del self.scopes[scope]
        return dropped

    def snapshots(
        self, ranks: Container[int] = (0, 1, 2, 3), *, new_minute_only: bool = False, limit: int | None = None
    ) -> list[SnapshotValue]:
        """Snapshots of the scopes whose parts or ``as_of`` changed since they were last asked for.

        ``ranks``: only the nation (0), the networks (1), departments (2), departments of a
        network (3); the most watched can be asked for (and published) before the rest.
        ``new_minute_only``: only the scopes whose ``as_of`` moved; those whose parts alone
        changed (sources one by one reaching a minute the others have not) wait for the
        next call without it. Summing every scope again as each source reports costs more
        than the minute itself, and holds back the source that completes it. ``limit``: at
        most that many scopes (``due`` tells whether more are waiting), so that the caller
        can let other work in between.
        """
        as_of = self.as_of
        if as_of is None:
            return []
        out: list[SnapshotValue] = []
        for scope, entry in sorted(self.scopes.items(), key=_rank):
            if _rank((scope, entry)) not in ranks:
                continue
            if entry.emitted_as_of == as_of and (not entry.dirty or new_minute_only):
                continue
            if limit is not None:
                if limit <= 0:
                    break
                limit -= 1
            out.extend(self._scope_snapshots(scope, entry, as_of))
            entry.dirty = False
            entry.emitted_as_of = as_of
            entry.dirty_hours.clear()
            entry.dirty_days.clear()
        # every rank has had its turn and no scope holds changes back: buckets final for all can go
        if _LAST_RANK in ranks and not any(entry.dirty for entry in self.scopes.values()):
            self._prune_all()
        return out

    def due(self, ranks: Container[int] = (0, 1, 2, 3), *, new_minute_only: bool = False) -> bool:
        """Scopes ``snapshots`` would return, called the same way."""
        as_of = self.as_of
        return as_of is not None and any(
            (entry.emitted_as_of != as_of or (entry.dirty and not new_minute_only)) and _rank((scope, entry)) in ranks
            for scope, entry in self.scopes.items()
        )

    def _scope_snapshots(self, scope: ScopeKey, entry: _Scope, as_of: float) -> list[SnapshotValue]:
        network, department = scope
        zone = local_days(department_timezone(department) if department else _PARIS)
        today = zone.day_of(as_of - MINUTE)
        current_hour = (as_of - MINUTE) // HOUR * HOUR
        starts = {"15m": as_of - 900, "1h": as_of - HOUR, "today": zone.midnight(today), "7d": zone.midnight(today - 6)}
        windows: list[tuple[str, float | None, list[float], dict[str, list[float]]]] = []
        for name in ROLLING:
            vector = _sum(source.get(name) for source in _ordered(entry.rolling))
            procedures = {
                label: _sum(source.get(name) for source in _ordered(procedure.rolling))
                for label, procedure in entry.procedures.items()
            }
            windows.append((name, starts[name], vector, procedures))
        hours = set(entry.dirty_hours)
        hours.update(h for h in entry.hours if h >= current_hour)
        for hour in sorted(hours):
            procedures = {
                label: _sum(_ordered(procedure.hours.get(hour, {}))) for label, procedure in entry.procedures.items()
            }
            windows.append(("hour", hour, _sum(_ordered(entry.hours.get(hour, {}))), procedures))
        days = set(entry.dirty_days)
        days.update(d for d in entry.days if d >= today - 1)
        for day in sorted(days):
            procedures = {
                label: _sum(_ordered(procedure.days.get(day, {}))) for label, procedure in entry.procedures.items()
            }
            windows.append(("day", zone.midnight(day), _sum(_ordered(entry.days.get(day, {}))), procedures))
        out = []
        for indicator in INDICATORS:
            for name, start, vector, procedures in windows:
                if name in ("hour", "day") and is_empty(indicator, vector):
                    continue  # a calendar bucket with nothing in it is not news
                numerator, denominator, details = build(
                    indicator,
                    vector,
                    histograms=True,
                    procedures=procedures if indicator == DEADLINE and department is None else None,
                )
                out.append(
                    SnapshotValue(
                        indicator, network, department, None, name, start, numerator, denominator, as_of, details
                    )
                )
        live = _sum(_ordered(entry.live), LIVE_WIDTH)
        numerator, denominator, details = opening_live(live)
        out.append(
            SnapshotValue(OPENING, network, department, None, "live", None, numerator, denominator, as_of, details)
        )
        return out

    def _prune_all(self) -> None:
        """Drop the calendar buckets every source is done with.

        A bucket is final for a source once the source's ``as_of`` passed its end. When
        the number of sources is known and all reported, buckets final for all of them go;
        otherwise only those older than the publishing horizon (a source that never
        reports cannot keep them forever).
        """
        if not self.progress:
            return
        if self.sources is not None and len({_partition(s) for s in self.progress}) >= self.sources:
            safe = min(self.progress.values()) - HOUR
        else:
            safe = max(self.progress.values()) - BUCKET_HORIZON
        hour_cut = safe - HOUR
        # a local day ends at the latest 14 h after its UTC midnight (UTC-10 is the westernmost zone here)
        day_cut = int((safe - 14 * HOUR) // DAY) + _EPOCH_ORDINAL - 1
        for entry in self.scopes.values():
            if hour_cut > entry.pruned_hours:
                entry.pruned_hours = hour_cut
                for hour in [h for h in entry.hours if h < hour_cut]:
                    del entry.hours[hour]
                for procedure in entry.procedures.values():
                    for hour in [h for h in procedure.hours if h < hour_cut]:
                        del procedure.hours[hour]
            if day_cut > entry.pruned_days:
                entry.pruned_days = day_cut
                for day in [d for d in entry.days if d < day_cut]:
                    del entry.days[day]
                for procedure in entry.procedures.values():
                    for day in [d for d in procedure.days if d < day_cut]:
                        del procedure.days[day]


_LAST_RANK = 3


def _rank(item: tuple[ScopeKey, Any]) -> int:
    network, department = item[0]
    return (network is not None) + 2 * (department is not None)


def _partition(source: Source) -> str:
    """The partition a source is of (a source is a partition's network, or a whole partition)."""
    return str(source).split("/", 1)[0]


def _ordered(by_source: dict[Source, Any]) -> list[Any]:
    """Values in source order: floating-point sums then do not depend on arrival order."""
    return [by_source[source] for source in sorted(by_source, key=str)]


def _vector(parts: Sequence[float]) -> Vector:
    """Parts as decoded (trailing zeros are not sent, and stay out: sums take shorter vectors)."""
    return array("d", parts)


def _sum(vectors: Any, width: int = GROUP_WIDTH) -> list[float]:
    out = zeros(width)
    for vector in vectors:
        if vector is not None:
            add_into(out, vector)
    return out
