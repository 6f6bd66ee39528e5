"""The alerts state is read back whole from the real broker (what a restart relies on)."""

from __future__ import annotations

import pytest

from charter_alerts.state import read_topics
from charter_contracts.topics import TopicNames
from charter_runtime.kafka import TopicSpec, ensure_topics
from tests.support.kafka import produce

pytestmark = pytest.mark.kafka


async def test_every_record_up_to_the_end_is_read_in_partition_order(kafka: str, names: TopicNames) -> None:
    topic, empty = names.prefix + "state", names.prefix + "empty"
    await ensure_topics(kafka, [TopicSpec(topic, 3, compacted=True), TopicSpec(empty, 2)])
    values = [(f"k{i % 7}".encode(), f"v{i}".encode()) for i in range(100)]
    await produce(kafka, topic, values)
    read = await read_topics(kafka, [topic, empty])
    assert sorted(v for _, _, v in read if v) == sorted(v for _, v in values)
    for key in {k for k, _ in values}:
        assert [v for _, k, v in read if k == key] == [v for k, v in values if k == key]
