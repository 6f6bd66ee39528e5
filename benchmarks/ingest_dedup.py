"""Figures of ingest's de-duplication memory: bytes per event, judging and restoring speed.

Run: .venv/bin/python benchmarks/ingest_dedup.py [events]   (default 1,000,000)
Prints figures; asserts nothing (speed depends on the machine).
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from datetime import timedelta

from charter_ingest.dedup import ChangelogRecord, PartitionMemory, fingerprint

T0 = 1_709_542_800  # 2024-03-04 09:00 UTC
NATIONAL_FORTNIGHT = 17_000_000  # ~450 million events a year (SPEC section 6), 14 days of them


def feed(horizon: timedelta, fps: list[int]) -> tuple[PartitionMemory, list[bytes], float]:
    """Judge every fingerprint once, in batches of 1,000 (one second of event time apart), as ingest does."""
    memory = PartitionMemory(horizon)
    changelog: list[bytes] = []
    started = time.perf_counter()
    for start in range(0, len(fps), 1000):
        batch = memory.batch()
        for offset in range(start, min(start + 1000, len(fps))):
            batch.judge(fps[offset], T0 + offset, offset)
        assert batch.watermark is not None
        changelog.append(ChangelogRecord.of(0, batch.watermark, batch.entries).encode())
        batch.commit()
    return memory, changelog, time.perf_counter() - started


def main(count: int) -> None:
    horizon = timedelta(days=14)
    ids = [f"caf-2024-{n:09d}" for n in range(count)]
    started = time.perf_counter()
    fps = [fingerprint("caf", event_id) for event_id in ids]
    hashing = time.perf_counter() - started

    memory, changelog, judging = feed(horizon, fps)
    tracemalloc.start()
    measured, _, _ = feed(horizon, fps)  # again, with allocations traced (slower): what it holds
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del measured
    changelog_bytes = sum(len(record) for record in changelog)

    started = time.perf_counter()
    resent = memory.batch()
    duplicates = sum(resent.judge(fp, T0 + n, n + count).value == "duplicate" for n, fp in enumerate(fps[-100_000:]))
    rejudging = time.perf_counter() - started

    started = time.perf_counter()
    restored = PartitionMemory.restore(horizon, [ChangelogRecord.decode(data) for data in changelog])
    restoring = time.perf_counter() - started

    kept = len(memory.index)
    per_event = held / kept
    print(f"events judged: {count:,} (one per second of event time; horizon 14 days)")
    print(f"fingerprints: {count / hashing:,.0f} events/s")
    print(f"judge + commit: {count / judging:,.0f} events/s")
    print(f"re-sent events recognised: {duplicates:,} of 100,000 at {100_000 / rejudging:,.0f} events/s")
    print(f"memory kept: {kept:,} events, {per_event:.1f} bytes per event (Python heap, tracemalloc)")
    print(f"national fortnight ({NATIONAL_FORTNIGHT:,} events): ~{NATIONAL_FORTNIGHT * per_event / 2**20:,.0f} MiB")
    print(f"changelog: {changelog_bytes / count:.1f} bytes per event")
    print(f"restore: {len(restored.index):,} events in {restoring:.2f}s ({len(restored.index) / restoring:,.0f}/s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
