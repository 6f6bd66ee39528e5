"""Deadline compliance (respect des délais), SPEC section 4.

A case is within its deadline when it was completed no later than ``N`` days after it
was submitted, days counted in the site's local calendar: calendar days, or working
days (Monday to Friday, not a public holiday of the site's department). The deadline
is the event's ``deadline_days`` if given, else the procedure's default from the
procedures file; a procedure may have no deadline at all (its cases are outside the
ratio, their volume is shown).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from charter_indicators.domain.calendar import HolidayCalendar, LocalDays

DayCount = Literal["calendar", "working"]
OTHER_PROCEDURE = "other"


@dataclass(frozen=True, slots=True)
class Deadline:
    """``days`` calendar or working days."""

    days: int
    count: DayCount = "calendar"


@dataclass(frozen=True)
class ProcedureRules:
    """Per-procedure deadline rules (``deploy/config/procedures.yaml``)."""

    default: Deadline | None = Deadline(15)
    procedures: Mapping[str, Deadline | None] = field(default_factory=dict)

    def rule(self, procedure: str) -> Deadline | None:
        """The procedure's own rule, else the default."""
        return self.procedures.get(procedure, self.default)

    def deadline(self, procedure: str, deadline_days: int | None) -> Deadline | None:
        """The deadline of one case: its own ``deadline_days`` (counted like its procedure), or the rule's."""
        rule = self.rule(procedure)
        if deadline_days is not None:
            return Deadline(deadline_days, rule.count if rule is not None else "calendar")
        return rule

    def label(self, procedure: str) -> str:
        """The procedure as a bounded label: procedures not in the file are ``other``."""
        return procedure if procedure in self.procedures else OTHER_PROCEDURE


def within_deadline(
    submitted: float,
    completed: float,
    deadline: Deadline,
    days: LocalDays,
    holidays: HolidayCalendar,
) -> bool:
    """True when a case completed at ``completed`` met its deadline (instants in epoch seconds)."""
    start = days.day_of(submitted)
    end = days.day_of(completed)
    if deadline.count == "working":
        return holidays.working_days_between(start, end) <= deadline.days
    return end - start <= deadline.days
