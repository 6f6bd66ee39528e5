"""`charter publish` reads what integrators have: JSON, NDJSON and CSV files, and says where a bad event is."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from charter_ingest.domain import Admitted, Rejected, admit
from charter_ops.publish import PublishError, detect_format, events_url, read_items
from tests.support import events

AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def test_the_format_comes_from_the_suffix_or_the_option(tmp_path: Path) -> None:
    assert detect_format(tmp_path / "a.json") == "json"
    assert detect_format(tmp_path / "a.JSONL") == "ndjson"
    assert detect_format(tmp_path / "a.ndjson") == "ndjson"
    assert detect_format(tmp_path / "a.csv") == "csv"
    assert detect_format(tmp_path / "export.txt", "csv") == "csv"
    with pytest.raises(PublishError, match="--format"):
        detect_format(tmp_path / "export.txt")


def test_json_files_hold_an_array_or_one_event(tmp_path: Path) -> None:
    array = tmp_path / "a.json"
    array.write_text(json.dumps([events.call(AT), events.case(AT)]))
    assert [item.where for item in read_items(array, "json")] == ["item 1", "item 2"]
    single = tmp_path / "one.json"
    single.write_text(json.dumps(events.counter(AT)))
    (item,) = read_items(single, "json")
    assert isinstance(admit(item.raw, "caf", None), Admitted)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"type": "call",')
    with pytest.raises(PublishError, match="is not valid JSON"):
        list(read_items(broken, "json"))


def test_ndjson_lines_keep_their_line_numbers_and_are_sent_as_written(tmp_path: Path) -> None:
    path = tmp_path / "a.ndjson"
    lines = [json.dumps(events.call(AT)), "", '{"type": "call", ', json.dumps(events.case(AT))]
    path.write_text("\n".join(lines) + "\n")
    items = list(read_items(path, "ndjson"))
    assert [item.where for item in items] == ["line 1", "line 3", "line 4"]
    assert items[1].raw == b'{"type": "call",'
    assert sum(item.size for item in items) == path.stat().st_size - 1  # the blank line carries no event


def test_csv_cells_get_the_contracts_types_and_empty_cells_mean_absent_or_null(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(
        "type,event_id,network,site_id,occurred_at,schema_version,received_at,answered_at,ended_at,ivr_only\n"
        "call,c1,caf,caf-1,2024-03-04T09:00:00+01:00,1,2024-03-04T09:00:00+01:00,,2024-03-04T09:01:00+01:00,\n"
        "call,c2,caf,caf-1,2024-03-04T09:00:00+01:00,1,2024-03-04T09:00:00+01:00,,2024-03-04T09:01:00+01:00,true\n"
        "call,c3,caf,caf-1,2024-03-04T09:00:00+01:00,one,2024-03-04T09:00:00+01:00,,2024-03-04T09:01:00+01:00,\n"
    )
    first, second, third = (json.loads(item.raw) for item in read_items(path, "csv"))
    assert first["schema_version"] == 1
    assert first["answered_at"] is None  # nullable: an empty cell is null
    assert "ivr_only" not in first  # not nullable: an empty cell is absent (its default applies)
    assert second["ivr_only"] is True
    for item in read_items(path, "csv"):
        outcome = admit(item.raw, "caf", None)
        if item.where == "line 4":
            assert isinstance(outcome, Rejected)
            assert outcome.detail == "schema_version: Input should be 1"
        else:
            assert isinstance(outcome, Admitted), outcome
    assert third["schema_version"] == "one"


def test_csv_of_cases_with_an_optional_deadline(tmp_path: Path) -> None:
    path = tmp_path / "cases.csv"
    header = "type,event_id,network,site_id,occurred_at,schema_version,case_id,procedure,submitted_at,completed_at"
    row = "case_completed,k{n},caf,caf-1,2024-03-04T16:00:00Z,1,d{n},rsa,2024-02-20T09:00:00Z,2024-03-04T16:00:00Z"
    path.write_text(f"{header},deadline_days\n{row.format(n=1)},15\n{row.format(n=2)},\n")
    first, second = (json.loads(item.raw) for item in read_items(path, "csv"))
    assert first["deadline_days"] == 15
    assert second["deadline_days"] is None
    assert all(isinstance(admit(item.raw, "caf", None), Admitted) for item in read_items(path, "csv"))


def test_the_url_may_be_the_service_or_the_endpoint() -> None:
    assert events_url("https://ingest.example.gouv.fr") == "https://ingest.example.gouv.fr/v1/events"
    assert events_url("https://ingest.example.gouv.fr/v1/events/") == "https://ingest.example.gouv.fr/v1/events"
