"""The site registry (SPEC section 3): reference data published to ``charter.sites``.

A site's schedule decides what "scheduled open" means for the opening rate, in the
site's own time zone: overseas departments are not on Paris time.
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, StringConstraints, field_validator, model_validator

from charter_contracts.events import ContractModel
from charter_contracts.types import DepartmentCode, NetworkCode, SiteId, Timestamp

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

#: Time zone of each department that is not on Paris time (overseas departments and
#: collectivities); every other department is ``Europe/Paris``.
DEPARTMENT_TIMEZONES: dict[str, str] = {
    "971": "America/Guadeloupe",
    "972": "America/Martinique",
    "973": "America/Cayenne",
    "974": "Indian/Reunion",
    "975": "America/Miquelon",
    "976": "Indian/Mayotte",
    "977": "America/St_Barthelemy",
    "978": "America/Marigot",
    "984": "Indian/Kerguelen",
    "986": "Pacific/Wallis",
    "987": "Pacific/Tahiti",
    "988": "Pacific/Noumea",
}


def department_timezone(department: str) -> str:
    """IANA time zone of a department (Paris unless overseas)."""
    return DEPARTMENT_TIMEZONES.get(department, "Europe/Paris")


class TimeRange(ContractModel):
    """One opening period within a day, local time, ``start`` < ``end``."""

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError(f"end {self.end:%H:%M} must be after start {self.start:%H:%M}")
        return self


class WeeklyHours(ContractModel):
    """Opening periods per weekday; an empty list means closed that day."""

    monday: list[TimeRange] = Field(default_factory=list)
    tuesday: list[TimeRange] = Field(default_factory=list)
    wednesday: list[TimeRange] = Field(default_factory=list)
    thursday: list[TimeRange] = Field(default_factory=list)
    friday: list[TimeRange] = Field(default_factory=list)
    saturday: list[TimeRange] = Field(default_factory=list)
    sunday: list[TimeRange] = Field(default_factory=list)

    def day(self, weekday: int) -> list[TimeRange]:
        """Periods of a weekday, 0 = Monday as in ``date.weekday()``."""
        periods: list[TimeRange] = getattr(self, WEEKDAYS[weekday])
        return periods


class Schedule(ContractModel):
    """Weekly hours in force from ``effective_from`` (None: since always)."""

    effective_from: date | None = None
    weekly: WeeklyHours


class Closure(ContractModel):
    """An exceptional closure. Announced closures are outside the schedule; unannounced count as closed."""

    start: Timestamp
    end: Timestamp
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None
    announced: bool = True


class Site(ContractModel):
    """One entry of the site registry, keyed by ``site_id`` on ``charter.sites``."""

    site_id: SiteId
    network: NetworkCode
    name: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    department: DepartmentCode
    commune: Annotated[str, StringConstraints(max_length=200)] | None = None
    timezone: str = Field(description="IANA time zone, e.g. Europe/Paris, America/Cayenne.")
    kind: Literal["site", "call_centre"] = "site"
    schedules: list[Schedule] = Field(min_length=1)
    closures: list[Closure] = Field(default_factory=list)
    schema_version: Literal[1] = 1

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("schedules")
    @classmethod
    def _sorted_schedules(cls, value: list[Schedule]) -> list[Schedule]:
        return sorted(value, key=lambda s: s.effective_from or date.min)

    def schedule_on(self, day: date) -> WeeklyHours:
        """Weekly hours in force on ``day`` (the latest schedule effective by then)."""
        current = self.schedules[0].weekly
        for schedule in self.schedules:
            if schedule.effective_from is None or schedule.effective_from <= day:
                current = schedule.weekly
        return current
