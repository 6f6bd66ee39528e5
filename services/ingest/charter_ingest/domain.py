"""Admission of one raw message: the pure core of ingest (no Kafka, no HTTP).

A message is either admitted as a canonical event or rejected with a machine-readable
reason and a detail naming the field; nothing in between, nothing silently dropped.
What can be judged from the message alone is judged here (size, JSON, schema, network,
stream, a time in the future); what needs the stream's history (a duplicate, an event
too old to be checked for duplicates) is judged by ``charter_ingest.dedup``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

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


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds every event must respect, whatever the history of its stream."""

    #: An event is a few hundred bytes; anything far bigger is a mistake (or an attack).
    max_event_bytes: int = 65_536
    #: Tolerated clock skew: an event may say it happened this much after it arrived.
    max_future: timedelta = field(default=timedelta(minutes=15))


DEFAULT_LIMITS = Limits()


def admit(
    raw: bytes | str,
    network: str,
    kind: EventKind | None,
    *,
    arrival: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Admitted | Rejected:
    """Validate a message that arrived from ``network`` on a stream of ``kind``.

    ``kind`` is None where any event type is allowed (the HTTPS endpoint). ``arrival``
    (aware) is when the message reached us; without it the future is not checked.
    """
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > limits.max_event_bytes:
        return Rejected(
            RejectReason.TOO_LARGE,
            f"the event is {size} bytes; at most {limits.max_event_bytes} bytes are accepted",
        )
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
    if arrival is not None:
        late_field, latest = _latest_time(event)
        if latest > arrival + limits.max_future:
            return Rejected(
                RejectReason.IN_FUTURE,
                f"{late_field}: {latest.isoformat()} is after the event arrived ({arrival.isoformat()}) "
                f"by more than the tolerated {_human(limits.max_future)}; check the sender's clock",
            )
    return Admitted(event)


def _latest_time(event: Event) -> tuple[str, datetime]:
    """The latest instant an event claims: a call ends after it was received."""
    ended = getattr(event, "ended_at", None)
    if isinstance(ended, datetime) and ended > event.occurred_at:
        return "ended_at", ended
    return "occurred_at", event.occurred_at


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0 and seconds:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def dead_letter_payload(raw: bytes | str, limits: Limits) -> tuple[bytes, str]:
    """The payload a dead letter keeps: all of it, or its first bytes when it is too large.

    A dead letter must itself fit in a Kafka record; the note (to append to the detail)
    says what was cut. A cut never splits a UTF-8 character, so text stays readable.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) <= limits.max_event_bytes:
        return data, ""
    cut = data[: limits.max_event_bytes]
    for back in range(4):
        try:
            cut[: len(cut) - back].decode("utf-8")
        except UnicodeDecodeError:
            continue
        cut = cut[: len(cut) - back]
        break
    return cut, f" (payload truncated to its first {len(cut)} of {len(data)} bytes)"
