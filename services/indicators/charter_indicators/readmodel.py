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

from charter_runtime.kafka import NO_AUTH, KafkaAuth

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
    """Latest snapshot per (indicator, scope, window), as the JSON published.

    Held as the topic's own key and value bytes, nothing else: there is an entry per site,
    indicator and window (about 20 per site), written at every flush and read only when the
    API is asked, so the key is split when asked rather than kept split.
    """

    def __init__(self) -> None:
        self._entries: dict[bytes, bytes] = {}
        self.caught_up = False

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: bytes, value: bytes | None) -> None:
        """One record of the latest topic (``value`` None: a tombstone)."""
        if value is None:
            self._entries.pop(key, None)
        elif key.count(b"|") == 2 and key.count(b"/") == 2:
            self._entries[key] = value
        else:
            log.warning("ignoring malformed key %r on the latest topic", key)

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
        prefix = f"{indicator}|".encode() if indicator is not None else b""
        suffix = f"|{window}".encode() if window is not None else b""
        for key, value in self._entries.items():
            if not (key.startswith(prefix) and key.endswith(suffix)):
                continue
            name, scope, window_name = key.decode(errors="replace").split("|")
            scope_network, scope_department, scope_site = (_part(text) for text in scope.split("/"))
            if not _matches(scope_network, network):
                continue
            if not _matches(scope_department, department):
                continue
            if not _matches(scope_site, site_id):
                continue
            yield Entry(name, scope_network, scope_department, scope_site, window_name, value)


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
        auth: KafkaAuth = NO_AUTH,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.auth = auth
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
            **self.auth.options(),
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
