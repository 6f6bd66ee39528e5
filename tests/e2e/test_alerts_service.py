"""`charter alerts` as a process on the real broker, with real receivers.

Receivers: a real Alertmanager (Debian's, with the product's configuration), a webhook
sink, and an SMTP sink (aiosmtpd). The tests produce indicator snapshots themselves.
"""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from charter_alerts.domain.messages import verify
from charter_alerts.settings import STATE_TOPIC
from charter_alerts.state import partitions_of
from charter_contracts import AlertEvent, IndicatorSnapshot, Scope
from charter_contracts.topics import TopicNames
from charter_ops.kafka.local import free_port
from tests.support.kafka import ServiceProcess, consume, create_topics, metric_value, produce, read_all, service_env
from tests.support.receivers import (
    Alertmanager,
    WebhookSink,
    alertmanager_config,
    smtp_sink,
    wait_for,
    wait_for_async,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
SECRET = "test-secret"
SHIPPED_RULES = Path(__file__).resolve().parents[2] / "deploy" / "config" / "charter-rules.yaml"


def pickup(rate: float, minute: float, network: str = "caf") -> IndicatorSnapshot:
    return IndicatorSnapshot.of(
        "pickup_rate", Scope(network=network), "1h", round(rate * 200), 200, as_of=T0 + timedelta(minutes=minute)
    )


async def publish(kafka: str, names: TopicNames, snapshots: list[IndicatorSnapshot]) -> None:
    await produce(kafka, names.indicators, [(s.scope.key.encode(), s.model_dump_json().encode()) for s in snapshots])


async def alert_events(kafka: str, names: TopicNames) -> list[AlertEvent]:
    return [AlertEvent.model_validate_json(r.value) for r in await read_all(kafka, names.alerts)]


def alerts_process(kafka: str, names: TopicNames, logs: Path, **env: object) -> ServiceProcess:
    port = free_port()
    settings = service_env(
        kafka,
        names,
        CHARTER_ALERTS_HTTP_PORT=port,
        CHARTER_ALERTS_NOTIFY_RETRY_MAX_SECONDS=0.5,
        CHARTER_ALERTS_LAG_INTERVAL_SECONDS=0.5,
        CHARTER_ALERTS_GRAFANA_URL="https://grafana.example.gouv.fr",
        **env,
    )
    return ServiceProcess(["alerts"], settings, port, logs / "alerts.log")


def scrape(service: ServiceProcess, name: str, labels: dict[str, str]) -> float:
    return metric_value(httpx.get(f"{service.url}/metrics", timeout=5).text, name, labels) or 0.0


async def get_json(url: str, **params: str) -> Any:
    async with httpx.AsyncClient() as http:
        response = await http.get(url, params=params, timeout=5)
    response.raise_for_status()
    return response.json()


def delivered(service: ServiceProcess, receiver: str, outcome: str = "delivered") -> float:
    return scrape(service, "charter_alert_notifications_total", {"receiver": receiver, "outcome": outcome})


async def caught_up(kafka: str, group: str, topic: str) -> bool:
    """True when ``group`` committed the end offset of every partition of ``topic``."""
    partitions = await partitions_of(kafka, [topic])
    assert partitions, topic
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        ends = await consumer.end_offsets(partitions)
        return all(tp in committed and committed[tp].offset >= end for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


async def rewind(kafka: str, group: str, topic: str) -> None:
    """A consumer-group offset reset to the earliest offset, as an operator replaying a topic does."""
    partitions = await partitions_of(kafka, [topic])
    assert partitions, topic
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.commit({tp: OffsetAndMetadata(0, "") for tp in partitions})
    finally:
        await consumer.stop()
    assert not await caught_up(kafka, group, topic)


async def test_a_breach_pages_every_receiver_once_and_a_receiver_down_holds_back_only_itself(
    kafka: str, names: TopicNames, logs: Path
) -> None:
    await create_topics(kafka, names)
    webhook, on_call = WebhookSink().start(), WebhookSink().start()
    webhook.failing.set()  # the webhook is down at first
    alertmanager = Alertmanager(logs, alertmanager_config(on_call.url)).start()
    with smtp_sink() as (smtp_port, mails):
        alerts = alerts_process(
            kafka,
            names,
            logs,
            CHARTER_ALERTS_ALERTMANAGER_URL=alertmanager.url,
            CHARTER_ALERTS_ALERTMANAGER_RESEND_SECONDS=1,
            CHARTER_ALERTS_WEBHOOK_URL=f"{webhook.url}/charter",
            CHARTER_ALERTS_WEBHOOK_SECRET=SECRET,
            CHARTER_ALERTS_SMTP_HOST="127.0.0.1",
            CHARTER_ALERTS_SMTP_PORT=smtp_port,
            CHARTER_ALERTS_SMTP_TO="astreinte@ditp.local",
        )
        try:
            alerts.start()
            # caf: 60 % answered for 11 minutes (the default for-duration is 10 min); cpam is fine.
            await publish(
                kafka, names, [pickup(0.6, m) for m in range(12)] + [pickup(0.95, m, "cpam") for m in range(12)]
            )

            await wait_for(lambda: len(mails) == 1, "the firing e-mail")
            await wait_for(lambda: any(r.json()["status"] == "firing" for r in on_call.received), "Alertmanager's page")
            await wait_for(lambda: len(webhook.refused) >= 3, "the webhook to be retried")
            assert webhook.received == []  # down, and nobody else waited for it

            firing = (await alert_events(kafka, names))[0]
            assert (firing.status, firing.network, firing.rule, firing.value, firing.threshold) == (
                "firing",
                "caf",
                "pickup_rate_1h",
                0.6,
                0.85,
            )
            assert firing.since == T0
            assert firing.at == T0 + timedelta(minutes=10)
            assert firing.dashboard_url.startswith("https://grafana.example.gouv.fr/d/charter-network?var-network=caf")

            page = next(r.json() for r in on_call.received if r.json()["status"] == "firing")
            assert page["groupLabels"] == {"network": "caf"}
            assert page["receiver"] == "on-call"
            [am_alert] = page["alerts"]
            assert am_alert["labels"]["alertname"] == "pickup_rate_1h"
            assert am_alert["labels"]["severity"] == "page"
            assert am_alert["annotations"]["summary_fr"] == firing.summary_fr

            mail = mails[0]
            assert "FIRING caf" in mail["Subject"]
            assert mail["To"] == "astreinte@ditp.local"
            body = mail.get_payload(decode=True)
            assert isinstance(body, bytes)
            assert firing.summary_fr in body.decode()

            listed = await get_json(f"{alerts.url}/v1/alerts", status="firing")
            assert [a["alert"]["fingerprint"] for a in listed["alerts"]] == [firing.fingerprint]
            assert (await get_json(f"{alerts.url}/v1/alerts", network="cpam"))["count"] == 0
            assert scrape(alerts, "charter_alerts_firing", {"network": "caf", "rule": "pickup_rate_1h"}) == 1
            # operators see how far behind the alerts' consumer is, as for every service
            lag = {"service": "alerts", "topic": names.indicators}
            await wait_for(
                lambda: (
                    metric_value(
                        httpx.get(f"{alerts.url}/metrics", timeout=5).text, "charter_kafka_consumer_lag_messages", lag
                    )
                    == 0
                ),
                "the alerts' consumer lag",
            )

            webhook.failing.clear()  # back up: it gets the firing it missed
            await wait_for(lambda: len(webhook.received) == 1, "the webhook's firing")
            hook = webhook.received[0]
            assert hook.headers["Idempotency-Key"] == f"{firing.fingerprint}-1-firing"
            assert verify(SECRET, hook.headers["X-Charter-Timestamp"], hook.body, hook.headers["X-Charter-Signature"])
            assert AlertEvent.model_validate_json(hook.body) == firing

            await publish(kafka, names, [pickup(0.95, 20)])
            await wait_for(lambda: len(mails) == 2, "the resolved e-mail")
            await wait_for(lambda: len(webhook.received) == 2, "the webhook's resolved")
            await wait_for(
                lambda: any(r.json()["status"] == "resolved" for r in on_call.received), "Alertmanager's resolve"
            )
            # Alertmanager was told explicitly: its copy of the alert has ended.
            await wait_for(
                lambda: (
                    alertmanager.alerts() == [] or all(a["status"]["state"] != "active" for a in alertmanager.alerts())
                ),
                "Alertmanager to end the alert",
            )
            assert scrape(alerts, "charter_alerts_firing", {"network": "caf", "rule": "pickup_rate_1h"}) == 0
        finally:
            alerts.stop()
            alertmanager.stop()
            webhook.stop()
            on_call.stop()

    events = await alert_events(kafka, names)
    assert [(e.status, e.episode) for e in events] == [("firing", 1), ("resolved", 1)]
    assert [r.headers["Idempotency-Key"] for r in webhook.received] == [
        f"{firing.fingerprint}-1-firing",
        f"{firing.fingerprint}-1-resolved",
    ]
    assert "RESOLVED" in mails[1]["Subject"]
    assert mails[1]["In-Reply-To"] == mails[0]["Message-ID"]
    # Re-sent every second for the whole test, the alert still paged once and resolved once.
    statuses = [r.json()["status"] for r in on_call.received]
    assert statuses == ["firing", "resolved"]


async def test_kill_restart_and_replays_never_page_twice(kafka: str, names: TopicNames, logs: Path) -> None:
    await create_topics(kafka, names)
    webhook = WebhookSink().start()
    with smtp_sink() as (smtp_port, mails):
        alerts = alerts_process(
            kafka,
            names,
            logs,
            CHARTER_ALERTS_WEBHOOK_URL=f"{webhook.url}/charter",
            CHARTER_ALERTS_WEBHOOK_SECRET=SECRET,
            CHARTER_ALERTS_SMTP_HOST="127.0.0.1",
            CHARTER_ALERTS_SMTP_PORT=smtp_port,
            CHARTER_ALERTS_SMTP_TO="astreinte@ditp.local",
        )
        try:
            webhook.failing.set()
            alerts.start()
            breach = [pickup(0.6, m) for m in range(12)]
            await publish(kafka, names, breach)
            await wait_for(lambda: delivered(alerts, "email") == 1, "the firing e-mail to be recorded")
            await wait_for(lambda: len(webhook.refused) >= 1, "the webhook to be tried")
            alerts.kill()  # SIGKILL while the webhook still owes its firing notification

            webhook.failing.clear()
            # While it is down: the breach goes on, and the indicators re-send what they sent (duplicates).
            await publish(kafka, names, [pickup(0.55, m) for m in range(12, 16)] + breach)
            alerts.start()
            await wait_for(lambda: len(webhook.received) == 1, "the webhook's firing after the restart")
            await publish(kafka, names, [pickup(0.95, 20)])
            await wait_for(lambda: len(webhook.received) == 2 and len(mails) == 2, "the resolved notifications")
            assert alerts.stop() is not None  # a clean stop, not a kill

            # An operator resets every consumer group of alerts to the beginning and restarts it.
            group = names.group("charter-alerts")
            await rewind(kafka, group, names.indicators)
            for receiver in ("webhook", "email"):
                await rewind(kafka, f"{group}.notify.{receiver}", names.alerts)
            alerts.start()
            await wait_for(lambda: delivered(alerts, "webhook", "duplicate") == 2, "the webhook replay")
            await wait_for(lambda: delivered(alerts, "email", "duplicate") == 2, "the e-mail replay")
            await publish(kafka, names, breach)  # and the indicators send the old breach once more
            await wait_for_async(lambda: caught_up(kafka, group, names.indicators), "the indicators replay")
            await wait_for_async(
                lambda: caught_up(kafka, f"{group}.notify.webhook", names.alerts), "the webhook replay"
            )
            listed = (await get_json(f"{alerts.url}/v1/alerts"))["alerts"]
            assert [(a["alert"]["status"], a["alert"]["episode"]) for a in listed] == [("resolved", 1)]
            # Every replayed snapshot was recognised as judged already.
            assert (await get_json(f"{alerts.url}/v1/rules"))["not_judged"]["already_judged"] >= 2 * len(breach)
        finally:
            alerts.stop()
            webhook.stop()

    events = await alert_events(kafka, names)
    assert [(e.status, e.episode) for e in events] == [("firing", 1), ("resolved", 1)]
    assert events[0].since == T0
    assert [r.headers["Idempotency-Key"].rsplit("-", 1)[1] for r in webhook.received] == ["firing", "resolved"]
    assert [m["X-Charter-Status"] for m in mails] == ["firing", "resolved"]
    state = await read_all(kafka, names.prefix + STATE_TOPIC)
    assert {r.key.decode().split("/")[0] for r in state if r.key} == {"alert", "delivered"}


async def test_rules_reload_on_sighup_refuses_an_invalid_file_and_keeps_the_rules_in_force(
    kafka: str, names: TopicNames, logs: Path, tmp_path: Path
) -> None:
    await create_topics(kafka, names)
    rules = tmp_path / "charter-rules.yaml"
    lenient = SHIPPED_RULES.read_text().replace(
        "overrides: []", "overrides:\n  - network: caf\n    rules:\n      pickup_rate_1h: {threshold: 70%}"
    )
    rules.write_text(lenient)
    # Polling is off in practice (an hour): only SIGHUP can reload the file here.
    alerts = alerts_process(kafka, names, logs, CHARTER_ALERTS_RULES_FILE=rules, CHARTER_ALERTS_RULES_POLL_SECONDS=3600)
    try:
        alerts.start()
        assert alerts.process is not None
        await publish(kafka, names, [pickup(0.8, m) for m in range(12)])  # 80 %: fine for caf under 70 %
        await wait_for_async(lambda: caught_up(kafka, names.group("charter-alerts"), names.indicators), "the snapshots")
        first = await get_json(f"{alerts.url}/v1/rules")
        assert first["source"] == str(rules)
        assert first["rules"]["overrides"][0]["rules"]["pickup_rate_1h"]["threshold"] == 0.7

        rules.write_text(lenient.replace("threshold: 70%}", "threshold: 170%}"))
        os.kill(alerts.process.pid, signal.SIGHUP)
        await wait_for(lambda: httpx.get(f"{alerts.url}/v1/rules").json()["last_error"] is not None, "the refusal")
        refused = await get_json(f"{alerts.url}/v1/rules")
        assert (
            "overrides.0.rules.pickup_rate_1h.threshold: Input should be less than or equal to 1"
            in refused["last_error"]
        )
        assert refused["sha256"] == first["sha256"]  # still the rules in force
        assert scrape(alerts, "charter_alerts_rules_last_reload_successful", {}) == 0
        assert "rules refused" in alerts.log()

        rules.write_text(SHIPPED_RULES.read_text())  # back to the charter's 85 %, without a restart
        os.kill(alerts.process.pid, signal.SIGHUP)
        await wait_for(lambda: httpx.get(f"{alerts.url}/v1/rules").json()["sha256"] != first["sha256"], "the reload")
        assert scrape(alerts, "charter_alerts_rules_last_reload_successful", {}) == 1
        await publish(kafka, names, [pickup(0.8, m) for m in range(12, 24)])
        fired = await wait_alerts(kafka, names, 1)
        assert [(e.status, e.threshold, e.since) for e in fired] == [("firing", 0.85, T0 + timedelta(minutes=12))]
    finally:
        alerts.stop()


async def wait_alerts(kafka: str, names: TopicNames, count: int) -> list[AlertEvent]:
    records = await consume(kafka, names.alerts, until=lambda r: len(r) >= count)
    return [AlertEvent.model_validate_json(r.value) for r in records]
