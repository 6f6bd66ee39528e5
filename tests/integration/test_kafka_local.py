"""The local Apache Kafka of `charter kafka up/down/status`: real, idempotent, leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from charter_ops.kafka.local import LocalKafka, free_port, process_alive
from tests.support.kafka import CHARTER

pytestmark = pytest.mark.kafka


async def test_the_session_broker_is_a_real_kafka_in_kraft_mode(kafka: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    assert [broker["node_id"] for broker in cluster["brokers"]] == [1]


def test_up_twice_down_and_status_through_the_cli(tmp_path: Path) -> None:
    port, controller = free_port(), free_port()
    env = {
        **os.environ,
        "CHARTER_KAFKA_HOME": str(tmp_path / "home"),
        "CHARTER_KAFKA_PORT": str(port),
        "CHARTER_KAFKA_CONTROLLER_PORT": str(controller),
    }
    broker = LocalKafka(home=tmp_path / "home", port=port, controller_port=controller)

    def charter(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CHARTER, "kafka", *args], check=False, env=env, capture_output=True, text=True, timeout=180
        )

    try:
        first = charter("up")
        assert first.returncode == 0, first.stderr
        pid = broker.status().pid
        assert f"127.0.0.1:{port}" in first.stdout

        second = charter("up")  # idempotent: the same broker, not a second one
        assert second.returncode == 0
        assert broker.status().pid == pid

        assert charter("status").returncode == 0

        down = charter("down")
        assert "Kafka stopped" in down.stdout
        assert pid is not None
        assert not process_alive(pid), "the broker process must be gone"
        status = charter("status")
        assert status.returncode == 1
        assert "not running" in status.stdout
    finally:
        broker.down()
