"""Per-token rate limit of the HTTPS endpoint: a token bucket counted in events.

Counting events rather than requests treats a batch of 5,000 like 5,000 single posts, so
neither style can crowd the others out. The bucket holds at least one full request, so a
legal request is never refused forever. Limits are per ingest instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Events per second per key (a token id), with a burst of ``capacity`` events."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: str, events: int) -> float:
        """Take ``events`` from the key's bucket: 0.0 if allowed, else seconds to wait before retrying."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        needed = min(float(events), self.capacity)
        if bucket.tokens >= needed:
            bucket.tokens -= needed
            return 0.0
        return (needed - bucket.tokens) / self.rate
