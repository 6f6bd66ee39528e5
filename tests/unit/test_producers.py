"""Every Kafka producer the product creates is idempotent with acks=all: an acknowledged event is on
every in-sync replica, and a send retried after a lost acknowledgement is not written twice.

No broker: ``AIOKafkaProducer`` is watched where every client is made (the class itself, so that
aliases and FastStream's own construction are seen too), and ``start`` fails as it would with no
broker, after the producer was recorded. Each construction site of the product is driven to that
point; a scan of the source makes sure none is left out.
"""

from __future__ import annotations

import ast
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from charter_alerts.app import Alerts
from charter_alerts.settings import AlertsSettings
from charter_contracts.topics import TopicNames
from charter_indicators.app import Indicators
from charter_indicators.settings import IndicatorsSettings
from charter_ingest.app import Ingest
from charter_ingest.settings import IngestSettings
from charter_ops import publish, sites
from charter_ops.simulator import publish as simulator
from charter_runtime.kafka import connect_new_producer, make_broker

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "127.0.0.1:1"  # nothing is ever connected: start() is stopped before it reaches the network

#: Every place the product makes a producer (benchmarks/ and tests/ are not the product: the
#: benchmarks' load generators use acks=1 on purpose, to load the broker, not to be durable).
CONSTRUCTION_SITES = {
    ("services/runtime/charter_runtime/kafka.py", "KafkaBroker"),  # make_broker: the three services' brokers
    ("services/runtime/charter_runtime/kafka.py", "AIOKafkaProducer"),  # connect_new_producer: a broker's renewed
    ("services/indicators/charter_indicators/kafka_io.py", "AIOKafkaProducer"),  # BulkProducer
    ("deploy/charter_ops/sites.py", "AIOKafkaProducer"),  # charter sites load
    ("deploy/charter_ops/publish.py", "AIOKafkaProducer"),  # charter publish (over Kafka)
    ("deploy/charter_ops/simulator/publish.py", "AIOKafkaProducer"),  # charter simulate --kafka
}


def construction_sites() -> set[tuple[str, str]]:
    """(file, class) of every call that makes a Kafka producer or a FastStream broker in the product."""
    found = set()
    for folder in ("services", "deploy"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                    if name in {"AIOKafkaProducer", "KafkaBroker"}:
                        found.add((path.relative_to(ROOT).as_posix(), name))
    return found


def test_the_producers_checked_below_are_every_producer_the_product_makes() -> None:
    assert construction_sites() == CONSTRUCTION_SITES, "a producer was added or moved: check it below"


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The options of every AIOKafkaProducer created while the test runs; none of them connects."""
    options: list[dict[str, Any]] = []
    create = AIOKafkaProducer.__init__

    def recording(self: AIOKafkaProducer, *args: Any, **kwargs: Any) -> None:
        options.append(kwargs)
        create(self, *args, **kwargs)

    async def no_broker(self: AIOKafkaProducer) -> None:
        await self.stop()  # releases the client it never connected
        raise KafkaConnectionError("no broker in this test")

    monkeypatch.setattr(AIOKafkaProducer, "__init__", recording)
    monkeypatch.setattr(AIOKafkaProducer, "start", no_broker)
    return options


async def _ingest() -> None:
    await Ingest(IngestSettings(kafka_bootstrap_servers=NOWHERE)).broker.connect()


async def _indicators_broker() -> None:
    await Indicators(IndicatorsSettings(kafka_bootstrap_servers=NOWHERE)).broker.connect()


async def _indicators_bulk() -> None:
    await Indicators(IndicatorsSettings(kafka_bootstrap_servers=NOWHERE)).sink.start()


async def _alerts() -> None:
    await Alerts(AlertsSettings(kafka_bootstrap_servers=NOWHERE)).broker.connect()


async def _make_broker() -> None:
    await make_broker(NOWHERE, client_id="anything").connect()


async def _renewed() -> None:
    await connect_new_producer(make_broker(NOWHERE, client_id="anything"))


async def _sites_load() -> None:
    await sites.publish_sites([], NOWHERE, TopicNames())


async def _publish() -> None:
    await publish.publish_kafka(iter([]), "caf", NOWHERE, TopicNames(), "charter-ingest", 0, lambda *_: None)


async def _simulate() -> None:
    async def topics_exist(*args: Any, **kwargs: Any) -> None:
        return None

    sink = simulator.KafkaSink(NOWHERE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulator, "ensure_topics", topics_exist)
        await sink.start(["caf"])


PRODUCERS: dict[str, Callable[[], Awaitable[None]]] = {
    "charter ingest (its broker)": _ingest,
    "charter indicators (its broker)": _indicators_broker,
    "charter indicators (BulkProducer)": _indicators_bulk,
    "charter alerts (its broker)": _alerts,
    "make_broker": _make_broker,
    "a broker's producer renewed (out of sequence after an outage)": _renewed,
    "charter sites load": _sites_load,
    "charter publish": _publish,
    "charter simulate --kafka": _simulate,
}


@pytest.mark.parametrize("where", PRODUCERS)
async def test_every_producer_is_idempotent_with_acks_all(where: str, made: list[dict[str, Any]]) -> None:
    with pytest.raises((KafkaConnectionError, publish.PublishError)):  # start() found no broker
        await PRODUCERS[where]()
    assert len(made) == 1, made
    options = made[0]
    assert options.get("enable_idempotence") is True, options
    assert options.get("acks") in ("all", -1), options
