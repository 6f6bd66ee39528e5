"""The read API over the latest snapshots, and the Prometheus series of the aggregated scopes."""

from __future__ import annotations

import math

import httpx
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from charter_contracts import IndicatorSnapshot
from charter_indicators.api import indicators_router
from charter_indicators.domain.aggregate import Aggregator
from charter_indicators.domain.parts import GROUP_WIDTH, LIVE_WIDTH
from charter_indicators.domain.snapshots import SnapshotValue
from charter_indicators.encoding import SnapshotEncoder, latest_key
from charter_indicators.metrics import IndicatorMetrics, ScopeGauge
from charter_indicators.readmodel import LatestSnapshots
from tests.support.kafka import metric_value

AS_OF = 1709546400.0


def value(
    indicator: str, network: str | None, department: str | None, site: str | None, window: str, **kw: float
) -> SnapshotValue:
    details: dict[str, float | None] = {k: v for k, v in kw.items() if k not in ("num", "den")}
    return SnapshotValue(
        indicator, network, department, site, window, None, kw.get("num", 1.0), kw.get("den", 2.0), AS_OF, details
    )


SNAPSHOTS = [
    value("pickup_rate", "caf", None, None, "1h"),
    value("pickup_rate", "caf", "75", None, "1h"),
    value("pickup_rate", "caf", "75", "caf-1", "1h"),
    value("pickup_rate", "caf", "75", "caf-1", "15m"),
    value("pickup_rate", None, "75", None, "1h"),
    value("pickup_rate", None, None, None, "1h"),
    value("opening_rate", "caf", "75", "caf-1", "live", stale=1.0, last_status_at=1709500000.0),
    value("opening_rate", "caf", "75", "caf-2", "live", stale=0.0),
    value("deadline_compliance", "cpam", "13", None, "7d"),
]


def client() -> httpx.AsyncClient:
    model = LatestSnapshots()
    encoder = SnapshotEncoder()
    for snapshot in SNAPSHOTS:
        model.put(latest_key(snapshot), encoder.encode(snapshot))
    model.put(latest_key(SNAPSHOTS[-1]), None)  # a tombstone removes it
    model.put(b"pickup_rate|caf/75|1h", b"{}")  # not a key this service writes: ignored
    model.caught_up = True
    app = FastAPI()
    app.include_router(indicators_router(model))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://indicators")


def scopes(response: list[dict[str, object]]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for item in response:
        snapshot = IndicatorSnapshot.model_validate(item)
        out.add((snapshot.scope.key, snapshot.window))
    return out


async def test_the_read_api_filters_on_indicator_scope_and_window() -> None:
    async with client() as http:
        await check_filters(http)


async def check_filters(http: httpx.AsyncClient) -> None:
    got = await http.get("/v1/indicators", params={"indicator": "pickup_rate", "network": "caf", "window": "1h"})
    assert got.status_code == 200
    assert got.headers["x-charter-complete"] == "true"
    assert scopes(got.json()) == {("caf/*/*", "1h"), ("caf/75/*", "1h"), ("caf/75/caf-1", "1h")}
    network_level = (await http.get("/v1/indicators", params={"network": "caf", "department": "*", "site": "*"})).json()
    assert scopes(network_level) == {("caf/*/*", "1h")}
    department = (await http.get("/v1/indicators", params={"network": "*", "department": "75", "site": "*"})).json()
    assert scopes(department) == {("*/75/*", "1h")}
    national = (await http.get("/v1/indicators", params={"network": "*", "department": "*", "site": "*"})).json()
    assert scopes(national) == {("*/*/*", "1h")}
    one_site = (await http.get("/v1/indicators", params={"site": "caf-1", "indicator": "pickup_rate"})).json()
    assert scopes(one_site) == {("caf/75/caf-1", "1h"), ("caf/75/caf-1", "15m")}
    assert (await http.get("/v1/indicators", params={"indicator": "deadline_compliance"})).json() == []
    assert len((await http.get("/v1/indicators", params={"limit": 2})).json()) == 2
    assert len(scopes((await http.get("/v1/indicators")).json())) == len(SNAPSHOTS) - 1
    assert (await http.get("/v1/indicators", params={"window": "fortnight"})).status_code == 422
    stale = (await http.get("/v1/sites/stale", params={"network": "caf"})).json()
    assert [(s["site_id"], s["last_status_at"]) for s in stale] == [("caf-1", 1709500000.0)]


def test_only_aggregated_scopes_are_exported_and_a_handed_over_scope_disappears() -> None:
    registry = CollectorRegistry()
    metrics = IndicatorMetrics(registry)
    metrics.observe(
        [
            value("pickup_rate", "caf", None, None, "1h", num=72, den=90, raw_rate=0.72, wait_p90_seconds=95.0),
            value("pickup_rate", "caf", "75", None, "1h", num=72, den=90),
            value("pickup_rate", "caf", "75", "caf-1", "1h", num=72, den=90),  # site level: never a series
            value("opening_rate", None, None, None, "live", num=3, den=4, sites_stale=1),
            value(
                "deadline_compliance",
                "caf",
                None,
                None,
                "7d",
                num=8,
                den=10,
                **{"processing_median_seconds.rsa": 3.5e5},
            ),
        ]
    )
    text = metrics.exposition().decode()
    network = {"network": "caf", "department": "", "window": "1h"}
    assert metric_value(text, "charter_pickup_rate_ratio", network) == 0.8
    assert metric_value(text, "charter_pickup_raw_rate_ratio", network) == 0.72
    assert metric_value(text, "charter_call_wait_p90_seconds", network) == 95.0
    assert metric_value(text, "charter_calls_offered", {"network": "caf", "department": "75", "window": "1h"}) == 90
    assert metric_value(text, "charter_pickup_rate_ratio", {"department": "75"}) is None  # ratios: network, nation
    assert "caf-1" not in text
    assert metric_value(text, "charter_sites_open", {"network": "", "department": ""}) == 3
    assert metric_value(text, "charter_sites_stale", {"network": "", "department": ""}) == 1
    assert metric_value(text, "charter_opening_rate_ratio", {"network": "", "window": "live"}) == 0.75
    median = {"network": "caf", "procedure": "rsa", "window": "7d"}
    assert metric_value(text, "charter_case_processing_median_seconds", median) == 3.5e5
    metrics.observe([value("pickup_rate", "caf", None, None, "1h", num=0, den=0)])  # no call: no ratio
    assert metric_value(metrics.exposition().decode(), "charter_pickup_rate_ratio", network) is None
    metrics.forget([("caf", "75"), ("caf", None)])
    text = metrics.exposition().decode()
    assert metric_value(text, "charter_calls_offered", {"network": "caf"}) is None
    assert metric_value(text, "charter_case_processing_median_seconds", median) is None
    assert metric_value(text, "charter_sites_open", {"network": "", "department": ""}) == 3


def test_the_nation_and_the_networks_are_published_before_departments() -> None:
    aggregator = Aggregator(sources=1)
    parts = {"w": {name: [1.0] * GROUP_WIDTH for name in ("15m", "1h", "today", "7d")}, "live": [0.0] * LIVE_WIDTH}
    for scope in [("caf", "75"), (None, "75"), ("caf", None), (None, None), ("cpam", "13"), ("cpam", None)]:
        aggregator.update(scope, 0, {**parts, "hour": {}, "day": {}})
    aggregator.update_progress(0, AS_OF)
    order = list(dict.fromkeys((s.network, s.department) for s in aggregator.snapshots()))
    assert order == [(None, None), ("caf", None), ("cpam", None), (None, "75"), ("caf", "75"), ("cpam", "13")]


def test_the_scope_gauges_are_prometheus_text_that_follows_every_change() -> None:
    gauge = ScopeGauge("charter_x", 'Help with "quotes", a \\ and\na new line.', ("network", "department"))
    gauge.set(("caf", 'odd "75" \\ name'), 1.5)
    gauge.set(("cpam", ""), float("nan"))
    gauge.set(("msa", ""), float("inf"))

    def parsed() -> dict[tuple[str, str], float]:
        families = list(text_string_to_metric_families(gauge.render()))
        assert [(f.name, f.type) for f in families] == [("charter_x", "gauge")]
        return {(s.labels["network"], s.labels["department"]): s.value for s in families[0].samples}

    first = parsed()
    assert first[("caf", 'odd "75" \\ name')] == 1.5
    assert math.isnan(first[("cpam", "")])
    assert first[("msa", "")] == math.inf
    gauge.set(("caf", 'odd "75" \\ name'), 2.0)
    gauge.remove(("cpam", ""))
    assert parsed() == {("caf", 'odd "75" \\ name'): 2.0, ("msa", ""): math.inf}


def test_the_most_watched_scopes_can_be_published_before_the_others_and_none_is_lost() -> None:
    aggregator = Aggregator(sources=1)
    parts = {"w": {name: [1.0] * GROUP_WIDTH for name in ("15m", "1h", "today", "7d")}, "live": [0.0] * LIVE_WIDTH}
    hour = {AS_OF - 10800: [1.0] * GROUP_WIDTH}  # a closed hour, final for the only source
    for scope in [("caf", "75"), (None, None), ("caf", None)]:
        aggregator.update(scope, 0, {**parts, "hour": hour, "day": {}})
    aggregator.update_progress(0, AS_OF)
    first = {(s.network, s.department) for s in aggregator.snapshots((0, 1))}
    assert first == {(None, None), ("caf", None)}
    rest = aggregator.snapshots((2, 3))
    assert {(s.network, s.department) for s in rest} == {("caf", "75")}
    assert AS_OF - 10800 in {s.window_start for s in rest if s.window == "hour"}  # not pruned in between
    assert aggregator.snapshots() == []


def _parts(calls: float) -> dict[str, object]:
    vector = [calls] * GROUP_WIDTH
    return {"w": {name: list(vector) for name in ("15m", "1h", "today", "7d")}, "live": [0.0] * LIVE_WIDTH}


def test_scopes_a_source_moved_on_alone_wait_for_the_minute_that_every_source_reached() -> None:
    """As a minute closes the sources report one after the other: summing every scope again at each
    report cost more than the minute itself. Asked for new minutes only, a scope whose parts changed
    while the minute did not waits; it goes out once every source reached the minute, or when asked
    without the flag (a source that stays behind does not hold the others' figures for good)."""
    aggregator = Aggregator(sources=2)
    for source in (0, 1):
        aggregator.update(("caf", "75"), source, {**_parts(1.0), "hour": {}, "day": {}})
        aggregator.update_progress(source, AS_OF)
    assert {s.as_of for s in aggregator.snapshots()} == {AS_OF}

    aggregator.update(("caf", "75"), 0, {**_parts(2.0), "hour": {}, "day": {}})
    aggregator.update_progress(0, AS_OF + 60)  # source 1 is still at AS_OF
    assert aggregator.snapshots(new_minute_only=True) == []
    assert aggregator.due()
    assert not aggregator.due(new_minute_only=True)

    aggregator.update(("caf", "75"), 1, {**_parts(2.0), "hour": {}, "day": {}})
    aggregator.update_progress(1, AS_OF + 60)
    out = aggregator.snapshots(new_minute_only=True)
    offered = {s.numerator for s in out if s.indicator == "pickup_rate" and s.window == "1h"}
    assert {s.as_of for s in out} == {AS_OF + 60}
    assert offered == {4.0}
    assert not aggregator.due()

    aggregator.update(("caf", "75"), 0, {**_parts(3.0), "hour": {}, "day": {}})  # a revision, same minute
    assert aggregator.snapshots(new_minute_only=True) == []
    revised = aggregator.snapshots()
    assert {s.numerator for s in revised if s.indicator == "pickup_rate" and s.window == "1h"} == {5.0}


@given(
    scopes=st.sets(st.sampled_from(["01", "13", "2A", "33", "59", "69", "75", "971"]), min_size=1),
    limit=st.integers(1, 5),
)
def test_publishing_in_slices_gives_what_one_call_gives(scopes: set[str], limit: int) -> None:
    """Stage 2 publishes a few scopes at a time, letting other work in between: the slices add up to
    the whole, in the same order, and a closed hour is kept until every scope has been given it."""

    def build() -> Aggregator:
        aggregator = Aggregator(sources=1)
        hour = {AS_OF - 10800: [1.0] * GROUP_WIDTH}
        for department in sorted(scopes):
            for network in ("caf", None):
                aggregator.update((network, department), 0, {**_parts(1.0), "hour": dict(hour), "day": {}})
        aggregator.update_progress(0, AS_OF)
        return aggregator

    whole = build().snapshots()
    sliced, aggregator = [], build()
    while aggregator.due():
        part = aggregator.snapshots(limit=limit)
        assert len({(s.network, s.department) for s in part}) <= limit
        sliced += part
    assert sliced == whole
    assert sum(1 for s in sliced if s.window == "hour" and s.window_start == AS_OF - 10800) == len(scopes) * 2 * 3
