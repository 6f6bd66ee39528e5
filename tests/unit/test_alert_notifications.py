"""What receivers get, and the outbox that retries a failing receiver without sending twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from charter_alerts.domain.book import AlertBook
from charter_alerts.domain.messages import alertmanager_alert, email_message, idempotency_key, sign, verify
from charter_alerts.domain.rules import parse_rules
from charter_alerts.metrics import AlertsMetrics
from charter_alerts.outbox import Outbox, OutboxStoppedError
from charter_alerts.receivers import DeliveryError
from charter_contracts import AlertEvent, IndicatorSnapshot, Scope
from tests.support.kafka import metric_value

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
RULES = """
version: 1
thresholds:
  pickup_rate_1h: {indicator: pickup_rate, window: 1h, threshold: 85%, min_volume: 30, for: 0s, recovery_margin: 2%}
"""


def breach() -> tuple[AlertEvent, AlertEvent]:
    book = AlertBook(rules=parse_rules(RULES))
    events = [
        t.event
        for minute, answered in ((0, 60), (30, 95))
        for t in book.observe(
            IndicatorSnapshot.of(
                "pickup_rate",
                Scope(network="caf", department="75"),
                "1h",
                answered,
                100,
                as_of=T0 + timedelta(minutes=minute),
            )
        )
        if t.event is not None
    ]
    assert len(events) == 2
    return events[0], events[1]


def test_the_webhook_signature_verifies_only_with_the_secret_and_the_same_body() -> None:
    body = b'{"status": "firing"}'
    signature = sign("s3cret", 1700000000, body)
    assert signature.startswith("sha256=")
    assert verify("s3cret", "1700000000", body, signature)
    assert not verify("other", "1700000000", body, signature)
    assert not verify("s3cret", "1700000001", body, signature)
    assert not verify("s3cret", "1700000000", body + b" ", signature)


def test_alertmanager_gets_labels_that_identify_the_alert_and_an_explicit_end_on_resolve() -> None:
    firing, resolved = breach()
    now = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
    posted = alertmanager_alert(firing, now, timedelta(minutes=1), "page")
    assert posted["labels"] == {
        "alertname": "pickup_rate_1h",
        "network": "caf",
        "department": "75",
        "indicator": "pickup_rate",
        "window": "1h",
        "kind": "threshold",
        "severity": "page",
        "fingerprint": firing.fingerprint,
    }
    assert posted["startsAt"] == "2024-03-04T09:00:00Z"
    assert posted["endsAt"] == "2024-03-04T10:04:00Z"  # 4 re-send intervals ahead, like Prometheus
    assert posted["generatorURL"] == firing.dashboard_url
    ended = alertmanager_alert(resolved, now, timedelta(minutes=1), "page")
    assert ended["labels"] == posted["labels"]
    assert ended["endsAt"] == "2024-03-04T10:00:00Z"


def test_the_resolved_mail_answers_the_firing_mail_in_both_languages() -> None:
    firing, resolved = breach()
    first = email_message(firing, "alerts@charter.local", ["astreinte@ditp.local"])
    second = email_message(resolved, "alerts@charter.local", ["astreinte@ditp.local"])
    assert first["Message-ID"] == f"<{idempotency_key(firing)}@charter.local>"
    assert second["In-Reply-To"] == f"<{firing.fingerprint}-1-firing@charter.local>"
    assert "FIRING caf (75)" in first["Subject"]
    text = first.get_content()
    assert firing.summary_fr in text
    assert firing.summary_en in text
    assert firing.dashboard_url in text


class FlakyReceiver:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.delivered: list[str] = []

    async def deliver(self, event: AlertEvent) -> None:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("503")
        self.delivered.append(idempotency_key(event))

    async def close(self) -> None:
        return None


async def test_a_failing_receiver_is_retried_until_it_succeeds_then_never_sent_twice() -> None:
    firing, resolved = breach()
    registry = CollectorRegistry()
    recorded: list[tuple[str, str]] = []

    async def record(receiver: str, key: str) -> None:
        recorded.append((receiver, key))

    receiver = FlakyReceiver(failures=3)
    outbox = Outbox(receiver, set(), record, AlertsMetrics(registry), retry_max=0.02, first_delay=0.005)
    for event in (firing, firing, resolved, firing):
        await outbox.handle(event)
    assert receiver.delivered == [idempotency_key(firing), idempotency_key(resolved)]
    assert recorded == [("flaky", idempotency_key(firing)), ("flaky", idempotency_key(resolved))]
    text = generate_latest(registry).decode()
    assert metric_value(text, "charter_alert_notifications_total", {"receiver": "flaky", "outcome": "failed"}) == 3
    assert metric_value(text, "charter_alert_notifications_total", {"receiver": "flaky", "outcome": "duplicate"}) == 2


async def test_a_receiver_down_at_shutdown_keeps_its_notification_for_the_next_start() -> None:
    firing, _ = breach()
    stopping = asyncio.Event()

    async def record(receiver: str, key: str) -> None:
        raise AssertionError("nothing was delivered")

    outbox = Outbox(
        FlakyReceiver(failures=10**6),
        set(),
        record,
        AlertsMetrics(CollectorRegistry()),
        retry_max=0.01,
        first_delay=0.001,
        stopping=stopping,
    )
    task = asyncio.create_task(outbox.handle(firing))
    await asyncio.sleep(0.05)
    stopping.set()
    with pytest.raises(OutboxStoppedError):
        await task
