"""The traffic generator: seed, sites and a span of time in, events out, in publication order.

Pure and deterministic: no clock, no I/O. Randomness is drawn from generators seeded by
(seed, network, minute) and (seed, site, day), so the same seed gives the same events,
byte for byte, whatever the pace at which they are consumed.

What it produces, per network:

- **counter opened / closed** following each site's weekly schedule in its own time
  zone, public holidays of its department and announced closures: a few minutes late in
  the morning, sometimes early in the evening, an absent agent now and then, a technical
  incident, rarely an unannounced closure;
- **calls** to the network's lines (call centres registered as sites, or the sites
  themselves) with a daily rhythm (morning peak, lunch dip, quieter Friday, busy start of
  month for CAF), voice-server-only calls (self-service, or the line is closed), waits,
  answers and abandons, short ones included;
- **case completions** per procedure with log-normal processing times, a few late;
- a small share of events published **out of order** (minutes) or **late** (hours);
- optionally (``resend_fraction``) events **published twice**, the copy a little later, as
  a network's system re-sends a batch after a timeout: ingest rejects the copies as
  ``duplicate``.

A degraded network (``Degradation``) answers far fewer calls, most of its sites close
their counters, and its cases are completed late.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import holidays

from charter_ops.simulator.departments import HOLIDAY_SUBDIVISIONS
from charter_ops.simulator.networks import PROFILES_BY_CODE, NetworkProfile, Procedure, SimSite
from charter_ops.simulator.scenarios import Degradation

Payload = dict[str, Any]
#: An event and the instant (unix seconds) a network publishes it.
Emitted = tuple[float, Payload]

_YEAR_MINUTES = 365.25 * 24 * 60
_DAY = 86400


def _anchor_curve(anchors: dict[float, float]) -> list[float]:
    """Weight of each minute of a day, linear between (hour, weight) anchors."""
    hours = sorted(anchors)
    curve = []
    for minute in range(1440):
        hour = minute / 60
        right = bisect.bisect_right(hours, hour)
        if right == 0:
            curve.append(anchors[hours[0]])
        elif right == len(hours):
            curve.append(anchors[hours[-1]])
        else:
            h0, h1 = hours[right - 1], hours[right]
            w0, w1 = anchors[h0], anchors[h1]
            curve.append(w0 + (w1 - w0) * (hour - h0) / (h1 - h0))
    return curve


# Calls: morning peak around 10:00, lunch dip, second smaller peak mid-afternoon.
_CALL_DAY = _anchor_curve(
    {
        0: 0.01, 7: 0.02, 8: 0.3, 8.5: 0.9, 9: 1.6, 9.5: 1.9, 10: 2.0, 10.5: 1.9, 11: 1.7, 11.5: 1.4,
        12: 0.8, 12.5: 0.5, 13: 0.6, 13.5: 1.1, 14: 1.5, 14.5: 1.5, 15: 1.4, 15.5: 1.2, 16: 1.0,
        16.5: 0.8, 17: 0.5, 17.5: 0.3, 18: 0.2, 19: 0.08, 20: 0.03, 22: 0.01,
    }
)  # fmt: skip
_CALL_WEEK = (1.25, 1.05, 0.95, 1.0, 0.85, 0.15, 0.03)
# Back offices: office hours with a lunch dip, plus automated processing around the clock.
_CASE_DAY = _anchor_curve({0: 0, 7.5: 0, 8: 0.8, 9: 1, 11.5: 1, 12: 0.6, 13.5: 0.6, 14: 1, 17: 1, 18: 0.3, 18.5: 0})
_CASE_WEEK = (1.05, 1.0, 1.0, 1.0, 0.95, 0.0, 0.0)
_AUTOMATED_SHARE = 0.15


def _normalised(day: list[float], week: Sequence[float], flat: float = 0.0) -> tuple[tuple[float, ...], ...]:
    raw = [[(1 - flat) * w * d for d in day] for w in week]
    mean = sum(sum(row) for row in raw) / (7 * 1440)
    return tuple(tuple(v / mean + flat for v in row) for row in raw)


CALL_RHYTHM = _normalised(_CALL_DAY, _CALL_WEEK)
CASE_RHYTHM = _normalised(_CASE_DAY, _CASE_WEEK, _AUTOMATED_SHARE)
_CALL_PEAK = max(max(row) for row in CALL_RHYTHM)
_CASE_PEAK = max(max(row) for row in CASE_RHYTHM)


def national_peak_rate(networks: Sequence[str] | None = None) -> float:
    """Calls and case completions per second at the weekday peak, at real national volumes."""
    profiles = [PROFILES_BY_CODE[n] for n in networks] if networks else list(PROFILES_BY_CODE.values())
    per_minute = sum(
        p.calls_per_year / _YEAR_MINUTES * _CALL_PEAK * (1 + p.month_start_boost)
        + p.cases_per_year / _YEAR_MINUTES * _CASE_PEAK
        for p in profiles
    )
    return per_minute / 60


@dataclass(frozen=True)
class TrafficConfig:
    """What the generator is asked for."""

    seed: int = 1
    rate: float = 50.0
    degradations: tuple[Degradation, ...] = ()
    disorder_fraction: float = 0.02
    late_fraction: float = 0.002
    resend_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if not 0 <= self.disorder_fraction + self.late_fraction <= 1:
            raise ValueError("disorder and late fractions must be between 0 and 1")
        if not 0 <= self.resend_fraction <= 1:
            raise ValueError("the resend fraction must be between 0 and 1")


#: A re-sent event is published again this long after its first copy (a network's retry after a timeout).
RESEND_DELAY_SECONDS = 30.0


def _resent(seed: int, payload: Payload, fraction: float) -> bool:
    """Whether this event is published twice: a draw of its own, so other events are unchanged."""
    digest = hashlib.blake2b(f"{seed}|{payload['network']}|{payload['event_id']}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) < fraction * 2**64


@lru_cache(maxsize=256)
def _holidays(subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("FR", subdiv=subdivision, years=year))


def _minutes(text: time) -> int:
    return text.hour * 60 + text.minute


@dataclass
class _Site:
    index: int
    site_id: str
    network: str
    zone: ZoneInfo
    holiday_subdivision: str | None
    weekly: tuple[tuple[tuple[int, int], ...], ...]  # per weekday, (start, end) in minutes of the day
    closures: tuple[tuple[float, float], ...]
    counters: int

    def scheduled(self, day: date) -> list[tuple[int, int]]:
        """Scheduled periods of a local day as unix seconds, holidays and announced closures removed."""
        if day in _holidays(self.holiday_subdivision, day.year):
            return []
        periods = []
        midnight = datetime.combine(day, time(0), self.zone)
        for start, end in self.weekly[day.weekday()]:
            a = int((midnight + timedelta(minutes=start)).timestamp())
            b = int((midnight + timedelta(minutes=end)).timestamp())
            periods += _subtract([(a, b)], self.closures)
        return periods


def _subtract(intervals: list[tuple[int, int]], holes: Sequence[tuple[float, float]]) -> list[tuple[int, int]]:
    for hole_start, hole_end in holes:
        kept = []
        for a, b in intervals:
            if hole_end <= a or hole_start >= b:
                kept.append((a, b))
                continue
            if a < hole_start:
                kept.append((a, int(hole_start)))
            if hole_end < b:
                kept.append((int(hole_end), b))
        intervals = kept
    return intervals


@dataclass
class _Targets:
    """Weighted choice among the sites of one network in one time zone."""

    zone: ZoneInfo
    share: float
    sites: list[_Site] = field(default_factory=list)
    cumulative: list[float] = field(default_factory=list)

    def pick(self, rng: random.Random) -> _Site:
        return self.sites[bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


def _group(sites: Sequence[tuple[_Site, float]]) -> list[_Targets]:
    total = sum(weight for _, weight in sites)
    if total <= 0:
        return []
    groups: dict[str, _Targets] = {}
    for site, weight in sites:
        if weight <= 0:
            continue
        group = groups.setdefault(str(site.zone), _Targets(site.zone, 0.0))
        group.sites.append(site)
        group.cumulative.append((group.cumulative[-1] if group.cumulative else 0.0) + weight)
        group.share += weight / total
    return [groups[key] for key in sorted(groups)]


@dataclass
class _Network:
    index: int
    profile: NetworkProfile
    calls: list[_Targets]
    cases: list[_Targets]
    calls_per_minute: float
    cases_per_minute: float
    procedures: tuple[Procedure, ...]
    procedure_cumulative: list[float]
    degraded: list[tuple[float, float]]

    def is_degraded(self, at: float) -> bool:
        return any(start <= at < end for start, end in self.degraded)

    def degraded_during(self, start: float, end: float) -> list[tuple[float, float]]:
        return [(max(a, start), min(b, end)) for a, b in self.degraded if a < end and b > start]


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _draw(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high]; cheaper than ``randint`` in the hot loops."""
    return low + int(rng.random() * (high - low + 1))


def _mix(*parts: int) -> int:
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = ((value ^ (part & 0xFFFFFFFFFFFFFFFF)) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


class TrafficGenerator:
    """Events of the simulated networks over a span of time, in the order networks publish them."""

    def __init__(self, registry: Sequence[SimSite], config: TrafficConfig | None = None) -> None:
        self.config = config or TrafficConfig()
        self._registry = registry
        self.networks = sorted({entry.site.network for entry in registry}, key=list(PROFILES_BY_CODE).index)
        unknown = {d.network for d in self.config.degradations} - set(self.networks)
        if unknown:
            raise ValueError(f"cannot degrade {', '.join(sorted(unknown))}: not simulated (have {self.networks})")
        self.scale = self.config.rate / national_peak_rate(self.networks)
        self._sites = [
            _Site(
                index=index,
                site_id=entry.site.site_id,
                network=entry.site.network,
                zone=ZoneInfo(entry.site.timezone),
                holiday_subdivision=HOLIDAY_SUBDIVISIONS.get(entry.site.department),
                weekly=tuple(
                    tuple((_minutes(r.start), _minutes(r.end)) for r in entry.site.schedules[-1].weekly.day(weekday))
                    for weekday in range(7)
                ),
                closures=tuple((c.start.timestamp(), c.end.timestamp()) for c in entry.site.closures if c.announced),
                counters=entry.counters,
            )
            for index, entry in enumerate(registry)
        ]
        self._schedule_cache: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def _build_networks(self, start: datetime) -> list[_Network]:
        built = []
        for index, code in enumerate(self.networks):
            profile = PROFILES_BY_CODE[code]
            members = [(s, e) for s, e in zip(self._sites, self._registry, strict=True) if s.network == code]
            cumulative: list[float] = []
            for procedure in profile.procedures:
                cumulative.append((cumulative[-1] if cumulative else 0.0) + procedure.share)
            built.append(
                _Network(
                    index=index,
                    profile=profile,
                    calls=_group([(s, e.call_weight) for s, e in members]),
                    cases=_group([(s, e.case_weight) for s, e in members]) if profile.procedures else [],
                    calls_per_minute=profile.calls_per_year / _YEAR_MINUTES * self.scale,
                    cases_per_minute=profile.cases_per_year / _YEAR_MINUTES * self.scale,
                    procedures=profile.procedures,
                    procedure_cumulative=cumulative,
                    degraded=[d.window(start) for d in self.config.degradations if d.network == code],
                )
            )
        return built

    def _scheduled(self, site: _Site, day: date) -> list[tuple[int, int]]:
        key = (site.index, day.toordinal())
        periods = self._schedule_cache.get(key)
        if periods is None:
            periods = self._schedule_cache[key] = site.scheduled(day)
        return periods

    def events(
        self,
        start: datetime,
        end: datetime | None = None,
        origin: datetime | None = None,
        order: Literal["published", "occurred"] = "published",
    ) -> Iterator[Emitted]:
        """Every event occurring in [start, end) (forever if ``end`` is None), in publication order.

        Yields (publication instant, payload). Events published after ``end`` (late ones,
        calls still in progress) are yielded at the end, in their order. Scenario offsets
        count from ``origin`` (default: ``start``). ``order="occurred"`` yields the same
        events in event-time order instead, as a replay of history sorted by time would.
        """
        if start.tzinfo is None or (end is not None and end.tzinfo is None):
            raise ValueError("start and end must be aware datetimes")
        first = int(start.timestamp())
        last = math.inf if end is None else int(end.timestamp())
        if last <= first:
            return
        by_occurrence = order == "occurred"
        networks = self._build_networks(origin or start)
        pending: list[tuple[float, int, float, Payload]] = []
        sequence = 0
        rng = random.Random()  # noqa: S311 - simulation, not security

        resend = self.config.resend_fraction
        seed = self.config.seed

        def push(emitted: Iterable[Emitted]) -> None:
            nonlocal sequence
            for emit_at, payload in emitted:
                sequence += 1
                key = payload["occurred_at"].timestamp() if by_occurrence else emit_at
                heapq.heappush(pending, (key, sequence, emit_at, payload))
                if resend and _resent(seed, payload, resend):
                    sequence += 1
                    again = emit_at + RESEND_DELAY_SECONDS
                    heapq.heappush(pending, (key if by_occurrence else again, sequence, again, payload))

        minute = first - first % 60
        planned_day: int | None = None
        while minute < last:
            day = minute // _DAY
            if day != planned_day:
                self._schedule_cache = {k: v for k, v in self._schedule_cache.items() if k[1] >= day - 1 + 719163}
                push(self._plan_counters(rng, networks, day, first, last))
                planned_day = day
            for network in networks:
                rng.seed(_mix(self.config.seed, network.index, minute // 60))
                push(self._calls(rng, network, minute, first, last))
                push(self._cases(rng, network, minute, first, last))
            minute += 60
            horizon = min(minute, last)
            while pending and pending[0][0] < horizon:
                _, _, emit_at, payload = heapq.heappop(pending)
                yield emit_at, payload
        while pending:
            _, _, emit_at, payload = heapq.heappop(pending)
            yield emit_at, payload

    # -- publication delays ---------------------------------------------------------------

    def _delay(self, rng: random.Random) -> float:
        draw = rng.random()
        if draw < self.config.late_fraction:
            return rng.uniform(3600, 6 * 3600)
        if draw < self.config.late_fraction + self.config.disorder_fraction:
            return rng.uniform(30, 600)
        return 0.0

    # -- counters -------------------------------------------------------------------------

    def _plan_counters(
        self, rng: random.Random, networks: list[_Network], day: int, first: int, last: float
    ) -> Iterator[Emitted]:
        """Counter events of every site for its local day ``day`` (days since the epoch)."""
        local_day = date.fromordinal(day + 719163)
        by_code = {n.profile.code: n for n in networks}
        seed = self.config.seed
        for site in self._sites:
            if site.counters == 0:
                continue
            periods = self._scheduled(site, local_day)
            if not periods:
                continue
            rng.seed(_mix(seed, 1 << 40 | site.index, day))
            network = by_code[site.network]
            intervals = self._counter_intervals(rng, site, network, periods)
            for counter, planned_open, planned_reason, closed, close_reason in intervals:
                # both drawn whatever the span, so that the span does not change the other events
                # (a counter already open when the simulation starts says so at the start)
                opened, open_reason = (first, None) if planned_open < first else (planned_open, planned_reason)
                opening = self._counter_event(rng, site, counter, opened, "counter_opened", open_reason)
                closing = self._counter_event(rng, site, counter, closed, "counter_closed", close_reason)
                if closed <= first or planned_open >= last:
                    continue
                yield opening
                if closed < last:
                    yield closing

    def _counter_intervals(
        self, rng: random.Random, site: _Site, network: _Network, periods: list[tuple[int, int]]
    ) -> list[tuple[str, int, str | None, int, str]]:
        """(counter, opened, reason, closed, reason) for one site and day."""
        draw = rng.random()
        if draw < 0.002:  # unannounced closure: nobody comes
            return []
        walkout = draw < 0.004  # opens, then closes for the day mid-morning
        day_start, day_end = periods[0][0], periods[-1][1]
        degraded = network.degraded_during(day_start, day_end)
        hit_by_degradation = bool(degraded) and rng.random() < 0.75
        degraded_reason = "staff" if rng.random() < 0.6 else "strike"
        intervals: list[tuple[str, int, str | None, int, str]] = []
        for number in range(1, site.counters + 1):
            counter = f"g{number}"
            main = number == 1
            if rng.random() < (0.003 if main else 0.08):
                continue  # agent absent
            for a, b in periods:
                late = (
                    rng.uniform(-300, 0) if main and rng.random() < 0.3 else rng.expovariate(1 / (120 if main else 600))
                )
                opened = a + int(min(late, 1800))
                closed = b - int(min(rng.expovariate(1 / (60 if main else 300)), 1200))
                if closed <= opened:
                    continue
                pieces: list[tuple[int, str | None, int, str]] = [(opened, "planned", closed, "planned")]
                if rng.random() < 0.01:  # technical incident, back after a while
                    cut = rng.randint(opened, closed)
                    back = cut + rng.randint(15 * 60, 60 * 60)
                    pieces = [(opened, "planned", cut, rng.choice(("technical", "staff")))]
                    if back < closed:
                        pieces.append((back, None, closed, "planned"))
                if walkout:
                    cut = a + rng.randint(1800, 7200)
                    pieces = [(o, r, min(c, cut), "staff" if c > cut else rc) for o, r, c, rc in pieces if o < cut]
                if hit_by_degradation:
                    pieces = _cut(pieces, degraded, degraded_reason)
                intervals += [(counter, o, r, c, rc) for o, r, c, rc in pieces if c > o]
        return intervals

    def _counter_event(
        self, rng: random.Random, site: _Site, counter: str, at: int, kind: str, reason: str | None
    ) -> Emitted:
        when = datetime.fromtimestamp(at, site.zone)
        payload: Payload = {
            "type": kind,
            "event_id": f"s{self.config.seed}-{site.site_id}-{counter}-{at}{'o' if kind == 'counter_opened' else 'c'}",
            "network": site.network,
            "site_id": site.site_id,
            "occurred_at": when,
            "schema_version": 1,
            "counter_id": counter,
        }
        if reason is not None:
            payload["reason"] = reason
        return at + rng.randint(0, 5) + self._delay(rng), payload

    # -- calls ----------------------------------------------------------------------------

    def _calls(self, rng: random.Random, network: _Network, minute: int, first: int, last: float) -> Iterator[Emitted]:
        profile = network.profile
        seed = self.config.seed
        number = 0
        for group in network.calls:
            local = datetime.fromtimestamp(minute, group.zone)
            weight = CALL_RHYTHM[local.weekday()][local.hour * 60 + local.minute]
            if local.day <= 10:
                weight *= 1 + profile.month_start_boost
            count = _poisson(rng, network.calls_per_minute * weight * group.share)
            local_day = local.date()
            for _ in range(count):
                at = minute + _draw(rng, 0, 60 - 1)
                site = group.pick(rng)
                number += 1
                open_now = any(a <= at < b for a, b in self._scheduled(site, local_day))
                answered: int | None = None
                ivr_only = False
                if not open_now:  # the voice server says when to call back
                    ivr_only, ended = True, at + _draw(rng, 15, 60)
                elif rng.random() < 0.18:  # self-service on the voice server
                    ivr_only, ended = True, at + _draw(rng, 30, 240)
                else:
                    load = 0.7 + 0.6 * weight / _CALL_PEAK
                    mean_wait = profile.mean_wait_seconds * load * (40 if network.is_degraded(at) else 1)
                    patience = _draw(rng, 1, 4) if rng.random() < 0.06 else 5 + rng.expovariate(1 / 240)
                    wait = rng.expovariate(1 / mean_wait)
                    if wait < patience:
                        answered = at + round(wait)
                        ended = answered + max(10, round(rng.lognormvariate(5.48, 0.6)))
                    else:
                        ended = at + max(1, round(patience))
                received = datetime.fromtimestamp(at, site.zone)
                payload: Payload = {
                    "type": "call",
                    "event_id": f"s{seed}-c{minute // 60}-{number}",
                    "network": site.network,
                    "site_id": site.site_id,
                    "occurred_at": received,
                    "schema_version": 1,
                    "received_at": received,
                    "answered_at": None if answered is None else datetime.fromtimestamp(answered, site.zone),
                    "ended_at": datetime.fromtimestamp(ended, site.zone),
                    "ivr_only": ivr_only,
                }
                published = ended + _draw(rng, 1, 20) + self._delay(rng)
                if first <= at < last:  # drawn all the same, so the rest of the minute does not change
                    yield published, payload

    # -- cases ----------------------------------------------------------------------------

    def _cases(self, rng: random.Random, network: _Network, minute: int, first: int, last: float) -> Iterator[Emitted]:
        if not network.cases:
            return
        profile = network.profile
        seed = self.config.seed
        number = 0
        for group in network.cases:
            local = datetime.fromtimestamp(minute, group.zone)
            weight = CASE_RHYTHM[local.weekday()][local.hour * 60 + local.minute]
            degraded = network.is_degraded(minute)
            count = _poisson(rng, network.cases_per_minute * weight * group.share * (0.6 if degraded else 1.0))
            for _ in range(count):
                at = minute + _draw(rng, 0, 60 - 1)
                site = group.pick(rng)
                index = bisect.bisect_right(
                    network.procedure_cumulative, rng.random() * network.procedure_cumulative[-1]
                )
                procedure = network.procedures[min(index, len(network.procedures) - 1)]
                median = procedure.median_days * (3.0 if degraded else 1.0)
                days = min(rng.lognormvariate(math.log(median), procedure.spread), 3000.0)
                number += 1
                completed = datetime.fromtimestamp(at, site.zone)
                payload: Payload = {
                    "type": "case_completed",
                    "event_id": f"s{seed}-k{minute // 60}-{number}",
                    "network": site.network,
                    "site_id": site.site_id,
                    "occurred_at": completed,
                    "schema_version": 1,
                    "case_id": f"{profile.code}-{seed}-{minute // 60}-{number}",
                    "procedure": procedure.code,
                    "submitted_at": datetime.fromtimestamp(at - round(days * _DAY), site.zone),
                    "completed_at": completed,
                }
                # a 15-day deadline is the charter's default: networks often leave it out
                if procedure.deadline_days is not None and not (procedure.deadline_days == 15 and rng.random() < 0.5):
                    payload["deadline_days"] = procedure.deadline_days
                batch = profile.case_batch_seconds
                published = (at // batch + 1) * batch + _draw(rng, 0, 30) if batch else at + _draw(rng, 1, 60)
                published_at = published + self._delay(rng)
                if first <= at < last:
                    yield published_at, payload


def _cut(
    pieces: list[tuple[int, str | None, int, str]], holes: list[tuple[float, float]], reason: str
) -> list[tuple[int, str | None, int, str]]:
    """Remove degraded periods from opening intervals: counters close at their start, reopen at their end."""
    for hole_start, hole_end in holes:
        kept: list[tuple[int, str | None, int, str]] = []
        for opened, open_reason, closed, close_reason in pieces:
            if hole_end <= opened or hole_start >= closed:
                kept.append((opened, open_reason, closed, close_reason))
                continue
            if opened < hole_start:
                kept.append((opened, open_reason, int(hole_start), reason))
            if hole_end < closed:
                kept.append((int(hole_end), None, closed, close_reason))
        pieces = kept
    return pieces


def utc(at: datetime) -> datetime:
    """The same instant in UTC (for display)."""
    return at.astimezone(UTC)
