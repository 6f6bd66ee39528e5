"""Events networks publish (SPEC sections 3 and 7, contract v1).

No personal data: a call record is a call, a case is an id and dates. Unknown fields
are rejected, so nothing a network adds by mistake (a phone number, a name) gets in.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from charter_contracts.topics import EventKind
from charter_contracts.types import Identifier, NetworkCode, ProcedureCode, SiteId, Timestamp


class ContractModel(BaseModel):
    """Base of every contract model: immutable, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Event(ContractModel):
    event_id: Identifier = Field(description="Unique per network; used for de-duplication.")
    network: NetworkCode = Field(description="Publishing network, e.g. caf, cpam, france-services.")
    site_id: SiteId = Field(description="Site of the site registry; the Kafka key.")
    occurred_at: Timestamp = Field(description="Event time (RFC 3339 with offset), not arrival time.")
    schema_version: Literal[1] = Field(description="Contract version; 1.")

    @property
    def kind(self) -> EventKind:
        """The stream (and so the topics) this event belongs to."""
        return EVENT_KINDS[self.type]  # type: ignore[attr-defined]


class CounterReason(StrEnum):
    """Why a counter opened or closed; drives what an operator reads on the board."""

    PLANNED = "planned"
    SANITARY = "sanitary"
    STAFF = "staff"
    STRIKE = "strike"
    TECHNICAL = "technical"
    SECURITY = "security"
    WEATHER = "weather"
    OTHER = "other"


class CounterOpened(_Event):
    """A reception desk (guichet) of a site opened."""

    type: Literal["counter_opened"]
    counter_id: Identifier
    reason: CounterReason | None = None


class CounterClosed(_Event):
    """A reception desk (guichet) of a site closed."""

    type: Literal["counter_closed"]
    counter_id: Identifier
    reason: CounterReason | None = None


class CallRecord(_Event):
    """One inbound call, published after it ended; ``occurred_at`` equals ``received_at``."""

    type: Literal["call"]
    received_at: Timestamp
    answered_at: Timestamp | None = Field(description="Null when no agent answered.")
    ended_at: Timestamp
    ivr_only: StrictBool = Field(
        default=False,
        description="True when the voice server handled the call and it never reached an agent queue.",
    )

    @field_validator("received_at")
    @classmethod
    def _received_is_occurred(cls, value: datetime, info: ValidationInfo) -> datetime:
        occurred = info.data.get("occurred_at")
        if occurred is not None and value != occurred:
            raise ValueError("must equal occurred_at (a call belongs to the window it arrived in)")
        return value

    @field_validator("answered_at")
    @classmethod
    def _answered_after_received(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        received = info.data.get("received_at")
        if value is not None and received is not None and value < received:
            raise ValueError("must not be before received_at")
        return value

    @field_validator("ended_at")
    @classmethod
    def _ended_last(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("answered_at") or info.data.get("received_at")
        if start is not None and value < start:
            raise ValueError("must not be before received_at or answered_at")
        return value

    @field_validator("ivr_only")
    @classmethod
    def _ivr_not_answered(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("answered_at") is not None:
            raise ValueError("an IVR-only call has no agent answer: answered_at must be null")
        return value


class CaseCompleted(_Event):
    """One case (dossier) finished; ``occurred_at`` equals ``completed_at``."""

    type: Literal["case_completed"]
    case_id: Identifier
    procedure: ProcedureCode
    submitted_at: Timestamp
    completed_at: Timestamp
    deadline_days: Annotated[int, Field(strict=True, ge=1, le=3650)] | None = Field(
        default=None, description="Deadline in days; else the procedure's default from the rules."
    )

    @field_validator("completed_at")
    @classmethod
    def _completed_after_submitted(cls, value: datetime, info: ValidationInfo) -> datetime:
        submitted = info.data.get("submitted_at")
        if submitted is not None and value < submitted:
            raise ValueError("must not be before submitted_at")
        occurred = info.data.get("occurred_at")
        if occurred is not None and value != occurred:
            raise ValueError("must equal occurred_at")
        return value


Event = Annotated[CounterOpened | CounterClosed | CallRecord | CaseCompleted, Field(discriminator="type")]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_KINDS: dict[str, EventKind] = {
    "counter_opened": EventKind.COUNTER_EVENTS,
    "counter_closed": EventKind.COUNTER_EVENTS,
    "call": EventKind.CALL_RECORDS,
    "case_completed": EventKind.CASE_COMPLETIONS,
}
CounterEvent = Annotated[CounterOpened | CounterClosed, Field(discriminator="type")]
#: The payload type of each stream, for documentation (AsyncAPI) and typed consumers.
KIND_PAYLOADS: dict[EventKind, Any] = {
    EventKind.COUNTER_EVENTS: CounterEvent,
    EventKind.CALL_RECORDS: CallRecord,
    EventKind.CASE_COMPLETIONS: CaseCompleted,
}
EVENT_MODELS: dict[str, type[ContractModel]] = {
    "counter_opened": CounterOpened,
    "counter_closed": CounterClosed,
    "call": CallRecord,
    "case_completed": CaseCompleted,
}


def parse_event(data: bytes | str) -> Event:
    """Validate one JSON-encoded event (raises ``pydantic.ValidationError``)."""
    return EVENT_ADAPTER.validate_json(data)


def parse_event_object(data: Any) -> Event:
    """Validate one already-decoded event (a dict from a JSON array or NDJSON line)."""
    return EVENT_ADAPTER.validate_python(data)


def describe_error(error: ValidationError) -> str:
    """A one-line reason naming each offending field, for dead letters and HTTP answers."""
    parts = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(p) for p in item["loc"] if not _is_union_tag(p))
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and part in EVENT_KINDS
