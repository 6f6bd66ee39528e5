"""The read model holds every latest snapshot, compressed once it has seen enough of them."""

from __future__ import annotations

import random
import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from charter_indicators.domain.snapshots import SnapshotValue
from charter_indicators.encoding import SnapshotEncoder, latest_key
from charter_indicators.readmodel import LatestSnapshots

WINDOWS = ("15m", "1h", "today", "7d", "hour", "day")
DETAILS = {
    "pickup_rate": ("raw_denominator", "raw_rate", "short_abandons", "ivr_only", "abandoned", "service_level"),
    "deadline_compliance": ("cases_completed", "cases_without_deadline", "processing_mean_seconds"),
    "opening_rate": ("sites_scheduled",),
}


def details(names: tuple[str, ...], rng: random.Random, denominator: float) -> dict[str, float | None]:
    """Counts, and one ratio of them, as the domain gives them."""
    out: dict[str, float | None] = {name: float(rng.randint(0, 400)) for name in names[1:]}
    out[names[0]] = rng.randint(0, 400) / max(denominator, 1.0)
    return out


def national_day(sites: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    """The latest records a day leaves: every indicator and window of every site, with varied figures."""
    rng = random.Random(seed)
    encoder = SnapshotEncoder()
    records = []
    for n in range(sites):
        network = rng.choice(("caf", "cpam", "france-services", "dgfip"))
        department = f"{rng.randint(1, 95):02d}"
        for indicator, names in DETAILS.items():
            for window in WINDOWS:
                denominator = float(rng.randint(0, 400))
                as_of = 1796386400.0 + 60 * rng.randint(0, 5)  # the flushes of the last minutes
                snapshot = SnapshotValue(
                    indicator,
                    network,
                    department,
                    f"{network}-{department}-{n:04d}",
                    window,
                    as_of - 3600.0,
                    float(rng.randint(0, int(denominator))),
                    denominator,
                    as_of,
                    details(names, rng, denominator),
                )
                records.append((latest_key(snapshot), encoder.encode(snapshot)))
    return records


def test_every_snapshot_reads_back_as_published_after_the_values_are_compressed() -> None:
    records = national_day(200)
    model = LatestSnapshots()
    for key, value in records:
        model.put(key, value)
    assert model.compressed
    assert {f"{e.indicator}|{e.site_id}|{e.window}": e.value for e in model.query()} == {
        site_key(key): value for key, value in records
    }
    network, department, site = records[0][0].decode().split("|")[1].split("/")
    one_site = [e.value for e in model.query(network=network, department=department, site_id=site)]
    assert sorted(one_site) == sorted(value for key, value in records if site_key(key).split("|")[1] == site)


def site_key(key: bytes) -> str:
    """``indicator|site|window`` of a site's latest key."""
    indicator, scope, window = key.decode().split("|")
    return f"{indicator}|{scope.split('/')[2]}|{window}"


def held_bytes(model: LatestSnapshots, records: list[tuple[bytes, bytes]]) -> int:
    """Memory the model takes for the records, each put as fresh bytes as the topic's reader gives them."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key, value in records:
            model.put(bytes(bytearray(key)), bytes(bytearray(value)))
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_a_day_of_snapshots_takes_less_than_half_the_memory_once_compressed() -> None:
    records = national_day(500)
    plain = LatestSnapshots()
    plain.SAMPLE_AFTER = len(records) + 1
    compressed = LatestSnapshots()
    held_plain, held_compressed = held_bytes(plain, records), held_bytes(compressed, records)
    assert not plain.compressed
    assert compressed.compressed
    assert len(plain) == len(compressed) == len(records)
    assert held_compressed < held_plain / 2, (held_compressed, held_plain)


keys = st.builds(
    lambda indicator, site, window: f"{indicator}|caf/75/{site}|{window}".encode(),
    st.sampled_from(sorted(DETAILS)),
    st.sampled_from(("caf-1", "caf-2", "*")),
    st.sampled_from(WINDOWS),
)


@given(st.lists(st.tuples(keys, st.none() | st.binary(max_size=300)), max_size=60), st.integers(1, 30))
def test_the_model_is_the_last_value_of_every_key_whatever_the_sample_size(
    records: list[tuple[bytes, bytes | None]], sample_after: int
) -> None:
    model = LatestSnapshots()
    model.SAMPLE_AFTER = sample_after
    expected: dict[bytes, bytes] = {}
    for key, value in records:
        model.put(key, value)
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    got = {f"{e.indicator}|caf/75/{e.site_id or '*'}|{e.window}".encode(): e.value for e in model.query()}
    assert got == expected
    assert len(model) == len(expected)
