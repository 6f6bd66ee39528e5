"""One partition of the site-keyed streams, each network on its own event time.

Networks publish independently: one replays an hour of backlog while another is live, a
small network's whole backlog reaches the canonical topics before a large one's first
minutes (ingest reads the raw topics of every network at once). Judged on one clock per
partition, the network read later had its events judged late against the one read first:
in a 30-minute backfill of the simulated networks, about as many events were refused as
counted. So a partition holds one ``PartitionState`` per network: each network's events
are judged against its own streams (its watermark, grace period and flushes), and its
figures are as of its own ``as_of``. Every scope but the nation and a department across
networks belongs to one network; those two are summed over the networks' partial sums in
stage 2, which already sums sources as of different minutes (the partitions).

A network that falls silent while the others go on would hold nothing back but its own
figures, except that stage 2's ``as_of`` is the earliest of its sources: a network may not
lag the partition's most advanced one by more than ``max_lag`` of event time (it is moved on,
and its later events older than that are late).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from charter_indicators.domain.events import DomainEvent, Outcome
from charter_indicators.domain.partition import NEG_INF, IndicatorConfig, PartitionState, SiteState
from charter_indicators.domain.schedule import SiteInfo
from charter_indicators.domain.snapshots import SnapshotValue

#: checkpoint of a partition: one ``PartitionState.dump`` per network
PARTITION_FORMAT = 1


def source_id(partition: int, network: str) -> str:
    """The source of a network's partial sums in stage 2: a partition's network."""
    return f"{partition}/{network}"


class Partition:
    """Indicator state of one partition, one ``PartitionState`` per network with sites in it."""

    def __init__(self, partition: int, config: IndicatorConfig, *, max_lag: float = math.inf) -> None:
        self.partition = partition
        self.config = config
        self.max_lag = max_lag
        self.networks: dict[str, PartitionState] = {}

    def network(self, name: str) -> PartitionState:
        state = self.networks.get(name)
        if state is None:
            state = self.networks[name] = PartitionState(self.partition, self.config)
        return state

    def states(self) -> Iterator[tuple[str, PartitionState]]:
        """Each network's state, in network order (outputs do not depend on arrival order)."""
        for name in sorted(self.networks):
            yield name, self.networks[name]

    # -- registry ---------------------------------------------------------------------

    def site(self, site_id: str) -> SiteState | None:
        """A registered site, whatever its network (no index of its own: 30 bytes a site)."""
        for state in self.networks.values():
            site = state.sites.get(site_id)
            if site is not None:
                return site
        return None

    def all_sites(self) -> list[SiteState]:
        return [site for _, state in self.states() for site in state.sites.values()]

    def register(self, info: SiteInfo) -> None:
        """Add or update a site; a site that changes network starts afresh in its new one."""
        known = self.site(info.site_id)
        if known is not None and known.info.network != info.network:
            self.networks[known.info.network].unregister(info.site_id)
        self.network(info.network).register(info)

    def unregister(self, site_id: str) -> None:
        site = self.site(site_id)
        if site is not None:
            self.networks[site.info.network].unregister(site_id)

    # -- events and time --------------------------------------------------------------

    def apply(self, event: DomainEvent) -> Outcome:
        """Count one event in its network's state, or say why not."""
        state = self.networks.get(event.network)
        if state is None:
            return Outcome.UNKNOWN_SITE
        return state.apply(event)

    def watermark_of(self, network: str) -> float:
        state = self.networks.get(network)
        return state.watermark if state is not None else NEG_INF

    @property
    def watermark(self) -> float:
        """The earliest watermark of the networks that have one (complete up to)."""
        marks = [s.watermark for s in self.networks.values() if s.watermark > NEG_INF]
        return min(marks) if marks else NEG_INF

    @property
    def as_of(self) -> float | None:
        """The earliest ``as_of`` of the networks that have one."""
        marks = [s.as_of for s in self.networks.values() if s.as_of is not None]
        return min(marks) if marks else None

    def keep_up(self) -> None:
        """Move a network more than ``max_lag`` behind the partition's most advanced one up to that bound."""
        top = max((s.watermark for s in self.networks.values()), default=NEG_INF)
        if top == NEG_INF or math.isinf(self.max_lag):
            return
        for state in self.networks.values():
            if NEG_INF < state.watermark < top - self.max_lag:
                state.advance(top - self.max_lag)

    def minutes_held(self) -> int:
        return sum(s.minutes_held() for s in self.networks.values())

    def site_snapshots(self, sites: Iterable[SiteState]) -> list[SnapshotValue]:
        """The current windows of ``sites``, each from its network's state."""
        by_network: dict[str, list[SiteState]] = {}
        for site in sites:
            by_network.setdefault(site.info.network, []).append(site)
        out: list[SnapshotValue] = []
        for name, chunk in sorted(by_network.items()):
            state = self.networks.get(name)
            if state is not None:
                out += state.site_snapshots(chunk)
        return out

    # -- persistence ------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {"partition_format": PARTITION_FORMAT, "networks": {n: s.dump() for n, s in self.states()}}

    @staticmethod
    def loadable(data: dict[str, Any]) -> bool:
        """Whether ``load`` can read a checkpoint (one written by an older version cannot)."""
        return data.get("partition_format") == PARTITION_FORMAT and all(
            PartitionState.loadable(d) for d in data.get("networks", {}).values()
        )

    def load(self, data: dict[str, Any]) -> None:
        """Restore from ``dump`` output; call after the registry is loaded."""
        for name, document in data["networks"].items():
            self.network(name).load(document)
