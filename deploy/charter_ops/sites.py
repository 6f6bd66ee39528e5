"""Reading site registry files: the France services open data CSV (ANCT) as published.

Real files are messy (``00:00 - 00:00`` placeholders, repeated periods, free text in
``commentaire``). Every row that can be read becomes a ``Site``; every problem is
reported with its row number, never fatal to the load.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path

from pydantic import ValidationError

from charter_contracts import Schedule, Site, TimeRange, WeeklyHours
from charter_contracts.sites import department_timezone

FRANCE_SERVICES_NETWORK = "france-services"
DEFAULT_SITES_FILE = Path(__file__).resolve().parents[2] / "data" / "france-services-sites-2024-08-01.csv"
_DAY_COLUMNS = ("h_lundi", "h_mardi", "h_mercredi", "h_jeudi", "h_vendredi", "h_samedi", None)
_PERIOD = re.compile(r"^(\d{1,2})[:hH](\d{2})\s*-\s*(\d{1,2})[:hH](\d{2})$")


@dataclass(frozen=True)
class RowProblem:
    """A row that could not be read (``skipped``) or was read only in part."""

    row: int
    site_id: str | None
    message: str
    skipped: bool


@dataclass
class LoadReport:
    """Sites read from a file, and what could not be read."""

    sites: list[Site] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def skipped(self) -> list[RowProblem]:
        return [p for p in self.problems if p.skipped]


def parse_day(text: str) -> tuple[list[TimeRange], list[str]]:
    """Periods of one day like ``09:00 - 12:00 / 13:30 - 17:00``; empty text is a closed day.

    Returns the periods that could be read (sorted, overlaps merged) and a note per
    part that could not (``00:00 - 00:00`` placeholders, reversed or unreadable periods).
    """
    periods: list[tuple[time, time]] = []
    notes: list[str] = []
    for part in (p.strip() for p in text.split("/")):
        if not part:
            continue
        match = _PERIOD.match(part)
        if match is None:
            notes.append(f"unreadable period {part!r}")
            continue
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
            notes.append(f"impossible time in {part!r}")
            continue
        start = time(h1, m1)
        end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
        if end <= start:
            notes.append(f"empty or reversed period {part!r}")
            continue
        periods.append((start, end))
    periods.sort()
    merged: list[tuple[time, time]] = []
    for start, end in periods:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return [TimeRange(start=s, end=e) for s, e in merged], notes


def read_france_services_csv(path: Path = DEFAULT_SITES_FILE) -> LoadReport:
    """Read the ANCT France services CSV: site_id ``fs-<id_fs>``, network ``france-services``."""
    report = LoadReport()
    seen: set[str] = set()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row_number, row in enumerate(csv.DictReader(handle), start=2):
            id_fs = (row.get("id_fs") or "").strip()
            site_id = f"fs-{id_fs}" if id_fs else None
            if site_id is None:
                report.problems.append(RowProblem(row_number, None, "no id_fs", skipped=True))
                continue
            if site_id in seen:
                report.problems.append(RowProblem(row_number, site_id, "duplicate id_fs", skipped=True))
                continue
            days: dict[str, list[TimeRange]] = {}
            notes: list[str] = []
            for weekday, column in zip(WeeklyHours.model_fields, _DAY_COLUMNS, strict=True):
                periods, day_notes = parse_day(row.get(column) or "") if column else ([], [])
                days[weekday] = periods
                notes += [f"{column}: {note}" for note in day_notes]
            department = (row.get("insee_dep") or "").strip()
            try:
                site = Site(
                    site_id=site_id,
                    network=FRANCE_SERVICES_NETWORK,
                    name=(row.get("lib_fs") or "").strip() or site_id,
                    department=department,
                    commune=(row.get("lib_com") or "").strip() or None,
                    timezone=department_timezone(department),
                    schedules=[Schedule(weekly=WeeklyHours(**days))],
                )
            except ValidationError as exc:
                fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                report.problems.append(RowProblem(row_number, site_id, fields, skipped=True))
                continue
            seen.add(site_id)
            report.sites.append(site)
            if notes:
                report.problems.append(RowProblem(row_number, site_id, "; ".join(notes), skipped=False))
    return report
