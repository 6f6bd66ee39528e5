"""The operations board: is the product itself healthy (ingest, processing, alerting)?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as model

from charter_ops.dashboards.kit import (
    COUNT,
    PER_SECOND,
    SECONDS,
    Column,
    alarm_steps,
    bargauge_panel,
    board,
    query,
    query_variable,
    row,
    stat_panel,
    table_panel,
    timeseries_panel,
)

UID = "charter-operations"
SERVICES = 'job=~"ingest|indicators|alerts"'
NETWORKS = 'network=~"$network"'


def _rate(metric: str, by: str, labels: str = "") -> str:
    selector = f"{metric}{{{labels}}}" if labels else metric
    return f"sum by ({by}) (rate({selector}[$__rate_interval]))"


def _latency(quantile: float) -> str:
    return (
        f"histogram_quantile({quantile:g}, sum by (le) (rate(charter_ingest_latency_seconds_bucket[$__rate_interval])))"
    )


def operations_board() -> dashboard_builders.Dashboard:
    """What operators watch: throughput, rejects, lag, event-time progress, notifications."""
    up = stat_panel(
        "Services up",
        "Whether Prometheus scrapes each charter service (1: up). Down for 2 minutes pages (CharterServiceDown).",
        [query(f"up{{{SERVICES}}}", "{{job}}")],
        unit="none",
        steps=(
            dashboard_builders.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=None, color="red"), model.Threshold(value=1, color="green")])
        ),
        span=6,
    ).mappings(
        [
            model.ValueMap(
                options={
                    "0": model.ValueMappingResult(text="down", color="red"),
                    "1": model.ValueMappingResult(text="up", color="green"),
                }
            )
        ]
    )
    return (
        board(
            UID,
            "Charter — operations",
            "The product itself: events in and rejected, consumer lag, how far the indicators are complete in "
            "event time, alert transitions and notifications.",
            ["operations"],
        )
        .with_variable(
            query_variable(
                "network",
                "Network",
                "label_values(charter_ingest_events_accepted_total, network)",
                "Networks shown in the ingest and late-event panels.",
                multi=True,
                all_value=".*",
            )
        )
        .with_row(row("Health"))
        .with_panel(up)
        .with_panel(
            stat_panel(
                "Events accepted per second",
                "Events ingest validated and wrote to the canonical topics, per second, selected networks.",
                [query(f"sum(rate(charter_ingest_events_accepted_total{{{NETWORKS}}}[$__rate_interval]))")],
                unit=PER_SECOND,
                span=6,
            )
        )
        .with_panel(
            stat_panel(
                "Consumer lag",
                "Messages the services' consumer groups have not processed yet, all topics.",
                [query("sum(charter_kafka_consumer_lag_messages)")],
                unit=COUNT,
                steps=alarm_steps(100_000),
                span=6,
            )
        )
        .with_panel(
            stat_panel(
                "Indicators complete up to",
                "The event time up to which the indicators are complete (the slowest instance's watermark).",
                [query("min(charter_indicators_watermark_seconds) * 1000")],
                unit="dateTimeAsIso",
                span=6,
            )
        )
        .with_row(row("Ingest"))
        .with_panel(
            timeseries_panel(
                "Events accepted per second, by network",
                "Events validated, de-duplicated and written to the canonical topics.",
                [query(_rate("charter_ingest_events_accepted_total", "network", NETWORKS), "{{network}}")],
                unit=PER_SECOND,
                stacked=True,
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Events accepted per second, by type",
                "Counters opened and closed, calls, case completions.",
                [query(_rate("charter_ingest_events_accepted_total", "type", NETWORKS), "{{type}}")],
                unit=PER_SECOND,
                stacked=True,
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Events rejected per second, by reason",
                "Events sent to charter.dead-letter (or refused over HTTPS): schema, duplicate, in_future, "
                "too_old, wrong_network… Integrators see each reject and its reason there.",
                [query(_rate("charter_ingest_events_rejected_total", "reason", NETWORKS), "{{reason}}")],
                unit=PER_SECOND,
                stacked=True,
                span=8,
            )
        )
        .with_panel(
            table_panel(
                "Events rejected over the time range",
                "How many events of each network were rejected, and why, over the board's time range.",
                "network",
                [
                    Column(
                        "Rejected",
                        f"sum by (network, reason) (increase(charter_ingest_events_rejected_total{{{NETWORKS}}}"
                        "[$__range])) > 0",
                    )
                ],
                sort_by="Rejected",
                descending=True,
                span=8,
                height=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Ingest latency",
                "From arrival (the raw record's broker timestamp, or the HTTPS request) to the canonical write "
                "acknowledged by Kafka: median, 90th and 99th percentiles.",
                [
                    query(_latency(0.5), "median", ref="A"),
                    query(_latency(0.9), "90th percentile", ref="B"),
                    query(_latency(0.99), "99th percentile", ref="C"),
                ],
                unit=SECONDS,
                span=16,
            )
        )
        .with_row(row("Processing"))
        .with_panel(
            timeseries_panel(
                "Consumer lag, by service and topic",
                "Messages not yet processed, per consumer group and topic (summed over partitions and instances).",
                [query("sum by (service, topic) (charter_kafka_consumer_lag_messages)", "{{service}} {{topic}}")],
                unit=COUNT,
            )
        )
        .with_panel(
            timeseries_panel(
                "Indicators behind the wall clock",
                "Wall-clock time minus the event time the indicators are complete up to (the watermark, which "
                "trails the latest events by the grace period). Grows during a replay or a backlog.",
                [query("time() - min(charter_indicators_watermark_seconds)", "behind")],
                unit=SECONDS,
            )
        )
        .with_panel(
            timeseries_panel(
                "Events counted per second, by type",
                "Events the indicators service counted in the indicators.",
                [query(_rate("charter_indicators_events_total", "type"), "{{type}}")],
                unit=PER_SECOND,
                stacked=True,
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Events not counted per second, by reason",
                "Events the indicators service did not count: late (beyond the grace period), duplicate, "
                "unknown_site (not in the registry), schema. Each goes to charter.dead-letter.",
                [query(_rate("charter_indicators_events_rejected_total", "reason"), "{{reason}}")],
                unit=PER_SECOND,
                stacked=True,
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Late events per second, by network",
                "Events later than the grace period, per network and type: not counted, never silently dropped.",
                [
                    query(
                        _rate("charter_events_late_total", "network, type", NETWORKS),
                        "{{network}} {{type}}",
                    )
                ],
                unit=PER_SECOND,
                stacked=True,
                span=8,
            )
        )
        .with_row(row("Alerts"))
        .with_panel(
            timeseries_panel(
                "Alert transitions per second, by status",
                "Charter alerts becoming pending, firing or resolved.",
                [query(_rate("charter_alert_transitions_total", "status"), "{{status}}")],
                unit=PER_SECOND,
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Alert notifications per second, by receiver and outcome",
                "Deliveries to Alertmanager, the webhook and e-mail: delivered, failed (retried with backoff), "
                "duplicate (already delivered, not sent again).",
                [
                    query(
                        _rate("charter_alert_notifications_total", "receiver, outcome"),
                        "{{receiver}} {{outcome}}",
                    )
                ],
                unit=PER_SECOND,
                span=8,
            )
        )
        .with_panel(
            bargauge_panel(
                "Alert notifications over the time range",
                "Notifications per receiver and outcome over the board's time range.",
                [
                    query(
                        "sort_desc(sum by (receiver, outcome) (increase(charter_alert_notifications_total[$__range])))",
                        "{{receiver}} {{outcome}}",
                        instant=True,
                    )
                ],
                unit=COUNT,
                span=8,
            )
        )
    )
