"""Kafka topic names of contract v1 (SPEC section 7).

Integrators code against these names and boards query the data behind them: change
them only with a new contract version. An optional prefix (``CHARTER_KAFKA_TOPIC_PREFIX``)
lets several environments share one cluster; the default is none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

CONTRACT_VERSION = 1


class EventKind(StrEnum):
    """The three event streams a network publishes; each has a raw and a canonical topic."""

    COUNTER_EVENTS = "counter-events"
    CALL_RECORDS = "call-records"
    CASE_COMPLETIONS = "case-completions"


CANONICAL_TOPICS: dict[EventKind, str] = {kind: f"charter.{kind.value}" for kind in EventKind}
SITES = "charter.sites"
DEAD_LETTER = "charter.dead-letter"
INDICATORS = "charter.indicators"
ALERTS = "charter.alerts"

_RAW_TOPIC = re.compile(r"^raw\.(?P<network>[a-z][a-z0-9-]{1,39})\.(?P<kind>[a-z-]+)$")


def raw_topic(network: str, kind: EventKind) -> str:
    """The topic a network writes its events of one kind to."""
    return f"raw.{network}.{kind.value}"


@dataclass(frozen=True)
class TopicNames:
    """Every topic and consumer-group name, under an optional environment prefix."""

    prefix: str = ""

    def canonical(self, kind: EventKind) -> str:
        return self.prefix + CANONICAL_TOPICS[kind]

    def raw(self, network: str, kind: EventKind) -> str:
        return self.prefix + raw_topic(network, kind)

    @property
    def sites(self) -> str:
        return self.prefix + SITES

    @property
    def dead_letter(self) -> str:
        return self.prefix + DEAD_LETTER

    @property
    def indicators(self) -> str:
        return self.prefix + INDICATORS

    @property
    def alerts(self) -> str:
        return self.prefix + ALERTS

    def group(self, group_id: str) -> str:
        """Consumer groups are prefixed too, so environments never share offsets."""
        return self.prefix + group_id

    def parse_raw(self, topic: str) -> tuple[str, EventKind] | None:
        """Network and kind of a raw topic name, or None if the name is not a raw topic."""
        if not topic.startswith(self.prefix):
            return None
        match = _RAW_TOPIC.match(topic[len(self.prefix) :])
        if match is None:
            return None
        try:
            kind = EventKind(match["kind"])
        except ValueError:
            return None
        return match["network"], kind
