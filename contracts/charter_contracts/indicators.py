"""Indicator snapshots published on ``charter.indicators`` (SPEC sections 4 and 7).

Each snapshot keeps its numerator and denominator so that any aggregate is exact:
sum the parts, never average the ratios.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import Field, model_validator

from charter_contracts.events import ContractModel
from charter_contracts.types import DepartmentCode, NetworkCode, SiteId, Timestamp

IndicatorName = Literal["opening_rate", "pickup_rate", "deadline_compliance"]
WindowName = Literal["15m", "1h", "today", "7d", "hour", "day", "live"]
INDICATORS: tuple[IndicatorName, ...] = ("opening_rate", "pickup_rate", "deadline_compliance")
ROLLING_WINDOWS: tuple[WindowName, ...] = ("15m", "1h", "today", "7d")
CALENDAR_WINDOWS: tuple[WindowName, ...] = ("hour", "day")


class Scope(ContractModel):
    """Where an indicator applies; a null field means "aggregated over"."""

    network: NetworkCode | None = None
    department: DepartmentCode | None = None
    site_id: SiteId | None = None

    @property
    def key(self) -> str:
        """Kafka key of snapshots of this scope: ``network/department/site_id`` with ``*`` for null."""
        return "/".join(part or "*" for part in (self.network, self.department, self.site_id))


class IndicatorSnapshot(ContractModel):
    """The value of one indicator, for one scope and one window, complete up to ``as_of``."""

    indicator: IndicatorName
    scope: Scope
    window: WindowName = Field(description="Rolling 15m/1h/today/7d, calendar hour/day buckets, or live (now).")
    window_start: Timestamp | None = Field(default=None, description="Start of the window or calendar bucket.")
    numerator: float = Field(ge=0, description="For opening_rate: seconds open (or sites open for live).")
    denominator: float = Field(ge=0, description="For opening_rate: seconds scheduled (or sites scheduled).")
    value: float | None = Field(description="numerator / denominator; null when denominator is 0.")
    as_of: Timestamp = Field(description="Event time up to which the snapshot is complete.")
    details: dict[str, float | None] = Field(
        default_factory=dict,
        description="Companion figures of the indicator (raw rate, service level, waits, volumes...).",
    )
    schema_version: Literal[1] = 1

    @model_validator(mode="after")
    def _value_matches(self) -> Self:
        if self.denominator == 0:
            if self.value is not None:
                raise ValueError("value must be null when the denominator is 0")
        elif self.value is None or abs(self.value - self.numerator / self.denominator) > 1e-9:
            raise ValueError("value must equal numerator / denominator")
        return self

    @classmethod
    def of(
        cls,
        indicator: IndicatorName,
        scope: Scope,
        window: WindowName,
        numerator: float,
        denominator: float,
        as_of: datetime,
        window_start: datetime | None = None,
        details: dict[str, float | None] | None = None,
    ) -> IndicatorSnapshot:
        """Build a snapshot, computing ``value`` from its parts."""
        return cls(
            indicator=indicator,
            scope=scope,
            window=window,
            window_start=window_start,
            numerator=numerator,
            denominator=denominator,
            value=numerator / denominator if denominator else None,
            as_of=as_of,
            details=details or {},
        )
