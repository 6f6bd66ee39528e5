"""The outbox: each receiver gets each notification once, however long it is down.

``charter.alerts`` is the outbox. Every receiver reads it with a consumer group of its
own, so a receiver that fails holds back only itself: its offset stays where it is, the
delivery is retried with exponential backoff, and a restart starts again from there. A
delivery done is recorded on the state topic (keyed by receiver and idempotency key)
before the offset moves on, so that a restart or a replay of ``charter.alerts`` never
delivers it a second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from charter_alerts.domain.messages import idempotency_key
from charter_alerts.metrics import AlertsMetrics
from charter_alerts.receivers import DeliveryError, Receiver
from charter_contracts import AlertEvent

log = logging.getLogger(__name__)

RecordDelivery = Callable[[str, str], Awaitable[None]]


class OutboxStoppedError(Exception):
    """The service is stopping: the delivery is left for the next start (offset not committed)."""


class Outbox:
    """Delivers firing and resolved events to one receiver, retrying until it succeeds."""

    def __init__(
        self,
        receiver: Receiver,
        delivered: set[str],
        record_delivery: RecordDelivery,
        metrics: AlertsMetrics,
        retry_max: float,
        first_delay: float = 0.5,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.receiver = receiver
        self.delivered = delivered
        self.record_delivery = record_delivery
        self.metrics = metrics
        self.retry_max = retry_max
        self.first_delay = first_delay
        self.stopping = stopping or asyncio.Event()

    async def handle(self, event: AlertEvent) -> None:
        """Deliver one event (firing or resolved) unless it was delivered already."""
        if event.status not in ("firing", "resolved"):
            return
        key = idempotency_key(event)
        name = self.receiver.name
        if key in self.delivered:
            self.metrics.notifications.labels(name, "duplicate").inc()
            log.info("%s: %s already delivered, not sent again", name, key)
            return
        delay = self.first_delay
        attempt = 1
        while True:
            if self.stopping.is_set():
                raise OutboxStoppedError(f"{name}: stopping before {key} was delivered")
            try:
                await self.receiver.deliver(event)
            except DeliveryError as exc:
                self.metrics.notifications.labels(name, "failed").inc()
                log.warning(
                    "%s: delivery of %s failed (attempt %d): %s; next try in %.1fs", name, key, attempt, exc, delay
                )
                await self._pause(delay)
                delay = min(delay * 2, self.retry_max)
                attempt += 1
                continue
            break
        await self.record_delivery(name, key)
        self.delivered.add(key)
        self.metrics.notifications.labels(name, "delivered").inc()
        log.info("%s: delivered %s (%s)", name, key, event.summary_en)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return
