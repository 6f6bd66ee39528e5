"""The France services open data file, read as published."""

from __future__ import annotations

from datetime import time
from pathlib import Path

from charter_ops.sites import DEFAULT_SITES_FILE, parse_day, read_france_services_csv


def test_every_row_of_the_real_file_is_read_and_malformed_hours_are_reported() -> None:
    report = read_france_services_csv(DEFAULT_SITES_FILE)
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
