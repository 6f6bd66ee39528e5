"""The benchmark workload is what ingest writes: canonical events the contract accepts, the same for a seed."""

from __future__ import annotations

from benchmarks.workload import Workload
from charter_contracts import parse_event
from charter_contracts.topics import EventKind


def test_workload_events_are_canonical_contract_events_keyed_by_their_site() -> None:
    workload = Workload(sites=50, events=500)
    records = list(workload.records())
    kinds = {kind for kind, _, _ in records}
    assert kinds == {EventKind.CALL_RECORDS, EventKind.CASE_COMPLETIONS}
    registry = {site.site_id: site.network for site in workload.site_records()}
    for _, key, value in records:
        event = parse_event(value)
        assert event.site_id == key.decode()
        assert registry[event.site_id] == event.network
    times = [parse_event(value).occurred_at for _, _, value in records]
    assert (times[-1] - times[0]).total_seconds() < 500 / workload.per_minute * 60 + 1


def test_the_same_seed_gives_the_same_bytes() -> None:
    assert list(Workload(sites=20, events=100).records()) == list(Workload(sites=20, events=100).records())
    assert list(Workload(sites=20, events=100, seed=8).records()) != list(Workload(sites=20, events=100).records())
