"""Reading site registry files and publishing them to ``charter.sites`` (``charter sites load``).

Three formats: the France services open data CSV (ANCT) as published, and the product's
own CSV and JSON (below). Real files are messy (``00:00 - 00:00`` placeholders, repeated
periods, free text in ``commentaire``). Every row that can be read becomes a ``Site``;
every problem is reported with its row number, never fatal to the load.

The product's CSV has one row per site and schedule::

    site_id,network,name,department,commune,timezone,kind,effective_from,monday,...,sunday
    caf-75-paris,caf,CAF de Paris,75,Paris,,site,,08:30 - 16:30,...,

``timezone`` defaults to the department's, ``kind`` to ``site``; a site whose hours change
on a date has a second row with the same ``site_id`` and that ``effective_from``
(YYYY-MM-DD). The product's JSON is a list of site objects as on ``charter.sites``
(``contracts/schemas/site.schema.json``, closures included), or one object per line.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from charter_contracts import Schedule, Site, TimeRange, WeeklyHours
from charter_contracts.sites import WEEKDAYS, department_timezone
from charter_contracts.topics import TopicNames
from charter_runtime.kafka import NO_AUTH, KafkaAuth

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


PRODUCT_COLUMNS = (
    "site_id",
    "network",
    "name",
    "department",
    "commune",
    "timezone",
    "kind",
    "effective_from",
    *WEEKDAYS,
)


class SitesFileError(ValueError):
    """The file cannot be read at all (missing, unknown format); individual bad rows are reported instead."""


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def read_sites_csv(path: Path) -> LoadReport:
    """Read the product's own CSV (one row per site and schedule)."""
    report = LoadReport()
    rows: dict[str, list[tuple[int, dict[str, str]]]] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"site_id", "network", "name", "department"} - set(reader.fieldnames or ())
        if missing:
            raise SitesFileError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row_number, row in enumerate(reader, start=2):
            site_id = (row.get("site_id") or "").strip()
            if not site_id:
                report.problems.append(RowProblem(row_number, None, "no site_id", skipped=True))
                continue
            rows.setdefault(site_id, []).append((row_number, row))
    for site_id, entries in rows.items():
        first_row, first = entries[0]
        schedules = []
        notes: list[str] = []
        failed = False
        for row_number, row in entries:
            for column in ("network", "name", "department", "timezone", "kind", "commune"):
                if (row.get(column) or "").strip() != (first.get(column) or "").strip():
                    report.problems.append(
                        RowProblem(row_number, site_id, f"{column} differs from row {first_row}", skipped=True)
                    )
                    failed = True
            days: dict[str, list[TimeRange]] = {}
            for weekday in WEEKDAYS:
                periods, day_notes = parse_day(row.get(weekday) or "")
                days[weekday] = periods
                notes += [f"row {row_number} {weekday}: {note}" for note in day_notes]
            effective = (row.get("effective_from") or "").strip()
            try:
                schedules.append(
                    Schedule(
                        effective_from=date.fromisoformat(effective) if effective else None, weekly=WeeklyHours(**days)
                    )
                )
            except ValueError as exc:
                report.problems.append(RowProblem(row_number, site_id, f"effective_from: {exc}", skipped=True))
                failed = True
        if failed:
            continue
        department = (first.get("department") or "").strip()
        try:
            site = Site(
                site_id=site_id,
                network=(first.get("network") or "").strip(),
                name=(first.get("name") or "").strip(),
                department=department,
                commune=(first.get("commune") or "").strip() or None,
                timezone=(first.get("timezone") or "").strip() or department_timezone(department),
                kind=(first.get("kind") or "").strip() or "site",
                schedules=schedules,
            )
        except ValidationError as exc:
            report.problems.append(RowProblem(first_row, site_id, _errors(exc), skipped=True))
            continue
        report.sites.append(site)
        if notes:
            report.problems.append(RowProblem(first_row, site_id, "; ".join(notes), skipped=False))
    return report


def read_sites_json(path: Path) -> LoadReport:
    """Read the product's JSON: a list of sites (or ``{"sites": [...]}``), or one site per line."""
    report = LoadReport()
    text = path.read_text(encoding="utf-8-sig")
    items: list[tuple[int, Any]] = []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((line_number, json.loads(line)))
            except json.JSONDecodeError as exc:
                report.problems.append(RowProblem(line_number, None, f"invalid JSON: {exc.msg}", skipped=True))
    else:
        if isinstance(data, dict) and isinstance(data.get("sites"), list):
            data = data["sites"]
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise SitesFileError(f"{path}: expected a list of sites")
        items = list(enumerate(data, start=1))
    seen: set[str] = set()
    for number, item in items:
        site_id = item.get("site_id") if isinstance(item, dict) else None
        try:
            site = Site.model_validate(item)
        except ValidationError as exc:
            report.problems.append(RowProblem(number, site_id, _errors(exc), skipped=True))
            continue
        if site.site_id in seen:
            report.problems.append(RowProblem(number, site.site_id, "duplicate site_id", skipped=True))
            continue
        seen.add(site.site_id)
        report.sites.append(site)
    return report


def detect_format(path: Path) -> str:
    """``france-services``, ``csv`` or ``json``, from the file's content."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise SitesFileError(f"cannot read {path}: {exc.strerror}") from exc
    stripped = head.lstrip()
    if stripped.startswith(("[", "{")):
        return "json"
    header = next(csv.reader([head.splitlines()[0] if head else ""]), [])
    if "id_fs" in header and "insee_dep" in header:
        return "france-services"
    if "site_id" in header:
        return "csv"
    raise SitesFileError(
        f"{path}: unknown format (expected the France services CSV, the product's CSV with a site_id column, or JSON)"
    )


def read_sites_file(path: Path) -> tuple[str, LoadReport]:
    """Read any supported registry file; returns its format and the report."""
    kind = detect_format(path)
    if kind == "france-services":
        return kind, read_france_services_csv(path)
    if kind == "csv":
        return kind, read_sites_csv(path)
    return kind, read_sites_json(path)


async def publish_sites(
    sites: list[Site],
    bootstrap_servers: str,
    names: TopicNames,
    progress: Callable[[int], None] = lambda n: None,
    auth: KafkaAuth = NO_AUTH,
) -> int:
    """Publish sites to ``charter.sites`` keyed by site_id; returns how many Kafka acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, enable_idempotence=True, acks="all", linger_ms=20, **auth.options()
    )
    await producer.start()
    try:
        chunk = 500
        for start in range(0, len(sites), chunk):
            part = sites[start : start + chunk]
            futures = [
                await producer.send(names.sites, site.model_dump_json().encode(), key=site.site_id.encode())
                for site in part
            ]
            await asyncio.gather(*futures)
            progress(len(part))
    finally:
        await producer.stop()
    return len(sites)
