"""The indicator state of one partition of the site-keyed streams, in event time.

The canonical topics and ``charter.sites`` are co-partitioned by ``site_id``, so one
partition holds every event of its sites. This module is the pure core of the service:
events in, per-site snapshots and per-scope partial sums out; no Kafka, no Prometheus.

Time model (README, "Event time"):

- the partition's watermark ``W`` follows the latest event time minus the grace period
  (see ``progress``); an event older than ``W``, or older than the latest event of its
  own stream minus the grace period, is late: it is not counted (the service reports it);
- everything is computed *as of* ``A``, the watermark rounded down to the minute: every
  event before ``A`` has been counted, none after it, and the order of events within the
  grace period does not matter;
- a call is known once it has ended: it counts in the window it was received in, from
  the first ``A`` after its end (so lateness is judged on ``ended_at``); calls longer than
  ``max_call`` are late. A call that ends after its minute was published revises that
  minute's windows, hour and day (they are published again);
- windows: ``15m`` = [A-15min, A), ``1h`` = [A-1h, A), ``hour`` = the UTC hour of the
  last complete minute, ``today`` and ``day`` = the local day of the last complete
  minute, up to A; ``7d`` = today and the six local days before it; ``live`` = just before A.

What a flush costs follows what changed, not how many sites there are:

- opening time accrues between changes (``opening.py``): the partition sweeps, in time
  order, the instants a site's state changes (schedule edges, unannounced closures,
  counters, staleness) and the hour and day boundaries, keeping running integrals per
  site and per department (a department's rates are counts of sites);
- calls and cases are added to their site's and department's hour and day buckets when
  they take effect, and to a log of the last hour (one 64-bit integer each) from which
  the 15-minute and 1-hour windows slide: a minute leaving a window is subtracted.

Every part of calls and cases is a whole number (waits in milliseconds, processing in
seconds), so sums and differences are exact in any order.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import heapq
import math
import zlib
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from charter_contracts.sites import department_timezone
from charter_indicators.domain import opening
from charter_indicators.domain.calendar import DAY, HOUR, MINUTE, LocalDays, local_days, minute_floor
from charter_indicators.domain.deadline import ProcedureRules, within_deadline
from charter_indicators.domain.events import Call, Case, CounterChange, DomainEvent, Outcome
from charter_indicators.domain.opening import (
    ACC_OPEN,
    ACC_SCHED,
    AT,
    DAY_AT,
    DAY_OPEN,
    DAY_SCHED,
    HOUR_AT,
    HOUR_OPEN,
    HOUR_SCHED,
    RATE_OPEN,
    RATE_SCHED,
)
from charter_indicators.domain.parts import (
    ANSWERED,
    GROUP_WIDTH,
    IVR,
    LIVE_OPEN,
    LIVE_OPEN_UNSCHEDULED,
    LIVE_SCHEDULED,
    LIVE_SITES,
    LIVE_STALE,
    LIVE_STALE_SCHEDULED,
    LIVE_WIDTH,
    OFFERED,
    OPEN_SECONDS,
    PROCESSING_EDGES,
    PROCESSING_HIST,
    PROCESSING_SUM,
    SCHEDULED_SECONDS,
    SHORT,
    SITE_WIDTH,
    SITES_SCHEDULED,
    WAIT_EDGES,
    WAIT_HIST,
    WAIT_SUM,
    WITH_DEADLINE,
    WITHIN_DEADLINE,
    WITHIN_SL,
    WITHOUT_DEADLINE,
    add_into,
    zeros,
)
from charter_indicators.domain.schedule import SiteInfo
from charter_indicators.domain.snapshots import (
    INDICATORS,
    OPENING,
    SnapshotValue,
    build,
    indicator_key,
    is_empty,
    opening_live_site,
)

ROLLING = ("15m", "1h", "today", "7d")
#: The three event streams of a partition, one per canonical topic.
COUNTERS, CALLS, CASES = "k", "c", "d"
#: How far back closed calendar buckets are still published after a jump of the watermark.
BUCKET_HORIZON = 8 * DAY
#: A flush moves time on by at most this much at once (a longer jump goes in steps).
STEP = 6 * HOUR
#: Version of the checkpoint documents ``dump`` writes; a document of another version is not loaded.
CHECKPOINT_FORMAT = 4
NEG_INF = -math.inf
_PARIS = "Europe/Paris"

ScopeKey = tuple[str | None, str | None]
Payload = dict[str, Any]


@dataclass(frozen=True)
class IndicatorConfig:
    """The service's indicator settings, as the domain needs them."""

    grace: float = 60.0
    stale_after: float = 12 * HOUR
    short_abandon: float = 5.0
    service_level: float = 60.0
    #: a call lasting longer than this (received to ended) is late: it could revise hours long published
    max_call: float = HOUR
    rules: ProcedureRules = field(default_factory=ProcedureRules)


# -- a site's state, as bits ------------------------------------------------------------------
SCHED, RAW, UNANN, STALE = 1, 2, 4, 8  # scheduled; a counter open (not expired); unannounced closure; stale


def _contribution(flags: int) -> tuple[int, int, int, int, int]:
    """(open and scheduled, scheduled, open outside the schedule, stale, stale and scheduled)."""
    scheduled = flags & SCHED != 0
    effective = flags & RAW != 0 and flags & UNANN == 0
    stale = flags & STALE != 0
    return (
        int(scheduled and effective),
        int(scheduled),
        int(effective and not scheduled),
        int(stale),
        int(stale and scheduled),
    )


_CONTRIBUTION = [_contribution(flags) for flags in range(16)]
# edge kinds, in the order they apply at one instant (after counter events)
_SCHEDULE, _CLOSURE, _EXPIRY = 0, 1, 2

# -- calls and cases, as log records ----------------------------------------------------------
# record = site index (18 bits) | code (14 bits) | value (32 bits: wait in ms, processing in s)
# code = kind (3 bits) | histogram bin (5 bits) | procedure label (6 bits)
_SITE_SHIFT, _CODE_SHIFT = 46, 32
_VALUE_MASK = (1 << 32) - 1
_CODE_MASK = (1 << 14) - 1
MAX_SITES = 1 << 18
MAX_LABELS = 1 << 6
_ABANDONED, _ANSWERED, _ANSWERED_SL, _SHORT, _IVR, _CASE_WITHIN, _CASE_LATE, _CASE_NONE = range(8)
#: per kind: the parts counted once, the part the value adds to (-1: none), the histogram's first part
_KINDS: tuple[tuple[tuple[int, ...], int, int], ...] = (
    ((OFFERED,), -1, -1),
    ((OFFERED, ANSWERED), WAIT_SUM, WAIT_HIST),
    ((OFFERED, ANSWERED, WITHIN_SL), WAIT_SUM, WAIT_HIST),
    ((SHORT,), -1, -1),
    ((IVR,), -1, -1),
    ((WITH_DEADLINE, WITHIN_DEADLINE), PROCESSING_SUM, PROCESSING_HIST),
    ((WITH_DEADLINE,), PROCESSING_SUM, PROCESSING_HIST),
    ((WITHOUT_DEADLINE,), PROCESSING_SUM, PROCESSING_HIST),
)

# -- buckets: a tag (hour start or day ordinal), then the parts --------------------------------
_RING = 7  # local days kept: the 7d window (today and six days), the day just closed among them
_GROUP_ROW = 1 + GROUP_WIDTH
# A site's numbers are two arrays. ``op`` (doubles): its integrals, then a ring of seven days of
# [day, seconds open, seconds scheduled, waits (ms), processing (s)], then the waits and processing
# of the last 15 minutes and of the last hour. ``counts`` (32-bit): the ring of the same days'
# counts, then the counts of the last 15 minutes and of the last hour. Counts are most of a
# site's parts: half the size as 32-bit integers, exact, and a site's day never nears 2**31.
_COUNT_PARTS = (OFFERED, ANSWERED, SHORT, IVR, WITHIN_SL, WITH_DEADLINE, WITHIN_DEADLINE, WITHOUT_DEADLINE)
_COUNT_INDEX = {part: i for i, part in enumerate(_COUNT_PARTS)}
_SUM_INDEX = {WAIT_SUM: 0, PROCESSING_SUM: 1}
_SITE_RING = opening.WIDTH
_SITE_DAY = 5  # day, open, scheduled, waits, processing
_SITE_COUNTS = len(_COUNT_PARTS)
_SITE_W15 = _SITE_RING + _RING * _SITE_DAY  # op[_SITE_W15 + sum index]
_SITE_W60 = _SITE_W15 + len(_SUM_INDEX)
_SITE_END = _SITE_W60 + len(_SUM_INDEX)  # when the site's schedule last ended (NaN: scheduled now, or never)
_SITE_OP = _SITE_END + 1
_COUNT_RING = 1  # counts[0]: the site's index in its partition (an int object per site otherwise)
_COUNT_W15 = _COUNT_RING + _RING * _SITE_COUNTS  # counts[_COUNT_W15 + count index]
_COUNT_W60 = _COUNT_W15 + _SITE_COUNTS
_SITE_COUNT_WIDTH = _COUNT_W60 + _SITE_COUNTS
# then, in both arrays, a row per hour bucket not final yet: [hour, open, scheduled, waits, processing]
# and its counts
#: per kind: the count indices a site adds to, and the index of the sum its value adds to (-1: none)
_SITE_KINDS = tuple(
    (tuple(_COUNT_INDEX[part] for part in plus), _SUM_INDEX.get(value_part, -1)) for plus, value_part, _ in _KINDS
)


def _ring_base(ring: array[float], row: int, day: int) -> int:
    """Offset of day ``day``'s parts in a ring of days (claimed if its slot held an older day; -1 if a newer one)."""
    base = (day % _RING) * row
    held = ring[base]
    if held != day:
        if held > day:
            return -1
        ring[base] = day
        for i in range(base + 1, base + row):
            ring[i] = 0.0
    return base + 1


def _ring_day(ring: array[float], row: int, day: int) -> list[float] | None:
    base = (day % _RING) * row
    if ring[base] != day:
        return None
    return ring[base + 1 : base + row].tolist()


def _new_ring(row: int) -> array[float]:
    """A ring of days (tags -1: none held)."""
    ring = array("d", bytes(8 * row * _RING))
    for slot in range(_RING):
        ring[slot * row] = -1.0
    return ring


def _site_slot(site: SiteState, day: int, claim: bool) -> int:
    """Slot of local day ``day`` in the site's ring (claimed when ``claim`` and it held an older day); -1."""
    op, counts = site.op, site.counts
    assert op is not None
    slot = day % _RING
    base = _SITE_RING + slot * _SITE_DAY
    held = op[base]
    if held != day:
        if not claim or held > day:
            return -1
        op[base : base + _SITE_DAY] = array("d", [day, 0.0, 0.0, 0.0, 0.0])
        start = _COUNT_RING + slot * _SITE_COUNTS
        counts[start : start + _SITE_COUNTS] = array("i", bytes(4 * _SITE_COUNTS))
    return slot


def _site_day(site: SiteState, day: int) -> list[float] | None:
    """A site's parts of local day ``day`` (None if the ring does not hold it)."""
    if site.op is None:
        return None
    slot = _site_slot(site, day, False)
    if slot < 0:
        return None
    return _site_vector(site, _SITE_RING + slot * _SITE_DAY + 1, _COUNT_RING + slot * _SITE_COUNTS)


def _site_vector(site: SiteState, sums: int, counts_at: int, *, opening_time: bool = True) -> list[float]:
    """Parts from a site's arrays: opening and sums at ``op[sums:]`` (or the sums only), counts at
    ``counts[counts_at:]``."""
    op, counts = site.op, site.counts
    assert op is not None
    vector = zeros(SITE_WIDTH)
    if opening_time:
        vector[OPEN_SECONDS], vector[SCHEDULED_SECONDS] = op[sums], op[sums + 1]
        vector[SITES_SCHEDULED] = 1.0 if op[sums + 1] > 0 else 0.0
        sums += 2
    vector[WAIT_SUM], vector[PROCESSING_SUM] = op[sums], op[sums + 1]
    for i, part in enumerate(_COUNT_PARTS):
        vector[part] = counts[counts_at + i]
    return vector


class _Seen:
    """Event ids of one stream of one network, and the minute each expires.

    A dict rebuilt without the expired ids at each prune: compact (a set keeps the table of its
    largest size, several times its entries), and one ``int`` per minute shared by its ids.
    """

    __slots__ = ("ids",)

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def add(self, event_id: str, minute: int) -> None:
        self.ids[event_id] = minute

    def forget(self, before: int) -> None:
        """Ids that expired before minute ``before``."""
        ids = self.ids
        if ids and min(ids.values()) < before:
            self.ids = {event_id: minute for event_id, minute in ids.items() if minute >= before}


class _Shared:
    """Sites that share a schedule (weekly hours, time zone, holidays, no announced closure).

    Their schedule starts and ends at the same instants: one edge at a time for all of them,
    not one per site.
    """

    __slots__ = ("edges", "index", "info", "key", "members", "state")

    def __init__(self, index: int, key: object, info: SiteInfo, state: bool) -> None:
        self.index = index
        self.key = key
        self.info = info
        self.state = state
        self.members: list[SiteState] = []
        #: its edges of the last hour, (instant, 1.0 when the schedule starts / 0.0 when it ends): the
        #: members' opening history comes from these and their own changes, not one entry per member
        self.edges = array("d")


def _schedule_key(info: SiteInfo) -> object:
    return (info.schedules, info.days.zone_name, info.holidays.subdivision, info.announced)


class SiteState:
    """Everything the partition keeps about one registered site (bounded: the last hours, seven days)."""

    __slots__ = (
        "counters",
        "counts",
        "flags",
        "group",
        "info",
        "keys",
        "last_status",
        "op",
        "shared",
    )

    def __init__(self, info: SiteInfo, group: Scope, idx: int) -> None:
        self.info = info
        self.group = group
        self.flags = STALE
        self.counters: tuple[str, ...] = ()
        self.last_status: float | None = None
        #: running integrals of opening time (``opening.py``), then the ring of the last seven local days
        #: (calls, cases and opening time), set when time starts for the site
        self.op: array[float] | None = None
        #: 32-bit: its index, then the counts of its days, windows and hours (see _COUNT_RING)
        self.counts = array("i", bytes(4 * _SITE_COUNT_WIDTH))
        self.counts[0] = idx
        #: what decided the last snapshots of each indicator (to publish only what changed)
        self.keys: array[int] | None = None
        self.shared: _Shared | None = None

    @property
    def idx(self) -> int:
        """The site's index in its partition (log records name sites by it)."""
        return self.counts[0]

    @idx.setter
    def idx(self, value: int) -> None:
        self.counts[0] = value

    @property
    def is_open(self) -> bool:
        return self.flags & RAW != 0 and self.flags & UNANN == 0

    def hour_row(self, hour: float, create: bool) -> int:
        """Row of hour bucket ``hour`` (appended when ``create``, the arrays remade at their exact size); -1."""
        op = self.op
        assert op is not None
        for row, base in enumerate(range(_SITE_OP, len(op), _SITE_DAY)):
            if op[base] == hour:
                return row
        if not create:
            return -1
        self.op = op + array("d", [hour, 0.0, 0.0, 0.0, 0.0])
        self.counts = self.counts + array("i", bytes(4 * _SITE_COUNTS))
        return (len(op) - _SITE_OP) // _SITE_DAY

    def hour_parts(self, row: int) -> list[float]:
        """The parts of hour bucket ``row``."""
        return _site_vector(self, _SITE_OP + row * _SITE_DAY + 1, _SITE_COUNT_WIDTH + row * _SITE_COUNTS)

    def drop_hours(self, keep: Callable[[float], bool]) -> None:
        """Only the hour buckets ``keep`` says (the arrays remade at their exact size)."""
        op, counts = self.op, self.counts
        assert op is not None
        rows = range((len(op) - _SITE_OP) // _SITE_DAY)
        kept = [row for row in rows if keep(op[_SITE_OP + row * _SITE_DAY])]
        if len(kept) == len(rows):
            return
        new_op, new_counts = op[:_SITE_OP], counts[:_SITE_COUNT_WIDTH]
        for row in kept:
            new_op += op[_SITE_OP + row * _SITE_DAY : _SITE_OP + (row + 1) * _SITE_DAY]
            start = _SITE_COUNT_WIDTH + row * _SITE_COUNTS
            new_counts += counts[start : start + _SITE_COUNTS]
        self.op, self.counts = new_op, new_counts


class Scope:
    """A department of a network (opening, calls and cases), or a procedure of a network (cases)."""

    __slots__ = ("ends", "hours", "live", "local", "op", "recent", "ring", "w15", "w60")

    def __init__(self, local: LocalDays, *, opening_time: bool) -> None:
        self.local = local
        self.op: array[float] | None = None
        self.recent: array[float] | None = None
        #: last end of schedule of the sites not scheduled now, sorted (windows count the sites scheduled in them)
        self.ends = array("d")
        #: sites registered, stale, open outside their schedule, stale among the scheduled
        self.live = array("d", bytes(8 * LIVE_WIDTH)) if opening_time else None
        self.w15 = array("d", bytes(8 * GROUP_WIDTH))
        self.w60 = array("d", bytes(8 * GROUP_WIDTH))
        self.ring = _new_ring(_GROUP_ROW)
        self.hours: dict[int, array[float]] = {}

    def hour(self, hour: int) -> array[float]:
        bucket = self.hours.get(hour)
        if bucket is None:
            bucket = self.hours[hour] = array("d", bytes(8 * GROUP_WIDTH))
        return bucket

    def scheduled_sites(self, start: float) -> float:
        """Sites with scheduled time in [start, now): those scheduled now, and those whose schedule ended later."""
        assert self.op is not None
        return self.op[RATE_SCHED] + (len(self.ends) - bisect.bisect_right(self.ends, start))


@dataclass
class FlushResult:
    """What one flush produced: site snapshots, and partial sums of the scopes that changed."""

    as_of: float | None
    watermark: float
    snapshots: list[SnapshotValue] = field(default_factory=list)
    partials: dict[ScopeKey, Payload] = field(default_factory=dict)
    advanced: bool = False


class PartitionState:
    """Indicator state of one partition; ``apply`` events, ``progress``, then ``flush`` to get outputs."""

    def __init__(self, partition: int, config: IndicatorConfig) -> None:
        self.partition = partition
        self.config = config
        self.sites: dict[str, SiteState] = {}
        self._site_list: list[SiteState | None] = []
        self.groups: dict[tuple[str, str], Scope] = {}
        self.procedures: dict[tuple[str, str], Scope] = {}
        self._labels: dict[str, int] = {}
        self._label_names: list[str] = []
        #: latest event time seen per stream (counter, call, case); for calls, when they were received
        self.stream_max: dict[str, float] = {}
        self.watermark = NEG_INF
        self.origin: float | None = None
        self.as_of: float | None = None
        #: where the sweep of opening time stands (None until the first flush)
        self._swept: float | None = None
        self._edges: list[tuple[float, int, int, float, bool]] = []
        #: how many times a site's registry entry changed (closure edges of an older one are ignored), if ever
        self._versions: dict[int, int] = {}
        self._shared: dict[object, _Shared] = {}
        self._shared_list: list[_Shared] = []
        self._next_hour = math.inf
        #: per time zone of sites or departments: (next midnight, the day it starts)
        self._midnights: dict[LocalDays, list[float]] = {}
        #: counter events not applied yet (the watermark has not passed them), by site
        self._pending: dict[str, list[tuple[float, int, str]]] = {}
        #: calls and cases waiting to take effect, by the minute they do (calls: their end)
        self._staged: dict[int, tuple[array[int], array[float]]] = {}
        #: calls and cases of the last hour by minute (received or completed), one record each
        self._log: dict[int, array[int]] = {}
        #: event ids seen within the grace period, per stream and network, and when they expire
        self._seen: dict[str, dict[str, _Seen]] = {COUNTERS: {}, CALLS: {}, CASES: {}}
        self._minute_objects: dict[int, int] = {}
        #: each site's changes of opening rates of the last hour (``opening.at``), by site index
        self._recent: dict[int, array[float]] = {}
        #: site buckets to publish: (site index, hour start) and (site index, local day)
        self._closing_hours: set[tuple[int, int]] = set()
        self._closing_days: set[tuple[int, int]] = set()
        #: scope buckets to publish in the next partial sums (closed or revised)
        self._scope_hours: set[int] = set()
        self._scope_days: set[int] = set()
        self._registry_changed = False
        #: fingerprint of the partial sums last published per scope (to publish only what changed)
        self._sent: dict[ScopeKey, int] = {}

    # -- registry ---------------------------------------------------------------------

    def _group(self, network: str, department: str) -> Scope:
        group = self.groups.get((network, department))
        if group is None:
            group = self.groups[(network, department)] = Scope(
                local_days(department_timezone(department)), opening_time=True
            )
            if self._swept is not None:
                self._start_scope(group, self._swept)
        return group

    def register(self, info: SiteInfo) -> None:
        """Add or update a site of the registry (what it accrued so far is kept; the change applies from now on)."""
        group = self._group(info.network, info.department)
        state = self.sites.get(info.site_id)
        if state is None:
            if len(self._site_list) >= MAX_SITES:
                raise ValueError(f"more than {MAX_SITES} sites in one partition")
            state = SiteState(info, group, len(self._site_list))
            self._site_list.append(state)
            self.sites[info.site_id] = state
            group.live[LIVE_SITES] += 1  # type: ignore[index]
            if self._swept is not None:
                self._start_site(state, self._swept)
        else:
            moved = state.group is not group
            self._leave(state)
            if self._swept is not None:
                kept = state.flags
                self._set_flags(state, self._swept, 0)  # out of its department, as it was until now
                state.flags = kept  # its counters and status stay; schedule and closures are read again
            state.group.live[LIVE_SITES] -= 1  # type: ignore[index]
            state.info, state.group = info, group
            group.live[LIVE_SITES] += 1  # type: ignore[index]
            self._versions[state.idx] = self._versions.get(state.idx, 0) + 1
            if self._swept is not None:
                self._resume_site(state, self._swept)
            if moved:
                self._rebuild_windows()
        self._registry_changed = True

    def unregister(self, site_id: str) -> None:
        """Remove a site (a tombstone on ``charter.sites``); its future events are unknown."""
        state = self.sites.pop(site_id, None)
        if state is None:
            return
        self._leave(state)
        if self._swept is not None:
            self._set_flags(state, self._swept, 0)
        state.group.live[LIVE_SITES] -= 1  # type: ignore[index]
        self._versions[state.idx] = self._versions.get(state.idx, 0) + 1
        self._pending.pop(site_id, None)
        self._recent.pop(state.idx, None)
        self._registry_changed = True

    # -- events -----------------------------------------------------------------------

    def apply(self, event: DomainEvent) -> Outcome:
        """Count one event, or say why not (unknown site, duplicate, late)."""
        site = self.sites.get(event.site_id)
        if site is None or site.info.network != event.network:
            return Outcome.UNKNOWN_SITE
        kind = event.__class__
        t = event.t
        if kind is Call:
            stream = CALLS
            judged = event.ended  # type: ignore[union-attr]
        else:
            stream = CASES if kind is Case else COUNTERS
            judged = t
        by_network = self._seen[stream]
        seen = by_network.get(event.network)
        if seen is None:
            seen = by_network[event.network] = _Seen()
        event_id = event.event_id
        if event_id in seen.ids:
            return Outcome.DUPLICATE
        latest = self.stream_max.get(stream, NEG_INF)
        if judged < self.watermark or judged < latest - self.config.grace:
            return Outcome.LATE
        if kind is Call and judged - t > self.config.max_call:
            return Outcome.LATE
        if t > latest:
            self.stream_max[stream] = t
        if self._swept is None and (self.origin is None or t < self.origin):
            self.origin = float(minute_floor(t))
        minute = int(judged // MINUTE)
        shared = self._minute_objects.get(minute)  # one int per minute for all the ids it expires
        if shared is None:
            self._minute_objects[minute] = shared = minute
        seen.add(event_id, shared)
        if kind is CounterChange:
            change: CounterChange = event  # type: ignore[assignment]
            pending = self._pending.get(event.site_id)
            if pending is None:
                pending = self._pending[event.site_id] = []
            pending.append((t, 1 if change.opened else 0, change.counter_id))
        else:
            # what it adds is known now; it waits, packed, for the minute it takes effect
            code, value = self._record(site, event)
            record = (site.idx << _SITE_SHIFT) | (code << _CODE_SHIFT) | value
            staged = self._staged.get(minute)
            if staged is None:
                self._staged[minute] = (array("Q", [record]), array("d", [t]))
            else:
                staged[0].append(record)
                staged[1].append(t)
        return Outcome.ACCEPTED

    # -- time -------------------------------------------------------------------------

    def progress(
        self, behind: Iterable[str] = (), clock: dict[str, float] | None = None, *, hold: float = math.inf
    ) -> None:
        """Move the watermark: the earliest of the three streams' latest event, minus the grace period.

        Each stream (counters, calls, cases: one canonical topic each) is judged on its own,
        so a stream read ahead of the others never makes them late, and the result does not
        depend on how the streams interleave. ``behind``: streams with records not read yet
        (one that has no event yet holds the watermark until it has, for at most ``hold``
        seconds of the other streams' event time: a stream this state never gets, such as
        a network without cases, must not hold a replay for good); a stream that is read up
        to date and has no event at all is left out. ``clock``: streams read up to date and
        silent for a while, with the wall-clock time to count them at (time passes).
        """
        waiting = set(behind)
        clock = clock or {}
        latest = []
        ahead = max(self.stream_max.values(), default=NEG_INF)
        holding = self.origin is None or ahead - self.origin <= hold
        for stream in (COUNTERS, CALLS, CASES):
            seen = max(self.stream_max.get(stream, NEG_INF), clock.get(stream, NEG_INF))
            if seen > NEG_INF or (stream in waiting and holding):
                latest.append(seen)
        if latest:
            self.watermark = max(self.watermark, min(latest) - self.config.grace)
        if self.origin is None and self.watermark > NEG_INF:
            self.origin = float(minute_floor(self.watermark))

    def advance(self, watermark: float) -> None:
        """Move the watermark forward without an event (time passes: the idle clock)."""
        if watermark > self.watermark:
            self.watermark = watermark
            if self.origin is None:
                self.origin = float(minute_floor(watermark))

    def minutes_held(self) -> int:
        """Minutes of calls and cases in memory: waiting to take effect, or in the last hour's log."""
        return len(self._staged) + len(self._log)

    # -- flush ------------------------------------------------------------------------

    def flush(self, *, site_snapshots: bool = True) -> FlushResult:
        """Bring every figure up to date as of the minute the watermark reached.

        Returns the site snapshots (the closed and revised calendar buckets always; the
        current windows of the sites whose figures changed when ``site_snapshots``) and the
        partial sums of every scope whose figures changed. Nothing happens unless the
        watermark crossed a minute or the registry changed.
        """
        if self.watermark == NEG_INF:
            return FlushResult(None, self.watermark)
        a = float(minute_floor(self.watermark))
        previous = self.as_of
        if previous is not None and a <= previous and not self._registry_changed:
            return FlushResult(previous, self.watermark)
        if previous is not None and a < previous:
            a = previous
        self._registry_changed = False
        if self._swept is None:
            self._restart(self.origin if self.origin is not None else a)
        assert self._swept is not None
        if (
            a - max(self._swept, previous or self._swept) > BUCKET_HORIZON
        ):  # a long silence: buckets older than the horizon are not published
            self._restart(float(minute_floor(a - BUCKET_HORIZON)))
        result = FlushResult(a, self.watermark, advanced=True)
        while True:
            step = a if a - self._swept <= STEP else float(minute_floor(self._swept + STEP))
            self._step(step, result)
            if step >= a:
                break
        if site_snapshots:
            result.snapshots += self.site_snapshots()
        return result

    def _step(self, a: float, result: FlushResult) -> None:
        previous = self.as_of
        self._sweep(a)
        self._slide(previous, a)
        self.as_of = a
        self._take_effect(a)
        self._emit_closed(a, result)
        payloads = self._payloads(a)
        for key, payload in payloads.items():
            fingerprint = _fingerprint(payload)
            if self._sent.get(key) != fingerprint:
                self._sent[key] = fingerprint
                earlier = result.partials.get(key)
                result.partials[key] = payload if earlier is None else _merge_payloads(earlier, payload)
        self._prune(a)

    # -- opening time: the sweep ------------------------------------------------------

    def _restart(self, t: float) -> None:
        """(Re)start time at ``t`` for every site and scope: states as they are just before ``t``."""
        self._swept = t
        self._edges = []
        self._shared, self._shared_list = {}, []
        self._next_hour = (t // HOUR + 1) * HOUR
        self._midnights = {}
        for scope in (*self.groups.values(), *self.procedures.values()):
            self._start_scope(scope, t)
        for group in self.groups.values():
            group.ends = array("d")
        for site in self.sites.values():
            self._start_site(site, t)

    def _zone(self, local: LocalDays, t: float) -> None:
        if local not in self._midnights:
            day = local.day_of(t)
            self._midnights[local] = [local.midnight(day + 1), float(day + 1)]

    def _start_scope(self, scope: Scope, t: float) -> None:
        if scope.live is not None:
            scope.op = opening.new_integral(t, scope.local.day_of(t))
            scope.recent = None
            for part in (LIVE_STALE, LIVE_OPEN_UNSCHEDULED, LIVE_STALE_SCHEDULED):  # the sites join again
                scope.live[part] = 0.0
            self._zone(scope.local, t)

    def _start_site(self, site: SiteState, t: float) -> None:
        """Time starts for a site at ``t``: nothing accrued, its state as the registry and its status say."""
        if site.op is None:  # ring and windows are kept when time starts again
            days = array("d", [-1.0, 0.0, 0.0, 0.0, 0.0] * _RING + [0.0] * (_SITE_OP - _SITE_W15))
        else:
            days = site.op[_SITE_RING:]
        site.op = opening.new_integral(t, site.info.days.day_of(t)) + days  # one array, of the exact size
        site.op[_SITE_END] = math.nan  # the departments' lists of schedule ends start afresh too
        self._recent.pop(site.idx, None)
        site.shared = None
        site.flags = 0 if site.last_status is not None and site.last_status + self.config.stale_after >= t else STALE
        if site.counters and site.flags & STALE == 0:
            site.flags |= RAW
        self._zone(site.info.days, t)
        self._resume_site(site, t)
        if site.last_status is not None and site.flags & STALE == 0:
            self._push(site.last_status + self.config.stale_after, _EXPIRY, site, site.last_status, True)

    def _resume_site(self, site: SiteState, t: float) -> None:
        """The site's schedule and closures as they stand at ``t``, and their next edges."""
        info = site.info
        flags = site.flags & ~(SCHED | UNANN)
        if self._join(site, t).state:
            flags |= SCHED
        if opening.closure_before(info.unannounced, t):
            flags |= UNANN
        self._set_flags(site, t, flags, attach=True)
        closure = opening.next_closure_edge(info.unannounced, t, flags & UNANN != 0, after=False)
        if closure is not None:
            self._push(closure[0], _CLOSURE, site, float(self._versions.get(site.idx, 0)), closure[1])

    def _join(self, site: SiteState, t: float, *, restored: bool = False) -> _Shared:
        """The site follows the edges of its schedule, shared with the sites of the same schedule.

        ``restored``: after a checkpoint, the schedule's edges of the last hour are found again
        from the schedule (the members' histories read back through them).
        """
        key = _schedule_key(site.info)
        shared = self._shared.get(key)
        if shared is None:
            state = opening.scheduled_before(site.info, t)
            shared = self._shared[key] = _Shared(len(self._shared_list), key, site.info, state)
            self._shared_list.append(shared)
            if restored:
                shared.edges = opening.schedule_edges(site.info, t - HOUR - MINUTE, t)
            edge = opening.next_schedule_edge(site.info, t, state, after=False)
            heapq.heappush(self._edges, (edge[0], _SCHEDULE, shared.index, 0.0, edge[1]))
        shared.members.append(site)
        site.shared = shared
        return shared

    def _leave(self, site: SiteState) -> None:
        shared = site.shared
        if shared is not None:
            if shared.edges and site.op is not None:
                self._recent[site.idx] = self._own_history(site)  # the old schedule's edges become its own
            shared.members.remove(site)
            site.shared = None
            if not shared.members and self._shared.get(shared.key) is shared:
                del self._shared[shared.key]  # its edges stop; a site of that schedule later starts anew

    def _site_at(self, site: SiteState, x: float) -> tuple[float, float]:
        """Seconds open and scheduled the site accrued up to ``x`` (within the last hour).

        Read back from its values now through its own changes and its shared schedule's edges,
        latest first (at one instant, its own change first: it holds the state before both).
        """
        op = site.op
        assert op is not None
        flags = site.flags
        at, opened, scheduled = op[AT], op[ACC_OPEN], op[ACC_SCHED]
        own = self._recent.get(site.idx)
        edges = site.shared.edges if site.shared is not None else None
        i = len(own) // 4 - 1 if own else -1
        j = len(edges) // 2 - 1 if edges else -1
        while True:
            t_own = own[i * 4] if i >= 0 else -math.inf  # type: ignore[index]
            t_edge = edges[j * 2] if j >= 0 else -math.inf  # type: ignore[index]
            if max(t_own, t_edge) < x or at <= x:
                break
            if t_own >= t_edge:
                assert own is not None
                at, opened, scheduled, before = t_own, own[i * 4 + 1], own[i * 4 + 2], own[i * 4 + 3]
                if before < 0:  # the site started here: nothing before
                    return opened, scheduled
                flags = int(before)
                i -= 1
            else:
                assert edges is not None
                rate_open, rate_scheduled = _CONTRIBUTION[flags][:2]
                opened -= rate_open * (at - t_edge)
                scheduled -= rate_scheduled * (at - t_edge)
                at = t_edge
                flags = (flags & ~SCHED) if edges[j * 2 + 1] else (flags | SCHED)
                j -= 1
        rate_open, rate_scheduled = _CONTRIBUTION[flags][:2]
        return opened + rate_open * (x - at), scheduled + rate_scheduled * (x - at)

    def _own_history(self, site: SiteState) -> array[float]:
        """The site's history as its own changes only: its shared schedule's edges written in."""
        op = site.op
        assert op is not None
        own = self._recent.get(site.idx) or array("d")
        edges = site.shared.edges if site.shared is not None else array("d")
        changes = sorted(
            [(own[k], 0, k) for k in range(0, len(own), 4)] + [(edges[k], 1, k) for k in range(0, len(edges), 2)]
        )
        out: list[float] = []
        flags_after = site.flags
        for t, kind, k in reversed(changes):  # latest first, to know the state after each edge
            if kind == 0:
                before = own[k + 3]
                out[:0] = [t, own[k + 1], own[k + 2], before]
                if before < 0:
                    break
                flags_after = int(before)
            else:
                opened, scheduled = self._site_at(site, t)
                before_flags = (flags_after & ~SCHED) if edges[k + 1] else (flags_after | SCHED)
                out[:0] = [t, opened, scheduled, float(before_flags)]
                flags_after = before_flags
        return array("d", out)

    def _push(self, t: float, kind: int, site: SiteState, version: float, state: bool) -> None:
        heapq.heappush(self._edges, (t, kind, site.idx, version, state))

    def _set_flags(self, site: SiteState, t: float, flags: int, *, attach: bool = False, shared: bool = False) -> None:
        """The site's state changes at ``t``: its integrals and its department's follow.

        ``attach``: the site joins its department with these flags (it had none there).
        ``shared``: the change is an edge of its shared schedule, remembered there, not by the site.
        """
        old = 0 if attach else site.flags
        site.flags = flags
        if old == flags:
            return
        before, after = _CONTRIBUTION[old], _CONTRIBUTION[flags]
        group = site.group
        op, gop = site.op, group.op
        assert op is not None
        assert gop is not None
        assert group.live is not None
        opening.advance(op, t)
        if not shared and (attach or (old ^ flags) & ~STALE):
            # the site's own change (or its start): its values here and its state just before, so that
            # its history can be read back through its shared schedule's edges (-1: nothing before)
            history = self._recent.get(site.idx)
            entry = (t, op[ACC_OPEN], op[ACC_SCHED], -1.0 if attach else float(old))
            if history is None:
                self._recent[site.idx] = array("d", entry)
            elif history[-4] != t:  # the first change at an instant holds the state before it
                history += array("d", entry)
        if before[0] != after[0] or before[1] != after[1]:
            op[RATE_OPEN], op[RATE_SCHED] = after[0], after[1]
            group.recent = opening.set_rates(
                gop, t, gop[RATE_OPEN] + after[0] - before[0], gop[RATE_SCHED] + after[1] - before[1], group.recent
            )
            if before[1] and not after[1]:
                bisect.insort(group.ends, t)
                op[_SITE_END] = t
            elif after[1] and not before[1] and not math.isnan(op[_SITE_END]):
                i = bisect.bisect_left(group.ends, op[_SITE_END])
                if i < len(group.ends) and group.ends[i] == op[_SITE_END]:
                    del group.ends[i]
                op[_SITE_END] = math.nan
        live = group.live
        live[LIVE_OPEN_UNSCHEDULED] += after[2] - before[2]
        live[LIVE_STALE] += after[3] - before[3]
        live[LIVE_STALE_SCHEDULED] += after[4] - before[4]

    def _sweep(self, until: float) -> None:
        """Every change of state before ``until``, in time order (hour and day boundaries first at an instant)."""
        assert self._swept is not None
        if until <= self._swept:  # time has not reached the start of history yet
            return
        changes = self._due_counters(until)
        edges = self._edges
        sites = self._site_list
        position = 0
        inf = math.inf
        while True:
            next_change = changes[position][0] if position < len(changes) else inf
            next_edge = edges[0][0] if edges else inf
            boundary, local = self._next_boundary()
            t = min(next_change, next_edge, boundary)
            if t >= until:
                break
            if boundary <= t:
                if local is None:
                    self._close_hour(boundary)
                else:
                    self._close_day(local, boundary)
                continue
            if next_change <= next_edge:
                at, opened, counter, site = changes[position]
                position += 1
                self._counter(site, at, opened, counter)
                continue
            at, kind, idx, version, state = heapq.heappop(edges)
            if kind == _SCHEDULE:
                shared = self._shared_list[idx]
                if not shared.members:
                    continue
                shared.state = state
                shared.edges += array("d", (at, 1.0 if state else 0.0))
                for member in shared.members:
                    flags = (member.flags | SCHED) if state else (member.flags & ~SCHED)
                    self._set_flags(member, at, flags, shared=True)
                edge = opening.next_schedule_edge(shared.info, at, state, after=True)
                heapq.heappush(edges, (edge[0], _SCHEDULE, idx, 0.0, edge[1]))
                continue
            site = sites[idx]  # type: ignore[assignment]
            if site is None or self.sites.get(site.info.site_id) is not site:
                continue
            if kind == _EXPIRY:
                if site.last_status == version:
                    self._set_flags(site, at, (site.flags | STALE) & ~RAW)
                continue
            if version != self._versions.get(site.idx, 0):
                continue
            self._set_flags(site, at, (site.flags | UNANN) if state else (site.flags & ~UNANN))
            closure = opening.next_closure_edge(site.info.unannounced, at, state, after=True)
            if closure is not None:
                self._push(closure[0], _CLOSURE, site, version, closure[1])
        self._swept = until

    def _due_counters(self, until: float) -> list[tuple[float, int, str, SiteState]]:
        """Counter events before ``until``, in order (at one instant: closings first, then by counter)."""
        due: list[tuple[float, int, str, SiteState]] = []
        for site_id, pending in list(self._pending.items()):
            site = self.sites[site_id]
            ready = [p for p in pending if p[0] < until]
            if not ready:
                continue
            rest = [p for p in pending if p[0] >= until]
            if rest:
                self._pending[site_id] = rest
            else:
                del self._pending[site_id]
            due += [(t, opened, counter, site) for t, opened, counter in ready]
        due.sort(key=lambda change: (change[0], change[1], change[2], change[3].idx))
        return due

    def _counter(self, site: SiteState, t: float, opened: int, counter: str) -> None:
        counters = site.counters
        if opened:
            if counter not in counters:
                counters = (*counters, counter)
        elif counter in counters:
            counters = tuple(c for c in counters if c != counter)
        site.counters = counters
        site.last_status = t
        flags = site.flags & ~(STALE | RAW)
        if counters:
            flags |= RAW
        self._set_flags(site, t, flags)
        self._push(t + self.config.stale_after, _EXPIRY, site, t, True)

    def _next_boundary(self) -> tuple[float, LocalDays | None]:
        boundary, local = self._next_hour, None
        for zone, (midnight, _) in self._midnights.items():
            if midnight < boundary:
                boundary, local = midnight, zone
        return boundary, local

    def _close_hour(self, boundary: float) -> None:
        """The UTC hour ending at ``boundary`` is over: each site's and department's opening time in it."""
        hour = int(boundary - HOUR)
        for site in self.sites.values():
            op = site.op
            assert op is not None
            if op[RATE_OPEN] or op[RATE_SCHED] or op[AT] > op[HOUR_AT]:
                opened, scheduled = opening.close_hour(op, boundary)
                if opened or scheduled:
                    base = _SITE_OP + site.hour_row(hour, True) * _SITE_DAY
                    site.op[base + 1], site.op[base + 2] = opened, scheduled  # type: ignore[index]
                    self._closing_hours.add((site.idx, hour))
                    continue
            else:
                op[HOUR_AT], op[HOUR_OPEN], op[HOUR_SCHED] = boundary, op[ACC_OPEN], op[ACC_SCHED]
            if site.hour_row(hour, False) >= 0:
                self._closing_hours.add((site.idx, hour))
        for group in self.groups.values():
            gop = group.op
            assert gop is not None
            sites = group.scheduled_sites(hour)
            opened, scheduled = opening.close_hour(gop, boundary)
            if opened or scheduled or hour in group.hours:
                bucket = group.hour(hour)
                bucket[OPEN_SECONDS], bucket[SCHEDULED_SECONDS], bucket[SITES_SCHEDULED] = opened, scheduled, sites
        self._scope_hours.add(hour)
        self._next_hour = boundary + HOUR

    def _close_day(self, local: LocalDays, midnight: float) -> None:
        """The local day ending at ``midnight`` is over in this time zone: sites' and departments' opening time."""
        book = self._midnights[local]
        next_day = int(book[1])
        day = next_day - 1
        for site in self.sites.values():
            if site.info.days is not local:
                continue
            op = site.op
            assert op is not None
            opened, scheduled = opening.close_day(op, midnight, next_day)
            if opened or scheduled:
                slot = _site_slot(site, day, True)
                if slot >= 0:
                    base = _SITE_RING + slot * _SITE_DAY
                    op[base + 1], op[base + 2] = opened, scheduled
                self._closing_days.add((site.idx, day))
            elif _site_slot(site, day, False) >= 0:
                self._closing_days.add((site.idx, day))
        for group in self.groups.values():
            if group.local is not local:
                continue
            gop = group.op
            assert gop is not None
            sites = group.scheduled_sites(local.midnight(day))
            opened, scheduled = opening.close_day(gop, midnight, next_day)
            base = _ring_base(group.ring, _GROUP_ROW, day)
            if base >= 0:
                group.ring[base + OPEN_SECONDS] = opened
                group.ring[base + SCHEDULED_SECONDS] = scheduled
                group.ring[base + SITES_SCHEDULED] = sites
        self._scope_days.add(day)
        book[0], book[1] = local.midnight(next_day + 1), float(next_day + 1)

    # -- calls and cases --------------------------------------------------------------

    def _label(self, name: str) -> int:
        label = self._labels.get(name)
        if label is None:
            if len(self._label_names) >= MAX_LABELS:
                raise ValueError(f"more than {MAX_LABELS} procedure labels")
            label = self._labels[name] = len(self._label_names)
            self._label_names.append(name)
        return label

    def _procedure(self, network: str, label: int) -> Scope:
        key = (network, self._label_names[label])
        scope = self.procedures.get(key)
        if scope is None:
            scope = self.procedures[key] = Scope(local_days(_PARIS), opening_time=False)
        return scope

    def _record(self, site: SiteState, event: DomainEvent) -> tuple[int, int]:
        """(code, value) of a call or case: what it adds, and to which parts."""
        config = self.config
        if event.__class__ is Call:
            call: Call = event
            if call.ivr_only:
                return _IVR, 0
            if call.answered is not None:
                wait = call.answered - call.t
                kind = _ANSWERED_SL if wait <= config.service_level else _ANSWERED
                return kind | (bisect.bisect_left(WAIT_EDGES, wait) << 3), min(round(wait * 1000), _VALUE_MASK)
            return (_SHORT if call.ended - call.t < config.short_abandon else _ABANDONED), 0
        case: Case = event  # type: ignore[assignment]
        rules = config.rules
        info = site.info
        processing = case.t - case.submitted
        deadline = rules.deadline(case.procedure, case.deadline_days)
        if deadline is None:
            kind = _CASE_NONE
        elif within_deadline(case.submitted, case.t, deadline, info.days, info.holidays):
            kind = _CASE_WITHIN
        else:
            kind = _CASE_LATE
        label = self._label(rules.label(case.procedure))
        code = kind | (bisect.bisect_left(PROCESSING_EDGES, processing) << 3) | (label << 8)
        return code, min(round(processing), _VALUE_MASK)

    def _take_effect(self, a: float) -> None:
        """Calls ended and cases completed before ``a`` are counted, in the window they belong to."""
        limit = int(a // MINUTE)
        due = [minute for minute in self._staged if minute < limit]
        if not due:
            return
        a15, a60 = limit - 15, limit - 60
        current_hour = int((a - MINUTE) // HOUR * HOUR)
        todays: dict[LocalDays, int] = {}
        log = self._log
        site_list = self._site_list
        registered = self.sites
        for minute in sorted(due):
            records, times = self._staged.pop(minute)
            for record, t in zip(records, times, strict=True):
                site = site_list[record >> _SITE_SHIFT]
                if site is None or registered.get(site.info.site_id) is not site:
                    continue  # removed from the registry meanwhile
                code = (record >> _CODE_SHIFT) & _CODE_MASK
                value = record & _VALUE_MASK
                m = int(t // MINUTE)
                hour = m // 60 * 3600
                plus, value_part, histogram = _KINDS[code & 7]
                # the site: its local day and its hour
                days = site.info.days
                day = days.day_of(t)
                row = site.hour_row(hour, True)
                op, counts = site.op, site.counts
                assert op is not None
                count_parts, sum_part = _SITE_KINDS[code & 7]
                slot = _site_slot(site, day, True)
                if slot >= 0:
                    at = _COUNT_RING + slot * _SITE_COUNTS
                    for i in count_parts:
                        counts[at + i] += 1
                    if sum_part >= 0:
                        op[_SITE_RING + slot * _SITE_DAY + 3 + sum_part] += value
                if m >= a60:
                    for sums, counted in (
                        ((_SITE_W60, _COUNT_W60), (_SITE_W15, _COUNT_W15)) if m >= a15 else ((_SITE_W60, _COUNT_W60),)
                    ):
                        for i in count_parts:
                            counts[counted + i] += 1
                        if sum_part >= 0:
                            op[sums + sum_part] += value
                at = _SITE_COUNT_WIDTH + row * _SITE_COUNTS
                for i in count_parts:
                    counts[at + i] += 1
                if sum_part >= 0:
                    op[_SITE_OP + row * _SITE_DAY + 3 + sum_part] += value
                today = todays.get(days)
                if today is None:
                    today = todays[days] = days.day_of(a - MINUTE)
                if hour < current_hour:
                    self._closing_hours.add((site.idx, hour))
                if day < today:
                    self._closing_days.add((site.idx, day))
                # its department, and for a case its procedure
                kind = code & 7
                bin_part = histogram + ((code >> 3) & 31) if histogram >= 0 else -1
                scope = site.group
                while True:
                    local = scope.local
                    scope_day = day if local is days else local.day_of(t)
                    _bump(scope.hour(hour), 0, plus, value_part, value, bin_part)
                    sbase = _ring_base(scope.ring, _GROUP_ROW, scope_day)
                    if sbase >= 0:
                        _bump(scope.ring, sbase, plus, value_part, value, bin_part)
                    if m >= a60:
                        _bump(scope.w60, 0, plus, value_part, value, bin_part)
                        if m >= a15:
                            _bump(scope.w15, 0, plus, value_part, value, bin_part)
                    if hour < current_hour:
                        self._scope_hours.add(hour)
                    scope_today = todays.get(local)
                    if scope_today is None:
                        scope_today = todays[local] = local.day_of(a - MINUTE)
                    if scope_day < scope_today:
                        self._scope_days.add(scope_day)
                    if kind < _CASE_WITHIN or scope is not site.group:
                        break
                    scope = self._procedure(site.info.network, code >> 8)
                if m >= a60:
                    minute_log = log.get(m)
                    if minute_log is None:
                        log[m] = array("Q", [record])
                    else:
                        minute_log.append(record)

    def _slide(self, previous: float | None, a: float) -> None:
        """Minutes leaving the 15-minute and 1-hour windows between ``previous`` and ``a`` are taken out."""
        if previous is None or a <= previous:
            return
        before, now = int(previous // MINUTE), int(a // MINUTE)
        for width, attribute, window in ((15, "w15", (_SITE_W15, _COUNT_W15)), (60, "w60", (_SITE_W60, _COUNT_W60))):
            for minute in range(before - width, min(now - width, before)):
                self._subtract(minute, attribute, window)
        for minute in [m for m in self._log if m < now - 60]:
            del self._log[minute]

    def _subtract(self, minute: int, attribute: str, window: tuple[int, int] | None) -> None:
        """A minute's calls and cases out of its scopes' window ``attribute`` (and its sites' ``window``)."""
        records = self._log.get(minute)
        if not records:
            return
        sites = self._site_list
        for record in records:
            site = sites[record >> _SITE_SHIFT]
            assert site is not None
            code = (record >> _CODE_SHIFT) & _CODE_MASK
            value = record & _VALUE_MASK
            plus, value_part, histogram = _KINDS[code & 7]
            op, counts = site.op, site.counts
            if window is not None and op is not None:
                count_parts, sum_part = _SITE_KINDS[code & 7]
                for i in count_parts:
                    counts[window[1] + i] -= 1
                if sum_part >= 0:
                    op[window[0] + sum_part] -= value
            scopes = [site.group]
            if code & 7 >= _CASE_WITHIN:
                scopes.append(self._procedure(site.info.network, code >> 8))
            for scope in scopes:
                vector = getattr(scope, attribute)
                for part in plus:
                    vector[part] -= 1.0
                if value_part >= 0:
                    vector[value_part] -= value
                    vector[histogram + ((code >> 3) & 31)] -= 1.0

    def _rebuild_windows(self) -> None:
        """Every scope's 15-minute and 1-hour windows again from the log (a site moved department)."""
        if self.as_of is None:
            return
        for scope in (*self.groups.values(), *self.procedures.values()):
            scope.w15 = array("d", bytes(8 * GROUP_WIDTH))
            scope.w60 = array("d", bytes(8 * GROUP_WIDTH))
        now = int(self.as_of // MINUTE)
        for minute in self._log:
            for attribute, width in (("w15", 15), ("w60", 60)):
                if minute >= now - width:
                    self._subtract(minute, attribute, None)
        for scope in (*self.groups.values(), *self.procedures.values()):
            scope.w15 = array("d", (-x for x in scope.w15))
            scope.w60 = array("d", (-x for x in scope.w60))

    # -- outputs ----------------------------------------------------------------------

    def _emit_closed(self, a: float, result: FlushResult) -> None:
        """Site buckets that closed (or were revised) since the last flush, final as of ``a``."""
        current_hour = (a - MINUTE) // HOUR * HOUR
        sites = self._site_list
        keep: set[tuple[int, int]] = set()
        for idx, hour in sorted(self._closing_hours):
            site = sites[idx]
            if site is None or site.op is None:
                continue
            if hour >= current_hour:
                keep.add((idx, hour))
                continue
            row = site.hour_row(hour, False)
            if row >= 0:
                _emit_all(result, _site_scope(site), "hour", float(hour), site.hour_parts(row), a)
        self._closing_hours = keep
        days_kept: set[tuple[int, int]] = set()
        for idx, day in sorted(self._closing_days):
            site = sites[idx]
            if site is None or site.op is None:
                continue
            days = site.info.days
            if day >= days.day_of(a - MINUTE):
                days_kept.add((idx, day))
                continue
            closed = _site_day(site, day)
            if closed is not None:
                _emit_all(result, _site_scope(site), "day", days.midnight(day), closed, a)
        self._closing_days = days_kept

    def site_snapshots(self, sites: Iterable[SiteState] | None = None, *, force: bool = False) -> list[SnapshotValue]:
        """The current windows of ``sites`` (all by default) as of the last flush, for those whose figures changed."""
        a = self.as_of
        if a is None:
            return []
        out: list[SnapshotValue] = []
        for site in self.sites.values() if sites is None else sites:
            self._site_windows(site, a, out, force=force)
        return out

    def current_sites(self) -> list[SnapshotValue]:
        """Every site's snapshots of the current windows as of the last flush, changed or not."""
        return self.site_snapshots(force=True)

    def _site_windows(
        self,
        site: SiteState,
        a: float,
        out: list[SnapshotValue],
        *,
        force: bool,
    ) -> None:
        op = site.op
        if op is None:
            return
        info = site.info
        days = info.days
        today = days.day_of(a - MINUTE)
        midnight = days.midnight(today)
        hour = (a - MINUTE) // HOUR * HOUR
        week_start = today - 6
        now_open, now_scheduled = self._site_at(site, a)
        vectors: dict[str, list[float]] = {}
        for name, sums, counted, start in (
            ("15m", _SITE_W15, _COUNT_W15, a - 900),
            ("1h", _SITE_W60, _COUNT_W60, a - HOUR),
        ):
            vector = _site_vector(site, sums, counted, opening_time=False)
            o, s = self._site_at(site, start)
            _put(vector, now_open - o, now_scheduled - s)
            vectors[name] = vector
        row = site.hour_row(hour, False)
        current = site.hour_parts(row) if row >= 0 else zeros(SITE_WIDTH)
        hour_open, hour_scheduled = (
            (now_open - op[HOUR_OPEN], now_scheduled - op[HOUR_SCHED]) if op[HOUR_AT] == hour else (0, 0)
        )
        _put(current, hour_open, hour_scheduled)
        vectors["hour"] = current
        day_vector = _site_day(site, today) or zeros(SITE_WIDTH)
        if op[DAY_AT] == today:
            _put(day_vector, now_open - op[DAY_OPEN], now_scheduled - op[DAY_SCHED])
        else:
            _put(day_vector, 0.0, 0.0)
        vectors["today"] = day_vector
        week = list(day_vector)
        for day in range(week_start, today):
            closed = _site_day(site, day)
            if closed is not None:
                add_into(week, closed)
        week[SITES_SCHEDULED] = 1.0 if week[SCHEDULED_SECONDS] > 0 else 0.0
        vectors["7d"] = week
        vectors["day"] = day_vector
        starts = {
            "15m": a - 900,
            "1h": a - HOUR,
            "hour": hour,
            "today": midnight,
            "day": midnight,
            "7d": days.midnight(week_start),
        }
        live = _live(site)
        keys = site.keys if site.keys is not None else array("q", _empty_keys())
        changed = False
        scope = _site_scope(site)
        for i, indicator in enumerate(INDICATORS):
            key = _site_key(indicator, [vectors[name] for name in starts], live, site)
            if key == keys[i] and not force:
                continue
            keys[i] = key
            changed = True
            for name, start in starts.items():
                if name in ("hour", "day") and is_empty(indicator, vectors[name]):
                    continue  # a calendar bucket with nothing in it is not news
                numerator, denominator, details = build(indicator, vectors[name], histograms=False)
                out.append(SnapshotValue(indicator, *scope, name, start, numerator, denominator, a, details))
            if indicator == OPENING:
                numerator, denominator, details = opening_live_site(live, len(site.counters), site.last_status)
                out.append(SnapshotValue(indicator, *scope, "live", None, numerator, denominator, a, details))
        if changed and not force:
            site.keys = keys

    def _payloads(self, a: float) -> dict[ScopeKey, Payload]:
        """Partial sums of every scope of the partition at ``a``; networks, departments and the nation summed."""
        hour = int((a - MINUTE) // HOUR * HOUR)
        hours_wanted = {h for h in self._scope_hours if h < hour}
        self._scope_hours = set()
        days_wanted: set[int] = set(self._scope_days)
        self._scope_days = set()
        todays: dict[LocalDays, int] = {}
        for scope in (*self.groups.values(), *self.procedures.values()):
            if scope.local not in todays:
                todays[scope.local] = scope.local.day_of(a - MINUTE)
        days_wanted.update(todays.values())
        payloads: dict[ScopeKey, Payload] = {}
        for group_key, group in self.groups.items():
            payloads[group_key] = _scope_payload(group, a, hour, hours_wanted, days_wanted, todays[group.local])
        procedures: dict[str, dict[str, Payload]] = {}
        for (network, label), scope in self.procedures.items():
            procedures.setdefault(network, {})[label] = _scope_payload(
                scope, a, hour, hours_wanted, days_wanted, todays[scope.local]
            )
        networks: dict[ScopeKey, list[Payload]] = {}
        departments: dict[ScopeKey, list[Payload]] = {}
        for (network_name, department_code), payload in payloads.items():
            networks.setdefault((network_name, None), []).append(payload)
            departments.setdefault((None, department_code), []).append(payload)
        for key, parts in (*networks.items(), *departments.items()):
            # one member (a department served by one network): the same figures, no sum to make
            payloads[key] = dict(parts[0]) if len(parts) == 1 else _sum_payloads(parts)
        if networks:  # the nation: the sum of the networks (fewer vectors than the departments)
            payloads[(None, None)] = _sum_payloads([payloads[key] for key in networks])
        national: dict[str, list[Payload]] = {}
        for network, by_label in procedures.items():
            if (network, None) in payloads:
                payloads[(network, None)]["procs"] = by_label
            for label, payload in by_label.items():
                national.setdefault(label, []).append(payload)
        if (None, None) in payloads and national:
            payloads[(None, None)]["procs"] = {label: _sum_payloads(parts) for label, parts in national.items()}
        return payloads

    def _prune(self, a: float) -> None:
        keep_from = a - HOUR
        oldest_hour = (a - self.config.max_call) // HOUR * HOUR - HOUR
        histories: dict[int, array[float]] = {}
        for idx, changes in self._recent.items():
            kept = _prune_rows(changes, 4, keep_from)
            if kept is not None:
                histories[idx] = kept
        if len(histories) < len(self._recent) or any(
            histories[k] is not v for k, v in self._recent.items() if k in histories
        ):
            self._recent = histories  # a new dict: one emptied keeps the table of its largest size
        for shared in self._shared_list:
            shared.edges = _prune_rows(shared.edges, 2, keep_from) or array("d")
        for group in self.groups.values():
            group.recent = opening.prune_recent(group.recent, keep_from)
            ends = group.ends
            if ends and ends[0] < a - BUCKET_HORIZON:
                del ends[: bisect.bisect_left(ends, a - BUCKET_HORIZON)]
        for scope in (*self.groups.values(), *self.procedures.values()):
            for h in [h for h in scope.hours if h < oldest_hour]:
                del scope.hours[h]
        open_hours = {hour for _, hour in self._closing_hours}
        for site in self.sites.values():
            op = site.op
            if op is not None and len(op) > _SITE_OP and op[_SITE_OP] < oldest_hour:
                site.drop_hours(lambda hour: hour >= oldest_hour or hour in open_hours)
        forget = int((self.watermark - self.config.grace) // MINUTE)
        for by_network in self._seen.values():
            for seen in by_network.values():
                seen.forget(forget)
        self._minute_objects = {m: shared for m, shared in self._minute_objects.items() if m >= forget}

    # -- persistence ------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The whole state as JSON-able data (the registry itself is not included)."""
        sites = {}
        for site_id, site in self.sites.items():
            sites[site_id] = [
                site.idx,
                site.flags,
                list(site.counters),
                site.last_status,
                [list(p) for p in self._pending.get(site_id, ())],
                _pack(site.op) if site.op is not None else None,
                base64.b64encode(site.counts.tobytes()).decode("ascii"),
                _pack(self._recent[site.idx]) if site.idx in self._recent else None,
                list(site.keys) if site.keys is not None else None,
            ]
        groups = [[n, d, _dump_scope(g)] for (n, d), g in self.groups.items()]
        procedures = [[n, p, _dump_scope(s)] for (n, p), s in self.procedures.items()]
        staged = [[minute, _pack_ints(records), _pack(times)] for minute, (records, times) in self._staged.items()]
        return {
            "format": CHECKPOINT_FORMAT,
            "partition": self.partition,
            "stream_max": self.stream_max,
            "watermark": _finite(self.watermark),
            "origin": self.origin,
            "as_of": self.as_of,
            "swept": self._swept,
            "sites": sites,
            "site_count": len(self._site_list),
            "groups": groups,
            "procedures": procedures,
            "labels": self._label_names,
            "staged": staged,
            "log": [[minute, _pack_ints(records)] for minute, records in self._log.items()],
            "seen": [
                [stream, network, list(seen.ids), list(seen.ids.values())]
                for stream, by_network in self._seen.items()
                for network, seen in by_network.items()
            ],
            "closing_hours": sorted(self._closing_hours),
            "closing_days": sorted(self._closing_days),
            "scope_hours": sorted(self._scope_hours),
            "scope_days": sorted(self._scope_days),
            "next_hour": self._next_hour if self._swept is not None else None,
            "sent": [[n, d, p] for (n, d), p in self._sent.items()],
        }

    @staticmethod
    def loadable(data: dict[str, Any]) -> bool:
        """Whether ``load`` can read a checkpoint (one written by an older version cannot)."""
        return data.get("format") == CHECKPOINT_FORMAT

    def load(self, data: dict[str, Any]) -> None:
        """Restore from ``dump`` output; call after the registry is loaded (unknown sites are dropped)."""
        self.stream_max = {str(k): float(v) for k, v in data["stream_max"].items()}
        self.watermark = _inf(data["watermark"])
        self.origin = data["origin"]
        self.as_of = data["as_of"]
        self._label_names = list(data["labels"])
        self._labels = {name: i for i, name in enumerate(self._label_names)}
        # site indices are those of the log: registered sites take theirs back
        registered = self.sites
        self._site_list = [None] * max(int(data["site_count"]), len(registered))
        loaded = data["sites"]
        spare = len(self._site_list)
        for site_id, site in registered.items():
            raw = loaded.get(site_id)
            if raw is None:
                site.idx = spare
                spare += 1
                self._site_list.append(site)
            else:
                site.idx = int(raw[0])
                self._site_list[site.idx] = site
        for site_id, raw in loaded.items():
            known = registered.get(site_id)
            if known is None:
                continue
            site = known
            (_, flags, counters, last_status, pending, op, counts, recent, keys) = raw
            site.flags = int(flags)
            site.counters = tuple(counters)
            site.last_status = last_status
            if pending:
                self._pending[site_id] = [(float(t), int(o), str(c)) for t, o, c in pending]
            site.op = _unpack(op) if op is not None else None
            if counts is not None:
                site.counts = array("i", base64.b64decode(counts))
            if recent:
                self._recent[site.idx] = _unpack(recent)
            site.keys = array("q", keys) if keys is not None else None
        for network, department, raw in data["groups"]:
            group = self._group(network, department)
            _load_scope(group, raw)
        for network, label, raw in data["procedures"]:
            scope = self.procedures[(network, label)] = Scope(local_days(_PARIS), opening_time=False)
            _load_scope(scope, raw)
        self._staged = {
            int(minute): (_unpack_ints(records), _unpack(times)) for minute, records, times in data["staged"]
        }
        self._log = {int(minute): _unpack_ints(text) for minute, text in data["log"]}
        for stream, network, ids, minutes in data["seen"]:
            self._seen[stream].setdefault(network, _Seen()).ids = dict(zip(ids, minutes, strict=True))
        self._closing_hours = {(int(i), int(h)) for i, h in data["closing_hours"]}
        self._closing_days = {(int(i), int(d)) for i, d in data["closing_days"]}
        self._scope_hours = {int(h) for h in data["scope_hours"]}
        self._scope_days = {int(d) for d in data["scope_days"]}
        self._sent = {(n, d): int(p) for n, d, p in data["sent"]}
        self._swept = data["swept"]
        if self._swept is not None:
            self._resume_time(float(self._swept), float(data["next_hour"]))
        self._registry_changed = True

    def _resume_time(self, t: float, next_hour: float) -> None:
        """After a restore: the next edges and boundaries of every site and scope from ``t``."""
        self._edges = []
        self._shared, self._shared_list = {}, []
        self._next_hour = next_hour
        self._midnights = {}
        for scope in self.groups.values():
            if scope.op is None:
                self._start_scope(scope, t)
            else:
                local = scope.local
                day = int(scope.op[DAY_AT])
                self._midnights.setdefault(local, [local.midnight(day + 1), float(day + 1)])
        for site in self.sites.values():
            if site.op is None:
                self._start_site(site, t)
                continue
            local = site.info.days
            day = int(site.op[DAY_AT])
            self._midnights.setdefault(local, [local.midnight(day + 1), float(day + 1)])
            info = site.info
            self._join(site, t, restored=True)
            closure = opening.next_closure_edge(info.unannounced, t, site.flags & UNANN != 0, after=False)
            if closure is not None:
                self._push(closure[0], _CLOSURE, site, float(self._versions.get(site.idx, 0)), closure[1])
            if site.last_status is not None and site.flags & STALE == 0:
                self._push(site.last_status + self.config.stale_after, _EXPIRY, site, site.last_status, True)


# -- helpers ----------------------------------------------------------------------------------


def _prune_rows(rows: array[float], width: int, keep_from: float) -> array[float] | None:
    """Rows (first number: an instant) from ``keep_from`` on, at their exact size; None if none is left."""
    n = len(rows) // width
    i = 0
    while i < n and rows[i * width] < keep_from:
        i += 1
    if i == n:
        return None
    return rows[i * width :] if i else rows


def _bump(vector: array[float], offset: int, plus: tuple[int, ...], value_part: int, value: int, bin_part: int) -> None:
    """One call or case into a vector of parts at ``offset``."""
    for part in plus:
        vector[offset + part] += 1.0
    if value_part >= 0:
        vector[offset + value_part] += value
    if bin_part >= 0:
        vector[offset + bin_part] += 1.0


def _site_scope(site: SiteState) -> tuple[str, str, str]:
    info = site.info
    return (info.network, info.department, info.site_id)


def _put(vector: list[float], opened: float, scheduled: float) -> None:
    vector[OPEN_SECONDS] = opened
    vector[SCHEDULED_SECONDS] = scheduled
    vector[SITES_SCHEDULED] = 1.0 if scheduled > 0 else 0.0


def _live(site: SiteState) -> list[float]:
    contribution = _CONTRIBUTION[site.flags]
    live = zeros(LIVE_WIDTH)
    live[LIVE_SITES] = 1.0
    live[LIVE_OPEN] = contribution[0]
    live[LIVE_SCHEDULED] = contribution[1]
    live[LIVE_OPEN_UNSCHEDULED] = contribution[2]
    live[LIVE_STALE] = contribution[3]
    live[LIVE_STALE_SCHEDULED] = contribution[4]
    return live


def _scope_payload(
    scope: Scope, a: float, hour: int, hours_wanted: set[int], days_wanted: set[int], today: int
) -> Payload:
    """The partial sums of one department (or procedure) of this partition at ``a``.

    ``hours_wanted`` and ``days_wanted``: the calendar buckets any scope of the partition
    closed or revised in this flush, and the days any is in now. Each scope gives its value
    for each of them, so that a network or the nation (whose departments do not all change
    day at the same instant) always sums complete buckets.
    """
    local = scope.local
    ring = scope.ring
    today_vector = _ring_day(ring, _GROUP_ROW, today)
    if today_vector is None:
        today_vector = zeros(GROUP_WIDTH)
    windows = {
        "15m": scope.w15.tolist(),
        "1h": scope.w60.tolist(),
        "today": today_vector,
    }
    week = list(today_vector)
    days: dict[int, list[float]] = {}
    for day in range(today - 6, today):
        closed = _ring_day(ring, _GROUP_ROW, day)
        if closed is not None:
            add_into(week, closed)
            if day in days_wanted:
                days[day] = list(closed)
        elif day in days_wanted:
            days[day] = zeros(GROUP_WIDTH)
    windows["7d"] = week
    current = scope.hours.get(hour)
    hours = {hour: current.tolist() if current is not None else zeros(GROUP_WIDTH)}
    for h in hours_wanted:
        bucket = scope.hours.get(h)
        hours[h] = bucket.tolist() if bucket is not None else zeros(GROUP_WIDTH)
    live = zeros(LIVE_WIDTH)
    op = scope.op
    if op is not None and scope.live is not None:
        recent = scope.recent
        now_open, now_scheduled = opening.at(op, a, recent)
        for name, start in (("15m", a - 900), ("1h", a - HOUR)):
            o, s = opening.at(op, start, recent)
            _put_scope(windows[name], now_open - o, now_scheduled - s, scope.scheduled_sites(start))
        hour_open = now_open - op[HOUR_OPEN] if op[HOUR_AT] == hour else 0.0
        hour_scheduled = now_scheduled - op[HOUR_SCHED] if op[HOUR_AT] == hour else 0.0
        _put_scope(hours[hour], hour_open, hour_scheduled, scope.scheduled_sites(hour))
        midnight = local.midnight(today)
        if op[DAY_AT] == today:
            today_open, today_scheduled = now_open - op[DAY_OPEN], now_scheduled - op[DAY_SCHED]
        else:
            today_open = today_scheduled = 0.0
        _put_scope(today_vector, today_open, today_scheduled, scope.scheduled_sites(midnight))
        week[OPEN_SECONDS] += today_open
        week[SCHEDULED_SECONDS] += today_scheduled
        week[SITES_SCHEDULED] = scope.scheduled_sites(local.midnight(today - 6))
        live[LIVE_OPEN], live[LIVE_SCHEDULED] = op[RATE_OPEN], op[RATE_SCHED]
        live[LIVE_SITES] = scope.live[LIVE_SITES]
        live[LIVE_STALE] = scope.live[LIVE_STALE]
        live[LIVE_OPEN_UNSCHEDULED] = scope.live[LIVE_OPEN_UNSCHEDULED]
        live[LIVE_STALE_SCHEDULED] = scope.live[LIVE_STALE_SCHEDULED]
    days[today] = list(today_vector)
    return {
        "w": windows,
        "live": live,
        "hour": {h: v for h, v in hours.items() if h == hour or any(v)},
        "day": {d: v for d, v in days.items() if d == today or any(v)},
    }


def _put_scope(vector: list[float], opened: float, scheduled: float, sites: float) -> None:
    vector[OPEN_SECONDS], vector[SCHEDULED_SECONDS], vector[SITES_SCHEDULED] = opened, scheduled, sites


def _merge_payloads(earlier: Payload, later: Payload) -> Payload:
    """Two steps of one flush: the later windows, and the calendar buckets of both."""
    merged = dict(later)
    merged["hour"] = {**earlier.get("hour", {}), **later.get("hour", {})}
    merged["day"] = {**earlier.get("day", {}), **later.get("day", {})}
    if "procs" in earlier or "procs" in later:
        procs = dict(earlier.get("procs") or {})
        for label, payload in (later.get("procs") or {}).items():
            procs[label] = _merge_payloads(procs[label], payload) if label in procs else payload
        merged["procs"] = procs
    return merged


_EMPTY_KEYS: tuple[int, ...] | None = None


def _site_key(indicator: str, vectors: list[list[float]], live: list[float], site: SiteState | None) -> int:
    """What decides a site's snapshots of one indicator: publish again only when it changes."""
    key = hash(tuple(indicator_key(indicator, vector) for vector in vectors))
    if indicator == OPENING:
        status = (_stable(site.last_status), len(site.counters)) if site is not None else (_stable(None), 0)
        key = hash((key, tuple(live), status))
    return key


def _empty_keys() -> tuple[int, ...]:
    """Keys of a site with nothing to say (never heard of, not scheduled): never published."""
    global _EMPTY_KEYS  # noqa: PLW0603 - computed once
    if _EMPTY_KEYS is None:
        empty = [zeros(SITE_WIDTH) for _ in range(6)]
        live = zeros(LIVE_WIDTH)
        live[LIVE_SITES] = live[LIVE_STALE] = 1.0
        _EMPTY_KEYS = tuple(_site_key(indicator, empty, live, None) for indicator in INDICATORS)
    return _EMPTY_KEYS


def _emit_all(
    result: FlushResult, scope: tuple[str, str, str], window: str, start: float, vector: list[float], a: float
) -> None:
    """The snapshots of a closed calendar bucket of a site (those with something in them)."""
    for indicator in INDICATORS:
        if is_empty(indicator, vector):
            continue
        numerator, denominator, details = build(indicator, vector, histograms=False)
        result.snapshots.append(SnapshotValue(indicator, *scope, window, start, numerator, denominator, a, details))


def _sum_payloads(parts: Iterable[Payload]) -> Payload:
    """Parts of several scopes summed, vector by vector, in the order given (the sums are the same in any run)."""
    windows: dict[str, list[Sequence[float]]] = {}
    lives: list[Sequence[float]] = []
    buckets: dict[str, dict[Any, list[Sequence[float]]]] = {"hour": {}, "day": {}}
    for part in parts:
        for name, vector in part["w"].items():
            windows.setdefault(name, []).append(vector)
        lives.append(part["live"])
        for kind, by_key in buckets.items():
            for key, vector in part[kind].items():
                by_key.setdefault(key, []).append(vector)
    return {
        "w": {name: _sum_vectors(vectors, GROUP_WIDTH) for name, vectors in windows.items()},
        "live": _sum_vectors(lives, LIVE_WIDTH),
        "hour": {key: _sum_vectors(vectors, GROUP_WIDTH) for key, vectors in buckets["hour"].items()},
        "day": {key: _sum_vectors(vectors, GROUP_WIDTH) for key, vectors in buckets["day"].items()},
    }


def _sum_vectors(vectors: list[Sequence[float]], width: int) -> list[float]:
    if len(vectors) == 1:
        return list(vectors[0])
    if any(len(vector) != width for vector in vectors):
        out = zeros(width)
        for vector in vectors:
            add_into(out, vector)
        return out
    return list(map(sum, zip(*vectors, strict=True)))  # element-wise, in C


def _pack(vector: Sequence[float]) -> str:
    """A vector as base64 text of its doubles (checkpoints are written often: keep it cheap)."""
    return base64.b64encode(array("d", vector).tobytes()).decode("ascii")


def _unpack(text: str) -> array[float]:
    return array("d", base64.b64decode(text))


def _dump_scope(scope: Scope) -> list[Any]:
    return [
        _pack(scope.op) if scope.op is not None else None,
        _pack(scope.recent) if scope.recent else None,
        _pack(scope.ends),
        _pack(scope.live) if scope.live is not None else None,
        _pack(scope.w15),
        _pack(scope.w60),
        _pack(scope.ring),
        [[h, _pack(v)] for h, v in scope.hours.items()],
    ]


def _load_scope(scope: Scope, data: list[Any]) -> None:
    op, recent, ends, live, w15, w60, ring, hours = data
    scope.op = _unpack(op) if op is not None else None
    scope.recent = _unpack(recent) if recent else None
    scope.ends = _unpack(ends)
    if live is not None:
        scope.live = _unpack(live)
    scope.w15, scope.w60, scope.ring = _unpack(w15), _unpack(w60), _unpack(ring)
    scope.hours = {int(h): _unpack(v) for h, v in hours}


def _pack_ints(records: array[int]) -> str:
    return base64.b64encode(records.tobytes()).decode("ascii")


def _unpack_ints(text: str) -> array[int]:
    return array("Q", base64.b64decode(text))


def _fingerprint(payload: Payload) -> int:
    """A fingerprint of partial sums, the same in every process (it is saved with the checkpoint)."""
    data = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def _stable(value: Any) -> Any:
    """Numbers hash alike in every process; strings and None do not (they are salted or id-based)."""
    if isinstance(value, str):
        return zlib.crc32(value.encode())
    return -1e308 if value is None else value


def _finite(value: float) -> float | None:
    return None if value == NEG_INF else value


def _inf(value: float | None) -> float:
    return NEG_INF if value is None else float(value)
