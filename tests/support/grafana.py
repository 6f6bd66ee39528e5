"""The boards as Grafana sees them, without a Grafana server.

- ``lint``: the rules of Grafana's dashboard linter (grafana/dashboard-linter) that apply to
  Prometheus boards, plus the charter's own (ratios never aggregated, counters only rated);
- ``Interpolation``: template variables replaced as Grafana's Prometheus datasource does
  before it sends a query (``$network``, multi-value and "All" formatting,
  ``$__rate_interval``, ``$__interval``, ``$__range``…);
- ``Query``: every target of every panel, with what Grafana would ask Prometheus for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import promql_parser

Json = dict[str, Any]

#: Grafana unit ids the boards may use (a subset of Grafana's valueFormats categories).
VALID_UNITS = frozenset(
    {
        "none", "short", "percent", "percentunit", "s", "ms", "m", "h", "d", "dtdurations", "dtdurationms",
        "ops", "reqps", "rps", "wps", "iops", "cps", "opm", "bytes", "decbytes", "dateTimeAsIso",
        "dateTimeAsIsoNoDateIfToday", "dateTimeFromNow", "bool", "bool_yes_no", "bool_on_off",
    }
)  # fmt: skip
TEMPLATED_DATASOURCE = {"$datasource", "${datasource}"}
#: Placeholders that make a templated expression parse (unique durations, like the linter's).
RATE_INTERVAL_PLACEHOLDER = timedelta(seconds=7777)
RANGE_PLACEHOLDER = timedelta(seconds=8888)
INTERVAL_PLACEHOLDER = timedelta(seconds=6666)
RATE_FUNCTIONS = {"rate", "irate", "increase"}
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")
_VARIABLE = re.compile(r"\$\{(?P<braced>[\w.]+)(?::(?P<format>\w+))?\}|\$(?P<plain>\w+)|\[\[(?P<old>\w+)\]\]")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def panels(dashboard: Json) -> Iterator[Json]:
    """Every panel that shows data (rows excluded; the panels of collapsed rows included)."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def rows(dashboard: Json) -> Iterator[Json]:
    return (p for p in dashboard.get("panels", []) if p.get("type") == "row")


def variables(dashboard: Json) -> list[Json]:
    return list(dashboard.get("templating", {}).get("list", []))


# -- parsing -----------------------------------------------------------------------------


def placeholders(expr: str) -> str:
    """The expression with each template variable replaced so that it parses.

    Durations become unique placeholders (so a rule can tell $__rate_interval from a fixed
    window); other variables are left alone inside strings, where Grafana puts them.
    """

    def replace(match: re.Match[str]) -> str:
        name = match["braced"] or match["plain"] or match["old"]
        durations = {
            "__rate_interval": RATE_INTERVAL_PLACEHOLDER,
            "__range": RANGE_PLACEHOLDER,
            "__interval": INTERVAL_PLACEHOLDER,
        }
        if name in durations:
            return f"{int(durations[name].total_seconds())}s"
        return match[0]

    return _VARIABLE.sub(replace, expr)


def parse(expr: str) -> Any:
    """The PromQL syntax tree of a templated expression (ValueError when it does not parse)."""
    return promql_parser.parse(placeholders(expr))


def children(node: Any) -> list[Any]:
    if isinstance(node, promql_parser.AggregateExpr):
        return [n for n in (node.expr, node.param) if n is not None]
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
        return [node.expr]
    return []


def walk(node: Any, parents: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Every node with its ancestors, outermost first."""
    yield node, parents
    for child in children(node):
        yield from walk(child, (*parents, node))


def metric_names(expr: str) -> set[str]:
    return {node.name for node, _ in walk(parse(expr)) if isinstance(node, promql_parser.VectorSelector) and node.name}


def is_counter(name: str) -> bool:
    return name.endswith(COUNTER_SUFFIXES)


def rated(parents: tuple[Any, ...]) -> bool:
    """A vector selector whose parents are ``rate|irate|increase(<it>[window])``."""
    return (
        len(parents) >= 2
        and isinstance(parents[-1], promql_parser.MatrixSelector)
        and isinstance(parents[-2], promql_parser.Call)
        and parents[-2].func.name in RATE_FUNCTIONS
    )


def expression_problems(expr: str, instant: bool) -> list[str]:
    """target-promql, target-rate-interval and target-counter-agg rules, and ratios never aggregated."""
    try:
        tree = parse(expr)
    except ValueError as exc:
        return [f"does not parse: {exc}"]
    problems = []
    for node, parents in walk(tree):
        if isinstance(node, promql_parser.MatrixSelector) and parents:
            call = parents[-1]
            if isinstance(call, promql_parser.Call) and call.func.name in RATE_FUNCTIONS:
                whole_range = instant and call.func.name == "increase" and node.range == RANGE_PLACEHOLDER
                if node.range != RATE_INTERVAL_PLACEHOLDER and not whole_range:
                    problems.append(f"{call.func.name}() window is not $__rate_interval")
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            if is_counter(node.name) and not rated(parents):
                problems.append(f"counter {node.name} outside rate/irate/increase")
            if node.name.endswith("_ratio") and any(isinstance(p, promql_parser.AggregateExpr) for p in parents):
                problems.append(f"ratio {node.name} aggregated: sum the parts instead")
    return problems


# -- the linter's rules ------------------------------------------------------------------


def _datasource_refs(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "datasource":
                yield f"{path}.{key}", item
            yield from _datasource_refs(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _datasource_refs(item, f"{path}[{index}]")


def lint(dashboard: Json) -> list[str]:
    """Problems Grafana's dashboard linter (and the charter's rules) would report; [] when clean."""
    title = dashboard.get("title", "?")
    problems: list[str] = []
    templated = [v for v in variables(dashboard) if v.get("type") == "datasource"]
    if len(templated) != 1:
        problems.append(f"{title}: {len(templated)} datasource variables, expected one")
    for variable in templated:
        if variable.get("name") != "datasource" or variable.get("label") != "Data source":
            problems.append(f"{title}: datasource variable must be named 'datasource', labelled 'Data source'")
        if variable.get("query") != "prometheus":
            problems.append(f"{title}: datasource variable is not of type prometheus")
    if dashboard.get("editable", True):
        problems.append(f"{title}: editable (a provisioned board should not be)")
    for path, ref in _datasource_refs(dashboard):
        uid = ref.get("uid") if isinstance(ref, dict) else ref
        if uid not in TEMPLATED_DATASOURCE:
            problems.append(f"{title}: hard-coded datasource {uid!r} at {path}")
    for variable in variables(dashboard):
        if variable.get("type") != "query":
            continue
        name = variable.get("name")
        if variable.get("refresh") != 2:
            problems.append(f"{title}: variable {name} is not refreshed when the time range changes")
        text = variable.get("query")
        match = _LABEL_VALUES.match(text if isinstance(text, str) else "")
        if match is None:
            problems.append(f"{title}: variable {name} query {text!r} is not label_values(selector, label)")
        else:
            try:
                parse(match["selector"])
            except ValueError as exc:
                problems.append(f"{title}: variable {name} selector does not parse: {exc}")
    for row in rows(dashboard):
        if not row.get("title"):
            problems.append(f"{title}: a row has no title")
    for panel in panels(dashboard):
        where = f"{title} / {panel.get('title') or panel.get('id')}"
        if not panel.get("title") or not panel.get("description"):
            problems.append(f"{where}: no title or no description")
        if panel.get("datasource", {}).get("uid") not in TEMPLATED_DATASOURCE:
            problems.append(f"{where}: does not use the templated datasource")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if unit not in VALID_UNITS:
            problems.append(f"{where}: no valid unit ({unit!r})")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no query")
        for target in targets:
            if target.get("datasource", {}).get("uid") not in TEMPLATED_DATASOURCE:
                problems.append(f"{where} [{target.get('refId')}]: target does not use the templated datasource")
            for problem in expression_problems(target.get("expr", ""), bool(target.get("instant"))):
                problems.append(f"{where} [{target.get('refId')}]: {problem}")
    return problems


# -- interpolation, as Grafana's Prometheus datasource does it ----------------------------

_REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|{}\[\]])")


def regex_escape(value: str) -> str:
    """Grafana's prometheusSpecialRegexEscape (values of multi-value variables)."""
    return _REGEX_SPECIAL.sub(r"\\\\\1", value)


def regular_escape(value: str) -> str:
    """Grafana's prometheusRegularEscape (single-value variables)."""
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def grafana_interval(range_seconds: float, scrape_seconds: float, max_data_points: int = 1000) -> int:
    """$__interval in seconds: the range over the panel's points, never below the scrape interval."""
    return max(int(scrape_seconds), round(range_seconds / max_data_points))


def rate_interval(interval_seconds: int, scrape_seconds: float) -> int:
    """Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval)."""
    return int(max(interval_seconds + scrape_seconds, 4 * scrape_seconds))


@dataclass(frozen=True)
class Selection:
    """What the user chose for a variable: values, or All."""

    values: tuple[str, ...] = ()
    all: bool = False


def format_variable(variable: Json, selection: Selection, options: list[str]) -> str:
    if selection.all:
        if variable.get("allValue"):
            return str(variable["allValue"])
        chosen = options
    else:
        chosen = list(selection.values)
    if not variable.get("multi") and not variable.get("includeAll"):
        return regular_escape(chosen[0])
    escaped = [regex_escape(value) for value in chosen]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


@dataclass(frozen=True)
class Interpolation:
    """Values of every variable for one view of a board (time range, scrape interval, choices)."""

    values: Mapping[str, str]

    @classmethod
    def for_view(
        cls,
        dashboard: Json,
        chosen: Mapping[str, str],
        range_seconds: float,
        scrape_seconds: float,
    ) -> Interpolation:
        """``chosen`` holds each variable's formatted value (see ``format_variable``)."""
        interval = grafana_interval(range_seconds, scrape_seconds)
        values = {
            "__interval": f"{interval}s",
            "__interval_ms": str(interval * 1000),
            "__rate_interval": f"{rate_interval(interval, scrape_seconds)}s",
            "__range": f"{round(range_seconds)}s",
            "__range_s": str(round(range_seconds)),
            "__range_ms": str(round(range_seconds * 1000)),
            **chosen,
        }
        missing = {v["name"] for v in variables(dashboard)} - set(values)
        if missing:
            raise ValueError(f"no value for the variables {sorted(missing)}")
        return cls(values)

    def __call__(self, text: str, extra: Mapping[str, str] | None = None) -> str:
        values = {**self.values, **(extra or {})}

        def replace(match: re.Match[str]) -> str:
            name = match["braced"] or match["plain"] or match["old"]
            if name not in values:
                raise KeyError(f"{match[0]} has no value (in {text!r})")
            return values[name]

        return _VARIABLE.sub(replace, text)


@dataclass(frozen=True)
class Query:
    """One target of one panel."""

    board: str
    panel: str
    ref: str
    expr: str
    instant: bool

    def __str__(self) -> str:
        return f"{self.board} / {self.panel} [{self.ref}]: {self.expr}"


def queries(dashboard: Json) -> list[Query]:
    return [
        Query(dashboard["title"], panel["title"], target["refId"], target["expr"], bool(target.get("instant")))
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def label_values_query(variable: Json) -> tuple[str, str]:
    """(selector, label) of a ``label_values(selector, label)`` variable."""
    match = _LABEL_VALUES.match(str(variable.get("query", "")))
    if match is None:
        raise ValueError(f"variable {variable.get('name')}: not a label_values query")
    return match["selector"], match["label"]


def links(dashboard: Json) -> list[str]:
    """Every URL a user can follow: board links, panel links, data links."""
    found = [str(item["url"]) for item in dashboard.get("links", [])]
    for panel in panels(dashboard):
        found += [str(item["url"]) for item in panel.get("links", []) or []]
        found += [str(item["url"]) for item in panel.get("fieldConfig", {}).get("defaults", {}).get("links", []) or []]
    return found
