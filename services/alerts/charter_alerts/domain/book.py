"""The alert lifecycle: pending -> firing -> resolved, once per breach (SPEC section 5).

``AlertBook`` turns indicator snapshots into transitions. It is deterministic in the
snapshots it is given and in event time (``as_of``), never in wall-clock time, so that
replaying the same snapshots from a recovered state produces nothing new:

- every change of an alert's state is a ``Transition`` carrying the new ``AlertRecord``
  (persisted by the service) and, for firing and resolved, the public ``AlertEvent``;
- a snapshot older than the last one judged for the same alert and window, or than the
  alert's last transition (a replay, a late copy), is ignored; one with the same ``as_of``
  is judged again (it may carry more events of that instant) but an alert changes state at
  most once per instant, so a duplicate changes nothing;
- the state is recoverable from the records and the public events alone (``restore``),
  whichever of the two was written last.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from charter_alerts.domain.rules import BurnRateRule, Rule, RuleSet, ThresholdRule, default_rules
from charter_alerts.domain.text import Facts, Links, summary_en, summary_fr
from charter_contracts import AlertEvent, AlertStatus, IndicatorSnapshot, WindowName

RecordStatus = Literal["inactive", "pending", "firing", "resolved"]
#: The two windows of a burn-rate rule must describe about the same moment.
BURN_PAIRING = timedelta(minutes=15)
_PHASE = {"firing": 1, "inactive": 2, "resolved": 2, "pending": 3}


def fingerprint(rule: str, network: str, department: str | None) -> str:
    """Stable id of an alert: the same rule on the same place is the same alert."""
    text = f"{rule}|{network}|{department or '*'}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class AlertRecord(BaseModel):
    """State of one alert (one fingerprint), as persisted on the alerts state topic.

    ``episode`` counts the episodes that fired; a pending alert would become episode
    ``episode + 1``. ``at`` is the event time of the last transition: snapshots up to
    it have been judged.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fingerprint: str
    rule: str
    network: str
    department: str | None
    status: RecordStatus
    episode: int
    since: datetime | None
    at: datetime
    last: AlertEvent | None = None
    pending: AlertEvent | None = None

    def order(self) -> tuple[int, int]:
        """Position in the alert's history; restore keeps the furthest of two sources."""
        return (self.episode, _PHASE[self.status])

    @classmethod
    def of_event(cls, event: AlertEvent) -> AlertRecord:
        """The state right after a public event (used when the event is newer than the record)."""
        status: RecordStatus = "firing" if event.status == "firing" else "resolved"
        return cls(
            fingerprint=event.fingerprint,
            rule=event.rule,
            network=event.network,
            department=event.department,
            status=status,
            episode=event.episode,
            since=event.since,
            at=event.at,
            last=event,
        )


def event_order(event: AlertEvent) -> tuple[int, int]:
    return (event.episode, _PHASE[event.status])


@dataclass(frozen=True)
class Transition:
    """A change of one alert's state; ``event`` is set for firing and resolved."""

    record: AlertRecord
    event: AlertEvent | None


@dataclass
class _Reading:
    value: float
    volume: float
    as_of: datetime


@dataclass(frozen=True)
class _Judged:
    """One judgment: which alert, under which rule, on which reading."""

    name: str
    key: str
    rule: Rule
    place: tuple[str, str | None]
    reading: _Reading
    short: _Reading | None


@dataclass(frozen=True)
class _Saved:
    records: dict[str, AlertRecord]
    seen: dict[tuple[str, WindowName], datetime]
    readings: dict[tuple[str, WindowName], _Reading]
    latest: dict[str, tuple[float, datetime]]
    rules: RuleSet


@dataclass
class AlertBook:
    """Every alert's state; judges snapshots against the rules in force."""

    rules: RuleSet = field(default_factory=default_rules)
    links: Links = field(default_factory=Links)
    records: dict[str, AlertRecord] = field(default_factory=dict)
    #: Snapshots not judged since the start, by reason (duplicate, low_volume, volume_unknown...).
    unjudged: Counter[str] = field(default_factory=Counter)
    _seen: dict[tuple[str, WindowName], datetime] = field(default_factory=dict)
    _readings: dict[tuple[str, WindowName], _Reading] = field(default_factory=dict)
    _latest: dict[str, tuple[float, datetime]] = field(default_factory=dict)

    # -- recovery -------------------------------------------------------------------

    def save(self) -> _Saved:
        """A copy of the state, to go back to if a batch's effects could not be published."""
        return _Saved(dict(self.records), dict(self._seen), dict(self._readings), dict(self._latest), self.rules)

    def rollback(self, saved: _Saved) -> None:
        self.records, self._seen, self._readings, self._latest, self.rules = (
            saved.records,
            saved.seen,
            saved.readings,
            saved.latest,
            saved.rules,
        )

    def restore(self, record: AlertRecord) -> None:
        """Take in a persisted record unless what is known is further along."""
        current = self.records.get(record.fingerprint)
        if current is None or record.order() > current.order() or record.order() == current.order():
            self.records[record.fingerprint] = record

    def restore_event(self, event: AlertEvent) -> None:
        """Take in a public event from ``charter.alerts`` if the record lags behind it."""
        if event.status == "pending":
            return
        current = self.records.get(event.fingerprint)
        if current is None or event_order(event) > current.order():
            self.records[event.fingerprint] = AlertRecord.of_event(event)

    # -- judging --------------------------------------------------------------------

    def observe(self, snapshot: IndicatorSnapshot) -> list[Transition]:
        """Transitions caused by one snapshot (usually none)."""
        scope = snapshot.scope
        if scope.network is None or scope.site_id is not None:
            return []
        level = "network" if scope.department is None else "department"
        transitions: list[Transition] = []
        for default in self.rules.listening_to(snapshot.indicator, snapshot.window):
            name = self.rules.name_of(default)
            rule = self.rules.effective(name, scope.network, scope.department)
            if not rule.enabled or level not in rule.levels:
                continue
            key = fingerprint(name, scope.network, scope.department)
            transition = self._judge(name, key, rule, snapshot)
            if transition is not None:
                self.records[key] = transition.record
                transitions.append(transition)
        return transitions

    def _judge(self, name: str, key: str, rule: Rule, snapshot: IndicatorSnapshot) -> Transition | None:
        record = self.records.get(key)
        window = snapshot.window
        place = (snapshot.scope.network or "", snapshot.scope.department)
        judged_up_to = max(
            [t for t in (record.at if record else None, self._seen.get((key, window))) if t is not None],
            default=None,
        )
        if judged_up_to is not None and snapshot.as_of < judged_up_to:
            self.unjudged["already_judged"] += 1
            return None
        self._seen[(key, window)] = snapshot.as_of
        volume = _volume(rule, snapshot)
        value = _measured(rule, snapshot)
        if volume is None or value == "unknown":
            self.unjudged["volume_unknown"] += 1
            return None
        if value is None or volume < rule.min_volume:
            self.unjudged["low_volume"] += 1
            return None
        reading = _Reading(value, volume, snapshot.as_of)
        if isinstance(rule, ThresholdRule):
            self._latest[key] = (reading.value, reading.as_of)
            breached, recovered = rule.breached(reading.value), rule.recovered(reading.value)
            return self._step(_Judged(name, key, rule, place, reading, None), record, breached, recovered)
        self._readings[(key, window)] = reading
        long = self._readings.get((key, rule.long_window))
        short = self._readings.get((key, rule.short_window))
        if long is None or short is None or abs(long.as_of - short.as_of) > BURN_PAIRING:
            self.unjudged["burn_window_missing"] += 1
            return None
        self._latest[key] = (long.value, snapshot.as_of)
        breached = rule.breached(long.value) and rule.breached(short.value)
        recovered = rule.recovered(long.value) or rule.recovered(short.value)
        judged = _Judged(name, key, rule, place, _Reading(long.value, long.volume, snapshot.as_of), short)
        return self._step(judged, record, breached, recovered)

    def _step(self, judged: _Judged, record: AlertRecord | None, breached: bool, recovered: bool) -> Transition | None:
        transition = self._next(judged, record, breached, recovered)
        if transition is not None and record is not None and judged.reading.as_of <= record.at:
            # At most one transition per alert and instant of event time: a second snapshot
            # with the same as_of (a re-publication, a replay) judges the same moment again.
            self.unjudged["same_instant"] += 1
            return None
        return transition

    def _next(self, judged: _Judged, record: AlertRecord | None, breached: bool, recovered: bool) -> Transition | None:
        status: RecordStatus = record.status if record else "inactive"
        episode = record.episode if record else 0
        at = judged.reading.as_of
        rule = judged.rule

        def render(event_status: AlertStatus, number: int, since: datetime) -> AlertEvent:
            return self._event(judged, event_status, number, since)

        def base() -> AlertRecord:
            if record is not None:
                return record
            network, department = judged.place
            return AlertRecord(
                fingerprint=judged.key,
                rule=judged.name,
                network=network,
                department=department,
                status="inactive",
                episode=0,
                since=None,
                at=at,
            )

        if status in ("inactive", "resolved"):
            if not breached:
                return None
            if rule.for_ <= timedelta(0):
                event = render("firing", episode + 1, at)
                new = base().model_copy(
                    update={
                        "status": "firing",
                        "episode": episode + 1,
                        "since": at,
                        "at": at,
                        "last": event,
                        "pending": None,
                    }
                )
                return Transition(new, event)
            pending = render("pending", episode + 1, at)
            new = base().model_copy(update={"status": "pending", "since": at, "at": at, "pending": pending})
            return Transition(new, None)
        assert record is not None
        assert record.since is not None
        if status == "pending":
            if breached and at - record.since >= rule.for_:
                event = render("firing", episode + 1, record.since)
                new = record.model_copy(
                    update={"status": "firing", "episode": episode + 1, "at": at, "last": event, "pending": None}
                )
                return Transition(new, event)
            if breached:
                return None
            # Recovered before the for-duration: the breach never fired and is forgotten.
            back: RecordStatus = "resolved" if episode else "inactive"
            since = record.last.since if record.last else None
            new = record.model_copy(update={"status": back, "since": since, "at": at, "pending": None})
            return Transition(new, None)
        if status == "firing" and recovered:
            event = render("resolved", episode, record.since)
            new = record.model_copy(update={"status": "resolved", "at": at, "last": event})
            return Transition(new, event)
        return None

    def _event(self, judged: _Judged, status: AlertStatus, episode: int, since: datetime) -> AlertEvent:
        network, department = judged.place
        rule, reading, short = judged.rule, judged.reading, judged.short
        if isinstance(rule, BurnRateRule):
            assert short is not None
            facts = Facts(
                status,
                rule.indicator,
                network,
                department,
                rule.long_window,
                reading.value,
                rule.trigger,
                since,
                short_window=rule.short_window,
                short_value=short.value,
                factor=rule.factor,
                objective=rule.objective,
            )
            window: WindowName = rule.long_window
            threshold = rule.trigger
        else:
            facts = Facts(
                status,
                rule.indicator,
                network,
                department,
                rule.window,
                reading.value,
                rule.threshold,
                since,
                measure=rule.measure,
            )
            window = rule.window
            threshold = rule.threshold
        return AlertEvent(
            fingerprint=judged.key,
            episode=episode,
            status=status,
            rule=judged.name,
            kind=rule.kind,
            indicator=rule.indicator,
            network=network,
            department=department,
            window=window,
            value=reading.value,
            threshold=threshold,
            since=since,
            at=reading.as_of,
            summary_fr=summary_fr(facts),
            summary_en=summary_en(facts),
            dashboard_url=self.links.board(network, department, since, reading.as_of, status),
        )

    # -- rules changes --------------------------------------------------------------

    def replace_rules(self, rules: RuleSet) -> list[Transition]:
        """Put new rules in force; alerts whose rule is gone or disabled end now.

        A firing alert of a removed (or disabled) rule resolves, a pending one is
        forgotten: nobody would ever be told that it ended otherwise.
        """
        self.rules = rules
        self._readings.clear()
        ended: list[Transition] = []
        for key, record in list(self.records.items()):
            if record.status not in ("firing", "pending"):
                continue
            if record.rule in rules.defaults:
                rule = rules.effective(record.rule, record.network, record.department)
                level = "network" if record.department is None else "department"
                if rule.enabled and level in rule.levels:
                    continue
            if record.status == "pending":
                back: RecordStatus = "resolved" if record.episode else "inactive"
                new = record.model_copy(update={"status": back, "pending": None})
                ended.append(Transition(new, None))
            else:
                assert record.last is not None
                last = record.last
                event = last.model_copy(
                    update={
                        "status": "resolved",
                        "summary_fr": f"{last.summary_fr} Règle retirée ou désactivée : alerte close.",
                        "summary_en": f"{last.summary_en} Rule removed or disabled: alert closed.",
                    }
                )
                new = record.model_copy(update={"status": "resolved", "last": event})
                ended.append(Transition(new, event))
            self.records[key] = ended[-1].record
        return ended

    # -- reading --------------------------------------------------------------------

    def firing(self) -> list[AlertEvent]:
        """The firing events of every alert firing now."""
        return [r.last for r in self.records.values() if r.status == "firing" and r.last is not None]

    def current(self) -> list[AlertEvent]:
        """The latest event of every alert: pending, firing, or resolved."""
        shown: list[AlertEvent] = []
        for record in self.records.values():
            if record.status == "pending" and record.pending is not None:
                shown.append(record.pending)
            elif record.last is not None:
                shown.append(record.last)
        return shown

    def latest_value(self, key: str) -> tuple[float, datetime] | None:
        """The last value judged for an alert since this process started (None if none yet)."""
        return self._latest.get(key)


def _measured(rule: Rule, snapshot: IndicatorSnapshot) -> float | Literal["unknown"] | None:
    """What the rule compares with its threshold; None when undefined (nothing scheduled),
    "unknown" when the snapshot does not carry it (written by an older indicators service)."""
    if not isinstance(rule, ThresholdRule) or rule.measure == "value":
        return snapshot.value
    stale = snapshot.details.get("sites_scheduled_stale")
    if stale is None:
        return "unknown"
    scheduled = snapshot.denominator
    return None if scheduled <= 0 else 1 - stale / scheduled


def _volume(rule: Rule, snapshot: IndicatorSnapshot) -> float | None:
    if rule.volume == "denominator":
        return snapshot.denominator
    return snapshot.details.get(rule.volume.removeprefix("details."))
