"""Scale-out and recovery: two `charter indicators` processes, a third added mid-stream, then one
killed (SIGKILL) mid-stream: the group ends exactly where a single clean run over the same events ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.kafka import consume, create_topics, read_all, running, unique_names
from tests.support.recovery import PARTITIONS, SITES, counted, final_as_of, finished, instance, publish, traffic
from tests.support.sites import publish_sites

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_two_then_three_instances_one_added_one_killed_mid_stream_end_like_a_single_clean_run(
    kafka: str, logs: Path
) -> None:
    chunks = traffic()
    as_of = final_as_of(chunks)
    single_names, pair_names = unique_names(), unique_names()
    for names in (single_names, pair_names):
        await create_topics(kafka, names, partitions=PARTITIONS)
        await publish_sites(kafka, names, SITES)

    with running(instance(kafka, single_names, logs, "single")):
        for chunk in chunks:
            await publish(kafka, single_names, chunk)
        single = await finished(kafka, single_names, as_of)
    assert await read_all(kafka, single_names.dead_letter, settle=0.5) == []

    first, second = instance(kafka, pair_names, logs, "first"), instance(kafka, pair_names, logs, "second")
    with running(first, second):
        await publish(kafka, pair_names, chunks[0])
        await publish(kafka, pair_names, chunks[1])
        # the first instance has counted events and saved its partitions' state at least once
        for _ in range(120):
            if await counted(first.url) > 0:
                break
            await asyncio.sleep(0.5)
        assert await counted(first.url) > 0, "the first instance was never given a partition"
        state = f"{pair_names.group('charter-indicators')}.state"
        await consume(kafka, state, until=lambda r: any((x.key or b"").endswith(b"|head") for x in r))
        third = instance(kafka, pair_names, logs, "third")
        with running(third):  # scale out mid-stream: the group rebalances to one partition each
            await publish(kafka, pair_names, chunks[2])
            first.kill()  # SIGKILL while the traffic streams in: no goodbye, no final checkpoint
            await publish(kafka, pair_names, chunks[3])
            pair = await finished(kafka, pair_names, as_of)
            # partitions changed hands from a checkpoint, twice: when the third came, when the first died
            assert "checkpoint" in second.log() + third.log()
            assert await counted(third.url) > 0, "the added instance was never given a partition"

    assert len(single) > 500  # every site, department, network and the nation, every window
    assert pair == single
    dead_letters = await read_all(kafka, pair_names.dead_letter, settle=0.5)
    assert dead_letters == []  # nothing late, nothing unknown: every event counted exactly once
