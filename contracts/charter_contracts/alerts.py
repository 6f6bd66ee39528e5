"""Alert lifecycle events published on ``charter.alerts`` (SPEC section 5).

Everything on-call staff need is in the event itself: who, where, which indicator, the
value against the threshold, since when, and the board to open.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from charter_contracts.events import ContractModel
from charter_contracts.indicators import IndicatorName, WindowName
from charter_contracts.types import DepartmentCode, NetworkCode, Timestamp

AlertStatus = Literal["pending", "firing", "resolved"]


class AlertEvent(ContractModel):
    """One transition of an alert; keyed by ``fingerprint`` on ``charter.alerts``."""

    fingerprint: str = Field(min_length=1, max_length=128, description="Stable id of (rule, network, department).")
    episode: int = Field(
        ge=1,
        description="Counts breaches of the same fingerprint; one firing and one resolved each.",
    )
    status: AlertStatus
    rule: str = Field(min_length=1, max_length=128)
    kind: Literal["threshold", "burn_rate"] = "threshold"
    indicator: IndicatorName
    network: NetworkCode
    department: DepartmentCode | None = None
    window: WindowName
    value: float | None
    threshold: float
    since: Timestamp = Field(description="When the breach began (event time).")
    at: Timestamp = Field(description="When this transition happened (event time of the indicator).")
    summary_fr: str
    summary_en: str
    dashboard_url: str
    schema_version: Literal[1] = 1
