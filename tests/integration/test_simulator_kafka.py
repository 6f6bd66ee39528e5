"""`charter simulate` on the real broker: what reaches Kafka is exactly what the pure generator says."""

from __future__ import annotations

import collections
import json
import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from charter_contracts import EVENT_KINDS, Site
from charter_contracts.topics import EventKind, TopicNames
from charter_ops.simulator import Degradation, TrafficConfig, TrafficGenerator, build_registry
from charter_ops.simulator.networks import span_days
from charter_ops.simulator.publish import encode
from charter_ops.sites import read_france_services_csv
from tests.support.kafka import CHARTER, read_all

pytestmark = pytest.mark.kafka
START = datetime(2024, 3, 4, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
NETWORKS = ("caf", "cpam")


def charter(*args: str, kafka: str, names: TopicNames) -> str:
    env = {**os.environ, "CHARTER_KAFKA_BOOTSTRAP_SERVERS": kafka, "CHARTER_KAFKA_TOPIC_PREFIX": names.prefix}
    env["CHARTER_KAFKA_PARTITIONS"] = "3"
    result = subprocess.run([CHARTER, *args], env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stderr


async def topic_values(kafka: str, names: TopicNames) -> dict[str, list[bytes]]:
    found = {}
    for network in NETWORKS:
        for kind in EventKind:
            topic = names.raw(network, kind)
            records = await read_all(kafka, topic)
            assert all(r.key == json.loads(r.value)["site_id"].encode() for r in records)
            found[topic] = sorted(r.value for r in records)
    return found


async def test_live_publishes_the_registry_and_exactly_the_generated_events(kafka: str, names: TopicNames) -> None:
    out = charter(
        "simulate", "live", "--networks", ",".join(NETWORKS), "--rate", "5", "--seed", "4",
        "--start", START.isoformat(), "--speed", "120", "--duration", "4m", "--backfill", "2m",
        "--degrade", "caf@1m",
        kafka=kafka, names=names,
    )  # fmt: skip
    assert "sites published" in out

    registry = build_registry(
        read_france_services_csv().sites, NETWORKS, span_days(START - timedelta(minutes=2), START + timedelta(days=60))
    )
    sites = await read_all(kafka, names.sites)
    assert {r.key.decode(): Site.model_validate_json(r.value) for r in sites} == {
        e.site.site_id: e.site for e in registry
    }

    generator = TrafficGenerator(registry, TrafficConfig(seed=4, rate=5, degradations=(Degradation.parse("caf@1m"),)))
    expected: dict[str, list[bytes]] = collections.defaultdict(list)
    for emit_at, payload in generator.events(START - timedelta(minutes=2), START + timedelta(minutes=4), origin=START):
        if emit_at < (START + timedelta(minutes=4)).timestamp():
            expected[names.raw(payload["network"], EVENT_KINDS[payload["type"]])].append(encode(payload))
    published = await topic_values(kafka, names)
    assert sum(len(v) for v in published.values()) > 300
    assert published == {topic: sorted(expected.get(topic, [])) for topic in published}


async def test_history_to_kafka_publishes_what_it_writes_to_files(
    kafka: str, names: TopicNames, tmp_path: Path
) -> None:
    args = ["--networks", ",".join(NETWORKS), "--rate", "3", "--start", START.isoformat(), "--span", "30m"]
    charter("simulate", "history", "--kafka", *args, kafka=kafka, names=names)
    charter("simulate", "history", "--out", str(tmp_path), *args, kafka=kafka, names=names)
    published = await topic_values(kafka, names)
    written: dict[str, list[bytes]] = collections.defaultdict(list)
    for network in NETWORKS:
        for line in (tmp_path / f"{network}.ndjson").read_bytes().splitlines():
            written[names.raw(network, EVENT_KINDS[json.loads(line)["type"]])].append(line)
    assert sum(len(v) for v in published.values()) > 100
    assert published == {topic: sorted(written.get(topic, [])) for topic in published}
