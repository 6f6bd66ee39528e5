"""The HTTPS path's service layer: split a request into events, judge each, hand them to Kafka.

Accepted events are written to the network's raw topic, keyed by ``site_id``, exactly as
if the network had published them over Kafka: the same consumer then de-duplicates and
writes them to the canonical topics, so both paths share one de-duplication memory and
one ordering per site. The answer is sent once Kafka acknowledged every write (acks=all);
if it does not within the timeout, the whole request is answered 503 and may be sent
again: whatever was written already is recognised as a duplicate, never counted twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import orjson
from aiokafka.errors import KafkaError
from pydantic import BaseModel, Field

from charter_contracts import DeadLetter, RejectReason
from charter_contracts.topics import TopicNames
from charter_ingest.domain import Admitted, Limits, Rejected, admit, dead_letter_payload
from charter_ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)

NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)
#: Header of raw records written by the HTTPS path: when the request arrived (unix ms), so
#: that ingest latency is measured from the HTTP arrival, as for Kafka from the record's.
ARRIVAL_HEADER = "charter-arrival-ms"
ErrorCode = Literal[
    "unauthorized",
    "forbidden",
    "invalid_json",
    "empty",
    "too_large",
    "unsupported_media_type",
    "rate_limited",
    "kafka_unavailable",
    "internal",
]


class EventResult(BaseModel):
    """The verdict on one event of the request."""

    index: int = Field(description="Position of the event in the request, from 0 (NDJSON: among non-blank lines).")
    event_id: str | None = Field(description="The event's event_id, when it could be read.")
    status: Literal["accepted", "rejected"]
    reason: RejectReason | None = Field(default=None, description="Why it was rejected (null when accepted).")
    detail: str | None = Field(default=None, description="What to fix, naming the field.")


class IngestReport(BaseModel):
    """The answer to POST /v1/events: one result per event, in request order."""

    network: str = Field(description="The network of the token: every accepted event belongs to it.")
    accepted: int = Field(description="Events durably written to Kafka (acks=all).")
    rejected: int
    results: list[EventResult]


class ErrorAnswer(BaseModel):
    """A request refused as a whole."""

    error: ErrorCode
    detail: str


class IntakeError(Exception):
    """The request as a whole is refused; answered with ``status`` and an ``ErrorAnswer``."""

    def __init__(self, status: int, error: ErrorCode, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.answer = ErrorAnswer(error=error, detail=detail)
        self.headers = headers or {}


def split_body(body: bytes, content_type: str | None, max_events: int) -> list[bytes]:
    """The events of a request body (a JSON array, or NDJSON), each as JSON text.

    A body that is not even a JSON array is refused as a whole; inside NDJSON each line is
    judged on its own, so one bad line rejects one event.
    """
    media = (content_type or "").split(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        items = _lines(body, max_events)
    elif media == "application/json" or media.endswith("+json") or not media:
        if not media and not body.lstrip().startswith(b"["):
            items = _lines(body, max_events)
        else:
            items = _array(body, max_events)
    else:
        raise IntakeError(
            415,
            "unsupported_media_type",
            f"Content-Type {media!r}: send application/json (an array of events) or application/x-ndjson",
        )
    if not items:
        raise IntakeError(400, "empty", "the body holds no event")
    return items


def _too_many(count: int, max_events: int) -> IntakeError:
    return IntakeError(413, "too_large", f"more than {max_events} events in one request; split it")


def _lines(body: bytes, max_events: int) -> list[bytes]:
    items = []
    for line in body.split(b"\n"):
        stripped = line.strip()
        if stripped:
            items.append(stripped)
            if len(items) > max_events:
                raise _too_many(len(items), max_events)
    return items


def _array(body: bytes, max_events: int) -> list[bytes]:
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise IntakeError(400, "invalid_json", f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except (ValueError, RecursionError) as exc:
        raise IntakeError(400, "invalid_json", f"the body is not a JSON array: {exc}") from exc
    if not isinstance(data, list):
        raise IntakeError(
            400,
            "invalid_json",
            "expected a JSON array of events (or NDJSON with Content-Type application/x-ndjson)",
        )
    if len(data) > max_events:
        raise _too_many(len(data), max_events)
    return [_dumps(item) for item in data]


def _dumps(item: Any) -> bytes:
    try:
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate: keep it escaped, validation will say what is wrong
        return json.dumps(item, separators=(",", ":")).encode()


def _event_id(raw: bytes) -> str | None:
    """The event_id of a rejected event, if it can be read, to help the caller match answers."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = data.get("event_id") if isinstance(data, dict) else None
    return value[:128] if isinstance(value, str) else None


class Sink(Protocol):
    """Where the HTTPS path writes: Kafka, through the service's producer (acks=all)."""

    async def publish(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str] | None = None
    ) -> Awaitable[Any]:
        """Hand a record to the producer; the returned awaitable resolves when Kafka acknowledged it."""
        ...


class KafkaUnavailableError(Exception):
    """Kafka did not acknowledge in time; nothing was answered as accepted."""


class HttpIntake:
    """Judges the events of one request and writes them to Kafka before answering."""

    def __init__(
        self,
        names: TopicNames,
        limits: Limits,
        sink: Sink,
        metrics: IngestMetrics,
        publish_timeout: float,
    ) -> None:
        self.names = names
        self.limits = limits
        self.sink = sink
        self.metrics = metrics
        self.publish_timeout = publish_timeout

    async def receive(self, network: str, items: Sequence[bytes], arrival: datetime) -> IngestReport:
        """Judge, write and acknowledge; raises ``KafkaUnavailableError`` if Kafka does not answer in time."""
        results: list[EventResult] = []
        writes: list[tuple[str, bytes | None, bytes]] = []
        arrived = {ARRIVAL_HEADER: str(int(arrival.timestamp() * 1000))}
        rejected: list[RejectReason] = []
        first_seen: dict[str, int] = {}
        now = datetime.now(UTC)
        for index, raw in enumerate(items):
            outcome = admit(raw, network, None, arrival=arrival, limits=self.limits)
            if isinstance(outcome, Admitted):
                event = outcome.event
                earlier = first_seen.setdefault(event.event_id, index)
                if earlier == index:
                    writes.append((self.names.raw(network, event.kind), event.site_id.encode(), raw))
                    results.append(EventResult(index=index, event_id=event.event_id, status="accepted"))
                    continue
                outcome = Rejected(
                    RejectReason.DUPLICATE, f"event_id: {event.event_id!r} is also event {earlier} of this request"
                )
            results.append(
                EventResult(
                    index=index,
                    event_id=_event_id(raw),
                    status="rejected",
                    reason=outcome.reason,
                    detail=outcome.detail,
                )
            )
            rejected.append(outcome.reason)
            payload, truncated = dead_letter_payload(raw, self.limits)
            text, encoding = DeadLetter.encode_payload(payload)
            letter = DeadLetter(
                reason=outcome.reason,
                detail=(outcome.detail + truncated)[:2000],
                network=network,
                payload=text,
                payload_encoding=encoding,
                rejected_at=now,
            )
            writes.append((self.names.dead_letter, network.encode(), letter.model_dump_json().encode()))
        await self._write(writes, arrived)
        for reason in rejected:
            self.metrics.rejected.labels(network, reason.value).inc()
        return IngestReport(
            network=network, accepted=len(items) - len(rejected), rejected=len(rejected), results=results
        )

    async def _write(self, writes: Sequence[tuple[str, bytes | None, bytes]], headers: dict[str, str]) -> None:
        acknowledgements: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self.publish_timeout):
                for topic, key, value in writes:
                    acknowledgement = asyncio.ensure_future(await self.sink.publish(topic, key, value, headers))
                    acknowledgement.add_done_callback(_retrieve)
                    acknowledgements.append(acknowledgement)
                # shielded: a timeout must not cancel sends the producer may still complete
                await asyncio.gather(*(asyncio.shield(a) for a in acknowledgements))
        except (TimeoutError, KafkaError, OSError) as exc:
            log.warning("Kafka did not acknowledge %d writes: %r", len(writes), exc)
            raise KafkaUnavailableError(str(exc) or type(exc).__name__) from exc


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Consume a late send's outcome, so an abandoned failure is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()
