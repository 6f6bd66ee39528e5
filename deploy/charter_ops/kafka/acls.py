"""Who may do what on the product's topics: the ACLs of a secured cluster, and granting them.

One principal per network and one per service. A network writes its own
``raw.<network>.*`` topics and reads nothing; each service reads what it consumes and
writes what it produces, and owns its internal topics and consumer group (both named
after its group id). Ingest writes the raw topics too: events POSTed over HTTPS go
there, as if the network had published them over Kafka. Topics are created by the
operator (the super user), not by the services. aiokafka has no ACL call, so the Admin
API's CreateAcls request is sent directly.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest

from charter_alerts.settings import STATE_TOPIC
from charter_contracts.topics import EventKind, TopicNames
from charter_runtime.kafka import KafkaAuth


class Resource(enum.IntEnum):
    """Kafka's resource types (AclResourceType)."""

    TOPIC = 2
    GROUP = 3


class Pattern(enum.IntEnum):
    """Kafka's resource pattern types."""

    LITERAL = 3
    PREFIXED = 4


class Operation(enum.IntEnum):
    """Kafka's ACL operations (AclOperation)."""

    ALL = 2
    READ = 3
    WRITE = 4
    DESCRIBE = 8


_ALLOW = 3
_ANY_HOST = "*"


@dataclass(frozen=True)
class Acl:
    """Allow ``principal`` (a SCRAM user name) ``operation`` on a resource or a prefix of names."""

    principal: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = Pattern.LITERAL


@dataclass(frozen=True)
class Principals:
    """The services' SCRAM user names."""

    ingest: str = "charter-ingest"
    indicators: str = "charter-indicators"
    alerts: str = "charter-alerts"


def network_acls(names: TopicNames, network: str) -> list[Acl]:
    """A network writes (and sees the metadata of) its own raw topics; it reads nothing."""
    own = names.raw(network, EventKind.COUNTER_EVENTS).removesuffix(EventKind.COUNTER_EVENTS.value)
    return [
        Acl(network, Resource.TOPIC, own, Operation.WRITE, Pattern.PREFIXED),
        Acl(network, Resource.TOPIC, own, Operation.DESCRIBE, Pattern.PREFIXED),
    ]


def _owns(principal: str, prefix: str) -> list[Acl]:
    """Internal topics and consumer group, all named after the group id."""
    return [
        Acl(principal, Resource.TOPIC, prefix, Operation.ALL, Pattern.PREFIXED),
        Acl(principal, Resource.GROUP, prefix, Operation.ALL, Pattern.PREFIXED),
    ]


def _on(principal: str, topics: Iterable[str], *operations: Operation) -> list[Acl]:
    return [Acl(principal, Resource.TOPIC, topic, op) for topic in topics for op in operations]


def service_acls(
    names: TopicNames,
    principals: Principals = Principals(),
    groups: Principals = Principals(),
) -> list[Acl]:
    """What each service needs and no more (``groups``: the services' group ids, unprefixed)."""
    canonical = [names.canonical(kind) for kind in EventKind]
    charter = names.prefix + "charter."
    raw = names.prefix + "raw."
    acls: list[Acl] = []
    for principal in (principals.ingest, principals.indicators, principals.alerts):
        # every service checks at start-up that the contract topics exist
        acls.append(Acl(principal, Resource.TOPIC, charter, Operation.DESCRIBE, Pattern.PREFIXED))
    acls += [
        Acl(principals.ingest, Resource.TOPIC, raw, Operation.READ, Pattern.PREFIXED),
        Acl(principals.ingest, Resource.TOPIC, raw, Operation.DESCRIBE, Pattern.PREFIXED),
        # POST /v1/events writes a network's accepted events to its raw topics, on its behalf
        Acl(principals.ingest, Resource.TOPIC, raw, Operation.WRITE, Pattern.PREFIXED),
        *_on(principals.ingest, [*canonical, names.dead_letter], Operation.WRITE),
        *_owns(principals.ingest, names.group(groups.ingest)),
        *_on(principals.indicators, [*canonical, names.sites], Operation.READ),
        *_on(principals.indicators, [names.dead_letter, names.indicators], Operation.WRITE),
        *_owns(principals.indicators, names.group(groups.indicators)),
        *_on(principals.alerts, [names.indicators, names.alerts], Operation.READ),
        *_on(principals.alerts, [names.alerts], Operation.WRITE),
        *_owns(principals.alerts, names.group(groups.alerts)),
        *_on(principals.alerts, [names.prefix + STATE_TOPIC], Operation.ALL),
    ]
    return acls


async def grant(bootstrap_servers: str, admin: KafkaAuth, acls: Iterable[Acl]) -> None:
    """Create the ACLs (idempotent: an ACL that exists already is left as it is)."""
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **admin.options())
    await client.start()
    try:
        for acl in acls:
            request = CreateAclsRequest(
                acl.resource, acl.name, acl.pattern, f"User:{acl.principal}", _ANY_HOST, acl.operation, _ALLOW
            )
            response = await client._send_request(request)  # no public ACL call in aiokafka
            for code, message in response.creation_responses:
                if code:
                    raise RuntimeError(f"creating {acl} failed: error {code} {message}")
    finally:
        await client.close()
