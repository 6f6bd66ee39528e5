"""The France services open data file, read as published."""

from __future__ import annotations

import json
from datetime import date, time
from pathlib import Path

import pytest

from charter_ops.sites import (
    DEFAULT_SITES_FILE,
    SitesFileError,
    parse_day,
    read_france_services_csv,
    read_sites_file,
)


def test_every_row_of_the_real_file_is_read_and_malformed_hours_are_reported() -> None:
    kind, report = read_sites_file(DEFAULT_SITES_FILE)
    assert kind == "france-services"
    assert len(report.sites) == 2845
    assert report.skipped == []
    partial = {p.site_id for p in report.problems}
    assert "fs-29" in partial  # its Wednesday reads "00:00 - 00:00"
    first = next(s for s in report.sites if s.site_id == "fs-1")
    assert (first.network, first.department, first.timezone) == ("france-services", "01", "Europe/Paris")
    assert [(r.start, r.end) for r in first.schedules[0].weekly.tuesday] == [
        (time(9), time(12)),
        (time(13, 30), time(17)),
    ]
    overseas = {s.department: s.timezone for s in report.sites if s.department.startswith("97")}
    assert overseas["973"] == "America/Cayenne"
    assert overseas["978"] == "America/Marigot"


def test_day_parsing_merges_repeats_and_reports_placeholders() -> None:
    periods, notes = parse_day("09:45 - 12:00 / 09:45 - 12:00 / 00:00 - 00:00 / 13:45 - 15:30")
    assert [(p.start, p.end) for p in periods] == [(time(9, 45), time(12)), (time(13, 45), time(15, 30))]
    assert notes == ["empty or reversed period '00:00 - 00:00'"]


def test_rows_without_id_or_with_a_bad_department_are_skipped_and_reported(tmp_path: Path) -> None:
    header = DEFAULT_SITES_FILE.read_text(encoding="utf-8").splitlines()[0]
    columns = header.count(",") + 1
    good = ['"7"', '"75"', '"Paris"'] + ['""'] * (columns - 3)
    no_id = ['""', '"75"', '"X"'] + ['""'] * (columns - 3)
    bad_dep = ['"8"', '"20"', '"Y"'] + ['""'] * (columns - 3)
    path = tmp_path / "sites.csv"
    path.write_text("\n".join([header, ",".join(good), ",".join(no_id), ",".join(bad_dep)]) + "\n", encoding="utf-8")
    report = read_france_services_csv(path)
    assert [s.site_id for s in report.sites] == ["fs-7"]
    assert [(p.row, p.skipped) for p in report.problems] == [(3, True), (4, True)]
    assert "department" in report.problems[1].message


def test_the_products_csv_reads_schedules_changes_and_reports_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "sites.csv"
    path.write_text(
        "site_id,network,name,department,commune,timezone,kind,effective_from,monday,tuesday,wednesday,"
        "thursday,friday,saturday,sunday\n"
        "caf-75,caf,CAF de Paris,75,Paris,,,,08:30 - 16:30,08:30 - 16:30,,08:30 - 16:30,08:30 - 12:00,,\n"
        "caf-75,caf,CAF de Paris,75,Paris,,,2024-09-01,09:00 - 12:00,,,,,,\n"
        "cpam-973,cpam,CPAM de Guyane,973,Cayenne,,call_centre,,07:00 - 13:00 / 00:00 - 00:00,,,,,,\n"
        ",caf,no id,75,,,,,,,,,,,\n"
        "caf-20,caf,Corse,20,Ajaccio,,,,,,,,,,\n"
        "caf-x,caf,bad date,75,,,,someday,,,,,,,\n",
        encoding="utf-8",
    )
    kind, report = read_sites_file(path)
    assert kind == "csv"
    sites = {s.site_id: s for s in report.sites}
    assert sorted(sites) == ["caf-75", "cpam-973"]
    paris = sites["caf-75"]
    assert paris.timezone == "Europe/Paris"
    assert [(r.start, r.end) for r in paris.schedule_on(date(2024, 3, 4)).monday] == [(time(8, 30), time(16, 30))]
    assert [(r.start, r.end) for r in paris.schedule_on(date(2024, 9, 2)).monday] == [(time(9), time(12))]
    guyane = sites["cpam-973"]
    assert (guyane.timezone, guyane.kind) == ("America/Cayenne", "call_centre")
    problems = {(p.row, p.skipped): p.message for p in report.problems}
    assert problems[(5, True)] == "no site_id"
    assert "department" in problems[(6, True)]
    assert "effective_from" in problems[(7, True)]
    assert "00:00 - 00:00" in problems[(4, False)]  # read in part


def test_the_products_json_is_the_contract_list_or_one_site_per_line(tmp_path: Path) -> None:
    good = {
        "site_id": "ants-1",
        "network": "ants",
        "name": "Préfecture",
        "department": "2A",
        "timezone": "Europe/Paris",
        "schedules": [{"weekly": {"monday": [{"start": "09:00", "end": "12:00"}]}}],
        "closures": [{"start": "2024-08-15T00:00:00+02:00", "end": "2024-08-16T00:00:00+02:00", "announced": True}],
    }
    array = tmp_path / "sites.json"
    array.write_text(json.dumps([good, {**good, "site_id": "ants-2", "timezone": "Mars/Olympus"}, good]))
    kind, report = read_sites_file(array)
    assert kind == "json"
    assert [s.site_id for s in report.sites] == ["ants-1"]
    assert [(p.row, p.site_id) for p in report.problems] == [(2, "ants-2"), (3, "ants-1")]
    assert "time zone" in report.problems[0].message
    assert "duplicate" in report.problems[1].message
    lines = tmp_path / "sites.ndjson"
    lines.write_text(json.dumps(good) + "\n{not json\n")
    _, report = read_sites_file(lines)
    assert [s.site_id for s in report.sites] == ["ants-1"]
    assert report.problems[0].row == 2
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    with pytest.raises(SitesFileError, match="unknown format"):
        read_sites_file(other)
