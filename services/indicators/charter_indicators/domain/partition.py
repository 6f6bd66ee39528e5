"""The indicator state of one partition of the site-keyed streams, in event time.

The canonical topics and ``charter.sites`` are co-partitioned by ``site_id``, so one
partition holds every event of its sites. This module is the pure core of the service:
events in, per-site snapshots and per-scope partial sums out; no Kafka, no Prometheus.

Time model (README, "Event time"):

- the partition's watermark ``W`` follows the latest event time minus the grace period
  (see ``progress``); an event older than ``W``, or older than the latest event of its
  own stream minus the grace period, is late: it is not counted (the service reports it);
- everything is computed *as of* ``A``, the watermark rounded down to the minute: every
  event before ``A`` has been counted, none after it, so a published figure never
  changes afterwards, and the order of events within the grace period does not matter;
- windows: ``15m`` = [A-15min, A), ``1h`` = [A-1h, A), ``hour`` = the UTC hour of the
  last complete minute, ``today`` and ``day`` = the local day of the last complete
  minute, up to A; ``7d`` = today and the six local days before it; ``live`` = at A.

Calls and cases are counted as they arrive into a site's minute, hour and day buckets
and into its department's minute buckets; a department's windows are differences of
running totals. Every part is a whole number (waits in milliseconds, processing in
seconds), so sums are exact in any order. Opening time is measured: the site's
effective open timeline (a counter open, not stale, not in an unannounced closure)
intersected with its scheduled intervals.
"""

from __future__ import annotations

import base64
import bisect
import math
import zlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import sub
from typing import Any

from charter_contracts.sites import department_timezone
from charter_indicators.domain.calendar import DAY, HOUR, MINUTE, LocalDays, local_days, minute_floor
from charter_indicators.domain.deadline import ProcedureRules, within_deadline
from charter_indicators.domain.events import Call, Case, DomainEvent, Outcome
from charter_indicators.domain.intervals import Interval, intersect, subtract
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
    PROCESSING_SUM,
    SCHEDULED_SECONDS,
    SHORT,
    SITE_WIDTH,
    SITES_SCHEDULED,
    WAIT_SUM,
    WITH_DEADLINE,
    WITHIN_DEADLINE,
    WITHIN_SL,
    WITHOUT_DEADLINE,
    add_into,
    processing_bin,
    set_opening,
    wait_bin,
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
_GROUP_ZEROS = bytes(8 * GROUP_WIDTH)
_RING = 8  # local days kept per site (7d window + the day just closed)
_PARIS = "Europe/Paris"
NEG_INF = -math.inf
_SITE_ZERO = array("d", [0.0] * SITE_WIDTH)

ScopeKey = tuple[str | None, str | None]
Payload = dict[str, Any]


@dataclass(frozen=True)
class IndicatorConfig:
    """The service's indicator settings, as the domain needs them."""

    grace: float = 60.0
    stale_after: float = 12 * HOUR
    short_abandon: float = 5.0
    service_level: float = 60.0
    rules: ProcedureRules = field(default_factory=ProcedureRules)


def _sub(a: Sequence[float], b: Sequence[float]) -> list[float]:
    if len(a) != len(b):
        raise ValueError(f"vectors of {len(a)} and {len(b)} parts")
    return list(map(sub, a, b))  # the loop in C: flushes subtract hundreds of thousands of vectors


class SiteParts:
    """Calls and cases of one site: per minute (last hour), per UTC hour (until published), per local day.

    Each event is added to its three buckets as it arrives, so reading a window never
    re-adds minutes. Local days live in a ring of eight (the 7d window and the day just
    closed), in one flat array to keep a site's state small.
    """

    __slots__ = ("hours", "local", "minutes", "ring", "ring_days")

    def __init__(self, local: LocalDays) -> None:
        self.local = local
        self.minutes: dict[int, array[float]] = {}
        self.hours: dict[int, array[float]] = {}
        self.ring = array("d", bytes(8 * SITE_WIDTH * _RING))
        self.ring_days = [-1] * _RING

    def targets(self, t: float) -> tuple[array[float], array[float], int]:
        """The minute bucket, hour bucket and day offset (in ``ring``) of instant ``t``."""
        m = int(t // MINUTE)
        minutes = self.minutes
        minute = minutes.get(m)
        if minute is None:
            minute = minutes[m] = array("d", _SITE_ZERO)
        h = m // 60 * HOUR
        hour = self.hours.get(h)
        if hour is None:
            hour = self.hours[h] = array("d", _SITE_ZERO)
        day = self.local.day_of(t)
        slot = day % _RING
        if self.ring_days[slot] == day:
            return minute, hour, slot * SITE_WIDTH
        return minute, hour, self.day_offset(day)

    def day_offset(self, day: int) -> int:
        slot = day % _RING
        offset = slot * SITE_WIDTH
        if self.ring_days[slot] != day:
            self.ring_days[slot] = day
            for i in range(offset, offset + SITE_WIDTH):
                self.ring[i] = 0.0
        return offset

    def day(self, day: int) -> list[float]:
        slot = day % _RING
        if self.ring_days[slot] != day:
            return zeros(SITE_WIDTH)
        offset = slot * SITE_WIDTH
        return list(self.ring[offset : offset + SITE_WIDTH])

    def minutes_between(self, start: float, end: float) -> list[float]:
        out = zeros(SITE_WIDTH)
        lo, hi = start / MINUTE, end / MINUTE
        for m, bucket in self.minutes.items():
            if lo <= m < hi:
                add_into(out, bucket)
        return out

    def windows(self, a: float, hour: float, today: int) -> dict[str, list[float]]:
        """Calls and cases over the current windows at ``a`` (events at or after ``a`` left out)."""
        am = a / MINUTE
        w15 = zeros(SITE_WIDTH)
        w60 = zeros(SITE_WIDTH)
        current_hour = zeros(SITE_WIDTH)
        future = zeros(SITE_WIDTH)  # events of today at or after a (within the grace period)
        for m, bucket in self.minutes.items():
            if m >= am:
                if self.local.day_of(m * MINUTE) == today:
                    add_into(future, bucket)
                continue
            if m >= am - 60:
                add_into(w60, bucket)
                if m >= am - 15:
                    add_into(w15, bucket)
                if m * MINUTE >= hour:
                    add_into(current_hour, bucket)
        today_parts = _sub(self.day(today), future)
        week = list(today_parts)
        for day in range(today - 6, today):
            add_into(week, self.day(day))
        return {"15m": w15, "1h": w60, "hour": current_hour, "today": today_parts, "7d": week}

    def prune(self, a: float) -> None:
        limit = a / MINUTE - 60
        if any(m < limit for m in self.minutes):  # rebuilt, not deleted from: a dict never shrinks
            self.minutes = {m: bucket for m, bucket in self.minutes.items() if m >= limit}
        if len(self.hours) > 2:  # hours older than the publishing horizon (after a jump of the watermark)
            for h in [h for h in self.hours if h < a - BUCKET_HORIZON - HOUR]:
                del self.hours[h]

    def dump(self) -> list[Any]:
        return [
            list(self.minutes),
            _pack(self.minutes.values()),
            list(self.hours),
            _pack(self.hours.values()),
            self.ring_days,
            _pack([self.ring]),
        ]

    def load(self, data: list[Any]) -> None:
        minutes, minute_values, hours, hour_values, ring_days, ring = data
        self.minutes = dict(zip(map(int, minutes), _unpack_arrays(minute_values, SITE_WIDTH), strict=True))
        self.hours = dict(zip(map(int, hours), _unpack_arrays(hour_values, SITE_WIDTH), strict=True))
        self.ring_days = [int(d) for d in ring_days]
        self.ring = array("d", base64.b64decode(ring))


class ScopeParts:
    """Calls and cases of a department of a network (or of a procedure), as running totals.

    Minutes not yet reached by ``a`` wait in ``minutes``; ``advance`` adds them to the
    running total in order and keeps its value at each minute of the last hour (and at
    each local midnight of the last nine days), so any window is one subtraction.
    """

    __slots__ = ("local", "marks", "midnights", "minutes", "running", "running_at")

    def __init__(self, local: LocalDays) -> None:
        self.local = local
        #: machine arrays, not lists: a list of 47 floats is three times the size, and a replay
        #: holds a scope's minutes until the next flush
        self.minutes: dict[int, array[float]] = {}
        self.running = zeros(GROUP_WIDTH)
        self.running_at: int | None = None
        #: (minute m, total of the minutes before m), sorted: the total at any later minute until the next
        #: mark; compact arrays, as a department keeps one per busy minute of the last hour
        self.marks: list[tuple[int, Sequence[float]]] = []
        self.midnights: dict[int, Sequence[float]] = {}

    def minute(self, m: int) -> array[float]:
        bucket = self.minutes.get(m)
        if bucket is None:
            bucket = self.minutes[m] = array("d", _GROUP_ZEROS)
        return bucket

    def total_at(self, m: float) -> Sequence[float]:
        """Sum of the minutes before minute ``m`` (``m`` within the last hour, or a kept boundary)."""
        i = bisect.bisect_right(self.marks, m, key=lambda mark: mark[0]) - 1
        return self.marks[i][1] if i >= 0 else zeros(GROUP_WIDTH)

    def advance(self, a: float) -> None:
        """Fold the minutes before ``a`` into the running total, keeping the marks."""
        target = int(a // MINUTE)
        start = self.running_at
        if start is None:
            start = min([target, *self.minutes])
            self.marks = [(start, array("d", self.running))]
        if target <= start:
            return
        folded = sorted(k for k in self.minutes if k < target)
        for m in folded:
            self.running = [x + y for x, y in zip(self.running, self.minutes.pop(m), strict=True)]
            self.marks.append((m + 1, array("d", self.running)))
        if folded:
            self.minutes = dict(self.minutes)  # a dict never shrinks: a copy is sized to what is left
        self.running_at = target
        first_day = self.local.day_of(start * MINUTE)
        for day in range(first_day, self.local.day_of(a) + 1):
            midnight = self.local.midnight(day)
            if start * MINUTE <= midnight <= a:
                self.midnights[day] = self.total_at(midnight / MINUTE)

    def at_midnight(self, day: int) -> Sequence[float]:
        value = self.midnights.get(day)
        if value is not None:
            return value
        return self.total_at(self.local.midnight(day) / MINUTE)

    def between(self, start: float, end: float) -> list[float]:
        return _sub(self.total_at(end / MINUTE), self.total_at(start / MINUTE))

    def prune(self, keep_from: float, today: int) -> None:
        limit = keep_from / MINUTE
        i = bisect.bisect_right(self.marks, limit, key=lambda mark: mark[0]) - 1
        if i > 0:
            self.marks = [(int(limit), self.marks[i][1]), *self.marks[i + 1 :]]
        for day in [d for d in self.midnights if d < today - 9]:
            del self.midnights[day]

    def dump(self) -> list[Any]:
        return [
            list(self.minutes),
            _pack(self.minutes.values()),
            _pack([self.running]),
            self.running_at,
            [m for m, _ in self.marks],
            _pack(v for _, v in self.marks),
            list(self.midnights),
            _pack(self.midnights.values()),
        ]

    def load(self, data: list[Any]) -> None:
        minutes, minute_values, running, running_at, marks, mark_values, midnights, midnight_values = data
        self.minutes = dict(zip(map(int, minutes), _unpack_arrays(minute_values, GROUP_WIDTH), strict=True))
        self.running = _unpack_lists(running, GROUP_WIDTH)[0]
        self.running_at = running_at
        self.marks = list(zip(map(int, marks), _unpack_arrays(mark_values, GROUP_WIDTH), strict=True))
        self.midnights = dict(zip(map(int, midnights), _unpack_arrays(midnight_values, GROUP_WIDTH), strict=True))


class SiteState:
    """Everything the partition keeps about one registered site (bounded: last hour, last 8 days)."""

    __slots__ = (
        "counters",
        "day",
        "expired",
        "group",
        "info",
        "keys",
        "last_status",
        "open_days",
        "parts",
        "pending",
        "seen",
        "tl",
        "tl0",
        "tl_start",
    )

    def __init__(self, info: SiteInfo, group: ScopeParts) -> None:
        self.info = info
        self.group = group
        self.parts: SiteParts | None = None
        self.counters: set[str] = set()
        self.last_status: float | None = None
        self.expired = False
        self.pending: list[tuple[float, int, str]] = []
        self.seen: dict[str, float] = {}
        # effective open timeline: state tl0 at tl_start, then changes (t, open)
        self.tl_start = NEG_INF
        self.tl0 = False
        self.tl: list[tuple[float, bool]] = []
        #: opening seconds (open, scheduled) of closed local days, the last seven
        self.open_days: dict[int, tuple[float, float]] = {}
        self.day: int | None = None
        self.keys: list[int] | None = None

    @property
    def is_open(self) -> bool:
        """Effective state at the end of the timeline."""
        return self.tl[-1][1] if self.tl else self.tl0

    def set_open(self, t: float, state: bool) -> None:
        if state != self.is_open:
            self.tl.append((t, state))

    def state_at(self, t: float) -> bool:
        state = self.tl0
        for at, value in self.tl:
            if at > t:
                break
            state = value
        return state

    def open_pieces(self, start: float, end: float) -> list[Interval]:
        """Effective open intervals within [start, end), unannounced closures removed."""
        out: list[Interval] = []
        state = self.tl0
        since = self.tl_start
        for at, value in self.tl:
            if state and at > start and since < end:
                out.append((max(since, start), min(at, end)))
            state, since = value, at
        if state and since < end:
            out.append((max(since, start), end))
        if self.info.unannounced and out:
            out = subtract(out, self.info.unannounced)
        return out

    def prune_timeline(self, start: float) -> None:
        if start <= self.tl_start:
            return
        state = self.tl0
        keep = []
        for at, value in self.tl:
            if at <= start:
                state = value
            else:
                keep.append((at, value))
        self.tl0, self.tl, self.tl_start = state, keep, start


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
        self.groups: dict[tuple[str, str], ScopeParts] = {}
        self.procedures: dict[tuple[str, str], ScopeParts] = {}
        #: latest event time seen per stream (counter, call, case)
        self.stream_max: dict[str, float] = {}
        self.watermark = NEG_INF
        self.origin: float | None = None
        self.as_of: float | None = None
        self._pending_sites: set[str] = set()
        self._open_sites: set[str] = set()
        self._seen_sites: set[str] = set()
        self._registry_changed = False
        #: fingerprint of the partial sums last published per scope (to publish only what changed)
        self._sent: dict[ScopeKey, int] = {}
        #: opening seconds (open, scheduled) of the closed local days of each department, the last eight
        self._closed_opening: dict[tuple[str, str], dict[int, list[float]]] = {}

    # -- registry ---------------------------------------------------------------------

    def register(self, info: SiteInfo) -> None:
        """Add or update a site of the registry (its state is kept across updates)."""
        group = self.groups.get((info.network, info.department))
        if group is None:
            zone = local_days(department_timezone(info.department))
            group = self.groups[(info.network, info.department)] = ScopeParts(zone)
        state = self.sites.get(info.site_id)
        if state is None:
            self.sites[info.site_id] = SiteState(info, group)
        else:
            state.info, state.group = info, group
        self._registry_changed = True

    def unregister(self, site_id: str) -> None:
        """Remove a site (a tombstone on ``charter.sites``); its future events are unknown."""
        if self.sites.pop(site_id, None) is not None:
            self._pending_sites.discard(site_id)
            self._open_sites.discard(site_id)
            self._seen_sites.discard(site_id)
            self._registry_changed = True

    # -- events -----------------------------------------------------------------------

    def apply(self, event: DomainEvent) -> Outcome:
        """Count one event, or say why not (unknown site, duplicate, late)."""
        site = self.sites.get(event.site_id)
        if site is None or site.info.network != event.network:
            return Outcome.UNKNOWN_SITE
        if isinstance(event, Call):
            key = CALLS + event.event_id
        elif isinstance(event, Case):
            key = CASES + event.event_id
        else:
            key = COUNTERS + event.event_id
        if key in site.seen:
            return Outcome.DUPLICATE
        t = event.t
        stream = key[0]
        latest = self.stream_max.get(stream, NEG_INF)
        if t < self.watermark or t < latest - self.config.grace:
            return Outcome.LATE
        if t > latest:
            self.stream_max[stream] = t
        if self.origin is None or t < self.origin:
            self.origin = float(minute_floor(t))
        site.seen[key] = t
        self._seen_sites.add(event.site_id)
        if isinstance(event, Call):
            self._call(site, event)
        elif isinstance(event, Case):
            self._case(site, event)
        else:
            site.pending.append((t, 1 if event.opened else 0, event.counter_id))
            self._pending_sites.add(event.site_id)
        return Outcome.ACCEPTED

    def _site_parts(self, site: SiteState) -> SiteParts:
        if site.parts is None:
            site.parts = SiteParts(site.info.days)
        return site.parts

    def _call(self, site: SiteState, call: Call) -> None:
        parts = site.parts if site.parts is not None else self._site_parts(site)
        t = call.t
        minute, hour, day = parts.targets(t)
        ring = parts.ring
        g = site.group.minute(int(t // MINUTE))
        if call.ivr_only:
            index = IVR
        elif call.answered is not None:
            wait = call.answered - t
            wait_ms = float(round(wait * 1000))
            minute[OFFERED] += 1
            hour[OFFERED] += 1
            ring[day + OFFERED] += 1
            g[OFFERED] += 1
            minute[WAIT_SUM] += wait_ms
            hour[WAIT_SUM] += wait_ms
            ring[day + WAIT_SUM] += wait_ms
            g[WAIT_SUM] += wait_ms
            if wait <= self.config.service_level:
                minute[WITHIN_SL] += 1
                hour[WITHIN_SL] += 1
                ring[day + WITHIN_SL] += 1
                g[WITHIN_SL] += 1
            g[wait_bin(wait)] += 1
            index = ANSWERED
        elif call.ended - t < self.config.short_abandon:
            index = SHORT
        else:
            index = OFFERED
        minute[index] += 1
        hour[index] += 1
        ring[day + index] += 1
        g[index] += 1

    def _case(self, site: SiteState, case: Case) -> None:
        rules = self.config.rules
        info = site.info
        label = rules.label(case.procedure)
        proc = self.procedures.get((info.network, label))
        if proc is None:
            proc = self.procedures[(info.network, label)] = ScopeParts(local_days(_PARIS))
        m = int(case.t // MINUTE)
        minute, hour, day = self._site_parts(site).targets(case.t)
        ring = site.parts.ring  # type: ignore[union-attr]
        g = site.group.minute(m)
        p = proc.minute(m)
        deadline = rules.deadline(case.procedure, case.deadline_days)
        processing = case.t - case.submitted
        seconds = float(round(processing))
        if deadline is None:
            index = WITHOUT_DEADLINE
            within = False
        else:
            index = WITH_DEADLINE
            within = within_deadline(case.submitted, case.t, deadline, info.days, info.holidays)
        histogram = processing_bin(processing)
        for bucket, at in ((minute, 0), (hour, 0), (ring, day), (g, 0), (p, 0)):
            bucket[at + index] += 1
            bucket[at + PROCESSING_SUM] += seconds
            if within:
                bucket[at + WITHIN_DEADLINE] += 1
        g[histogram] += 1
        p[histogram] += 1

    # -- time -------------------------------------------------------------------------

    def progress(self, behind: Iterable[str] = (), clock: dict[str, float] | None = None) -> None:
        """Move the watermark: the earliest of the three streams' latest event, minus the grace period.

        Each stream (counters, calls, cases: one canonical topic each) is judged on its own,
        so a stream read ahead of the others never makes them late, and the result does not
        depend on how the streams interleave. ``behind``: streams with records not read yet
        (one that has no event yet holds the watermark until it has); a stream that is read
        up to date and has no event at all is left out. ``clock``: streams read up to date
        and silent for a while, with the wall-clock time to count them at (time passes).
        """
        waiting = set(behind)
        clock = clock or {}
        latest = []
        for stream in (COUNTERS, CALLS, CASES):
            seen = max(self.stream_max.get(stream, NEG_INF), clock.get(stream, NEG_INF))
            if seen > NEG_INF or stream in waiting:
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

    # -- flush ------------------------------------------------------------------------

    def flush(self, *, site_snapshots: bool = True) -> FlushResult:
        """Bring every figure up to date as of the minute the watermark reached.

        Returns the site snapshots (the closed calendar buckets always; the current
        windows of the sites whose figures changed when ``site_snapshots``) and the
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
        self._apply_counters()
        hour = (a - MINUTE) // HOUR * HOUR
        # buckets closed since the last flush (since the start of history at the first one)
        reference = previous if previous is not None else min(self.origin or a, a)
        reference = max(reference, a - BUCKET_HORIZON)
        closed_hours: list[float] = []
        h = (reference - MINUTE) // HOUR * HOUR
        while h < hour:
            closed_hours.append(h)
            h += HOUR
        for scope in (*self.groups.values(), *self.procedures.values()):
            scope.advance(a)
        result = FlushResult(a, self.watermark, advanced=True)
        acc = _OpeningSums()
        for site in self.sites.values():
            self._flush_site(site, a, reference, hour, closed_hours, acc, result, site_snapshots)
        self.as_of = a
        self._flush_scopes(a, reference, hour, closed_hours, acc, result)
        self._prune(a)
        return result

    def current_sites(self) -> list[SnapshotValue]:
        """Every site's snapshots of the current windows as of the last flush, changed or not."""
        result = FlushResult(self.as_of, self.watermark)
        if self.as_of is None:
            return []
        a = self.as_of
        hour = (a - MINUTE) // HOUR * HOUR
        for site in self.sites.values():
            self._flush_site(site, a, a, hour, [], _OpeningSums(), result, True, force=True)
        return result.snapshots

    def _apply_counters(self) -> None:
        w = self.watermark
        stale_after = self.config.stale_after
        for site_id in list(self._pending_sites):
            site = self.sites[site_id]
            due = sorted(p for p in site.pending if p[0] < w)
            if not due:
                continue
            site.pending = [p for p in site.pending if p[0] >= w]
            if not site.pending:
                self._pending_sites.discard(site_id)
            for t, opened, counter in due:
                self._expire(site, t, stale_after)
                if opened:
                    site.counters.add(counter)
                else:
                    site.counters.discard(counter)
                site.last_status = t
                site.expired = False
                site.set_open(t, bool(site.counters))
            if site.counters:
                self._open_sites.add(site_id)
            else:
                self._open_sites.discard(site_id)
        for site_id in self._open_sites:
            self._expire(self.sites[site_id], w, stale_after)

    @staticmethod
    def _expire(site: SiteState, before: float, stale_after: float) -> None:
        """A status is trusted for ``stale_after``: past it the site no longer counts as open."""
        if site.counters and not site.expired and site.last_status is not None:
            limit = site.last_status + stale_after
            if limit < before:
                site.set_open(limit, False)
                site.expired = True

    def _flush_site(
        self,
        site: SiteState,
        a: float,
        reference: float,
        hour: float,
        closed_hours: list[float],
        acc: _OpeningSums,
        result: FlushResult,
        site_snapshots: bool,
        *,
        force: bool = False,
    ) -> None:
        info = site.info
        days = info.days
        origin = self.origin if self.origin is not None else a
        today = days.day_of(a - MINUTE)
        midnight = days.midnight(today)
        previous_day = site.day if site.day is not None else days.day_of(reference - MINUTE)
        closed_days = list(range(max(previous_day, today - 8), today))
        lo = min(midnight, a - HOUR)
        if closed_hours:
            lo = min(lo, closed_hours[0])
        if closed_days:
            lo = min(lo, days.midnight(closed_days[0]))
        lo = max(lo, origin)
        scheduled = info.scheduled_between(lo, a) if lo < a else []
        opened = intersect(site.open_pieces(lo, a), scheduled) if scheduled and lo < a else []
        group_key = (info.network, info.department)
        parts = site.parts
        scope = (info.network, info.department, info.site_id)
        for d in closed_days:
            start, end = days.midnight(d), days.midnight(d + 1)
            o, s = _overlap(opened, start, end), _overlap(scheduled, start, end)
            site.open_days[d] = (o, s)
            acc.add_day(group_key, d, o, s)
            vector = parts.day(d) if parts is not None else zeros(SITE_WIDTH)
            set_opening(vector, o, s)
            _emit_all(result, scope, "day", start, vector, a)
        for h in closed_hours:
            o, s = _overlap(opened, h, h + HOUR), _overlap(scheduled, h, h + HOUR)
            bucket = parts.hours.pop(int(h), None) if parts is not None else None
            if not (o or s or bucket is not None):
                continue
            acc.add_hour(group_key, h, o, s)
            vector = list(bucket) if bucket is not None else zeros(SITE_WIDTH)
            set_opening(vector, o, s)
            _emit_all(result, scope, "hour", h, vector, a)
        site.day = today
        week_start = today - 6
        opening = {
            "15m": (_overlap(opened, a - 900, a), _overlap(scheduled, a - 900, a)),
            "1h": (_overlap(opened, a - HOUR, a), _overlap(scheduled, a - HOUR, a)),
            "hour": (_overlap(opened, hour, a), _overlap(scheduled, hour, a)),
            "today": (_overlap(opened, midnight, a), _overlap(scheduled, midnight, a)),
        }
        week_open, week_scheduled = opening["today"]
        for d, (o, s) in site.open_days.items():
            if week_start <= d < today:
                week_open += o
                week_scheduled += s
        opening["7d"] = (week_open, week_scheduled)
        acc.add_windows(group_key, opening)
        live = self._live(site, a)
        acc.add_live(group_key, live)
        if not site_snapshots:
            return
        if parts is not None:
            vectors = parts.windows(a, hour, today)
        else:
            vectors = {name: zeros(SITE_WIDTH) for name in ("15m", "1h", "hour", "today", "7d")}
        for name, (o, s) in opening.items():
            set_opening(vectors[name], o, s)
        vectors["day"] = vectors["today"]
        starts = {
            "15m": a - 900,
            "1h": a - HOUR,
            "hour": hour,
            "today": midnight,
            "day": midnight,
            "7d": days.midnight(week_start),
        }
        keys = list(site.keys or _empty_keys())
        for i, indicator in enumerate(INDICATORS):
            key = _site_key(indicator, [vectors[name] for name in starts], live, site)
            if key == keys[i] and not force:
                continue
            keys[i] = key
            for name, start in starts.items():
                if name in ("hour", "day") and is_empty(indicator, vectors[name]):
                    continue  # a calendar bucket with nothing in it is not news
                numerator, denominator, details = build(indicator, vectors[name], histograms=False)
                result.snapshots.append(
                    SnapshotValue(indicator, *scope, name, start, numerator, denominator, a, details)
                )
            if indicator == OPENING:
                numerator, denominator, details = opening_live_site(live, len(site.counters), site.last_status)
                result.snapshots.append(
                    SnapshotValue(indicator, *scope, "live", None, numerator, denominator, a, details)
                )
        if not force:
            site.keys = keys

    def _live(self, site: SiteState, a: float) -> list[float]:
        info = site.info
        scheduled = any(s <= a < e for s, e in info.scheduled_on(info.days.day_of(a)))
        is_open = site.state_at(a) and not any(s <= a < e for s, e in info.unannounced)
        stale = site.last_status is None or a - site.last_status > self.config.stale_after
        live = zeros(LIVE_WIDTH)
        live[LIVE_SITES] = 1.0
        live[LIVE_STALE] = 1.0 if stale else 0.0
        if scheduled:
            live[LIVE_SCHEDULED] = 1.0
            live[LIVE_OPEN] = 1.0 if is_open else 0.0
            live[LIVE_STALE_SCHEDULED] = live[LIVE_STALE]
        elif is_open:
            live[LIVE_OPEN_UNSCHEDULED] = 1.0
        return live

    def _flush_scopes(
        self,
        a: float,
        reference: float,
        hour: float,
        closed_hours: list[float],
        acc: _OpeningSums,
        result: FlushResult,
    ) -> None:
        for group_key, closed in acc.days.items():
            store = self._closed_opening.setdefault(group_key, {})
            for day, values in closed.items():
                store[day] = list(values)
        days_wanted: set[int] = set()
        for scope in (*self.groups.values(), *self.procedures.values()):
            today = scope.local.day_of(a - MINUTE)
            days_wanted.update(range(max(scope.local.day_of(reference - MINUTE), today - 8), today + 1))
        payloads: dict[ScopeKey, Payload] = {}
        for group_key, scope in self.groups.items():
            payloads[group_key] = _scope_payload(
                scope, a, hour, closed_hours, days_wanted, acc, group_key, self._closed_opening.get(group_key)
            )
        procedures: dict[str, dict[str, Payload]] = {}
        for (network, label), scope in self.procedures.items():
            procedures.setdefault(network, {})[label] = _scope_payload(
                scope, a, hour, closed_hours, days_wanted, None, None, None
            )
        networks: dict[ScopeKey, list[Payload]] = {}
        departments: dict[ScopeKey, list[Payload]] = {}
        for (group_network, group_department), payload in payloads.items():
            networks.setdefault((group_network, None), []).append(payload)
            departments.setdefault((None, group_department), []).append(payload)
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
        for key, payload in payloads.items():
            fingerprint = _fingerprint(payload)
            if self._sent.get(key) != fingerprint:
                self._sent[key] = fingerprint
                result.partials[key] = payload

    def _prune(self, a: float) -> None:
        keep_from = a - HOUR - MINUTE  # the next flush reads back to the start of the hour of a - 1 min
        for site in self.sites.values():
            days = site.info.days
            today = days.day_of(a - MINUTE)
            if site.parts is not None:
                site.parts.prune(a)
            site.prune_timeline(min(days.midnight(today), a - HOUR))
            if site.open_days:
                for d in [d for d in site.open_days if d < today - 7]:
                    del site.open_days[d]
        for scope in (*self.groups.values(), *self.procedures.values()):
            scope.prune(keep_from, scope.local.day_of(a - MINUTE))
        for group_key, closed in self._closed_opening.items():
            today = self.groups[group_key].local.day_of(a - MINUTE) if group_key in self.groups else 0
            for day in [d for d in closed if d < today - 8]:
                del closed[day]
        forget = self.watermark - self.config.grace
        for site_id in list(self._seen_sites):
            known = self.sites.get(site_id)
            if known is None:
                self._seen_sites.discard(site_id)
                continue
            known.seen = {k: t for k, t in known.seen.items() if t >= forget}
            if not known.seen:
                self._seen_sites.discard(site_id)

    # -- persistence ------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The whole state as JSON-able data (the registry itself is not included)."""
        return {
            "partition": self.partition,
            "stream_max": self.stream_max,
            "watermark": _finite(self.watermark),
            "origin": self.origin,
            "as_of": self.as_of,
            "sites": {site_id: _dump_site(site) for site_id, site in self.sites.items() if _site_has_state(site)},
            "groups": [[n, d, s.dump()] for (n, d), s in self.groups.items()],
            "procedures": [[n, p, s.dump()] for (n, p), s in self.procedures.items()],
            "sent": [[n, d, p] for (n, d), p in self._sent.items()],
            "closed_opening": [[n, d, days] for (n, d), days in self._closed_opening.items()],
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore from ``dump`` output; call after the registry is loaded (unknown sites are dropped)."""
        self.stream_max = {str(k): float(v) for k, v in data["stream_max"].items()}
        self.watermark = _inf(data["watermark"])
        self.origin = data["origin"]
        self.as_of = data["as_of"]
        for site_id, raw in data["sites"].items():
            site = self.sites.get(site_id)
            if site is not None:
                _load_site(site, raw)
                if site.pending:
                    self._pending_sites.add(site_id)
                if site.counters:
                    self._open_sites.add(site_id)
                if site.seen:
                    self._seen_sites.add(site_id)
        for network, department, raw in data["groups"]:
            group = self.groups.get((network, department))
            if group is None:
                group = self.groups[(network, department)] = ScopeParts(local_days(department_timezone(department)))
            group.load(raw)
        for network, label, raw in data["procedures"]:
            scope = ScopeParts(local_days(_PARIS))
            scope.load(raw)
            self.procedures[(network, label)] = scope
        self._sent = {(n, d): int(p) for n, d, p in data["sent"]}
        self._closed_opening = {
            (n, d): {int(day): [*map(float, sums), 0.0, 0.0][:3] for day, sums in days.items()}  # older: 2 figures
            for n, d, days in data["closed_opening"]
        }
        self._registry_changed = True


class _OpeningSums:
    """Per-department sums of the sites' opening figures during one flush."""

    def __init__(self) -> None:
        self.windows: dict[tuple[tuple[str, str], str], list[float]] = {}
        self.hours: dict[tuple[tuple[str, str], float], list[float]] = {}
        self.days: dict[tuple[str, str], dict[int, list[float]]] = {}
        self.live: dict[tuple[str, str], list[float]] = {}

    def add_windows(self, key: tuple[str, str], opening: dict[str, tuple[float, float]]) -> None:
        for name, (o, s) in opening.items():
            _add_opening(self.windows.setdefault((key, name), [0.0, 0.0, 0.0]), o, s)

    def add_hour(self, key: tuple[str, str], hour: float, o: float, s: float) -> None:
        _add_opening(self.hours.setdefault((key, hour), [0.0, 0.0, 0.0]), o, s)

    def add_day(self, key: tuple[str, str], day: int, o: float, s: float) -> None:
        _add_opening(self.days.setdefault(key, {}).setdefault(day, [0.0, 0.0, 0.0]), o, s)

    def add_live(self, key: tuple[str, str], live: list[float]) -> None:
        current = self.live.get(key)
        if current is None:
            self.live[key] = list(live)
        else:
            add_into(current, live)


def _add_opening(entry: list[float], opened: float, scheduled: float) -> None:
    """Add one site's opening figures to a department's: seconds open, seconds scheduled, sites scheduled."""
    entry[0] += opened
    entry[1] += scheduled
    if scheduled > 0:
        entry[2] += 1.0


def _put_opening(vector: list[float], sums: Sequence[float]) -> None:
    vector[OPEN_SECONDS], vector[SCHEDULED_SECONDS], vector[SITES_SCHEDULED] = sums[0], sums[1], sums[2]


def _scope_payload(
    scope: ScopeParts,
    a: float,
    hour: float,
    closed_hours: list[float],
    days_wanted: set[int],
    acc: _OpeningSums | None,
    key: tuple[str, str] | None,
    closed_opening: dict[int, list[float]] | None,
) -> Payload:
    """The partial sums of one department (or procedure) of this partition at ``a``.

    ``days_wanted``: the local days any department of the partition closed in this flush
    or is in now. Each department gives its full value for each of them, so that a network
    or the nation (whose departments do not all change day at the same instant) always
    sums complete days.
    """
    local = scope.local
    today = local.day_of(a - MINUTE)
    now = scope.running
    windows = {
        "15m": _sub(now, scope.total_at(a / MINUTE - 15)),
        "1h": _sub(now, scope.total_at(a / MINUTE - 60)),
        "today": _sub(now, scope.at_midnight(today)),
        "7d": _sub(now, scope.at_midnight(today - 6)),
    }
    hours = {h: scope.between(h, h + HOUR) for h in closed_hours}
    hours[hour] = _sub(now, scope.total_at(hour / MINUTE))
    days = {d: _sub(scope.at_midnight(d + 1), scope.at_midnight(d)) for d in days_wanted if today - 8 <= d < today}
    days[today] = list(windows["today"])
    live = zeros(LIVE_WIDTH)
    if acc is not None and key is not None:
        none = (0.0, 0.0, 0.0)
        for name in (*ROLLING, "hour"):
            _put_opening(hours[hour] if name == "hour" else windows[name], acc.windows.get((key, name), none))
        _put_opening(days[today], [windows["today"][i] for i in (OPEN_SECONDS, SCHEDULED_SECONDS, SITES_SCHEDULED)])
        for h in closed_hours:
            _put_opening(hours[h], acc.hours.get((key, h), none))
        for d, sums in (closed_opening or {}).items():
            if d in days and d != today:
                _put_opening(days[d], sums)
        live = acc.live.get(key, live)
    return {
        "w": windows,
        "live": live,
        "hour": {h: v for h, v in hours.items() if h == hour or any(v)},
        "day": {d: v for d, v in days.items() if d == today or any(v)},
    }


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


def _overlap(pieces: list[Interval], start: float, end: float) -> float:
    total = 0.0
    for s, e in pieces:
        if e <= start:
            continue
        if s >= end:
            break
        total += (e if e < end else end) - (s if s > start else start)
    return total


def _emit_all(
    result: FlushResult, scope: tuple[str, str, str], window: str, start: float, vector: list[float], a: float
) -> None:
    """The final snapshots of a closed calendar bucket of a site (those with something in them)."""
    for indicator in INDICATORS:
        if is_empty(indicator, vector):
            continue
        numerator, denominator, details = build(indicator, vector, histograms=False)
        result.snapshots.append(SnapshotValue(indicator, *scope, window, start, numerator, denominator, a, details))


def _sum_payloads(parts: Iterable[Payload]) -> Payload:
    out: Payload = {"w": {}, "live": zeros(LIVE_WIDTH), "hour": {}, "day": {}}
    for part in parts:
        for name, vector in part["w"].items():
            target = out["w"].setdefault(name, zeros(GROUP_WIDTH))
            add_into(target, vector)
        add_into(out["live"], part["live"])
        for kind in ("hour", "day"):
            for key, vector in part[kind].items():
                target = out[kind].setdefault(key, zeros(GROUP_WIDTH))
                add_into(target, vector)
    return out


def _pack(vectors: Iterable[Sequence[float]]) -> str:
    """Vectors as one base64 text of their doubles (checkpoints are written often: keep it cheap)."""
    flat = array("d")
    for vector in vectors:
        flat.extend(vector)  # C speed for arrays and lists alike
    return base64.b64encode(flat.tobytes()).decode("ascii")


def _unpack_arrays(text: str, width: int) -> list[array[float]]:
    flat = array("d", base64.b64decode(text))
    return [flat[i : i + width] for i in range(0, len(flat), width)]


def _unpack_lists(text: str, width: int) -> list[list[float]]:
    flat = array("d", base64.b64decode(text))
    return [flat[i : i + width].tolist() for i in range(0, len(flat), width)]


def _pad(vector: list[float], width: int) -> list[float]:
    return [float(x) for x in vector] + [0.0] * (width - len(vector))


def _fingerprint(payload: Payload) -> int:
    """A stable fingerprint of partial sums (floats hash the same in every process)."""

    def frozen(value: Any) -> Any:
        if isinstance(value, dict):
            return tuple((_stable(k), frozen(v)) for k, v in sorted(value.items(), key=lambda item: str(item[0])))
        if isinstance(value, list | array):
            return tuple(value)
        return _stable(value)

    return hash(frozen(payload))


def _stable(value: Any) -> Any:
    """Numbers hash alike in every process; strings and None do not (they are salted or id-based)."""
    if isinstance(value, str):
        return zlib.crc32(value.encode())
    return -1e308 if value is None else value


def _finite(value: float) -> float | None:
    return None if value == NEG_INF else value


def _inf(value: float | None) -> float:
    return NEG_INF if value is None else float(value)


def _site_has_state(site: SiteState) -> bool:
    return bool(
        site.parts is not None
        or site.counters
        or site.pending
        or site.seen
        or site.tl
        or site.tl0
        or site.open_days
        or site.last_status is not None
        or site.keys is not None
        or site.day is not None
    )


def _dump_site(site: SiteState) -> list[Any]:
    return [
        site.parts.dump() if site.parts is not None else None,
        sorted(site.counters),
        site.last_status,
        site.expired,
        [list(p) for p in site.pending],
        site.seen,
        _finite(site.tl_start),
        site.tl0,
        [list(c) for c in site.tl],
        [[d, o, s] for d, (o, s) in site.open_days.items()],
        site.day,
        site.keys,
    ]


def _load_site(site: SiteState, raw: list[Any]) -> None:
    (parts, counters, last_status, expired, pending, seen, tl_start, tl0, tl, open_days, day, keys) = raw
    if parts is not None:
        site.parts = SiteParts(site.info.days)
        site.parts.load(parts)
    site.counters = set(counters)
    site.last_status = last_status
    site.expired = expired
    site.pending = [(float(t), int(o), str(c)) for t, o, c in pending]
    site.seen = {str(k): float(v) for k, v in seen.items()}
    site.tl_start = _inf(tl_start)
    site.tl0 = bool(tl0)
    site.tl = [(float(t), bool(v)) for t, v in tl]
    site.open_days = {int(d): (float(o), float(s)) for d, o, s in open_days}
    site.day = day
    site.keys = keys
