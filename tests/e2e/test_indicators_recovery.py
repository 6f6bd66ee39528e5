"""Scale-out and recovery: two `charter indicators` processes, a third added mid-stream, then one stopped
(SIGTERM) and another killed (SIGKILL) while traffic streams in: the group ends exactly where a single
clean run over the same events ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from charter_contracts.topics import EventKind
from tests.support.faults import until
from tests.support.kafka import consume, create_topics, group_assignment, read_all, running, unique_names
from tests.support.recovery import (
    PARTITIONS,
    SITES,
    counted,
    final_as_of,
    finished,
    instance,
    publish,
    publish_in_slices,
    traffic,
)
from tests.support.sites import publish_sites

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]


async def test_two_then_three_instances_one_added_one_stopped_one_killed_mid_stream_end_like_a_single_clean_run(
    kafka: str, logs: Path
) -> None:
    chunks = traffic()
    as_of = final_as_of(chunks)
    single_names, group_names = unique_names(), unique_names()
    for names in (single_names, group_names):
        await create_topics(kafka, names, partitions=PARTITIONS)
        await publish_sites(kafka, names, SITES)

    with running(instance(kafka, single_names, logs, "single")):
        for chunk in chunks:
            await publish(kafka, single_names, chunk)
        single = await finished(kafka, single_names, as_of)
    assert await read_all(kafka, single_names.dead_letter, settle=0.5) == []

    group = group_names.group("charter-indicators")
    canonical = {(group_names.canonical(kind), p) for kind in EventKind for p in range(PARTITIONS)}
    first, second = instance(kafka, group_names, logs, "first"), instance(kafka, group_names, logs, "second")
    with running(first, second):
        await publish(kafka, group_names, chunks[0])
        await publish(kafka, group_names, chunks[1])

        # the first instance has counted events and saved its partitions' state at least once
        async def first_counted() -> bool:
            return await counted(first.url) > 0

        await until(first_counted, "the first instance counted events", timeout=60)
        await consume(kafka, f"{group}.state", until=lambda r: any((x.key or b"").endswith(b"|head") for x in r))

        third = instance(kafka, group_names, logs, "third")
        with running(third):  # scale out mid-stream: the group rebalances to one partition each
            held: dict[str, set[tuple[str, int]]] = {}

            async def three_hold_partitions() -> bool:
                held.clear()
                held.update(await group_assignment(kafka, group))
                return len(held) == 3 and all(held.values())

            await until(three_hold_partitions, "the three instances hold partitions at once", timeout=120)
            assert set().union(*held.values()) >= canonical  # between them, every canonical partition
            # each of the three counts the traffic of the partitions it holds
            instances = (first, second, third)
            before = [await counted(i.url) for i in instances]
            streaming = asyncio.create_task(publish_in_slices(kafka, group_names, chunks[2]))

            async def each_counting() -> bool:
                now = [await counted(i.url) for i in instances]
                return all(n > b for n, b in zip(now, before, strict=True))

            await until(each_counting, "each of the three instances counted events", timeout=120)
            # scale in mid-stream, gracefully: SIGTERM, the instance saves its partitions and leaves
            assert not streaming.done()
            assert second.stop(timeout=60) is not None, "the stopped instance had to be killed"
            assert "Application shutdown complete" in second.log()
            await streaming

            streaming = asyncio.create_task(publish_in_slices(kafka, group_names, chunks[3]))
            before_kill = await counted(first.url)

            async def first_counting() -> bool:
                return await counted(first.url) > before_kill

            await until(first_counting, "the first instance counted events of the last chunk", timeout=120)
            assert not streaming.done()
            first.kill()  # SIGKILL while the traffic streams in: no goodbye, no final checkpoint
            await streaming
            scaled = await finished(kafka, group_names, as_of)
            # partitions changed hands from a checkpoint: when the third came, when the second left and
            # when the first died
            assert "checkpoint" in third.log()

    assert len(single) > 500  # every site, department, network and the nation, every window
    assert scaled == single
    dead_letters = await read_all(kafka, group_names.dead_letter, settle=0.5)
    assert dead_letters == []  # nothing late, nothing unknown: every event counted exactly once
