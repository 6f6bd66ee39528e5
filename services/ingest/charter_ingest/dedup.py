"""De-duplication by (network, event_id): the memory of what each raw partition accepted.

Pure Python, no Kafka: the adapter feeds it records and persists what it learns.

Why per raw partition: a re-sent event carries the same key (its ``site_id``), so it
lands on the same partition of the same raw topic as the first copy; the instance that
owns the partition owns its memory, and instances split the memory as they split the
partitions. HTTPS events are written to the raw topics too, so one memory serves both
paths.

Why bounded by event time: the memory keeps the events whose ``occurred_at`` lies within
``horizon`` of the newest event the partition accepted (its watermark). An event older
than that could no longer be recognised as a duplicate, so it is refused as ``too_old``
rather than risk counting it twice. Memory is therefore bounded by the horizon's volume,
live or during a replay of a year at full speed, and not by the history's.

Why 16 bytes per event: national traffic is about ten million events per fortnight, too
many for Python sets and dicts (60-100 bytes each). The index keeps a 64-bit fingerprint
and a 64-bit word (hour of ``occurred_at``, source offset) in sorted machine arrays.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from itertools import compress

HOUR = 3600
_OFFSET_BITS = 42
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
_MAX_HOUR = (1 << (64 - _OFFSET_BITS)) - 1  # 2^22 hours after 1970: until the year 2448


def fingerprint(network: str, event_id: str) -> int:
    """64-bit digest of the de-duplication key (two keys collide once in ~10^19 pairs)."""
    digest = hashlib.blake2b(f"{network}\x1f{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def pack(occurred_s: int, offset: int) -> int:
    """One 64-bit word: the hour of ``occurred_at`` (for expiry) and the source offset (for redelivery)."""
    hour = min(max(occurred_s // HOUR, 0), _MAX_HOUR)
    return (hour << _OFFSET_BITS) | (offset & _OFFSET_MASK)


def unpack(word: int) -> tuple[int, int]:
    """(hour, offset) of a packed word."""
    return word >> _OFFSET_BITS, word & _OFFSET_MASK


class SeenIndex:
    """fingerprint -> packed (hour, offset), in sorted leaves of unsigned 64-bit arrays.

    A two-level B-tree: ``bisect`` on the leaves' lower bounds, then in the leaf; an
    insert moves at most one leaf's tail (``LEAF_MAX`` words), so it stays cheap however
    large the index grows.
    """

    LEAF_MAX = 4096

    def __init__(self) -> None:
        self._lows: list[int] = [0]
        self._fps: list[array[int]] = [array("Q")]
        self._words: list[array[int]] = [array("Q")]
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def get(self, fp: int) -> int | None:
        """The packed word of ``fp``, or None if it was never put (or has expired)."""
        leaf = bisect_right(self._lows, fp) - 1
        fps = self._fps[leaf]
        at = bisect_left(fps, fp)
        if at < len(fps) and fps[at] == fp:
            return self._words[leaf][at]
        return None

    def put(self, fp: int, word: int) -> None:
        """Remember ``fp`` (an existing entry is replaced)."""
        leaf = bisect_right(self._lows, fp) - 1
        fps, words = self._fps[leaf], self._words[leaf]
        at = bisect_left(fps, fp)
        if at < len(fps) and fps[at] == fp:
            words[at] = word
            return
        fps.insert(at, fp)
        words.insert(at, word)
        self._size += 1
        if len(fps) > self.LEAF_MAX:
            half = len(fps) // 2
            self._fps[leaf : leaf + 1] = [fps[:half], fps[half:]]
            self._words[leaf : leaf + 1] = [words[:half], words[half:]]
            self._lows.insert(leaf + 1, fps[half])

    def expire(self, before_hour: int) -> int:
        """Forget entries whose hour is before ``before_hour``; returns how many were forgotten."""
        kept_fps: list[array[int]] = []
        kept_words: list[array[int]] = []
        for fps, words in zip(self._fps, self._words, strict=True):
            keep = [word >> _OFFSET_BITS >= before_hour for word in words]
            kept_fps.append(array("Q", compress(fps, keep)))
            kept_words.append(array("Q", compress(words, keep)))
        removed = self._size - sum(len(f) for f in kept_fps)
        self._rebuild(kept_fps, kept_words)
        return removed

    def items(self) -> Iterator[tuple[int, int]]:
        """(fingerprint, word) in fingerprint order."""
        for fps, words in zip(self._fps, self._words, strict=True):
            yield from zip(fps, words, strict=True)

    @classmethod
    def bulk(cls, fps: Sequence[int], words: Sequence[int]) -> SeenIndex:
        """Build from unsorted entries (a restore); a fingerprint seen twice keeps its last word."""
        latest = dict(zip(fps, words, strict=True))
        ordered = sorted(latest)
        index = cls()
        chunk = cls.LEAF_MAX * 3 // 4
        leaves_fps = [array("Q", ordered[i : i + chunk]) for i in range(0, len(ordered), chunk)]
        leaves_words = [array("Q", (latest[fp] for fp in leaf)) for leaf in leaves_fps]
        index._rebuild(leaves_fps, leaves_words)
        return index

    def _rebuild(self, fps_leaves: list[array[int]], words_leaves: list[array[int]]) -> None:
        """Install leaves, merging small neighbours so that expiry does not leave dust behind."""
        merged_fps: list[array[int]] = []
        merged_words: list[array[int]] = []
        for fps, words in zip(fps_leaves, words_leaves, strict=True):
            if not fps:
                continue
            if merged_fps and len(merged_fps[-1]) + len(fps) <= self.LEAF_MAX // 2:
                merged_fps[-1].extend(fps)
                merged_words[-1].extend(words)
            else:
                merged_fps.append(fps)
                merged_words.append(words)
        if not merged_fps:
            merged_fps, merged_words = [array("Q")], [array("Q")]
        self._fps, self._words = merged_fps, merged_words
        self._lows = [0] + [leaf[0] for leaf in merged_fps[1:]]
        self._size = sum(len(leaf) for leaf in merged_fps)

    def nbytes(self) -> int:
        """Bytes held by the arrays (what the memory figures in the README measure)."""
        return sum(a.buffer_info()[1] * a.itemsize for a in (*self._fps, *self._words))


def _cutoff(watermark: int, memory: PartitionMemory) -> int:
    return max(0, (watermark - memory.horizon_s) // HOUR)


class Verdict(StrEnum):
    """What the memory says about an admitted event."""

    NEW = "new"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"
    #: The very record accepted before (same offset), delivered again after a crash or a
    #: failed commit: it is on the canonical topic already, so it is skipped silently.
    REDELIVERED = "redelivered"


@dataclass(frozen=True, slots=True)
class Entry:
    """One accepted event, as the memory and its changelog keep it."""

    fp: int
    occurred_s: int
    offset: int


@dataclass
class PartitionMemory:
    """What one raw partition accepted within the horizon, and its watermark."""

    horizon: timedelta
    index: SeenIndex = field(default_factory=SeenIndex)
    #: Newest ``occurred_at`` accepted (unix seconds); None before the first event.
    watermark: int | None = None
    _swept_at: int | None = None

    @property
    def horizon_s(self) -> int:
        return int(self.horizon.total_seconds())

    def batch(self) -> PartitionBatch:
        """A view for judging one batch: earlier events of the batch count, nothing is kept yet."""
        return PartitionBatch(self, self.watermark)

    def apply(self, entries: Iterable[Entry]) -> None:
        """Remember accepted entries (once they are safely on the canonical topic)."""
        for entry in entries:
            self.index.put(entry.fp, pack(entry.occurred_s, entry.offset))
            if self.watermark is None or entry.occurred_s > self.watermark:
                self.watermark = entry.occurred_s
        self._sweep()

    def _sweep(self) -> None:
        """Forget what fell out of the horizon, every eighth of a horizon of event time."""
        if self.watermark is None:
            return
        step = max(HOUR, self.horizon_s // 8)
        if self._swept_at is not None and self.watermark - self._swept_at < step:
            return
        self._swept_at = self.watermark
        self.index.expire(self.cutoff_hour)

    @property
    def cutoff_hour(self) -> int:
        """Entries of hours before this one can be forgotten: their events are too old now."""
        return 0 if self.watermark is None else _cutoff(self.watermark, self)

    @classmethod
    def restore(cls, horizon: timedelta, records: Iterable[ChangelogRecord]) -> PartitionMemory:
        """Rebuild from the partition's changelog records, oldest first."""
        fps: array[int] = array("Q")
        words: array[int] = array("Q")
        watermark: int | None = None
        for record in records:
            fps.extend(record.fps)
            words.extend(record.words)
            if watermark is None or record.watermark > watermark:
                watermark = record.watermark
        memory = cls(horizon, watermark=watermark)
        cutoff = memory.cutoff_hour
        keep = [word >> _OFFSET_BITS >= cutoff for word in words]
        memory.index = SeenIndex.bulk(list(compress(fps, keep)), list(compress(words, keep)))
        memory._swept_at = watermark
        return memory


@dataclass
class PartitionBatch:
    """One batch's verdicts on one partition; ``entries`` are applied once they are safely written."""

    memory: PartitionMemory
    watermark: int | None
    pending: dict[int, Entry] = field(default_factory=dict)

    def judge(self, fp: int, occurred_s: int, offset: int) -> Verdict:
        """The verdict on an admitted event; a NEW one counts for the rest of the batch."""
        earlier = self.pending.get(fp)
        word = self.memory.index.get(fp) if earlier is None else pack(earlier.occurred_s, earlier.offset)
        if word is not None and self.watermark is not None and unpack(word)[0] < _cutoff(self.watermark, self.memory):
            word = None  # expired, even if not swept yet: the verdict never depends on when sweeps ran
        if earlier is None and word is not None and unpack(word)[1] == offset & _OFFSET_MASK:
            return Verdict.REDELIVERED
        if self.watermark is not None and occurred_s < self.watermark - self.memory.horizon_s:
            return Verdict.TOO_OLD
        if word is not None:
            return Verdict.DUPLICATE
        self.pending[fp] = Entry(fp, occurred_s, offset)
        if self.watermark is None or occurred_s > self.watermark:
            self.watermark = occurred_s
        return Verdict.NEW

    @property
    def entries(self) -> list[Entry]:
        return list(self.pending.values())

    def commit(self) -> None:
        """Remember this batch's new events in the partition's memory."""
        self.memory.apply(self.pending.values())


# -- changelog: how the memory survives a restart or moves with its partition ---------------

_CHANGELOG_HEADER = struct.Struct(">BIq")  # version, raw partition, watermark (unix seconds)
CHANGELOG_VERSION = 1


@dataclass(frozen=True)
class ChangelogRecord:
    """The entries one batch added to one raw partition's memory (one Kafka record)."""

    partition: int
    watermark: int
    fps: array[int]
    words: array[int]

    @classmethod
    def of(cls, partition: int, watermark: int, entries: Sequence[Entry]) -> ChangelogRecord:
        return cls(
            partition,
            watermark,
            array("Q", (e.fp for e in entries)),
            array("Q", (pack(e.occurred_s, e.offset) for e in entries)),
        )

    def encode(self) -> bytes:
        """Header, then (fingerprint, word) pairs, big-endian: 16 bytes per event."""
        body = array("Q")
        for fp, word in zip(self.fps, self.words, strict=True):
            body.append(fp)
            body.append(word)
        if sys.byteorder == "little":
            body.byteswap()
        return _CHANGELOG_HEADER.pack(CHANGELOG_VERSION, self.partition, self.watermark) + body.tobytes()

    @classmethod
    def decode(cls, data: bytes) -> ChangelogRecord:
        version, partition, watermark = _CHANGELOG_HEADER.unpack_from(data)
        if version != CHANGELOG_VERSION:
            raise ValueError(f"unknown changelog record version {version}")
        body = array("Q")
        body.frombytes(data[_CHANGELOG_HEADER.size :])
        if sys.byteorder == "little":
            body.byteswap()
        return cls(partition, watermark, body[0::2], body[1::2])
