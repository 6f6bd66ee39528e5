"""De-duplication memory: exact within the horizon, bounded beyond it, identical after a restore."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charter_ingest.dedup import (
    HOUR,
    ChangelogRecord,
    Entry,
    PartitionMemory,
    SeenIndex,
    Verdict,
    fingerprint,
    pack,
    unpack,
)

HORIZON = timedelta(days=14)
T0 = int(datetime(2024, 3, 4, 9, 0, tzinfo=UTC).timestamp())
DAY = 86400


def run(memory: PartitionMemory, events: list[tuple[str, int, int]], batch_size: int) -> list[Verdict]:
    """Feed (event_id, occurred_s, offset) in batches, committing each batch as the adapter does."""
    verdicts = []
    for start in range(0, len(events), batch_size):
        batch = memory.batch()
        for event_id, occurred, offset in events[start : start + batch_size]:
            verdicts.append(batch.judge(fingerprint("caf", event_id), occurred, offset))
        batch.commit()
    return verdicts


def test_a_resent_event_is_a_duplicate_and_a_fresh_one_is_new() -> None:
    memory = PartitionMemory(HORIZON)
    first = run(memory, [("a", T0, 0), ("b", T0 + 60, 1)], 10)
    again = run(memory, [("a", T0, 2), ("c", T0 + 120, 3), ("b", T0 + 60, 4)], 10)
    assert first == [Verdict.NEW, Verdict.NEW]
    assert again == [Verdict.DUPLICATE, Verdict.NEW, Verdict.DUPLICATE]


def test_the_same_event_twice_in_one_batch_counts_once() -> None:
    assert run(PartitionMemory(HORIZON), [("a", T0, 0), ("a", T0, 1)], 10) == [Verdict.NEW, Verdict.DUPLICATE]


def test_a_redelivered_record_is_recognised_by_its_offset() -> None:
    memory = PartitionMemory(HORIZON)
    run(memory, [("a", T0, 7)], 10)
    assert run(memory, [("a", T0, 7)], 10) == [Verdict.REDELIVERED]


def test_an_event_older_than_the_horizon_before_the_newest_is_too_old() -> None:
    memory = PartitionMemory(HORIZON)
    verdicts = run(memory, [("new", T0, 0), ("old", T0 - 15 * DAY, 1), ("fine", T0 - 13 * DAY, 2)], 10)
    assert verdicts == [Verdict.NEW, Verdict.TOO_OLD, Verdict.NEW]


def test_an_id_re_used_after_the_horizon_is_too_old_never_counted_twice() -> None:
    memory = PartitionMemory(HORIZON)
    run(memory, [("a", T0, 0)], 1)
    run(memory, [(f"later-{day}", T0 + day * DAY, day) for day in range(1, 30)], 1)
    assert run(memory, [("a", T0, 99)], 1) == [Verdict.TOO_OLD]


def test_memory_stays_bounded_by_the_horizon_while_a_year_is_replayed() -> None:
    memory = PartitionMemory(HORIZON)
    per_day = 50
    largest = 0
    for day in range(365):
        events = [(f"e{day}-{i}", T0 + day * DAY + i * 60, day * per_day + i) for i in range(per_day)]
        assert set(run(memory, events, 25)) == {Verdict.NEW}
        largest = max(largest, len(memory.index))
    # the horizon (14 days) plus at most an eighth of it between sweeps, plus one hour bucket
    assert largest <= per_day * (14 + 14 / 8 + 1)
    assert len(memory.index) < per_day * 17


events_strategy = st.lists(
    st.tuples(st.sampled_from([f"id{i}" for i in range(12)]), st.integers(0, 30 * DAY)),
    max_size=60,
)


@given(events=events_strategy, first=st.integers(1, 7), second=st.integers(1, 7))
def test_verdicts_do_not_depend_on_how_the_stream_is_cut_into_batches(
    events: list[tuple[str, int]], first: int, second: int
) -> None:
    stream = [(event_id, T0 + t, offset) for offset, (event_id, t) in enumerate(events)]
    assert run(PartitionMemory(HORIZON), stream, first) == run(PartitionMemory(HORIZON), stream, second)


# A re-sent event is the same event: its event_id comes with the same occurred_at.
resent_strategy = st.lists(st.integers(0, 40), max_size=60).map(
    lambda picks: [(f"id{pick}", (pick * 65537) % (30 * DAY)) for pick in picks]
)


@given(events=resent_strategy, cut=st.integers(0, 60))
def test_a_memory_restored_from_its_changelog_judges_like_the_one_that_wrote_it(
    events: list[tuple[str, int]], cut: int
) -> None:
    stream = [(event_id, T0 + t, offset) for offset, (event_id, t) in enumerate(events)]
    before, after = stream[:cut], stream[cut:]
    live = PartitionMemory(HORIZON)
    changelog: list[bytes] = []
    for start in range(0, len(before), 4):
        batch = live.batch()
        for event_id, occurred, offset in before[start : start + 4]:
            batch.judge(fingerprint("caf", event_id), occurred, offset)
        if batch.entries and batch.watermark is not None:
            changelog.append(ChangelogRecord.of(0, batch.watermark, batch.entries).encode())
        batch.commit()
    restored = PartitionMemory.restore(HORIZON, [ChangelogRecord.decode(data) for data in changelog])
    assert run(restored, after, 3) == run(live, after, 3)
    # and the records a crash would redeliver are recognised as already written
    assert set(run(PartitionMemory.restore(HORIZON, map(ChangelogRecord.decode, changelog)), before, 5)) <= {
        Verdict.REDELIVERED,
        Verdict.TOO_OLD,
        Verdict.DUPLICATE,
    }


class TinyLeaves(SeenIndex):
    """Leaves of 8 entries: splits and merges happen all the time."""

    LEAF_MAX = 8


@settings(max_examples=60)
@given(
    operations=st.lists(
        st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 1000), st.integers(0, 2**40)),
        max_size=400,
    ),
    cutoff=st.integers(0, 1000),
)
def test_the_compact_index_behaves_like_a_dict(operations: list[tuple[int, int, int]], cutoff: int) -> None:
    index = TinyLeaves()
    model: dict[int, int] = {}
    for fp, hour, offset in operations:
        index.put(fp, pack(hour * HOUR, offset))
        model[fp] = pack(hour * HOUR, offset)
    assert len(index) == len(model)
    assert all(index.get(fp) == word for fp, word in model.items())
    assert list(index.items()) == sorted(model.items())
    index.expire(cutoff)
    kept = {fp: word for fp, word in model.items() if unpack(word)[0] >= cutoff}
    assert list(index.items()) == sorted(kept.items())
    assert all(index.get(fp) is None for fp in model.keys() - kept.keys())
    rebuilt = TinyLeaves.bulk(list(kept), list(kept.values()))
    assert list(rebuilt.items()) == sorted(kept.items())


def test_the_index_keeps_sixteen_bytes_per_event() -> None:
    rng = random.Random(4)
    index = SeenIndex()
    for offset in range(50_000):
        index.put(rng.getrandbits(64), pack(T0, offset))
    assert index.nbytes() == 16 * 50_000


def test_changelog_records_round_trip_and_refuse_unknown_versions() -> None:
    record = ChangelogRecord.of(5, T0, [Entry(2**64 - 1, T0, 12), Entry(3, T0 - 7 * DAY, 2**41)])
    decoded = ChangelogRecord.decode(record.encode())
    assert (decoded.partition, decoded.watermark) == (5, T0)
    assert list(decoded.fps) == [2**64 - 1, 3]
    assert [unpack(word)[1] for word in decoded.words] == [12, 2**41]
    assert len(record.encode()) == 13 + 2 * 16
    with pytest.raises(ValueError, match="version 9"):
        ChangelogRecord.decode(b"\x09" + record.encode()[1:])
