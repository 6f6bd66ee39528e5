"""Event contracts of the charter-indicator product (contract v1, SPEC section 7).

The one place where schemas live: every service imports them from here and none
redefines them. Pure pydantic, no Kafka or web framework.
"""

from charter_contracts.alerts import AlertEvent, AlertStatus
from charter_contracts.deadletter import DeadLetter, RejectReason
from charter_contracts.events import (
    EVENT_ADAPTER,
    EVENT_KINDS,
    KIND_PAYLOADS,
    CallRecord,
    CaseCompleted,
    ContractModel,
    CounterClosed,
    CounterOpened,
    CounterReason,
    Event,
    describe_error,
    parse_event,
    parse_event_object,
)
from charter_contracts.indicators import IndicatorName, IndicatorSnapshot, Scope, WindowName
from charter_contracts.sites import Closure, Schedule, Site, TimeRange, WeeklyHours
from charter_contracts.topics import EventKind

__all__ = [
    "EVENT_ADAPTER",
    "EVENT_KINDS",
    "KIND_PAYLOADS",
    "AlertEvent",
    "AlertStatus",
    "CallRecord",
    "CaseCompleted",
    "Closure",
    "ContractModel",
    "CounterClosed",
    "CounterOpened",
    "CounterReason",
    "DeadLetter",
    "Event",
    "EventKind",
    "IndicatorName",
    "IndicatorSnapshot",
    "RejectReason",
    "Schedule",
    "Scope",
    "Site",
    "TimeRange",
    "WeeklyHours",
    "WindowName",
    "describe_error",
    "parse_event",
    "parse_event_object",
]
