"""Kafka plumbing shared by the services: the broker with safe producer settings, topics.

Producers are idempotent with ``acks=all``: an acknowledged event is on every in-sync
replica and a retried send is not written twice. Consumers never auto-commit: the
offset is committed after the batch's effects are acknowledged (see ``batch_subscriber``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    TopicAlreadyExistsError,
    UnknownProducerId,
)
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from charter_contracts.topics import EventKind, TopicNames

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaAuth:
    """How the services' Kafka clients authenticate: one principal per service under SASL.

    Every client a service creates (the framework's broker, the aiokafka consumers,
    producers and admin clients it opens itself) takes its options from here, so that a
    service runs with its own principal and ACLs can hold it to its own topics.
    """

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def options(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's clients."""
        if not self.sasl:
            return {"security_protocol": self.security_protocol}
        return {
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }

    def security(self) -> BaseSecurity | None:
        """The same, as FastStream's security object (it also documents the AsyncAPI server)."""
        if not self.sasl:
            return None
        kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }
        kind = kinds.get(self.sasl_mechanism)
        if kind is None:
            raise ValueError(f"unsupported SASL mechanism {self.sasl_mechanism!r}")
        return kind(self.username, self.password, use_ssl=self.security_protocol == "SASL_SSL")


#: Clients of a broker without authentication (the default).
NO_AUTH = KafkaAuth()


@dataclass(frozen=True)
class TopicSpec:
    """A topic this product creates when it is missing."""

    name: str
    partitions: int
    compacted: bool = False
    config: dict[str, str] = field(default_factory=dict)

    def new_topic(self) -> NewTopic:
        configs = dict(self.config)
        if self.compacted:
            configs["cleanup.policy"] = "compact"
        return NewTopic(self.name, self.partitions, 1, topic_configs=configs)


def contract_topics(names: TopicNames, partitions: int) -> list[TopicSpec]:
    """The charter.* topics of contract v1.

    The three canonical topics share one partition count so that they are co-partitioned
    by site_id: one instance owns all the events of a site.
    """
    specs = [TopicSpec(names.canonical(kind), partitions) for kind in EventKind]
    specs += [
        TopicSpec(names.sites, partitions, compacted=True),
        TopicSpec(names.dead_letter, partitions),
        TopicSpec(names.indicators, partitions),
        TopicSpec(names.alerts, partitions),
    ]
    return specs


#: Raw topics stamp each record with the broker's clock when it is appended: ingest judges
#: "in the future" against that arrival time, which the publishing network cannot set.
RAW_TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


def raw_topics(names: TopicNames, networks: Iterable[str], partitions: int) -> list[TopicSpec]:
    """Raw topics of each network: where networks write."""
    return [
        TopicSpec(names.raw(network, kind), partitions, config=dict(RAW_TOPIC_CONFIG))
        for network in networks
        for kind in EventKind
    ]


async def ensure_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec], timeout: float = 30.0, auth: KafkaAuth = NO_AUTH
) -> None:
    """Create the topics that do not exist yet; existing topics are left as they are."""
    wanted = {spec.name: spec for spec in specs}
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout * 1000), **auth.options()
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec.new_topic() for name, spec in wanted.items() if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another service created them meanwhile
                await admin.create_topics(missing)
            log.info("created topics %s", sorted(t.name for t in missing))
    finally:
        await admin.close()


RecordBatch = Sequence["ConsumerRecord[bytes, bytes]"]
BatchHandler = Callable[[RecordBatch], Awaitable[None]]


def make_broker(bootstrap_servers: str, client_id: str, auth: KafkaAuth = NO_AUTH, **kwargs: Any) -> KafkaBroker:
    """A FastStream Kafka broker whose producer is idempotent with acks=all.

    ``apply_types`` is off: handlers receive the undecoded records, so that every bad
    message reaches our own validation (and the dead-letter topic) instead of failing
    inside the framework.
    """
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        apply_types=False,
        logger=logging.getLogger(f"charter.{client_id}"),
        log_level=logging.DEBUG,
        security=auth.security(),
        # topics are ensured by build_app; under ACLs the operator creates them, so the
        # framework's own attempt would only log authorisation failures
        allow_auto_create_topics=not auth.sasl,
        **kwargs,
    )


async def _undecoded(message: Any) -> Any:
    return message.raw_message


#: How long a batch subscriber's poll waits for records (then as long again asleep: FastStream's loop).
BATCH_POLL_MS = 20


def batch_subscriber(
    broker: KafkaBroker,
    *topic_names: str,
    group_id: str,
    handler: BatchHandler,
    payload: Any,
    max_records: int = 1000,
    ack_policy: AckPolicy = AckPolicy.NACK_ON_ERROR,
    **kwargs: Any,
) -> Any:
    """Subscribe ``handler`` to batches of raw records, with at-least-once semantics.

    FastStream's Kafka default acknowledges on receipt, which loses the batch if the
    process dies mid-way. Here offsets are committed only when the handler returns,
    i.e. after everything it published was acknowledged; if it raises, the consumer is
    rewound to the batch's first record and the batch is delivered again.

    ``payload`` is the contract model the records carry: it documents the channel in
    the AsyncAPI document; decoding and validation stay with the handler.

    ``ack_policy=AckPolicy.MANUAL`` leaves committing to the service (one that commits
    only once its state is saved, for instance); extra kwargs go to the subscriber
    (``listener=``, ``partition_assignment_strategy=``...).
    """

    async def documented(body: Any) -> None:
        records = body if isinstance(body, list | tuple) else (body,)
        await handler(records)

    documented.__name__ = documented.__qualname__ = getattr(handler, "__name__", "handler")
    documented.__doc__ = handler.__doc__
    documented.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=list[payload])],
        return_annotation=None,
    )
    subscriber = broker.subscriber(
        *topic_names,
        group_id=group_id,
        batch=True,
        max_records=max_records,
        # FastStream sleeps ``batch_timeout_ms`` more after a poll that found nothing (200 ms each by
        # default): records arriving after a quiet spell waited up to 400 ms. A short poll: getmany
        # returns as soon as records are there, and a quiet consumer wakes every 2 x 20 ms
        batch_timeout_ms=BATCH_POLL_MS,
        auto_offset_reset="earliest",
        ack_policy=ack_policy,
        decoder=_undecoded,
        **kwargs,
    )
    subscriber(documented)
    return subscriber


async def confirm_all(sends: Iterable[Any], broker: KafkaBroker) -> None:
    """Wait until Kafka acknowledged every send of a batch (publish(..., no_confirm=True) results).

    The in-memory test broker returns no future; real sends always do. A failure that leaves
    the producer of ``broker`` (which sent them) out of sequence (``OUT_OF_SEQUENCE``)
    replaces that producer before it is raised: the caller's retry then goes through.
    """
    futures = [send for send in sends if send is not None]
    if futures:
        try:
            await asyncio.gather(*futures)
        except OUT_OF_SEQUENCE:
            await renew_producer(broker)
            raise


#: What an idempotent producer is answered once its sequence numbers no longer match the broker's
#: (sends of it failed during a broker outage): every later send to that partition fails the same
#: way until a new producer, with a new producer id, replaces it. A consumer whose batch fails so is
#: rewound and fails again, for ever, writing the records that did go through again at each round.
OUT_OF_SEQUENCE = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)
#: A producer renewed less than this long ago is not renewed again: the failures of the sends the
#: old one held arrive one after the other, and must not throw the new one away.
RENEWAL_SPACING_SECONDS = 5.0


@dataclass
class _Renewal:
    task: asyncio.Task[None]
    started: float


_renewals: dict[int, _Renewal] = {}


async def renew_producer(broker: KafkaBroker) -> None:
    """Replace the producer of a connected FastStream ``broker`` with a new one of the same options.

    FastStream has no call for this; its connect step is repeated for the producer alone, until
    it succeeds. What the old producer still held is dropped: its senders were told (their sends
    failed) and send again. Concurrent callers share one renewal, which their own timeouts do not
    cancel half-way (that would leave the broker with no producer at all).
    """
    renewal = _renewals.get(id(broker))
    now = time.monotonic()
    if renewal is None or (renewal.task.done() and now - renewal.started >= RENEWAL_SPACING_SECONDS):
        renewal = _renewals[id(broker)] = _Renewal(asyncio.create_task(_renew(broker)), now)
    await asyncio.shield(renewal.task)


async def _renew(broker: KafkaBroker) -> None:
    log.warning("the Kafka producer is out of sequence with the broker (after an outage): replacing it")
    with contextlib.suppress(Exception):
        await broker.config.broker_config.producer.disconnect()
    await retry_forever(lambda: connect_new_producer(broker), "replacing the Kafka producer")


async def connect_new_producer(broker: KafkaBroker) -> None:
    """Give ``broker`` a new producer made with the options of its first (idempotent, acks=all)."""
    config = broker.config.broker_config
    producer = AIOKafkaProducer(**broker._connection_kwargs)
    await config.producer.connect(producer, serializer=config.fd_config._serializer, codec=config.broker_codec)


async def retry_forever(
    action: Callable[[], Any], what: str, *, first_delay: float = 0.5, max_delay: float = 10.0
) -> None:
    """Run ``action`` until it succeeds, with exponential backoff; for start-up against a broker not up yet."""
    delay = first_delay
    while True:
        try:
            await action()
        except (KafkaError, OSError) as exc:
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
        else:
            return
