"""A site's scheduled opening time, in its own time zone (SPEC section 4).

Scheduled time is the weekly hours in force on the day (a schedule change applies from
its effective date), minus the department's public holidays, minus announced closures.
Unannounced closures stay inside the schedule: they are time the site should have been
open and was not, so they are subtracted from *open* time instead.

The registry entry is compiled once into plain tuples: a ``Site`` model is far heavier
than what the hot path needs, and weekly hours shared by many sites are interned.
"""

from __future__ import annotations

import bisect
import sys
from dataclasses import dataclass
from datetime import date, time

from charter_contracts import Site, WeeklyHours
from charter_indicators.domain.calendar import (
    DAY,
    HolidayCalendar,
    LocalDays,
    holiday_calendar,
    local_days,
)
from charter_indicators.domain.intervals import Interval, clip, merge, subtract

#: Opening periods of the seven weekdays (Monday first), seconds after local midnight.
Weekly = tuple[tuple[tuple[int, int], ...], ...]

_interned: dict[Weekly, Weekly] = {}
_END_OF_DAY = time(23, 59, 59)


def _seconds(moment: time, *, end: bool) -> int:
    if end and moment == _END_OF_DAY:  # "until midnight" as site files write it
        return DAY
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def compile_weekly(hours: WeeklyHours) -> Weekly:
    """Weekly hours as interned tuples (many sites share the same hours)."""
    weekly = tuple(
        tuple((_seconds(r.start, end=False), _seconds(r.end, end=True)) for r in hours.day(weekday))
        for weekday in range(7)
    )
    return _interned.setdefault(weekly, weekly)


@dataclass(frozen=True, slots=True, eq=False)
class SiteInfo:
    """What the indicators need to know about a registered site."""

    site_id: str
    network: str
    department: str
    days: LocalDays
    holidays: HolidayCalendar
    #: (first day ordinal, weekly hours), sorted; the first applies since always.
    schedules: tuple[tuple[int, Weekly], ...]
    announced: tuple[Interval, ...]
    unannounced: tuple[Interval, ...]

    def weekly_on(self, ordinal: int) -> Weekly:
        """Weekly hours in force on local day ``ordinal``."""
        starts = [start for start, _ in self.schedules]
        index = bisect.bisect_right(starts, ordinal) - 1
        return self.schedules[max(index, 0)][1]

    def scheduled_on(self, ordinal: int) -> tuple[Interval, ...]:
        """Scheduled intervals (epoch seconds) of local day ``ordinal``."""
        weekly = self.weekly_on(ordinal)
        key = (weekly, self.days.zone_name, self.holidays.subdivision, ordinal)
        base = _day_cache.get(key)
        if base is None:
            if len(_day_cache) > _DAY_CACHE_LIMIT:
                _day_cache.clear()
            if self.holidays.is_holiday(ordinal):
                base = ()
            else:
                periods = weekly[date.fromordinal(ordinal).weekday()]
                base = tuple((self.days.at(ordinal, s), self.days.at(ordinal, e)) for s, e in periods)
            _day_cache[key] = base
        if not self.announced or not base:
            return base
        return tuple(subtract(base, self.announced))

    def scheduled_between(self, start: float, end: float) -> list[Interval]:
        """Scheduled intervals within ``[start, end)``."""
        if end <= start:
            return []
        first = self.days.day_of(start)
        last = self.days.day_of(end - 1e-6)
        out: list[Interval] = []
        for ordinal in range(first, last + 1):
            out.extend(self.scheduled_on(ordinal))
        return clip(out, start, end)


_day_cache: dict[tuple[Weekly, str, str | None, int], tuple[Interval, ...]] = {}
_DAY_CACHE_LIMIT = 200_000
_schedules: dict[tuple[tuple[int, Weekly], ...], tuple[tuple[int, Weekly], ...]] = {}


def compile_site(site: Site) -> SiteInfo:
    """Compile a registry entry for the hot path."""
    schedules = tuple(
        (schedule.effective_from.toordinal() if schedule.effective_from else 0, compile_weekly(schedule.weekly))
        for schedule in site.schedules
    )
    announced = merge((c.start.timestamp(), c.end.timestamp()) for c in site.closures if c.announced)
    unannounced = merge((c.start.timestamp(), c.end.timestamp()) for c in site.closures if not c.announced)
    ordered = tuple(sorted(schedules, key=lambda item: item[0]))
    # a national registry repeats a few networks, departments and schedules: shared, not copied
    return SiteInfo(
        site_id=site.site_id,
        network=sys.intern(site.network),
        department=sys.intern(site.department),
        days=local_days(site.timezone),
        holidays=holiday_calendar(site.department),
        schedules=_schedules.setdefault(ordered, ordered),
        announced=tuple(announced),
        unannounced=tuple(unannounced),
    )
