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
import zstandard
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from charter_runtime.kafka import NO_AUTH, KafkaAuth

log = logging.getLogger(__name__)

#: Records of the latest topic read at a time. A flush can publish tens of thousands at once (an
#: hour's end: every site's closed hour); each record read is an object with its key and value,
#: and what is in flight at a peak stays resident (the heap fragments). 50,000 at a time before:
#: a 16-minute soak peaked at 262 MiB with it, 242 MiB with 5,000; 1,000 since (a getmany costs
#: far less than the records it returns).
READ_BATCH_RECORDS = 1_000

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
    indicator and window (about 20 per site, 80,000 for the national traffic), written at
    every flush and read only when the API is asked, so the key is split when asked rather
    than kept split. Once ``SAMPLE_AFTER`` values have been seen, the values are held
    compressed with zstd against a dictionary of one value of each shape seen so far
    (indicator, window, level of scope): snapshots repeat their field names and most of
    their text, so a value of about 350 bytes takes about 75 (3 to 5 us to compress, about
    1 to read back). Without it, the model's filling was a large part of the indicators'
    memory growth through a working day.
    """

    SAMPLE_AFTER = 2_000

    def __init__(self) -> None:
        self._entries: dict[bytes, bytes] = {}
        self._samples: dict[bytes, bytes] = {}
        self._seen = 0
        self._codec: _Codec | None = None
        self.caught_up = False

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def compressed(self) -> bool:
        """Whether the values are held compressed (after the first ``SAMPLE_AFTER``)."""
        return self._codec is not None

    def put(self, key: bytes, value: bytes | None) -> None:
        """One record of the latest topic (``value`` None: a tombstone)."""
        if value is None:
            self._entries.pop(key, None)
        elif key.count(b"|") != 2 or key.count(b"/") != 2:
            log.warning("ignoring malformed key %r on the latest topic", key)
        elif self._codec is not None:
            self._entries[key] = self._codec.compress(value)
        else:
            self._entries[key] = value
            self._samples.setdefault(_shape(key), value)
            self._seen += 1
            if self._seen >= self.SAMPLE_AFTER:
                self._start_compressing()

    def _start_compressing(self) -> None:
        codec = _Codec(b"".join(self._samples.values()))
        self._entries = {key: codec.compress(value) for key, value in self._entries.items()}
        self._codec = codec
        self._samples = {}

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
        codec = self._codec
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
            document = value if codec is None else codec.decompress(value)
            yield Entry(name, scope_network, scope_department, scope_site, window_name, document)


def _shape(key: bytes) -> bytes:
    """What a snapshot's text depends on besides its figures: indicator, window, which scope parts are set."""
    name, scope, window = key.split(b"|")
    return b"|".join((name, window, bytes(part == b"*" for part in scope.split(b"/"))))


class _Codec:
    """zstd with a raw-content dictionary: small documents alike compress against it, not alone."""

    def __init__(self, samples: bytes) -> None:
        dictionary = zstandard.ZstdCompressionDict(samples, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        self._compressor = zstandard.ZstdCompressor(
            level=1, dict_data=dictionary, write_checksum=False, write_dict_id=False
        )
        self._decompressor = zstandard.ZstdDecompressor(dict_data=dictionary)

    def compress(self, value: bytes) -> bytes:
        # zstandard returns a bytes object shortened in place, its allocation still the
        # worst case (more than the value itself): the copy is what makes it small.
        return bytes(memoryview(self._compressor.compress(value)))

    def decompress(self, value: bytes) -> bytes:
        return self._decompressor.decompress(value)


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
                batch = await consumer.getmany(timeout_ms=1000, max_records=READ_BATCH_RECORDS)
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
