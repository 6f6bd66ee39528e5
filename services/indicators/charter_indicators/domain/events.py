"""The canonical events as the indicator arithmetic sees them: instants in epoch seconds.

Ingest has already validated every event against the contract; what reaches the domain
is only the fields the indicators read, in the cheapest form to compute with.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from charter_contracts import CallRecord, CaseCompleted, CounterClosed, CounterOpened, Event


@dataclass(frozen=True, slots=True)
class CounterChange:
    """A counter of a site opened (``opened``) or closed, at ``t``."""

    event_id: str
    network: str
    site_id: str
    t: float
    opened: bool
    counter_id: str

    @property
    def type(self) -> str:
        return "counter_opened" if self.opened else "counter_closed"


@dataclass(frozen=True, slots=True)
class Call:
    """One call received at ``t`` (= received_at)."""

    event_id: str
    network: str
    site_id: str
    t: float
    answered: float | None
    ended: float
    ivr_only: bool

    @property
    def type(self) -> str:
        return "call"


@dataclass(frozen=True, slots=True)
class Case:
    """One case completed at ``t`` (= completed_at)."""

    event_id: str
    network: str
    site_id: str
    t: float
    submitted: float
    procedure: str
    deadline_days: int | None

    @property
    def type(self) -> str:
        return "case_completed"


DomainEvent = CounterChange | Call | Case


class Outcome(Enum):
    """What happened to one event."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"
    UNKNOWN_SITE = "unknown_site"


def from_contract(event: Event) -> DomainEvent:
    """The domain form of a validated contract event (the reference the fast decoder is tested against)."""
    t = event.occurred_at.timestamp()
    if isinstance(event, CounterOpened | CounterClosed):
        return CounterChange(
            event.event_id, event.network, event.site_id, t, isinstance(event, CounterOpened), event.counter_id
        )
    if isinstance(event, CallRecord):
        return Call(
            event.event_id,
            event.network,
            event.site_id,
            event.received_at.timestamp(),
            event.answered_at.timestamp() if event.answered_at is not None else None,
            event.ended_at.timestamp(),
            event.ivr_only,
        )
    assert isinstance(event, CaseCompleted)
    return Case(
        event.event_id,
        event.network,
        event.site_id,
        event.completed_at.timestamp(),
        event.submitted_at.timestamp(),
        event.procedure,
        event.deadline_days,
    )
