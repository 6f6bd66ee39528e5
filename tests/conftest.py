"""Session fixtures: one real Apache Kafka broker for the whole test session.

The broker runs from Maven Central jars in KRaft mode on free ports, in a temporary
home, tied to the pytest process: it stops at the end of the session and dies with
pytest if pytest is killed, so no broker outlives the suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from charter_contracts.topics import TopicNames
from charter_ops.kafka.local import LocalKafka
from tests.support.kafka import local_broker, unique_names


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """The session's broker (started once, on first use)."""
    with local_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka(kafka_broker: LocalKafka) -> str:
    """Bootstrap servers of the session's broker."""
    return kafka_broker.bootstrap_servers


@pytest.fixture
def names() -> TopicNames:
    """Topic and group names private to one test."""
    return unique_names()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path
