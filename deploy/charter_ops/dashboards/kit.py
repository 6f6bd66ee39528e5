"""Building blocks of the charter boards: datasource, variables, charter thresholds, panels.

Everything here goes through grafana-foundation-sdk's builders; no dashboard JSON is
written by hand. Every panel and every query reads Prometheus through the ``datasource``
template variable (never a fixed datasource uid), carries a unit and a description, and
the charter's thresholds come from the alerts service's rules model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from charter_alerts.domain.rules import BurnRateRule, RuleSet, ThresholdRule

#: The Prometheus datasource, chosen by the board's ``datasource`` variable.
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
Target = cogbuilder.Builder[cogvariants.Dataquery]
Link = cogbuilder.Builder[model.DashboardLink]
#: Units (Grafana unit ids) used by the boards.
RATIO = "percentunit"
COUNT = "short"
SECONDS = "s"
PER_SECOND = "ops"

RED = "red"
GREEN = "green"
ORANGE = "orange"

#: Where each indicator is judged by default: the window of its charter threshold rule.
JUDGED_WINDOW = {"opening_rate": "live", "pickup_rate": "1h", "deadline_compliance": "7d"}


class BoardsError(ValueError):
    """The boards cannot be built (e.g. the rules file lacks an indicator's threshold)."""


@dataclass(frozen=True)
class Charter:
    """The charter's thresholds and minimum volumes, as the rules file says."""

    opening_rate: float
    pickup_rate: float
    deadline_compliance: float
    opening_min_sites: float
    pickup_min_calls: float
    deadline_min_cases: float

    @classmethod
    def from_rules(cls, rules: RuleSet) -> Charter:
        """Read the threshold (and minimum volume) of each indicator from its default rule.

        The threshold rule on the indicator's judged window wins (``opening_rate_live``,
        ``pickup_rate_1h``, ``deadline_compliance_7d`` in the shipped file), then any
        threshold rule on the indicator, then a burn-rate rule's objective.
        """
        found: dict[str, tuple[float, float]] = {}
        for indicator, window in JUDGED_WINDOW.items():
            candidates: list[tuple[int, float, float]] = []
            for rule in rules:
                if rule.indicator != indicator or not rule.enabled:
                    continue
                if isinstance(rule, ThresholdRule):
                    candidates.append((0 if rule.window == window else 1, rule.threshold, rule.min_volume))
                elif isinstance(rule, BurnRateRule):
                    candidates.append((2, rule.objective, rule.min_volume))
            if not candidates:
                raise BoardsError(f"the rules file has no enabled rule on {indicator}: the boards need its threshold")
            _, threshold, volume = min(candidates, key=lambda c: c[0])
            found[indicator] = (threshold, volume)
        return cls(
            opening_rate=found["opening_rate"][0],
            pickup_rate=found["pickup_rate"][0],
            deadline_compliance=found["deadline_compliance"][0],
            opening_min_sites=found["opening_rate"][1],
            pickup_min_calls=found["pickup_rate"][1],
            deadline_min_cases=found["deadline_compliance"][1],
        )

    def threshold(self, indicator: str) -> float:
        return {
            "opening_rate": self.opening_rate,
            "pickup_rate": self.pickup_rate,
            "deadline_compliance": self.deadline_compliance,
        }[indicator]


def percent(value: float) -> str:
    """0.97 -> '97 %' (for descriptions)."""
    return f"{value * 100:g} %"


# -- variables ---------------------------------------------------------------------------


def datasource_variable() -> dashboard_builders.DatasourceVariable:
    """The Prometheus datasource (Grafana's default one of that type unless chosen)."""
    return (
        dashboard_builders.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .description("The Prometheus that scrapes the charter services.")
    )


def query_variable(
    name: str, label: str, query: str, description: str, *, multi: bool = False, all_value: str | None = None
) -> dashboard_builders.QueryVariable:
    """Values of a label, refreshed when the time range changes (Grafana's ``label_values``)."""
    variable = (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
    )
    if all_value is not None:
        variable = (
            variable.include_all(True)
            .all_value(all_value)
            .current(model.VariableOption(text="All", value="$__all", selected=True))
        )
    return variable


# -- queries -----------------------------------------------------------------------------


def query(
    expr: str, legend: str | None = None, *, ref: str = "A", instant: bool = False, table: bool = False
) -> prometheus.Dataquery:
    """One PromQL target on the templated datasource: over the time range, or at its end (``instant``)."""
    target = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend is not None:
        target = target.legend_format(legend)
    if table:
        return target.instant().format(PromQueryFormat.TABLE)
    if instant:
        return target.instant().format(PromQueryFormat.TIME_SERIES)
    return target.range().format(PromQueryFormat.TIME_SERIES)


def ratio_of(numerator: str, denominator: str, by: str = "") -> str:
    """Exact ratio of exported parts: sum(numerator) / sum(denominator), never an average of ratios.

    A zero denominator gives no value rather than NaN.
    """
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} ({numerator}) / (sum{grouping} ({denominator}) > 0)"


def at_least(numerator: str, denominator: str, by: str, minimum: float) -> str:
    """The exact ratio of the groups whose denominator reaches ``minimum`` (the charter's volume to judge)."""
    return f"sum by ({by}) ({numerator}) / (sum by ({by}) ({denominator}) >= {minimum:g})"


# -- thresholds and panels -----------------------------------------------------------------


def charter_steps(threshold: float) -> dashboard_builders.ThresholdsConfig:
    """Red below the charter's threshold, green at or above it."""
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=None, color=RED), model.Threshold(value=threshold, color=GREEN)])
    )


def neutral_steps() -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps([model.Threshold(color=GREEN)])
    )


def alarm_steps(at: float = 1) -> dashboard_builders.ThresholdsConfig:
    """Green below ``at``, red from it (counts of things that should be zero)."""
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=None, color=GREEN), model.Threshold(value=at, color=RED)])
    )


def row(title: str) -> dashboard_builders.Row:
    return dashboard_builders.Row(title)


def stat_panel(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    steps: dashboard_builders.ThresholdsConfig | None = None,
    span: int = 4,
    height: int = 4,
    decimals: float | None = None,
) -> stat.Panel:
    """A big number (the last value), coloured by ``steps``."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .unit(unit)
        .thresholds(steps or neutral_steps())
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .text_mode(common.BigValueTextMode.AUTO)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(span)
        .height(height)
    )
    if unit == RATIO:
        panel = panel.min(0).max(1)
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def ratio_stat(title: str, description: str, expr: str, threshold: float, span: int = 4) -> stat.Panel:
    """An indicator now, green at the charter's threshold."""
    return stat_panel(
        title,
        f"{description} Green at the charter's {percent(threshold)}.",
        [query(expr)],
        unit=RATIO,
        steps=charter_steps(threshold),
        span=span,
        decimals=1,
    )


def timeseries_panel(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    threshold: float | None = None,
    span: int = 12,
    height: int = 8,
    stacked: bool = False,
) -> timeseries.Panel:
    """Lines over the board's time range; a charter threshold is drawn as a dashed red/green line."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .unit(unit)
        .line_width(2)
        .fill_opacity(10)
        .span(span)
        .height(height)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["lastNotNull"])
        )
        .tooltip(
            common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.ASCENDING)
        )
    )
    if unit == RATIO:
        panel = panel.min(0).max(1)
    if threshold is not None:
        panel = panel.thresholds(charter_steps(threshold)).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    else:
        panel = panel.thresholds(neutral_steps())
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


def bargauge_panel(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    steps: dashboard_builders.ThresholdsConfig | None = None,
    span: int = 8,
    height: int = 9,
) -> bargauge.Panel:
    """Horizontal bars, one per series (worst first when the query sorts them so)."""
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .unit(unit)
        .thresholds(steps or neutral_steps())
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .show_unfilled(True)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(span)
        .height(height)
    )
    if unit == RATIO:
        panel = panel.min(0).max(1)
    return panel


@dataclass(frozen=True)
class Column:
    """One column of a table panel: its query (instant, one value per row) and how it shows."""

    header: str
    expr: str
    unit: str = COUNT
    threshold: float | None = None
    alarm: bool = False


def table_panel(
    title: str,
    description: str,
    key: str,
    columns: Sequence[Column],
    *,
    sort_by: str | None = None,
    descending: bool = False,
    span: int = 24,
    height: int = 10,
    links: Sequence[Link] = (),
) -> table.Panel:
    """Rows keyed by the label ``key``; each column an instant query, joined on the key.

    Thresholds colour the cells of the indicator columns (red below the charter).
    """
    refs = [chr(ord("A") + i) for i in range(len(columns))]
    # Grafana names the value field of a lone table query "Value", of several "Value #<refId>"
    values = ["Value"] if len(columns) == 1 else [f"Value #{ref}" for ref in refs]
    rename = {value: column.header for value, column in zip(values, columns, strict=True)}
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets([query(c.expr, ref=ref, table=True) for ref, c in zip(refs, columns, strict=True)])
        .unit(COUNT)
        .thresholds(neutral_steps())
        .align(common.FieldTextAlignment.AUTO)
        .inspect(False)
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "indexByName": {key: 0, **{header: i + 1 for i, header in enumerate(rename.values())}},
                    "renameByName": rename,
                },
            )
        )
        .span(span)
        .height(height)
    )
    for column in columns:
        properties = [model.DynamicConfigValue(id_val="unit", value=column.unit)]
        if column.unit == RATIO:
            properties += [
                model.DynamicConfigValue(id_val="decimals", value=1),
                model.DynamicConfigValue(id_val="min", value=0),
                model.DynamicConfigValue(id_val="max", value=1),
            ]
        steps = None
        if column.threshold is not None:
            steps = charter_steps(column.threshold)
        elif column.alarm:
            steps = alarm_steps()
        if steps is not None:
            properties += [
                model.DynamicConfigValue(id_val="thresholds", value=steps.build()),
                model.DynamicConfigValue(
                    id_val="custom.cellOptions",
                    value=common.TableColoredBackgroundCellOptions(mode=common.TableCellBackgroundDisplayMode.BASIC),
                ),
            ]
        panel = panel.override_by_name(column.header, properties)
    if sort_by is not None:
        panel = panel.sort_by([common_builders.TableSortByFieldState().display_name(sort_by).desc(descending)])
    if links:
        panel = panel.links(list(links))
    return panel


def link(title: str, url: str, tooltip: str, *, keep_time: bool = False) -> Link:
    """A link shown on a panel (or a board), opening in a new tab."""
    return (
        dashboard_builders.DashboardLink(title)
        .type(model.DashboardLinkType.LINK)
        .url(url)
        .tooltip(tooltip)
        .target_blank(True)
        .keep_time(keep_time)
        .include_vars(False)
        .as_dropdown(False)
    )


def board(uid: str, title: str, description: str, tags: Sequence[str]) -> dashboard_builders.Dashboard:
    """A read-only board (it is provisioned from code), refreshed every 30 s, in Paris time."""
    return (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["charter", *tags])
        .readonly()
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("Europe/Paris")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .timepicker(dashboard_builders.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m", "15m"]))
        .with_variable(datasource_variable())
    )
