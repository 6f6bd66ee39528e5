"""Receivers: where notifications go (Alertmanager, a webhook, e-mail over SMTP).

Each receiver does one delivery attempt and raises ``DeliveryError`` when it fails;
retrying, backoff and de-duplication are the outbox's business (``outbox.py``), the
same for all of them.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx

from charter_alerts.domain.messages import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    alertmanager_alert,
    email_message,
    idempotency_key,
    sign,
    webhook_body,
)
from charter_contracts import AlertEvent

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """One delivery attempt failed; the outbox will try again."""


class Receiver(Protocol):
    """One place notifications go; ``deliver`` is one attempt."""

    name: str

    async def deliver(self, event: AlertEvent) -> None: ...

    async def close(self) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


class AlertmanagerReceiver:
    """Posts alerts to Alertmanager's v2 API (``POST /api/v2/alerts``)."""

    name = "alertmanager"

    def __init__(
        self,
        base_url: str,
        resend: timedelta,
        timeout: float,
        severity_of: Callable[[AlertEvent], str],
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.url = base_url.rstrip("/") + "/api/v2/alerts"
        self.resend = resend
        self.severity_of = severity_of
        self.clock = clock
        self._http = httpx.AsyncClient(timeout=timeout)
        # Posts are serialised: a periodic re-send can never overtake a resolve.
        self._lock = asyncio.Lock()

    async def post(self, events: Sequence[AlertEvent]) -> None:
        if not events:
            return
        now = self.clock()
        body = [alertmanager_alert(e, now, self.resend, self.severity_of(e)) for e in events]
        async with self._lock:
            try:
                response = await self._http.post(self.url, json=body)
            except httpx.HTTPError as exc:
                raise DeliveryError(f"Alertmanager at {self.url}: {exc!r}") from exc
        if response.status_code >= 300:
            raise DeliveryError(f"Alertmanager answered {response.status_code}: {response.text[:200]}")

    async def deliver(self, event: AlertEvent) -> None:
        await self.post([event])

    async def close(self) -> None:
        await self._http.aclose()


class WebhookReceiver:
    """POSTs the alert as JSON, signed with HMAC-SHA256, with an idempotency key."""

    name = "webhook"

    def __init__(self, url: str, secret: str, timeout: float) -> None:
        self.url = url
        self.secret = secret
        self._http = httpx.AsyncClient(timeout=timeout)

    async def deliver(self, event: AlertEvent) -> None:
        body = webhook_body(event)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: idempotency_key(event),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            "User-Agent": "charter-alerts/1",
        }
        try:
            response = await self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {self.url}: {exc!r}") from exc
        if response.status_code >= 300:
            raise DeliveryError(f"webhook {self.url} answered {response.status_code}")

    async def close(self) -> None:
        await self._http.aclose()


class EmailReceiver:
    """Sends a bilingual e-mail over SMTP (optionally STARTTLS and login)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        timeout: float,
        starttls: bool = False,
        username: str = "",
        password: str = "",
    ) -> None:
        self.host, self.port = host, port
        self.sender, self.recipients = sender, recipients
        self.timeout = timeout
        self.starttls, self.username, self.password = starttls, username, password

    def _send(self, event: AlertEvent) -> None:
        message = email_message(event, self.sender, self.recipients)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)

    async def deliver(self, event: AlertEvent) -> None:
        try:
            await asyncio.to_thread(self._send, event)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {exc!r}") from exc

    async def close(self) -> None:
        return None
