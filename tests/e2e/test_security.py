"""Kafka with SASL/SCRAM-SHA-512 and ACLs: each network and each service is its own principal,
held to its own topics, and the whole path still runs."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from datetime import time as clock
from pathlib import Path

import httpx
import pytest
from aiokafka.errors import KafkaError

from charter_contracts import AlertEvent
from charter_contracts.topics import EventKind, TopicNames
from charter_ops.kafka.acls import Principals, grant, network_acls, service_acls
from charter_ops.kafka.local import SUPER_USER, LocalKafka
from charter_runtime.kafka import KafkaAuth
from tests.support import events
from tests.support.ingest import token_file
from tests.support.kafka import charter, consume, create_topics, local_broker, produce, read_all, running
from tests.support.pipeline import BREACH_SITES, T0, breach_calls, services
from tests.support.sites import publish_sites, site, weekly

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
PRINCIPALS = Principals()
USERS = (SUPER_USER, "caf", "cpam", PRINCIPALS.ingest, PRINCIPALS.indicators, PRINCIPALS.alerts)


def sasl(user: str, password: str) -> KafkaAuth:
    return KafkaAuth(
        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512", username=user, password=password
    )


class Secured:
    """A secured broker of the module's own, its principals' credentials and the topics, ACLs granted."""

    def __init__(self, broker: LocalKafka) -> None:
        self.broker = broker
        self.bootstrap = broker.bootstrap_servers
        self.passwords = dict(broker.scram_users)
        self.names = TopicNames("")

    def auth(self, user: str) -> KafkaAuth:
        return sasl(user, self.passwords[user])

    def env(self, user: str) -> dict[str, str]:
        return {
            "CHARTER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "CHARTER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "CHARTER_KAFKA_SASL_USERNAME": user,
            "CHARTER_KAFKA_SASL_PASSWORD": self.passwords[user],
        }


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    users = tuple((user, secrets.token_urlsafe(16)) for user in USERS)
    with local_broker(tmp_path_factory.mktemp("secured"), scram_users=users) as broker:
        yield Secured(broker)


@pytest.fixture(scope="module")
async def granted(secured: Secured) -> Secured:
    admin = secured.auth(SUPER_USER)
    await create_topics(secured.bootstrap, secured.names, auth=admin)  # the operator creates the topics
    acls = service_acls(secured.names) + network_acls(secured.names, "caf") + network_acls(secured.names, "cpam")
    await grant(secured.bootstrap, admin, acls)
    return secured


async def refused(action: object) -> bool:
    """True when Kafka refuses the action (an authorisation error, whatever its wrapping)."""
    try:
        await action  # type: ignore[misc]
    except KafkaError:
        return True
    return False


async def test_no_principal_no_entry_and_a_wrong_password_is_refused(secured: Secured) -> None:
    topic = secured.names.raw("caf", EventKind.CALL_RECORDS)
    assert await refused(produce(secured.bootstrap, topic, [(b"k", b"{}")]))  # PLAINTEXT client on a SASL port
    assert await refused(produce(secured.bootstrap, topic, [(b"k", b"{}")], sasl("caf", "not-the-password")))


async def test_a_networks_principal_writes_only_its_own_raw_topics_and_reads_nothing(granted: Secured) -> None:
    names, bootstrap, caf = granted.names, granted.bootstrap, granted.auth("caf")
    payload = events.encode(events.call(T0, event_id="sec-1", site_id="caf-75-paris"))
    own = names.raw("caf", EventKind.CALL_RECORDS)
    await produce(bootstrap, own, [(b"caf-75-paris", payload)], caf)  # allowed: no error
    for kind in EventKind:
        await produce(bootstrap, names.raw("caf", kind), [(b"caf-75-paris", payload)], caf)

    for topic in (names.raw("cpam", EventKind.CALL_RECORDS), names.canonical(EventKind.CALL_RECORDS), names.sites):
        assert await refused(produce(bootstrap, topic, [(b"caf-75-paris", payload)], caf)), topic
    for topic in (own, names.canonical(EventKind.CALL_RECORDS), names.indicators, names.dead_letter):
        assert await refused(read_all(bootstrap, topic, settle=0.5, auth=caf)), topic
    # cpam may not write CAF's topics either
    assert await refused(produce(bootstrap, own, [(b"caf-75-paris", payload)], granted.auth("cpam")))


async def test_the_path_runs_with_each_service_as_its_own_least_privileged_principal(
    granted: Secured, logs: Path
) -> None:
    """Calls arrive both ways: over Kafka with CAF's principal, and POSTed over HTTPS with a CAF token,
    ingest writing them to CAF's raw topics with its own principal. The breach exists only if both
    halves get through: the Kafka half alone is 28 answered calls of 28 offered."""
    names, bootstrap, admin = granted.names, granted.bootstrap, granted.auth(SUPER_USER)
    await publish_sites(bootstrap, names, [site(s, hours=weekly(clock(8), clock(18))) for s in BREACH_SITES], admin)
    tokens, token = token_file(logs)
    ingest, indicators, alerts = services(
        bootstrap,
        names,
        logs,
        ingest={
            **granted.env(PRINCIPALS.ingest),
            "CHARTER_INGEST_NETWORKS": "caf,cpam",
            "CHARTER_INGEST_TOKENS_FILE": str(tokens),
            "CHARTER_INGEST_PUBLISH_TIMEOUT_SECONDS": "5",
        },
        indicators=granted.env(PRINCIPALS.indicators),
        alerts=granted.env(PRINCIPALS.alerts),
    )
    calls = breach_calls()
    over_kafka = [c for c in calls if c["answered_at"] is not None or c["event_id"].startswith("s")]
    over_https = [c for c in calls if c not in over_kafka]  # the long abandons and the voice-server calls
    assert (len(over_kafka), len(over_https)) == (30, 15)
    with running(ingest, indicators, alerts):
        await produce(
            bootstrap,
            names.raw("caf", EventKind.CALL_RECORDS),
            [(c["site_id"].encode(), events.encode(c)) for c in over_kafka],
            granted.auth("caf"),
        )
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(
                f"{ingest.url}/v1/events", json=over_https, headers={"Authorization": f"Bearer {token}"}
            )
        assert answer.status_code == 200, answer.text  # not 503: ingest may write CAF's raw topics
        assert answer.json()["accepted"] == len(over_https)

        # every call, whichever way it came, reaches the canonical topic once
        sent = {c["event_id"] for c in calls}
        canonical = await consume(
            bootstrap,
            names.canonical(EventKind.CALL_RECORDS),
            until=lambda r: {json.loads(x.value)["event_id"] for x in r} >= sent,
            timeout=60,
            auth=admin,
        )
        written = sorted(i for i in (json.loads(r.value)["event_id"] for r in canonical) if i in sent)
        assert written == sorted(sent)  # (the module's other tests wrote to CAF's raw topics too)

        fired = await consume(bootstrap, names.alerts, until=lambda r: len(r) >= 1, timeout=120, auth=admin)
        alert = AlertEvent.model_validate_json(fired[0].value)
        assert (alert.status, alert.network, alert.indicator) == ("firing", "caf", "pickup_rate")

        # a service cannot step outside its topics: indicators may not write what ingest writes
        assert await refused(
            produce(
                bootstrap, names.canonical(EventKind.CALL_RECORDS), [(b"x", b"{}")], granted.auth(PRINCIPALS.indicators)
            )
        )
        # nor alerts read the canonical events
        assert await refused(
            read_all(
                bootstrap, names.canonical(EventKind.CALL_RECORDS), settle=0.5, auth=granted.auth(PRINCIPALS.alerts)
            )
        )
    for service in (ingest, indicators, alerts):  # no refusal on the way: each had the rights it needs
        assert "AuthorizationFailed" not in service.log_path.read_text()
        assert "Not authorized" not in service.log_path.read_text()


async def test_the_tools_talk_to_kafka_as_the_principal_of_their_environment(granted: Secured, tmp_path: Path) -> None:
    names, bootstrap, admin = granted.names, granted.bootstrap, granted.auth(SUPER_USER)
    base = {"CHARTER_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "CHARTER_KAFKA_TOPIC_PREFIX": names.prefix}

    # a network publishes a file with its own principal: it may write, not read the verdicts back, and is told so
    calls = [events.call(T0, event_id=f"tool-{n}", site_id="caf-75-paris") for n in range(3)]
    path = tmp_path / "calls.ndjson"
    path.write_text("".join(json.dumps(call) + "\n" for call in calls))
    published = await asyncio.to_thread(
        charter, "publish", str(path), "--network", "caf", "--wait", "5", env={**base, **granted.env("caf")}
    )
    assert published.returncode == 1, published.stderr
    assert "could not be read back with this principal" in published.stderr
    landed = await read_all(bootstrap, names.raw("caf", EventKind.CALL_RECORDS), auth=admin)
    assert {"tool-0", "tool-1", "tool-2"} <= {json.loads(r.value)["event_id"] for r in landed}
    anonymous = await asyncio.to_thread(charter, "publish", str(path), "--network", "caf", "--wait", "0", env=base)
    assert anonymous.returncode == 2  # no principal, no entry: a plain error, not a traceback
    assert "cannot reach Kafka" in anonymous.stderr

    # the operator loads the registry and runs the simulator with the operator's principal
    registry = tmp_path / "sites.json"
    registry.write_text(json.dumps([site("tool-site", network="caf").model_dump(mode="json")]))
    loaded = await asyncio.to_thread(charter, "sites", "load", str(registry), env={**base, **granted.env(SUPER_USER)})
    assert loaded.returncode == 0, loaded.stderr
    refused_load = await asyncio.to_thread(charter, "sites", "load", str(registry), env={**base, **granted.env("caf")})
    assert refused_load.returncode == 1
    simulated = await asyncio.to_thread(
        charter,
        "simulate", "history", "--kafka", "--networks", "caf", "--span", "10m", "--end", "2024-03-04T10:00:00+01:00",
        env={**base, **granted.env(SUPER_USER)},
    )  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr
    registry_records = await read_all(bootstrap, names.sites, auth=admin)
    assert b"tool-site" in {r.key for r in registry_records}
    assert len(registry_records) > 100  # the simulator's registry of the France services sites too
