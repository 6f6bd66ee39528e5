"""Deadline compliance: calendar and working days with each department's holidays, procedures file."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter_indicators.domain.calendar import holiday_calendar, local_days
from charter_indicators.domain.deadline import Deadline, ProcedureRules, within_deadline
from charter_indicators.domain.partition import IndicatorConfig
from charter_indicators.procedures import ProceduresFileError, load_rules
from tests.support.indicators import call, case, partition, run, ts
from tests.support.sites import site

PARIS = local_days("Europe/Paris")
DAY = 86400.0


def within(submitted: str, completed: str, deadline: Deadline, department: str = "75") -> bool:
    days = local_days("Indian/Reunion" if department == "974" else "Europe/Paris")
    return within_deadline(ts(submitted), ts(completed), deadline, days, holiday_calendar(department))


def test_calendar_days_count_local_dates() -> None:
    fifteen = Deadline(15, "calendar")
    assert within("2024-04-01T16:00:00+02:00", "2024-04-16T09:00:00+02:00", fifteen)  # 15 days later
    assert not within("2024-04-01T16:00:00+02:00", "2024-04-17T08:00:00+02:00", fifteen)  # 16 days later


def test_working_days_skip_weekends_and_the_departments_public_holidays() -> None:
    # submitted Friday 3 May 2024; Wednesday 8 May and Thursday 9 May (Ascension) are holidays:
    # working days after it up to Friday 10 May: Monday 6, Tuesday 7, Friday 10 = 3
    assert within("2024-05-03T10:00:00+02:00", "2024-05-10T15:00:00+02:00", Deadline(3, "working"))
    assert not within("2024-05-03T10:00:00+02:00", "2024-05-10T15:00:00+02:00", Deadline(2, "working"))
    # Good Friday 29 March 2024 is a holiday in Moselle only: from Thursday 28 to Tuesday 2 April
    # (Easter Monday a holiday everywhere) Paris counts Friday and Tuesday, Metz only Tuesday
    thursday, tuesday = PARIS.day_of(ts("2024-03-28T12:00:00+01:00")), PARIS.day_of(ts("2024-04-02T12:00:00+02:00"))
    assert holiday_calendar("75").working_days_between(thursday, tuesday) == 2
    assert holiday_calendar("57").working_days_between(thursday, tuesday) == 1
    # 20 December is the abolition of slavery in La Réunion: Thursday 19 to Friday 20 December 2024
    assert within("2024-12-19T10:00:00+04:00", "2024-12-23T10:00:00+04:00", Deadline(1, "working"), "974")
    assert not within("2024-12-19T10:00:00+04:00", "2024-12-23T10:00:00+04:00", Deadline(1, "working"), "75")


def test_compliance_excludes_cases_without_deadline_and_keeps_their_volume() -> None:
    rules = ProcedureRules(
        default=Deadline(15),
        procedures={"rsa": Deadline(15), "carte-grise": Deadline(5, "working"), "information": None},
    )
    state = partition(site("caf-1"), config=IndicatorConfig(rules=rules))
    done = ts("2024-03-04T10:00:00+01:00")
    cases = [case(done, "caf-1", submitted=done - 3 * DAY) for _ in range(6)]  # within 15 days
    cases += [case(done, "caf-1", submitted=done - 20 * DAY) for _ in range(2)]  # late
    cases += [case(done, "caf-1", submitted=done - 20 * DAY, deadline_days=30)]  # its own deadline: within
    cases += [case(done, "caf-1", submitted=done - DAY, procedure="information") for _ in range(3)]
    # Monday 4 March from Friday 23 February: 6 working days > 5
    cases += [case(done, "caf-1", submitted=ts("2024-02-23T10:00:00+01:00"), procedure="carte-grise")]
    figures = run(state, [*cases, call(done + 3600, "caf-1", ivr_only=True)])
    day = figures.get("deadline_compliance", "today", network="caf")
    assert (day.numerator, day.denominator) == (7, 10)
    assert day.details["cases_completed"] == 13
    assert day.details["cases_without_deadline"] == 3
    # medians per procedure (bounded labels: procedures not in the file are "other")
    assert day.details["processing_median_seconds.information"] == pytest.approx(DAY, rel=0.5)
    assert "processing_median_seconds.rsa" in day.details
    assert "processing_median_seconds.carte-grise" in day.details


def test_the_procedures_file_of_the_product_loads_and_bad_files_are_explained(tmp_path: Path) -> None:
    rules = load_rules("deploy/config/procedures.yaml")
    assert rules.default == Deadline(15, "calendar")
    assert rules.rule("carte-grise") == Deadline(10, "working")
    assert rules.rule("information") is None
    assert rules.deadline("carte-grise", 3) == Deadline(3, "working")  # the event's own deadline, same count
    assert rules.label("unheard-of") == "other"
    bad = tmp_path / "procedures.yaml"
    bad.write_text("procedures:\n  rsa: {deadline_days: 15, days: fortnightly}\n", encoding="utf-8")
    with pytest.raises(ProceduresFileError, match=r"procedures\.rsa\.days"):
        load_rules(bad)
    with pytest.raises(ProceduresFileError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
