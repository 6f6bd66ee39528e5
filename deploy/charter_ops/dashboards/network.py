"""The network board (uid ``charter-network``: the alerts service links to it with var-network, var-department).

Indicator figures of the selected departments are computed from the exported parts
(sum of numerators over sum of denominators), so "All" gives exactly the network's
figure and any selection is exact. Site-level detail is not in Prometheus by design: the
department table and the "worst departments" bars link to the indicators read API.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from charter_ops.dashboards.kit import (
    COUNT,
    RATIO,
    SECONDS,
    Charter,
    Column,
    alarm_steps,
    at_least,
    bargauge_panel,
    board,
    charter_steps,
    link,
    percent,
    query,
    query_variable,
    ratio_of,
    ratio_stat,
    row,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from charter_ops.dashboards.overview import ALERTS_UP_ZERO

UID = "charter-network"
#: The selected network and departments ("All" is every department of the network).
SELECTED = 'network="$network",department=~"$department"'
#: The network level, for the figures exported per network only (waits, service level, procedures).
NETWORK = 'network="$network",department=""'
DEFAULT_READ_API = "http://localhost:8002"
DEPARTMENT_DEADLINE_NOTE = (
    " At department level, cases of procedures without a deadline count in the denominator: their number is "
    "exported per network only (panel 'Cases without a deadline')."
)


def _sum(metric: str, window: str | None = None) -> str:
    labels = SELECTED if window is None else f'{SELECTED},window="{window}"'
    return f"sum({metric}{{{labels}}})"


def _parts(metric: str, window: str | None = None) -> str:
    return f"{metric}{{{SELECTED}}}" if window is None else f'{metric}{{{SELECTED},window="{window}"}}'


def read_api_variable() -> dashboard_builders.TextBoxVariable:
    """Where browsers reach the indicators service's read API (site-level detail)."""
    return (
        dashboard_builders.TextBoxVariable("read_api")
        .label("Indicators read API")
        .description("Base URL of the indicators service as your browser reaches it (site-level detail).")
        .default_value(DEFAULT_READ_API)
    )


def network_board(charter: Charter) -> dashboard_builders.Dashboard:
    """One network, its departments, calls, cases and sites."""
    opening, pickup, deadline = charter.opening_rate, charter.pickup_rate, charter.deadline_compliance
    department_api = "${read_api}/v1/indicators?network=${network}&department=${__data.fields.department}"
    bar_api = "${read_api}/v1/indicators?network=${network}&department=${__field.labels.department}"
    site_links = [
        link(
            "Sites of ${__field.labels.department} (read API)",
            bar_api,
            "Every site's latest snapshots in this department: site-level detail is not in Prometheus",
        )
    ]
    opening_now = ratio_of(_parts("charter_sites_open"), _parts("charter_sites_scheduled_open"))
    opening_today = ratio_of(
        _parts("charter_opening_open_seconds", "today"), _parts("charter_opening_scheduled_seconds", "today")
    )
    pickup_1h = ratio_of(_parts("charter_calls_answered", "1h"), _parts("charter_calls_offered", "1h"))
    pickup_15m = ratio_of(_parts("charter_calls_answered", "15m"), _parts("charter_calls_offered", "15m"))
    deadline_7d = ratio_of(_parts("charter_cases_within_deadline", "7d"), _parts("charter_cases_completed", "7d"))
    deadline_today = ratio_of(
        _parts("charter_cases_within_deadline", "today"), _parts("charter_cases_completed", "today")
    )
    return (
        board(
            UID,
            "Charter — network",
            "One network: its indicators over the selected departments, the department breakdown, calls, "
            "cases and sites. Alerts link here with the network and department selected.",
            ["network"],
        )
        .with_variable(
            query_variable(
                "network",
                "Network",
                "label_values(charter_sites_scheduled_open, network)",
                "The network shown.",
            )
        )
        .with_variable(
            query_variable(
                "department",
                "Department",
                'label_values(charter_sites_scheduled_open{network="$network"}, department)',
                "Departments of the network included in the figures (All: the whole network).",
                multi=True,
                all_value=".+",
            )
        )
        .with_variable(read_api_variable())
        .link(
            link(
                "National overview",
                "/d/charter-overview",
                "Every network, ranked",
                keep_time=True,
            )
        )
        .link(
            link(
                "Stale sites (read API)",
                "${read_api}/v1/sites/stale?network=${network}",
                "Sites of the network with no counter status for too long",
            )
        )
        .with_row(row("$network, selected departments, now"))
        .with_panel(
            ratio_stat(
                "Opening rate now",
                "Sites open now / sites scheduled open now, over the selected departments.",
                opening_now,
                opening,
            )
        )
        .with_panel(
            ratio_stat(
                "Opening rate today",
                "Time open within schedule / time scheduled since local midnight, selected departments.",
                opening_today,
                opening,
            )
        )
        .with_panel(
            ratio_stat(
                "Pickup rate, last hour",
                "Calls answered / calls offered over the last hour, selected departments.",
                pickup_1h,
                pickup,
            )
        )
        .with_panel(
            ratio_stat(
                "Deadline compliance, 7 days",
                "Cases within deadline / cases completed over 7 days, selected departments." + DEPARTMENT_DEADLINE_NOTE,
                deadline_7d,
                deadline,
            )
        )
        .with_panel(
            stat_panel(
                "Sites now",
                "Sites open now, scheduled open now, and stale (no counter status for too long: counted closed), "
                "selected departments.",
                [
                    query(_sum("charter_sites_open"), "open", ref="A"),
                    query(_sum("charter_sites_scheduled_open"), "scheduled", ref="B"),
                    query(_sum("charter_sites_stale"), "stale", ref="C"),
                ],
                unit=COUNT,
            )
        )
        .with_panel(
            stat_panel(
                "Alerts firing",
                "Charter alerts of this network firing now (the network alert plus one per department breaching).",
                [query(f'sum(charter_alerts_firing{{network="$network"}}) or on() {ALERTS_UP_ZERO}')],
                unit=COUNT,
                steps=alarm_steps(),
            )
        )
        .with_row(row("Departments"))
        .with_panel(
            table_panel(
                "Departments of $network",
                "One row per department, from its exported parts. Red below the charter. Click a department "
                "for its sites in the indicators read API (site-level detail is not in Prometheus)."
                + DEPARTMENT_DEADLINE_NOTE,
                "department",
                [
                    Column("Sites open now", f"sum by (department) ({_parts('charter_sites_open')})"),
                    Column("Sites scheduled now", f"sum by (department) ({_parts('charter_sites_scheduled_open')})"),
                    Column(
                        "Opening rate now",
                        ratio_of(_parts("charter_sites_open"), _parts("charter_sites_scheduled_open"), "department"),
                        RATIO,
                        opening,
                    ),
                    Column(
                        "Opening rate today",
                        ratio_of(
                            _parts("charter_opening_open_seconds", "today"),
                            _parts("charter_opening_scheduled_seconds", "today"),
                            "department",
                        ),
                        RATIO,
                        opening,
                    ),
                    Column(
                        "Pickup rate, last hour",
                        ratio_of(
                            _parts("charter_calls_answered", "1h"), _parts("charter_calls_offered", "1h"), "department"
                        ),
                        RATIO,
                        pickup,
                    ),
                    Column(
                        "Calls offered, last hour", f"sum by (department) ({_parts('charter_calls_offered', '1h')})"
                    ),
                    Column(
                        "Deadline compliance, 7 days",
                        ratio_of(
                            _parts("charter_cases_within_deadline", "7d"),
                            _parts("charter_cases_completed", "7d"),
                            "department",
                        ),
                        RATIO,
                        deadline,
                    ),
                    Column(
                        "Cases completed, 7 days", f"sum by (department) ({_parts('charter_cases_completed', '7d')})"
                    ),
                    Column("Stale sites", f"sum by (department) ({_parts('charter_sites_stale')})", alarm=True),
                ],
                sort_by="Pickup rate, last hour",
                height=12,
            ).data_links([link("Sites of ${__data.fields.department} (read API)", department_api, "Site-level detail")])
        )
        .with_panel(
            bargauge_panel(
                "Worst departments: opening rate today",
                "The ten departments with the lowest opening rate since local midnight (departments with "
                "scheduled time). Click a bar for the department's sites.",
                [
                    query(
                        "sort(bottomk(10, "
                        + ratio_of(
                            _parts("charter_opening_open_seconds", "today"),
                            _parts("charter_opening_scheduled_seconds", "today"),
                            "department",
                        )
                        + "))",
                        "{{department}}",
                        instant=True,
                    )
                ],
                unit=RATIO,
                steps=charter_steps(opening),
            ).data_links(site_links)
        )
        .with_panel(
            bargauge_panel(
                "Worst departments: pickup rate, last hour",
                f"The ten departments with the lowest pickup rate over the last hour, among those with at least "
                f"{charter.pickup_min_calls:g} calls offered (the charter's minimum volume to judge). "
                f"Green from {percent(pickup)}. Click a bar for the department's sites.",
                [
                    query(
                        "sort(bottomk(10, "
                        + at_least(
                            _parts("charter_calls_answered", "1h"),
                            _parts("charter_calls_offered", "1h"),
                            "department",
                            charter.pickup_min_calls,
                        )
                        + "))",
                        "{{department}}",
                        instant=True,
                    )
                ],
                unit=RATIO,
                steps=charter_steps(pickup),
            ).data_links(site_links)
        )
        .with_panel(
            bargauge_panel(
                "Worst departments: deadline compliance, 7 days",
                f"The ten departments with the lowest deadline compliance over 7 days, among those with at least "
                f"{charter.deadline_min_cases:g} cases completed. Click a bar for the department's sites."
                + DEPARTMENT_DEADLINE_NOTE,
                [
                    query(
                        "sort(bottomk(10, "
                        + at_least(
                            _parts("charter_cases_within_deadline", "7d"),
                            _parts("charter_cases_completed", "7d"),
                            "department",
                            charter.deadline_min_cases,
                        )
                        + "))",
                        "{{department}}",
                        instant=True,
                    )
                ],
                unit=RATIO,
                steps=charter_steps(deadline),
            ).data_links(site_links)
        )
        .with_row(row("Calls"))
        .with_panel(
            timeseries_panel(
                "Pickup rate, selected departments",
                "Rolling pickup rate over the last hour and the last 15 minutes, from calls answered and "
                "offered in the selected departments.",
                [query(pickup_1h, "last hour", ref="A"), query(pickup_15m, "last 15 minutes", ref="B")],
                unit=RATIO,
                threshold=pickup,
            )
        )
        .with_panel(
            timeseries_panel(
                "Calls offered and answered over the last hour, selected departments",
                "Calls offered to agents (short abandons and voice-server calls excluded) and answered, "
                "over the rolling last hour.",
                [
                    query(_sum("charter_calls_offered", "1h"), "offered", ref="A"),
                    query(_sum("charter_calls_answered", "1h"), "answered", ref="B"),
                ],
                unit=COUNT,
            )
        )
        .with_panel(
            timeseries_panel(
                "Call wait before an agent answers, $network",
                "Mean and 90th percentile of the wait of answered calls over the last hour, for the whole "
                "network (exported per network only).",
                [
                    query(f'charter_call_wait_mean_seconds{{{NETWORK},window="1h"}}', "mean", ref="A"),
                    query(f'charter_call_wait_p90_seconds{{{NETWORK},window="1h"}}', "90th percentile", ref="B"),
                ],
                unit=SECONDS,
            )
        )
        .with_panel(
            timeseries_panel(
                "Service level, abandonment and raw pickup rate, $network",
                "Over the last hour, whole network: calls answered within 60 s / offered, calls abandoned / "
                "offered, and the pickup rate counting short abandons.",
                [
                    query(f'charter_service_level_ratio{{{NETWORK},window="1h"}}', "service level (60 s)", ref="A"),
                    query(f'charter_abandonment_rate_ratio{{{NETWORK},window="1h"}}', "abandonment", ref="B"),
                    query(f'charter_pickup_raw_rate_ratio{{{NETWORK},window="1h"}}', "raw pickup rate", ref="C"),
                ],
                unit=RATIO,
            )
        )
        .with_row(row("Cases"))
        .with_panel(
            bargauge_panel(
                "Median processing time per procedure, 7 days, $network",
                "Median time from submission to completion of the cases completed over 7 days, per procedure "
                "(procedures not in the procedures file are 'other').",
                [
                    query(
                        'sort_desc(charter_case_processing_median_seconds{network="$network",window="7d"})',
                        "{{procedure}}",
                        instant=True,
                    )
                ],
                unit=SECONDS,
                span=12,
            )
        )
        .with_panel(
            timeseries_panel(
                "Median processing time per procedure today, $network",
                "Median processing time of the cases completed since local midnight, per procedure.",
                [
                    query(
                        'charter_case_processing_median_seconds{network="$network",window="today"}',
                        "{{procedure}}",
                    )
                ],
                unit=SECONDS,
            )
        )
        .with_panel(
            timeseries_panel(
                "Deadline compliance, selected departments",
                "Rolling deadline compliance over 7 days (the charter's window) and since local midnight."
                + DEPARTMENT_DEADLINE_NOTE,
                [query(deadline_7d, "7 days", ref="A"), query(deadline_today, "today", ref="B")],
                unit=RATIO,
                threshold=deadline,
                span=16,
            )
        )
        .with_panel(
            stat_panel(
                "Cases completed, 7 days",
                "Cases completed over 7 days in the selected departments.",
                [query(_sum("charter_cases_completed", "7d"))],
                unit=COUNT,
            )
        )
        .with_panel(
            stat_panel(
                "Cases without a deadline, 7 days",
                "Cases of procedures without a deadline (e.g. information requests) completed over 7 days, "
                "whole network: outside the deadline compliance, their volume shown here.",
                [query(f'charter_cases_without_deadline{{{NETWORK},window="7d"}}')],
                unit=COUNT,
            )
        )
        .with_row(row("Sites"))
        .with_panel(
            timeseries_panel(
                "Opening rate, selected departments",
                "Sites open / sites scheduled open now, and time open / time scheduled since local midnight.",
                [query(opening_now, "now", ref="A"), query(opening_today, "today", ref="B")],
                unit=RATIO,
                threshold=opening,
            )
        )
        .with_panel(
            timeseries_panel(
                "Sites open, scheduled and stale, selected departments",
                "Sites open now, scheduled open now, and stale (counted closed), over the board's time range.",
                [
                    query(_sum("charter_sites_open"), "open", ref="A"),
                    query(_sum("charter_sites_scheduled_open"), "scheduled", ref="B"),
                    query(_sum("charter_sites_stale"), "stale", ref="C"),
                ],
                unit=COUNT,
            )
        )
    )
