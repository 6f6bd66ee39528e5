"""The read side: the latest snapshot of every indicator, scope and window, for the HTTP API.

Every instance reads the whole compacted ``<group>.latest`` topic, which all instances
write, so any instance answers for every site and scope whichever instance computed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

ANY = None
AGGREGATED = "*"


@dataclass(frozen=True, slots=True)
class Entry:
    indicator: str
    network: str | None
    department: str | None
    site_id: str | None
    window: str
    value: bytes


def _part(text: str) -> str | None:
    return None if text == "*" else text


class LatestSnapshots:
    """Latest snapshot per (indicator, scope, window), as the JSON published."""

    def __init__(self) -> None:
        self._entries: dict[bytes, Entry] = {}
        self.caught_up = False

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: bytes, value: bytes | None) -> None:
        """One record of the latest topic (``value`` None: a tombstone)."""
        if value is None:
            self._entries.pop(key, None)
            return
        try:
            indicator, scope, window = key.decode().split("|")
            network, department, site_id = scope.split("/")
        except ValueError:
            log.warning("ignoring malformed key %r on the latest topic", key)
            return
        self._entries[key] = Entry(indicator, _part(network), _part(department), _part(site_id), window, value)

    def query(
        self,
        *,
        indicator: str | None = None,
        network: str | None = None,
        department: str | None = None,
        site_id: str | None = None,
        window: str | None = None,
    ) -> Iterator[Entry]:
        """Entries matching every filter given: None matches anything, ``*`` only "aggregated over"."""
        for entry in self._entries.values():
            if indicator is not None and entry.indicator != indicator:
                continue
            if window is not None and entry.window != window:
                continue
            if not _matches(entry.network, network):
                continue
            if not _matches(entry.department, department):
                continue
            if not _matches(entry.site_id, site_id):
                continue
            yield entry


def _matches(value: str | None, wanted: str | None) -> bool:
    if wanted is None:
        return True
    if wanted == AGGREGATED:
        return value is None
    return value == wanted


def stale_sites(model: LatestSnapshots, network: str | None, department: str | None) -> list[dict[str, object]]:
    """Sites whose live opening snapshot says stale."""
    out: list[dict[str, object]] = []
    for entry in model.query(indicator="opening_rate", window="live", network=network, department=department):
        if entry.site_id is None:
            continue
        document = orjson.loads(entry.value)
        details = document.get("details") or {}
        if details.get("stale"):
            out.append(
                {
                    "site_id": entry.site_id,
                    "network": entry.network,
                    "department": entry.department,
                    "last_status_at": details.get("last_status_at"),
                    "as_of": document.get("as_of"),
                }
            )
    return sorted(out, key=lambda item: str(item["site_id"]))


class LatestReader:
    """Reads the latest topic from its beginning into a ``LatestSnapshots``, then follows it."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        model: LatestSnapshots,
        partitions: Callable[[str], Awaitable[list[int]]],
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.model = model
        self.partitions = partitions
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="latest-reader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                log.warning("reading %s failed (%s); retrying", self.topic, exc)
                await asyncio.sleep(2)
            except Exception:
                log.exception("reading %s failed; retrying", self.topic)
                await asyncio.sleep(2)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in await self.partitions(self.topic)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=50_000)
                for records in batch.values():
                    for record in records:
                        self.model.put(record.key or b"", record.value)
                if not self.model.caught_up:
                    positions = [await consumer.position(tp) for tp in tps]
                    if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                        self.model.caught_up = True
                        log.info("read model loaded: %d snapshots", len(self.model))
        finally:
            await consumer.stop()
