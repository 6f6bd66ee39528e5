"""Admission of one raw message: the pure core of ingest (no Kafka, no HTTP).

A message is either admitted as a canonical event or rejected with a machine-readable
reason and a detail naming the field; nothing in between, nothing silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from charter_contracts import (
    EVENT_KINDS,
    Event,
    EventKind,
    RejectReason,
    describe_error,
    parse_event,
)


@dataclass(frozen=True, slots=True)
class Admitted:
    """A valid event, in canonical (UTC) form."""

    event: Event


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that is not admitted, and why."""

    reason: RejectReason
    detail: str


def admit(raw: bytes | str, network: str, kind: EventKind | None) -> Admitted | Rejected:
    """Validate a message that arrived from ``network`` on a stream of ``kind``.

    ``kind`` is None where any event type is allowed (the HTTPS endpoint).
    """
    try:
        event = parse_event(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            return Rejected(RejectReason.INVALID_JSON, describe_error(exc))
        return Rejected(RejectReason.SCHEMA, describe_error(exc))
    if event.network != network:
        return Rejected(
            RejectReason.WRONG_NETWORK,
            f"network: event says {event.network!r} but was published by {network!r}",
        )
    event_kind = EVENT_KINDS[event.type]
    if kind is not None and event_kind != kind:
        return Rejected(
            RejectReason.WRONG_TOPIC,
            f"type: a {event.type!r} event belongs on the {event_kind.value} topic, not {kind.value}",
        )
    return Admitted(event)
