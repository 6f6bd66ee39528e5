"""Entry point of alerts: indicator snapshots in, alert lifecycle events and notifications out.

Wiring only. The charter rules and the lifecycle are in ``domain/``; what follows
decodes snapshots, hands them to the book, persists and publishes what changed (public
events first, then the state records, then the consumer offset), and runs one outbox
per receiver on ``charter.alerts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from charter_alerts.api import alerts_router
from charter_alerts.domain.book import AlertBook, AlertRecord, Transition
from charter_alerts.domain.rules import RuleSet
from charter_alerts.domain.text import Links
from charter_alerts.metrics import AlertsMetrics
from charter_alerts.outbox import Outbox
from charter_alerts.receivers import (
    AlertmanagerReceiver,
    DeliveryError,
    EmailReceiver,
    Receiver,
    WebhookReceiver,
)
from charter_alerts.rules_file import RulesFile
from charter_alerts.settings import AlertsSettings
from charter_alerts.state import alert_key, delivered_key, delivered_value, restore
from charter_contracts import AlertEvent, IndicatorSnapshot
from charter_runtime.http import ServiceParts, build_app
from charter_runtime.kafka import (
    RecordBatch,
    TopicSpec,
    batch_subscriber,
    confirm_all,
    contract_topics,
    make_broker,
    retry_forever,
)

log = logging.getLogger(__name__)

DESCRIPTION = "Charter rules over indicator snapshots; alerts fire once per breach and resolve once."


class Alerts:
    """Wires the charter rules to Kafka, the receivers and the HTTP read side."""

    def __init__(self, settings: AlertsSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = AlertsMetrics(self.registry)
        self.rules_file = RulesFile(settings.rules_file)
        self._show_rules_status()
        self.metrics.rules_reloads.labels("loaded").inc()
        self.book = AlertBook(
            rules=self.rules_file.status.rules,
            links=Links(settings.grafana_url, settings.grafana_dashboard_uid),
        )
        self.restored = asyncio.Event()
        self.stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

        self.broker = make_broker(
            settings.kafka_bootstrap_servers, client_id="charter-alerts", auth=settings.kafka_auth
        )
        names = settings.topics
        self.alerts = self.broker.publisher(
            names.alerts,
            title=names.alerts,
            description="Alert lifecycle (firing, resolved), keyed by fingerprint.",
            schema=AlertEvent,
        )
        self.state = self.broker.publisher(
            settings.state_topic,
            title=settings.state_topic,
            description="Internal, compacted: each alert's state (alert/<fingerprint>) and deliveries done.",
            schema=AlertRecord,
        )
        batch_subscriber(
            self.broker,
            names.indicators,
            group_id=names.group(settings.group_id),
            handler=self.on_snapshots,
            payload=IndicatorSnapshot,
        )
        self.receivers = self._receivers()
        self.alertmanager = next((r for r in self.receivers if isinstance(r, AlertmanagerReceiver)), None)
        self.outboxes: dict[str, Outbox] = {}
        for receiver in self.receivers:
            outbox = Outbox(
                receiver,
                delivered=set(),
                record_delivery=self.record_delivery,
                metrics=self.metrics,
                retry_max=settings.notify_retry_max_seconds,
                stopping=self.stopping,
            )
            self.outboxes[receiver.name] = outbox
            batch_subscriber(
                self.broker,
                names.alerts,
                group_id=names.group(f"{settings.group_id}.notify.{receiver.name}"),
                handler=self._notifier(outbox),
                payload=AlertEvent,
                max_records=100,
            )

    # -- receivers ------------------------------------------------------------------

    def _receivers(self) -> list[Receiver]:
        s = self.settings
        receivers: list[Receiver] = []
        if s.alertmanager_url:
            receivers.append(
                AlertmanagerReceiver(
                    s.alertmanager_url,
                    timedelta(seconds=s.alertmanager_resend_seconds),
                    s.notify_timeout_seconds,
                    self.severity_of,
                )
            )
        if s.webhook_url:
            receivers.append(WebhookReceiver(s.webhook_url, s.webhook_secret, s.notify_timeout_seconds))
        if s.smtp_host:
            receivers.append(
                EmailReceiver(
                    s.smtp_host,
                    s.smtp_port,
                    s.smtp_from,
                    s.smtp_recipients,
                    s.notify_timeout_seconds,
                    starttls=s.smtp_starttls,
                    username=s.smtp_username,
                    password=s.smtp_password,
                )
            )
        return receivers

    def severity_of(self, event: AlertEvent) -> str:
        """The severity label of an alert, from the rules in force (``page`` if the rule is gone)."""
        if event.rule not in self.book.rules.defaults:
            return "page"
        return self.book.rules.effective(event.rule, event.network, event.department).severity

    def _notifier(self, outbox: Outbox):  # type: ignore[no-untyped-def]
        async def notify(records: RecordBatch) -> None:
            """Deliver the firing and resolved events of charter.alerts to one receiver."""
            await self.restored.wait()
            for record in records:
                try:
                    event = AlertEvent.model_validate_json(record.value or b"")
                except ValidationError as exc:
                    log.error("charter.alerts offset %s: not an alert event, skipped: %s", record.offset, exc)
                    continue
                await outbox.handle(event)

        notify.__name__ = f"notify_{outbox.receiver.name}"
        return notify

    async def record_delivery(self, receiver: str, key: str) -> None:
        """Persist "delivered" before the outbox's offset moves on."""
        send = await self.state.publish(
            delivered_value(receiver, key), key=delivered_key(receiver, key), no_confirm=True
        )
        await confirm_all([send], self.broker)

    # -- judging --------------------------------------------------------------------

    async def on_snapshots(self, records: RecordBatch) -> None:
        """Judge each snapshot; publish what changed before the batch is committed."""
        await self.restored.wait()
        async with self._lock:
            saved = self.book.save()
            try:
                transitions: list[Transition] = []
                for record in records:
                    try:
                        snapshot = IndicatorSnapshot.model_validate_json(record.value or b"")
                    except ValidationError as exc:
                        log.error("charter.indicators offset %s: not a snapshot, skipped: %s", record.offset, exc)
                        continue
                    transitions += self.book.observe(snapshot)
                await self._publish(transitions)
            except BaseException:
                # Nothing of this batch is committed: forget it, it will be judged again.
                self.book.rollback(saved)
                raise

    async def _publish(self, transitions: list[Transition]) -> None:
        """Public events first, then state records: a crash in between is repaired at restore."""
        if not transitions:
            return
        events = [t.event for t in transitions if t.event is not None]
        sends = [
            await self.alerts.publish(e.model_dump_json().encode(), key=e.fingerprint.encode(), no_confirm=True)
            for e in events
        ]
        await confirm_all(sends, self.broker)
        sends = [
            await self.state.publish(
                t.record.model_dump_json().encode(), key=alert_key(t.record.fingerprint), no_confirm=True
            )
            for t in transitions
        ]
        await confirm_all(sends, self.broker)
        for t in transitions:
            if t.event is not None:
                log.warning("alert %s: %s", t.event.status, t.event.summary_en)
                self.metrics.transitions.labels(t.event.network, t.event.rule, t.event.status).inc()
            elif t.record.status == "pending":
                self.metrics.transitions.labels(t.record.network, t.record.rule, "pending").inc()
        self.metrics.show_firing(self.book.records.values())

    # -- rules ----------------------------------------------------------------------

    async def reload_rules(self, force: bool = False) -> None:
        """Load the rules file if it changed; a refused file leaves the rules in force."""
        outcome, rules = self.rules_file.check(force)
        if outcome != "unchanged":
            self.metrics.rules_reloads.labels(outcome).inc()
        self._show_rules_status()
        if rules is not None:
            await self._put_in_force(rules)

    async def _put_in_force(self, rules: RuleSet) -> None:
        async with self._lock:
            saved = self.book.save()
            try:
                await self._publish(self.book.replace_rules(rules))
            except BaseException:
                self.book.rollback(saved)
                self.rules_file.status.sha256 = ""  # not in force: the next check loads it again
                raise

    def _show_rules_status(self) -> None:
        status = self.rules_file.status
        self.metrics.rules_ok.set(0 if status.last_error else 1)
        self.metrics.rules_loaded_at.set(status.loaded_at)

    async def _watch_rules(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rules_poll_seconds)
            try:
                await self.reload_rules()
            except Exception:
                log.exception("rules reload failed; retrying at the next check")

    # -- Alertmanager ---------------------------------------------------------------

    async def _resend_to_alertmanager(self) -> None:
        """Alertmanager forgets an alert at its endsAt: re-send every firing alert before then."""
        assert self.alertmanager is not None
        while True:
            firing = self.book.firing()
            try:
                await self.alertmanager.post(firing)
            except DeliveryError as exc:
                self.metrics.notifications.labels("alertmanager", "failed").inc()
                log.warning("re-sending %d firing alerts to Alertmanager failed: %s", len(firing), exc)
            await asyncio.sleep(self.settings.alertmanager_resend_seconds)

    # -- lifecycle ------------------------------------------------------------------

    async def _recover(self) -> None:
        # A bounded wait: a broker still electing leaders is retried (TimeoutError is an OSError).
        self.book.records.clear()
        restored = await asyncio.wait_for(
            restore(
                self.settings.kafka_bootstrap_servers,
                self.settings.state_topic,
                self.settings.topics.alerts,
                self.book,
                self.settings.kafka_auth,
            ),
            timeout=30,
        )
        for name, outbox in self.outboxes.items():
            outbox.delivered |= restored.deliveries.get(name, set())
        self.metrics.show_firing(self.book.records.values())
        firing = len(self.book.firing())
        log.info(
            "alerts state restored: %d records, %d events read, %d firing, deliveries %s",
            restored.records,
            restored.events,
            firing,
            {name: len(keys) for name, keys in restored.deliveries.items()},
        )

    async def on_started(self) -> None:
        await retry_forever(self._recover, "alerts: restoring state")
        self.restored.set()
        self._tasks.append(asyncio.create_task(self._watch_rules()))
        if self.alertmanager is not None:
            self._tasks.append(asyncio.create_task(self._resend_to_alertmanager()))
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            # Only possible in the main thread (``charter alerts``), not under a test client.
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, lambda: asyncio.ensure_future(self.reload_rules(force=True))
            )

    async def on_stopping(self) -> None:
        self.stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for receiver in self.receivers:
            await receiver.close()

    def parts(self) -> ServiceParts:
        topics = contract_topics(self.settings.topics, self.settings.kafka_partitions)
        topics.append(TopicSpec(self.settings.state_topic, 1, compacted=True))
        return ServiceParts(
            name="alerts",
            description=DESCRIPTION,
            broker=self.broker,
            registry=self.registry,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            kafka_auth=self.settings.kafka_auth,
            topics=topics,
            routers=[alerts_router(self)],
            on_started=[self.on_started],
            on_stopping=[self.on_stopping],
            lag_interval_seconds=self.settings.lag_interval_seconds,
        )


def create_app(settings: AlertsSettings | None = None) -> FastAPI:
    """The alerts service as an ASGI app (raises ``RulesError`` if the rules file is invalid)."""
    return build_app(Alerts(settings or AlertsSettings()).parts())
