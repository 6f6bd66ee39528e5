"""The national overview: the three indicators now and over 7 days, networks ranked, active alerts."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from charter_ops.dashboards.kit import (
    COUNT,
    RATIO,
    Charter,
    Column,
    alarm_steps,
    board,
    link,
    query,
    ratio_of,
    ratio_stat,
    row,
    stat_panel,
    table_panel,
    timeseries_panel,
)

UID = "charter-overview"
NATION = 'network="",department=""'
NETWORKS = 'network!="",department=""'
#: "no alert firing" as 0 while the alerts service is up (its gauge exists only once an alert fired).
ALERTS_UP_ZERO = '(sum(up{job="alerts"} == 1) * 0)'


def overview(charter: Charter, network_board: str) -> dashboard_builders.Dashboard:
    """The DITP's first screen."""
    opening, pickup, deadline = charter.opening_rate, charter.pickup_rate, charter.deadline_compliance
    by_network = f"/d/{network_board}?var-network=${{__data.fields.network}}"
    return (
        board(
            UID,
            "Charter — national overview",
            "The three charter indicators for the whole country and per network, live, and the alerts firing.",
            ["overview"],
        )
        .with_row(row("Nation, now"))
        .with_panel(
            ratio_stat(
                "Opening rate now",
                "Reception sites open now / sites scheduled open now, all networks.",
                f'charter_opening_rate_ratio{{{NATION},window="live"}}',
                opening,
            )
        )
        .with_panel(
            ratio_stat(
                "Opening rate today",
                "Time sites were open within their schedule / time scheduled, since local midnight, all networks.",
                f'charter_opening_rate_ratio{{{NATION},window="today"}}',
                opening,
            )
        )
        .with_panel(
            ratio_stat(
                "Pickup rate, last hour",
                "Calls answered by an agent / calls offered (short abandons and voice-server calls excluded), "
                "over the last hour, all networks.",
                f'charter_pickup_rate_ratio{{{NATION},window="1h"}}',
                pickup,
            )
        )
        .with_panel(
            ratio_stat(
                "Deadline compliance today",
                "Cases completed within their deadline / cases completed that had one, since local midnight.",
                f'charter_deadline_compliance_ratio{{{NATION},window="today"}}',
                deadline,
            )
        )
        .with_panel(
            stat_panel(
                "Sites open now",
                "Reception sites open now, and sites scheduled open now, all networks.",
                [
                    query(f"charter_sites_open{{{NATION}}}", "open", ref="A"),
                    query(f"charter_sites_scheduled_open{{{NATION}}}", "scheduled", ref="B"),
                ],
                unit=COUNT,
            )
        )
        .with_panel(
            stat_panel(
                "Alerts firing",
                "Charter alerts firing now (one per network and one per department breaching a rule), "
                "from the alerts service.",
                [query(f"sum(charter_alerts_firing) or on() {ALERTS_UP_ZERO}")],
                unit=COUNT,
                steps=alarm_steps(),
            )
        )
        .with_row(row("Nation, over 7 days"))
        .with_panel(
            ratio_stat(
                "Opening rate, 7 days",
                "Time open within schedule / time scheduled, today and the six days before, all networks.",
                f'charter_opening_rate_ratio{{{NATION},window="7d"}}',
                opening,
            )
        )
        .with_panel(
            ratio_stat(
                "Pickup rate, 7 days",
                "Calls answered / calls offered over today and the six days before, all networks.",
                f'charter_pickup_rate_ratio{{{NATION},window="7d"}}',
                pickup,
            )
        )
        .with_panel(
            ratio_stat(
                "Deadline compliance, 7 days",
                "Cases within deadline / cases with a deadline, today and the six days before: the charter's window.",
                f'charter_deadline_compliance_ratio{{{NATION},window="7d"}}',
                deadline,
            )
        )
        .with_panel(
            stat_panel(
                "Calls offered, 7 days",
                "Calls offered to agents over 7 days, all networks (the pickup rate's denominator).",
                [query(f'charter_calls_offered{{{NATION},window="7d"}}')],
                unit=COUNT,
            )
        )
        .with_panel(
            stat_panel(
                "Cases completed, 7 days",
                "Cases completed over 7 days, all networks.",
                [query(f'charter_cases_completed{{{NATION},window="7d"}}')],
                unit=COUNT,
            )
        )
        .with_panel(
            stat_panel(
                "Stale sites now",
                "Sites that sent no counter status for too long: counted closed, never assumed open.",
                [query(f"charter_sites_stale{{{NATION}}}")],
                unit=COUNT,
            )
        )
        .with_row(row("Networks"))
        .with_panel(
            table_panel(
                "Networks ranked",
                "One row per network, computed from the network's exported parts (sum of the numerator over "
                "sum of the denominator). Worst pickup rate first; click a header to rank by another "
                "indicator, a network to open its board. Red below the charter.",
                "network",
                [
                    Column(
                        "Opening rate now",
                        ratio_of(
                            f"charter_sites_open{{{NETWORKS}}}",
                            f"charter_sites_scheduled_open{{{NETWORKS}}}",
                            "network",
                        ),
                        RATIO,
                        opening,
                    ),
                    Column(
                        "Opening rate today",
                        ratio_of(
                            f'charter_opening_open_seconds{{{NETWORKS},window="today"}}',
                            f'charter_opening_scheduled_seconds{{{NETWORKS},window="today"}}',
                            "network",
                        ),
                        RATIO,
                        opening,
                    ),
                    Column(
                        "Pickup rate, last hour",
                        ratio_of(
                            f'charter_calls_answered{{{NETWORKS},window="1h"}}',
                            f'charter_calls_offered{{{NETWORKS},window="1h"}}',
                            "network",
                        ),
                        RATIO,
                        pickup,
                    ),
                    Column(
                        "Deadline compliance, 7 days",
                        ratio_of(
                            f'charter_cases_within_deadline{{{NETWORKS},window="7d"}}',
                            f'charter_cases_completed{{{NETWORKS},window="7d"}}',
                            "network",
                        ),
                        RATIO,
                        deadline,
                    ),
                    Column(
                        "Calls offered, last hour",
                        f'sum by (network) (charter_calls_offered{{{NETWORKS},window="1h"}})',
                    ),
                    Column("Alerts firing", "sum by (network) (charter_alerts_firing)", alarm=True),
                ],
                sort_by="Pickup rate, last hour",
                height=9,
                links=[link("Network board", f"/d/{network_board}", "The board of one network, its departments")],
            ).data_links([link("Open the ${__data.fields.network} board", by_network, "Departments, calls, cases")])
        )
        .with_panel(
            timeseries_panel(
                "Opening rate now, per network",
                "Sites open / sites scheduled open, per network, over the board's time range.",
                [query(f'charter_opening_rate_ratio{{{NETWORKS},window="live"}}', "{{network}}")],
                unit=RATIO,
                threshold=opening,
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Pickup rate over the last hour, per network",
                "Rolling one-hour pickup rate per network (each point covers the hour before it).",
                [query(f'charter_pickup_rate_ratio{{{NETWORKS},window="1h"}}', "{{network}}")],
                unit=RATIO,
                threshold=pickup,
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Deadline compliance over 7 days, per network",
                "Rolling seven-day deadline compliance per network (the charter's window).",
                [query(f'charter_deadline_compliance_ratio{{{NETWORKS},window="7d"}}', "{{network}}")],
                unit=RATIO,
                threshold=deadline,
                span=8,
            )
        )
        .with_row(row("Alerts"))
        .with_panel(
            table_panel(
                "Active alerts",
                "Charter rules breached now, per network and rule (count: the network alert plus one per "
                "department). Details, values and since when: the alerts service's GET /v1/alerts, or Alertmanager.",
                "network",
                [Column("Alerts firing", "sum by (network, rule) (charter_alerts_firing) > 0", alarm=True)],
                sort_by="Alerts firing",
                descending=True,
                span=12,
                height=8,
            ).data_links([link("Open the ${__data.fields.network} board", by_network, "Where and since when")])
        )
        .with_panel(
            timeseries_panel(
                "Alerts firing, per rule",
                "How many alerts of each charter rule fire, over the board's time range.",
                [query("sum by (rule) (charter_alerts_firing)", "{{rule}}")],
                unit=COUNT,
                span=12,
                stacked=True,
            )
        )
    )
