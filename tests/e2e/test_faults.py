"""Faults a national deployment sees, on the whole path, each striking a service in the middle of its work.

- ingest, indicators and alerts are each killed (SIGKILL) once they have done part of a chunk of traffic,
  and restarted: the run ends with the indicator snapshots, the alert history and the notifications
  of a clean run over the same events;
- the broker is stopped for 30 s while a network streams a chunk over Kafka and ingest is half-way
  through it: every service reports the outage on /health for as long as it lasts, HTTPS ingest
  answers 503 with Retry-After, the services reconnect by themselves, and nothing acknowledged is lost.

Ingest writes a batch to the canonical topics before it records it as done (see
``charter_ingest.app``): a crash, or a batch that fails while the broker goes away, between the two
writes it again. So the canonical topics hold every event at least once, and exactly once in a run
without faults; the indicators count each event once whatever copies they read (a copy within the
grace period is refused as a duplicate, an older one as late: dead-lettered, not counted).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord

from charter_contracts import AlertEvent, DeadLetter, IndicatorSnapshot
from charter_contracts.topics import EventKind, TopicNames
from charter_ops.kafka.local import LocalKafka
from tests.support.faults import (
    BREACH_END,
    CAF_SITES,
    Chunk,
    Network,
    calling_sites,
    checkpoints,
    counted,
    counted_calls,
    counted_cases,
    ends,
    event_ids,
    fault_traffic,
    until,
)
from tests.support.ingest import token_file
from tests.support.kafka import ServiceProcess, Tail, create_topics, local_broker, read_all, running, unique_names
from tests.support.pipeline import services
from tests.support.receivers import WebhookSink
from tests.support.recovery import INDICATORS_ENV, PARTITIONS, finished, publish_raw
from tests.support.sites import publish_sites

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(1200)]
TRAFFIC = fault_traffic()
OUTAGE_SECONDS = 30.0
#: the pickup-rate rule judges CAF and each department calls are offered in: one alert each
ALERTS = 1 + len({s.department for s in calling_sites()})
#: What an alert event says that follows from the events alone, compared with the clean run's. Not
#: compared: ``since`` and ``at``, the ``as_of`` of the first snapshot judged in breach (or recovered),
#: because which minutes the indicators publish a snapshot for depends on when they flush (a wall-clock
#: cadence, and a restart's replay), not on the events, and because a network's ``as_of`` is its
#: earliest partition's, which lags the calling sites' partition by however far the others are behind
#: at that flush (see ``tests.support.faults``); ``summary_fr``, ``summary_en`` and ``dashboard_url``
#: spell those instants out. They are bounded instead (``assert_bounded``).
FACTS = ("status", "episode", "rule", "kind", "indicator", "network", "department", "window", "value", "threshold")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of this module's own: it is stopped mid-test, the session's is shared."""
    with local_broker(tmp_path_factory.mktemp("faults")) as kafka:
        yield kafka


@dataclass
class Run:
    """One pipeline (ingest, indicators, alerts) on topics of its own, notifying a webhook of its own."""

    names: TopicNames
    services: tuple[ServiceProcess, ServiceProcess, ServiceProcess]
    webhook: WebhookSink
    token: str

    @property
    def canonical_topics(self) -> list[str]:
        return [self.names.canonical(kind) for kind in EventKind]


async def setup_run(bootstrap: str, tmp_path: Path, name: str) -> Run:
    names = unique_names()
    await create_topics(bootstrap, names, partitions=PARTITIONS)
    await publish_sites(bootstrap, names, CAF_SITES)
    logs = tmp_path / name
    logs.mkdir()
    tokens, token = token_file(logs)
    webhook = WebhookSink().start()
    pipeline = services(
        bootstrap,
        names,
        logs,
        ingest={
            "CHARTER_INGEST_NETWORKS": "caf,cpam",
            "CHARTER_INGEST_TOKENS_FILE": str(tokens),
            "CHARTER_INGEST_PUBLISH_TIMEOUT_SECONDS": "3",
            "CHARTER_INGEST_RETRY_AFTER_SECONDS": "1",
        },
        indicators=INDICATORS_ENV,
        alerts={
            "CHARTER_ALERTS_WEBHOOK_URL": f"{webhook.url}/on-call",
            "CHARTER_ALERTS_WEBHOOK_SECRET": "faults",
            "CHARTER_ALERTS_NOTIFY_RETRY_MAX_SECONDS": "1",
        },
    )
    return Run(names, pipeline, webhook, token)


async def post(url: str, token: str, chunk: Sequence[dict[str, Any]]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as http:
        return await http.post(f"{url}/v1/events", json=list(chunk), headers={"Authorization": f"Bearer {token}"})


async def post_until_accepted(url: str, token: str, chunk: Sequence[dict[str, Any]]) -> list[str]:
    """What an integrator does: on 503, wait Retry-After and send the same request again."""
    deadline = time.monotonic() + 180
    while True:
        answer = await post(url, token, chunk)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        assert answer.status_code == 503, answer.text
        await asyncio.sleep(float(answer.headers["Retry-After"]))
    assert answer.status_code == 200, answer.text
    return [r["event_id"] for r in answer.json()["results"] if r["status"] == "accepted"]


async def health(url: str) -> tuple[int, str]:
    """The /health answer: status code and status (0 and the error when it did not answer)."""
    async with httpx.AsyncClient(timeout=15) as http:
        try:
            answer = await http.get(f"{url}/health")
        except httpx.HTTPError as exc:
            return 0, repr(exc)
        return answer.status_code, answer.json()["status"]


class Written:
    """The event ids on the canonical topics so far, as a watcher reads them."""

    def __init__(self, tail: Tail) -> None:
        self.tail = tail
        self.ids: Counter[str] = Counter()

    async def update(self) -> Written:
        self.ids.update(event_ids(await self.tail.read(timeout_ms=100)))
        return self

    async def settle(self, quiet: float = 2.0) -> Written:
        """Read until nothing new came for ``quiet`` seconds."""
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            if await self.tail.read(timeout_ms=200):
                last = time.monotonic()
        self.ids = Counter(event_ids(self.tail.records))
        return self

    def of(self, chunk: Chunk) -> int:
        """How many of the chunk's events are there (each once, however many copies)."""
        return sum(1 for i in chunk.ids if i in self.ids)


def national_as_of(records: Sequence[ConsumerRecord[bytes, bytes]]) -> datetime | None:
    """How far the national figures a user sees had got."""
    shown = [
        s.as_of
        for s in (IndicatorSnapshot.model_validate_json(r.value) for r in records)
        if s.scope.key == "*/*/*" and s.window == "1h"
    ]
    return max(shown, default=None)


async def firing(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.get(f"{url}/v1/alerts", params={"status": "firing"})
    alerts: list[dict[str, Any]] = answer.json()["alerts"]
    return alerts


@dataclass(frozen=True)
class Ending:
    """What a run ends with, as its users see it."""

    snapshots: dict[Any, Any]  # the last snapshot of every indicator, scope and window
    alerts: dict[str, list[AlertEvent]]  # each alert's events on charter.alerts, in order
    deliveries: Counter[str]  # the notifications the webhook accepted, by idempotency key
    canonical: Counter[str]  # event ids on the canonical topics
    dead: list[DeadLetter]

    def history(self) -> dict[str, list[dict[str, Any]]]:
        """Each alert's events, reduced to what the events alone decide (see FACTS)."""
        return {fp: [e.model_dump(include=set(FACTS)) for e in events] for fp, events in self.alerts.items()}


async def ending(bootstrap: str, run: Run) -> Ending:
    """Once the national figures reached the traffic's end and every alert resolved and was delivered."""
    snapshots = await finished(bootstrap, run.names, TRAFFIC.as_of)

    async def delivered() -> bool:
        events = [AlertEvent.model_validate_json(r.value) for r in await read_all(bootstrap, run.names.alerts, 0.5)]
        keys = {f"{e.fingerprint}-{e.episode}-{e.status}" for e in events}
        accepted = {r.headers.get("Idempotency-Key") for r in run.webhook.received}
        return len({e.fingerprint for e in events if e.status == "resolved"}) >= ALERTS and keys <= accepted

    await until(delivered, "every alert resolved and both notifications were delivered", every=1.0)
    alerts: dict[str, list[AlertEvent]] = {}
    for record in await read_all(bootstrap, run.names.alerts, settle=3.0):
        alerts.setdefault(record.key.decode(), []).append(AlertEvent.model_validate_json(record.value))
    canonical: Counter[str] = Counter()
    for topic in run.canonical_topics:
        canonical.update(event_ids(await read_all(bootstrap, topic, 1.0)))
    dead = [DeadLetter.model_validate_json(r.value) for r in await read_all(bootstrap, run.names.dead_letter, 0.5)]
    deliveries = Counter(r.headers.get("Idempotency-Key", "") for r in run.webhook.received)
    return Ending(snapshots, alerts, deliveries, canonical, dead)


def assert_bounded(alerts: dict[str, list[AlertEvent]]) -> None:
    """The instants FACTS leaves out, within the bounds the events set: each alert fired once the breach's
    calls were counted (at most an hour after the breach, when they left the window) and resolved after."""
    for fingerprint, (fired, resolved) in alerts.items():
        assert fired.since == fired.at, fingerprint  # the rule fires at once (for: 0s)
        assert fired.at <= BREACH_END + timedelta(hours=1), fingerprint
        assert resolved.since == fired.since, fingerprint
        assert fired.at < resolved.at <= TRAFFIC.as_of, fingerprint


def assert_counted_once(run: Run, end: Ending, clean: Ending, resent: set[str]) -> None:
    """Nothing lost; a copy on the canonical topics (an ingest batch written again) is never counted twice;
    nothing refused but copies: events sent again (``resent``) by ingest, copies older than the grace
    period by the indicators."""
    assert set(end.canonical) == {p["event_id"] for p in TRAFFIC.events()}  # every event reached them
    copies = {event_id for event_id, n in end.canonical.items() if n > 1}
    for letter in end.dead:
        event_id = json.loads(letter.payload)["event_id"]
        if letter.source_topic in run.canonical_topics:  # the indicators'
            assert (letter.reason, event_id in copies) == ("late", True), letter
        else:  # ingest's
            assert (letter.reason, event_id in resent) == ("duplicate", True), letter
    assert end.snapshots == clean.snapshots  # every event counted exactly once, as in the clean run


@pytest.fixture(scope="module")
async def clean(broker: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Ending:
    """What a run without faults ends with (the traffic every test of the module sends)."""
    bootstrap = broker.bootstrap_servers
    run = await setup_run(bootstrap, tmp_path_factory.mktemp("clean"), "clean")
    try:
        with running(*run.services):
            for chunk in TRAFFIC.chunks[:-1]:
                await publish_raw(bootstrap, run.names, chunk.events)
            await post_until_accepted(run.services[0].url, run.token, TRAFFIC.https.events)  # the last over HTTPS
            return await ending(bootstrap, run)
    finally:
        run.webhook.stop()


async def test_a_clean_run_counts_every_event_once_and_notifies_each_breach_once(clean: Ending) -> None:
    """The reference the faulty runs are held to is itself right."""
    assert clean.canonical == Counter(p["event_id"] for p in TRAFFIC.events())  # each event once, no fault
    assert clean.dead == []
    nation = {
        (indicator, window): value
        for (indicator, scope, window, *_), value in clean.snapshots.items()
        if scope == "*/*/*"
    }
    answered, offered = counted_calls(TRAFFIC.events())
    assert nation[("pickup_rate", "today")][:2] == (answered, offered)
    cases = counted_cases(TRAFFIC.events())
    assert json.loads(nation[("deadline_compliance", "today")][4])["cases_completed"] == cases
    # every alert fired with the breach's rate and resolved with the recovery's, once, and was notified once each
    assert len(clean.alerts) == ALERTS
    for events in clean.history().values():
        assert [(e["status"], e["episode"], e["value"], e["threshold"]) for e in events] == [
            ("firing", 1, 0.5, 0.85),
            ("resolved", 1, 1.0, 0.85),
        ]
    assert_bounded(clean.alerts)
    assert clean.deliveries == Counter(
        f"{e.fingerprint}-{e.episode}-{e.status}" for events in clean.alerts.values() for e in events
    )


async def test_ingest_indicators_and_alerts_each_killed_in_the_middle_of_a_chunk_end_like_a_clean_run(
    broker: LocalKafka, tmp_path: Path, clean: Ending
) -> None:
    bootstrap = broker.bootstrap_servers
    run = await setup_run(bootstrap, tmp_path, "faulty")
    ingest, indicators, alerts = run.services
    names = run.names
    state_topic = f"{names.group('charter-indicators')}.state"
    opening, steady, breach, recovery, https = TRAFFIC.chunks
    run.webhook.failing.set()  # on-call's webhook is down until alerts is killed: notifications will be owed
    try:
        with running(*run.services):
            async with Tail(bootstrap, *run.canonical_topics) as tail, Tail(bootstrap, state_topic) as state:
                written = Written(tail)
                await publish_raw(bootstrap, names, opening.events)

                # 1. ingest, killed once some but not all of its chunk is on the canonical topics
                sending = asyncio.create_task(publish_raw(bootstrap, names, steady.events))

                async def ingest_under_way() -> bool:
                    return (await written.update()).of(steady) > 0

                await until(ingest_under_way, "ingest wrote part of its chunk")
                ingest.kill()
                await sending
                done = (await written.settle()).of(steady)
                assert 0 < done < len(steady.events), f"ingest had written {done} of {len(steady.events)}"
                ingest.start()
                before = len(opening.events) + len(steady.events)

                async def all_counted() -> bool:
                    return await counted(indicators.url) >= before

                await until(all_counted, "the indicators counted the chunk ingest was killed in")
                assert await counted(indicators.url) == before  # each event once, copies or not

                # 2. indicators, killed once a checkpoint covers part of its chunk and events are left to count
                start = ends((await written.settle()).tail.records)  # where the chunk begins on the canonical topics
                sending = asyncio.create_task(publish_raw(bootstrap, names, breach.events))

                async def checkpointed_part() -> bool:
                    await state.read(timeout_ms=100)
                    saved = checkpoints(state.records)
                    return any(
                        offsets.get(topic, 0) > start.get((topic, partition), 0)
                        for partition, offsets in saved.items()
                        for topic in run.canonical_topics
                    )

                await until(checkpointed_part, "a checkpoint covers part of the indicators' chunk")
                at_kill = await counted(indicators.url)
                indicators.kill()
                assert at_kill < before + len(breach.events), "the indicators had counted the whole chunk"
                shown = national_as_of(await read_all(bootstrap, names.indicators, settle=1.0))
                assert shown is not None
                assert shown < breach.as_of  # its figures were not all out
                await sending
                indicators.start()

                # 3. alerts, killed while alerts are firing, their notifications owed, the chunk that
                # resolves them judged in part
                await finished_up_to(bootstrap, names, breach.as_of)
                sending = asyncio.create_task(publish_raw(bootstrap, names, recovery.events))
                seen: list[dict[str, Any]] = []

                async def alerts_under_way() -> bool:
                    seen[:] = await firing(alerts.url)
                    judged = [datetime.fromisoformat(a["value_now_at"]) for a in seen if a["value_now_at"]]
                    return bool(seen) and max(judged, default=breach.as_of) > breach.as_of

                await until(alerts_under_way, "alerts judged part of their chunk with alerts firing")
                alerts.kill()
                assert run.webhook.refused
                assert run.webhook.received == []  # notifications owed
                assert max(datetime.fromisoformat(a["value_now_at"]) for a in seen) < recovery.as_of
                published = [AlertEvent.model_validate_json(r.value) for r in await read_all(bootstrap, names.alerts)]
                assert published
                assert {e.status for e in published} == {"firing"}  # no breach had been judged over yet
                await sending
                run.webhook.failing.clear()
                alerts.start()

                await post_until_accepted(ingest.url, run.token, https.events)
                faulty = await ending(bootstrap, run)
    finally:
        run.webhook.stop()

    print(  # the figures the README quotes
        f"\nkills: ingest at {done}/{len(steady.events)} events of its chunk on the canonical topics, "
        f"indicators at {at_kill - before}/{len(breach.events)} counted, alerts with {len(seen)} firing, "
        f"judged up to {max(a['value_now_at'] for a in seen)} (the chunk ends at {recovery.as_of}), "
        f"{len(run.webhook.refused)} notification attempts refused; "
        f"copies on the canonical topics: {sum(n - 1 for n in faulty.canonical.values())}; "
        f"dead letters: {Counter(d.reason.value for d in faulty.dead)}"
    )
    assert_counted_once(run, faulty, clean, resent=set())  # nothing was sent twice to ingest
    assert faulty.history() == clean.history()  # each alert fired and resolved once, with the same values
    assert_bounded(faulty.alerts)
    assert faulty.deliveries == clean.deliveries  # the owed notifications, each delivered once


async def finished_up_to(bootstrap: str, names: TopicNames, as_of: datetime) -> None:
    """Wait until the national figures a user sees reach ``as_of``."""

    async def reached() -> bool:
        shown = national_as_of(await read_all(bootstrap, names.indicators, settle=0.5))
        return shown is not None and shown >= as_of

    await until(reached, f"the national figures reached {as_of}", every=1.0)


async def test_the_broker_stopped_30s_mid_chunk_is_reported_throughout_then_the_services_reconnect_and_lose_nothing(
    broker: LocalKafka, tmp_path: Path, clean: Ending
) -> None:
    bootstrap = broker.bootstrap_servers
    run = await setup_run(bootstrap, tmp_path, "outage")
    ingest, indicators, _ = run.services
    names = run.names
    opening, steady, breach, recovery, https = TRAFFIC.chunks
    resent = steady.events[:50]  # what an integrator sends during the outage: events it is not sure arrived
    try:
        with running(*run.services):
            pids = [s.process.pid for s in run.services if s.process is not None]
            async with Tail(bootstrap, *run.canonical_topics) as tail:
                written = Written(tail)
                for chunk in (opening, steady):
                    await publish_raw(bootstrap, names, chunk.events)
                before = len(opening.events) + len(steady.events)

                async def all_counted() -> bool:
                    return await counted(indicators.url) >= before

                await until(all_counted, "the indicators counted the first chunks")

                # a network streams the next chunk over Kafka; the broker stops once ingest wrote part of it
                # and the indicators counted part of it
                network = Network(bootstrap, names, breach.events)
                streaming = asyncio.create_task(network.run())

                async def under_way() -> bool:
                    return (await written.update()).of(breach) > 0 and await counted(indicators.url) > before

                await until(under_way, "ingest and indicators are processing the chunk")
                await asyncio.to_thread(broker.down)
                stopped = time.monotonic()
                assert not streaming.done()  # the network was still sending: the chunk is half-way through
                assert written.of(breach) < len(breach.events)

                refused = asyncio.create_task(post(ingest.url, run.token, resent))
                polls: list[list[tuple[int, str]]] = []
                while time.monotonic() - stopped < OUTAGE_SECONDS:  # a check of every service each second or two
                    began = time.monotonic()
                    answers = list(await asyncio.gather(*(health(s.url) for s in run.services)))
                    polls.append(answers)
                    assert answers == [(503, "kafka_unreachable")] * 3, f"check {len(polls)}: {answers}"
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
                assert len(polls) >= OUTAGE_SECONDS / 3  # every service checked all through the outage
                answer = await refused
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"] == "1"
                assert answer.json()["error"] == "kafka_unavailable"
                await asyncio.to_thread(broker.up, tie_to_parent=True)

                async def all_healthy() -> bool:
                    answers = await asyncio.gather(*(health(s.url) for s in run.services))
                    return all(code == 200 for code, _ in answers)

                await until(all_healthy, "every service reconnected", timeout=120, every=1.0)
                # by themselves: the same processes, none restarted
                assert [s.process.pid for s in run.services if s.process is not None] == pids
                assert all(s.process is not None and s.process.poll() is None for s in run.services)

                acknowledged = await post_until_accepted(ingest.url, run.token, resent)  # the integrator retries
                assert acknowledged == [p["event_id"] for p in resent]
                await asyncio.wait_for(streaming, 300)
                assert network.acknowledged == [p["event_id"] for p in breach.events]
                await publish_raw(bootstrap, names, recovery.events)
                acknowledged += await post_until_accepted(ingest.url, run.token, https.events)
                outage = await ending(bootstrap, run)
    finally:
        run.webhook.stop()

    print(  # the figures the README quotes
        f"\noutage: stopped with {written.of(breach)}/{len(breach.events)} events of the chunk written, "
        f"{len(network.acknowledged)} acknowledged to the network; {len(polls)} health checks of each service "
        f"answered 503; the network's sends failed {network.failures} times; "
        f"copies on the canonical topics: {sum(n - 1 for n in outage.canonical.values())}; "
        f"dead letters: {Counter(d.reason.value for d in outage.dead)}"
    )
    assert set(network.acknowledged + acknowledged) <= set(outage.canonical)  # nothing acknowledged lost
    assert_counted_once(run, outage, clean, resent={p["event_id"] for p in resent} | network.resent)
    assert outage.history() == clean.history()
    assert_bounded(outage.alerts)
    # every notification delivered; a receiver may be sent one again with the same idempotency key if
    # the broker went away between its answer and the delivery's record (README "Exactly one page")
    assert set(outage.deliveries) == set(clean.deliveries)
