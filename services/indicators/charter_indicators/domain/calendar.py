"""Local days and public holidays: the calendar the indicators are computed against.

Everything inside the domain is in epoch seconds (UTC); local time matters only for
"today", calendar days, opening hours and working days, and always in the site's own
time zone (overseas departments are not on Paris time). Conversions are cached because
they run for every case completion and every site at every flush.
"""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

MINUTE = 60
HOUR = 3600
DAY = 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

#: Department code -> subdivision of the ``holidays`` package that carries its own public
#: holidays (Alsace-Moselle's Good Friday and St Stephen's day, overseas abolition days...).
_HOLIDAY_SUBDIVISIONS: dict[str, str] = {
    "57": "57",
    "67": "6AE",
    "68": "6AE",
    "971": "971",
    "972": "972",
    "973": "973",
    "974": "974",
    "975": "PM",
    "976": "976",
    "977": "BL",
    "978": "MF",
    "984": "TF",
    "986": "WF",
    "987": "PF",
    "988": "NC",
}


def holiday_subdivision(department: str) -> str | None:
    """The ``holidays`` subdivision of a department, None for the national calendar."""
    return _HOLIDAY_SUBDIVISIONS.get(department)


class LocalDays:
    """Local calendar days of one time zone, as ordinals (``date.toordinal()``).

    ``day_of`` is on the hot path: the UTC offset is cached per UTC day, and a UTC day
    whose offset changes (a DST switch) falls back to the exact conversion.
    """

    __slots__ = ("_midnights", "_offsets", "zone", "zone_name")

    def __init__(self, zone_name: str) -> None:
        self.zone_name = zone_name
        self.zone = ZoneInfo(zone_name)
        self._offsets: dict[int, int | None] = {}
        self._midnights: dict[int, float] = {}

    def day_of(self, t: float) -> int:
        """Local date ordinal of instant ``t`` (epoch seconds)."""
        utc_day = int(t // DAY)
        offset = self._offsets.get(utc_day, -1)
        if offset == -1:
            start = self._offset_at(utc_day * DAY)
            end = self._offset_at(utc_day * DAY + DAY - 1)
            offset = start if start == end else None
            self._offsets[utc_day] = offset
        if offset is None:
            return datetime.fromtimestamp(t, self.zone).date().toordinal()
        return (int(t // 1) + offset) // DAY + _EPOCH_ORDINAL

    def _offset_at(self, t: float) -> int:
        delta = datetime.fromtimestamp(t, self.zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    def midnight(self, ordinal: int) -> float:
        """Epoch seconds of local midnight starting day ``ordinal``."""
        value = self._midnights.get(ordinal)
        if value is None:
            value = datetime.combine(date.fromordinal(ordinal), time(0), tzinfo=self.zone).timestamp()
            self._midnights[ordinal] = value
        return value

    def at(self, ordinal: int, seconds_of_day: int) -> float:
        """Epoch seconds of a local wall-clock time (seconds after midnight) on day ``ordinal``."""
        day = date.fromordinal(ordinal)
        hours, rest = divmod(seconds_of_day, 3600)
        if hours >= 24:
            return self.midnight(ordinal + 1)
        wall = datetime.combine(day, time(hours, rest // 60, rest % 60), tzinfo=self.zone)
        return wall.astimezone(UTC).timestamp()


@lru_cache(maxsize=64)
def local_days(zone_name: str) -> LocalDays:
    """The shared ``LocalDays`` of a time zone."""
    return LocalDays(zone_name)


class HolidayCalendar:
    """French public holidays of one department, and working days (Monday to Friday, not a holiday)."""

    __slots__ = ("_by_year", "subdivision")

    def __init__(self, subdivision: str | None) -> None:
        self.subdivision = subdivision
        self._by_year: dict[int, list[int]] = {}

    def _year(self, year: int) -> list[int]:
        ordinals = self._by_year.get(year)
        if ordinals is None:
            found = holidays.country_holidays("FR", subdiv=self.subdivision, years=year)
            ordinals = sorted(day.toordinal() for day in found)
            self._by_year[year] = ordinals
        return ordinals

    def is_holiday(self, ordinal: int) -> bool:
        """True when local day ``ordinal`` is a public holiday here."""
        days = self._year(date.fromordinal(ordinal).year)
        i = bisect.bisect_left(days, ordinal)
        return i < len(days) and days[i] == ordinal

    def working_days_between(self, start: int, end: int) -> int:
        """Working days in (start, end]: the days after ``start`` up to and including ``end``."""
        if end <= start:
            return 0
        weekdays = _weekdays_between(start, end)
        first_year = date.fromordinal(start + 1).year
        last_year = date.fromordinal(end).year
        for year in range(first_year, last_year + 1):
            days = self._year(year)
            lo = bisect.bisect_right(days, start)
            hi = bisect.bisect_right(days, end)
            weekdays -= sum(1 for day in days[lo:hi] if date.fromordinal(day).weekday() < 5)
        return weekdays


def _weekdays_between(start: int, end: int) -> int:
    """Monday-to-Friday days in (start, end]."""

    def upto(ordinal: int) -> int:  # weekdays in [1, ordinal]; ordinal 1 is a Monday
        weeks, rest = divmod(ordinal, 7)
        # ordinal % 7: 1 = Monday ... 0 = Sunday
        return weeks * 5 + min(rest, 5)

    return upto(end) - upto(start)


def holiday_calendar(department: str) -> HolidayCalendar:
    """The shared holiday calendar of a department (one per subdivision: most share the national one)."""
    return _calendar_of(holiday_subdivision(department))


@lru_cache(maxsize=64)
def _calendar_of(subdivision: str | None) -> HolidayCalendar:
    # the holidays package takes milliseconds per year and calendar: computed once per subdivision
    return HolidayCalendar(subdivision)


def minute_floor(t: float) -> int:
    """Start of the minute containing ``t``."""
    return int(t // MINUTE) * MINUTE


def iso(t: float) -> str:
    """RFC 3339 in UTC with a ``Z``, as the contract models serialise instants."""
    moment = datetime.fromtimestamp(t, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def ordinal_date(ordinal: int) -> date:
    return date.fromordinal(ordinal)


def day_span(days: LocalDays, ordinal: int) -> tuple[float, float]:
    """[start, end) of a local day in epoch seconds (23 or 25 hours on DST days)."""
    return days.midnight(ordinal), days.midnight(ordinal + 1)


__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "HolidayCalendar",
    "LocalDays",
    "day_span",
    "holiday_calendar",
    "holiday_subdivision",
    "iso",
    "local_days",
    "minute_floor",
    "ordinal_date",
]


def idle_time(latest: float | None, heard_at: float, now: float) -> float | None:
    """Event time of a stream read up to date and silent since ``heard_at`` (wall clock).

    Time passes at the wall clock's pace from the stream's latest event: a live stream
    (latest event about when it was heard) is at the wall clock, and history published
    slowly, hours behind, moves on from where it stands instead of jumping to now, which
    would make everything it still sends late. Never ahead of the wall clock. A stream
    that never had an event has no time yet (None): time starts with the first event, so
    a history published from a quiet start is not judged late against the wall clock.
    """
    if latest is None:
        return None
    return min(now, latest + (now - heard_at))
