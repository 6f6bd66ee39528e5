"""``charter publish``: an integrator's file of events to ingest, over Kafka or HTTPS.

Files are JSON (an array of events, or one event), NDJSON (one event per line) or CSV
(a header row naming the fields; an empty cell is an absent field, or null where the
contract allows null). They are read as a stream, so a file of millions of events is fine.

Over Kafka, each event is checked against the contract before it is sent (so mistakes show
at once, with their line), sent to ``raw.<network>.<stream>`` keyed by ``site_id``, and
then ingest's verdicts are read back from ``charter.dead-letter`` (duplicates, events too
old or in the future). Over HTTPS, events are posted in batches and the answer of each
batch gives the verdicts; 429 and 503 answers are retried after their ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from charter_contracts import EVENT_KINDS
from charter_contracts.schemas import MODELS
from charter_contracts.topics import TopicNames
from charter_ingest.domain import Admitted, admit
from charter_runtime.kafka import NO_AUTH, KafkaAuth

Format = Literal["json", "ndjson", "csv"]
_SUFFIXES: dict[str, Format] = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}


class PublishError(RuntimeError):
    """Publishing cannot go on (unreadable file, refused token, Kafka away); the message says why."""


@dataclass(frozen=True, slots=True)
class Item:
    """One event of the file, as the JSON text to send, and where it was in the file."""

    where: str
    number: int  # line (NDJSON, CSV) or item (JSON) number, from 1
    raw: bytes
    size: int  # bytes of the file it stands for (for the progress bar)


@dataclass(frozen=True, slots=True)
class Reject:
    """One event refused, where it is in the file, and why."""

    where: str
    number: int
    event_id: str | None
    reason: str
    detail: str

    @classmethod
    def of(cls, item: Item, reason: str, detail: str) -> Reject:
        return cls(item.where, item.number, _event_id(item.raw), reason, detail)


@dataclass
class Summary:
    """What happened to the file's events."""

    read: int = 0
    accepted: int = 0
    rejects: list[Reject] = field(default_factory=list)
    #: Sent, but no verdict yet (ingest did not process them within the wait).
    unconfirmed: int = 0
    #: Why ingest's verdicts could not be read back (a principal without read rights), if so.
    verdicts_unreadable: str = ""

    @property
    def by_reason(self) -> Counter[str]:
        return Counter(reject.reason for reject in self.rejects)


def detect_format(path: Path, forced: str | None = None) -> Format:
    """The file's format, from ``--format`` or its suffix."""
    name = forced or _SUFFIXES.get(path.suffix.lower())
    if name not in ("json", "ndjson", "csv"):
        raise PublishError(f"{path}: cannot tell the format from the suffix; use --format json|ndjson|csv")
    return name  # type: ignore[return-value]


def read_items(path: Path, fmt: Format) -> Iterator[Item]:
    """The events of a file, in order."""
    try:
        if fmt == "json":
            yield from _json_items(path)
        elif fmt == "ndjson":
            yield from _ndjson_items(path)
        else:
            yield from _csv_items(path)
    except OSError as exc:
        raise PublishError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _json_items(path: Path) -> Iterator[Item]:
    data = path.read_bytes()
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PublishError(f"{path} is not valid JSON: {exc}") from exc
    events = parsed if isinstance(parsed, list) else [parsed]
    share = len(data) // max(1, len(events))
    for number, event in enumerate(events, start=1):
        raw = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        yield Item(f"item {number}", number, raw, share)


def _ndjson_items(path: Path) -> Iterator[Item]:
    with path.open("rb") as stream:
        for number, line in enumerate(stream, start=1):
            stripped = line.strip()
            if stripped:
                yield Item(f"line {number}", number, stripped, len(line))


def _field_kinds() -> dict[str, dict[str, tuple[str, bool]]]:
    """Per event type: field -> (JSON type, nullable), from the contract's JSON Schemas."""
    kinds: dict[str, dict[str, tuple[str, bool]]] = {}
    for event_type in EVENT_KINDS:
        schema = MODELS[event_type].model_json_schema()
        fields: dict[str, tuple[str, bool]] = {}
        for name, prop in schema["properties"].items():
            options = prop.get("anyOf", [prop])
            types = {option.get("type", "string") for option in options}
            nullable = "null" in types
            types.discard("null")
            fields[name] = (types.pop() if len(types) == 1 else "string", nullable)
        kinds[event_type] = fields
    return kinds


_TRUE = {"true", "1", "yes", "oui"}
_FALSE = {"false", "0", "no", "non"}


def csv_row_to_event(row: dict[str, Any], kinds: dict[str, dict[str, tuple[str, bool]]]) -> dict[str, Any]:
    """A CSV row as the JSON object a network would send (types from the contract)."""
    kind = row.get("type")
    fields = kinds.get(kind if isinstance(kind, str) else "", {})
    event: dict[str, Any] = {}
    for name, cell in row.items():
        if isinstance(cell, list):  # more cells than header columns: the validation will say so
            event[name] = cell
            continue
        value = (cell or "").strip()
        json_type, nullable = fields.get(name, ("string", False))
        if not value:
            if nullable:
                event[name] = None
            continue
        if json_type == "integer" and value.lstrip("-").isdigit():
            event[name] = int(value)
        elif json_type == "boolean" and value.lower() in _TRUE | _FALSE:
            event[name] = value.lower() in _TRUE
        else:
            event[name] = value
    return event


def _csv_items(path: Path) -> Iterator[Item]:
    kinds = _field_kinds()
    consumed = [0]

    def lines() -> Iterator[str]:
        with path.open("rb") as stream:
            for line in stream:
                consumed[0] += len(line)
                yield line.decode("utf-8-sig", errors="replace")

    reader = csv.DictReader(lines(), restkey="_extra_cells")
    reported = 0
    for row in reader:
        event = csv_row_to_event(row, kinds)
        raw = json.dumps(event, ensure_ascii=False).encode()
        yield Item(f"line {reader.line_num}", reader.line_num, raw, consumed[0] - reported)
        reported = consumed[0]


Progress = Callable[[Item, int, int], None]  # item, accepted so far, rejected so far


def _event_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("event_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


# -- over Kafka ------------------------------------------------------------------------------


async def publish_kafka(
    items: Iterator[Item],
    network: str,
    bootstrap_servers: str,
    names: TopicNames,
    ingest_group: str,
    wait: float,
    progress: Progress,
    batch_size: int = 1000,
    auth: KafkaAuth = NO_AUTH,
) -> Summary:
    """Check, send to the raw topics, then read ingest's verdicts back (for up to ``wait`` seconds)."""
    summary = Summary()
    sent: dict[tuple[str, int, int], Item] = {}
    started_ms = int(time.time() * 1000)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        linger_ms=20,
        request_timeout_ms=30000,
        **auth.options(),
    )
    try:
        await producer.start()
    except KafkaError as exc:
        raise PublishError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc
    try:
        chunk: list[tuple[Item, asyncio.Future[Any]]] = []
        for item in items:
            summary.read += 1
            outcome = admit(item.raw, network, None)
            if isinstance(outcome, Admitted):
                topic = names.raw(network, outcome.event.kind)
                future = await producer.send(topic, item.raw, key=outcome.event.site_id.encode())
                chunk.append((item, future))
            else:
                summary.rejects.append(Reject.of(item, outcome.reason.value, outcome.detail))
                progress(item, summary.accepted, len(summary.rejects))
            if len(chunk) >= batch_size:
                await _settle(chunk, sent, summary, progress)
        await _settle(chunk, sent, summary, progress)
    except KafkaError as exc:
        raise PublishError(f"Kafka refused the events: {exc}") from exc
    finally:
        await producer.stop()
    if sent and wait > 0:
        try:
            await _read_verdicts(sent, summary, bootstrap_servers, names, ingest_group, started_ms, wait, auth)
        except KafkaError as exc:  # typically a network's principal, which may write but not read
            summary.unconfirmed, summary.accepted = len(sent), 0
            summary.verdicts_unreadable = f"{type(exc).__name__}: {exc}"
    else:
        summary.unconfirmed = len(sent)
        summary.accepted = 0
    summary.rejects.sort(key=lambda reject: reject.number)
    return summary


async def _settle(
    chunk: list[tuple[Item, asyncio.Future[Any]]],
    sent: dict[tuple[str, int, int], Item],
    summary: Summary,
    progress: Progress,
) -> None:
    for item, future in chunk:
        metadata = await future
        sent[(metadata.topic, metadata.partition, metadata.offset)] = item
        summary.accepted += 1
        progress(item, summary.accepted, len(summary.rejects))
    chunk.clear()


async def _read_verdicts(
    sent: dict[tuple[str, int, int], Item],
    summary: Summary,
    bootstrap_servers: str,
    names: TopicNames,
    ingest_group: str,
    started_ms: int,
    wait: float,
    auth: KafkaAuth = NO_AUTH,
) -> None:
    """Wait until ingest committed past every sent record, then collect the dead letters naming them."""
    last: dict[TopicPartition, int] = {}
    for topic, partition, offset in sent:
        tp = TopicPartition(topic, partition)
        last[tp] = max(last.get(tp, -1), offset)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **auth.options())
    await admin.start()
    deadline = time.monotonic() + wait
    try:
        while True:
            committed = await admin.list_consumer_group_offsets(names.group(ingest_group), partitions=list(last))
            behind = [tp for tp, offset in last.items() if tp not in committed or committed[tp].offset <= offset]
            if not behind:
                break
            if time.monotonic() > deadline:
                summary.unconfirmed = len(sent)
                summary.accepted = 0
                return
            await asyncio.sleep(0.5)
        described = await admin.describe_topics([names.dead_letter])
    finally:
        await admin.close()
    numbers = sorted(p["partition"] for topic in described for p in topic["partitions"])
    partitions = [TopicPartition(names.dead_letter, number) for number in numbers]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **auth.options(),
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.offsets_for_times(dict.fromkeys(partitions, started_ms))
        for tp in partitions:
            await consumer.position(tp)  # let the initial offset reset finish before seeking
            start = starts.get(tp)
            consumer.seek(tp, start.offset if start is not None else ends[tp])
        remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, rows in fetched.items():
                for row in rows:
                    if row.offset < ends[tp] and row.value is not None:
                        _match_letter(row.value, sent, summary)
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()


def _match_letter(value: bytes, sent: dict[tuple[str, int, int], Item], summary: Summary) -> None:
    try:
        letter = json.loads(value)
        key = (letter["source_topic"], letter["source_partition"], letter["source_offset"])
    except (ValueError, KeyError, TypeError):
        return
    item = sent.get(key)
    if item is not None:
        summary.accepted -= 1
        summary.rejects.append(Reject.of(item, letter["reason"], letter.get("detail", "")))


# -- over HTTPS ------------------------------------------------------------------------------


def events_url(url: str) -> str:
    """``--url`` may be the service's base URL or the endpoint itself."""
    url = url.rstrip("/")
    return url if url.endswith("/v1/events") else f"{url}/v1/events"


async def publish_https(
    items: Iterator[Item],
    url: str,
    token: str,
    progress: Progress,
    *,
    batch_events: int = 1000,
    batch_bytes: int = 1_048_576,
    retry_for: float = 300.0,
    cafile: str | None = None,
) -> Summary:
    """Post the events in NDJSON batches; each answer gives the verdicts of its batch."""
    summary = Summary()
    endpoint = events_url(url)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    verify = ssl.create_default_context(cafile=cafile) if cafile else True
    async with httpx.AsyncClient(timeout=120.0, verify=verify) as client:
        batch: list[Item] = []
        size = 0
        for item in items:
            summary.read += 1
            if batch and (len(batch) >= batch_events or size + len(item.raw) + 1 > batch_bytes):
                await _post(client, endpoint, headers, batch, summary, progress, retry_for)
                batch, size = [], 0
            batch.append(item)
            size += len(item.raw) + 1
        if batch:
            await _post(client, endpoint, headers, batch, summary, progress, retry_for)
    return summary


async def _post(
    client: httpx.AsyncClient,
    endpoint: str,
    headers: dict[str, str],
    batch: list[Item],
    summary: Summary,
    progress: Progress,
    retry_for: float,
) -> None:
    body = b"\n".join(item.raw for item in batch) + b"\n"
    give_up = time.monotonic() + retry_for
    while True:
        try:
            answer = await client.post(endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            if time.monotonic() > give_up:
                raise PublishError(f"cannot reach {endpoint}: {exc}") from exc
            await asyncio.sleep(2.0)
            continue
        if answer.status_code in (429, 503):
            if time.monotonic() > give_up:
                raise PublishError(f"{endpoint} answered {answer.status_code} for {retry_for:.0f}s: {_said(answer)}")
            await asyncio.sleep(_retry_after(answer))
            continue
        if answer.status_code != 200:
            raise PublishError(f"{endpoint} answered {answer.status_code}: {_said(answer)}")
        break
    for result in answer.json()["results"]:
        item = batch[result["index"]]
        if result["status"] == "accepted":
            summary.accepted += 1
        else:
            summary.rejects.append(Reject.of(item, result["reason"], result["detail"]))
        progress(item, summary.accepted, len(summary.rejects))


def _retry_after(answer: httpx.Response) -> float:
    try:
        return max(0.5, min(60.0, float(answer.headers.get("retry-after", "2"))))
    except ValueError:
        return 2.0


def _said(answer: httpx.Response) -> str:
    try:
        data = answer.json()
    except ValueError:
        return answer.text[:300]
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])
    return json.dumps(data)[:300]


def write_rejects(path: Path, summary: Summary) -> None:
    """Every reject as one NDJSON line, for the integrator to work through."""
    with path.open("w", encoding="utf-8") as stream:
        for reject in summary.rejects:
            stream.write(json.dumps(dataclasses.asdict(reject), ensure_ascii=False) + "\n")
