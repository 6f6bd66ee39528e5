"""Event contracts: what networks may send, and the reasons they read when they may not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from charter_contracts import (
    CallRecord,
    CaseCompleted,
    CounterOpened,
    IndicatorSnapshot,
    Scope,
    describe_error,
    parse_event,
)
from charter_contracts.schemas import SCHEMA_DIR, all_schemas, render
from tests.support import events

PARIS_WINTER = timezone(timedelta(hours=1))
AT = datetime(2024, 3, 4, 10, 15, tzinfo=PARIS_WINTER)


def reason(payload: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as caught:
        parse_event(json.dumps(payload))
    return describe_error(caught.value)


def test_valid_events_of_every_type_parse_to_their_model() -> None:
    assert isinstance(parse_event(events.encode(events.call(AT))), CallRecord)
    assert isinstance(parse_event(events.encode(events.counter(AT))), CounterOpened)
    assert isinstance(parse_event(events.encode(events.case(AT))), CaseCompleted)


def test_timestamps_are_normalised_to_utc_keeping_the_instant() -> None:
    call = parse_event(events.encode(events.call(AT)))
    assert call.occurred_at == datetime(2024, 3, 4, 9, 15, tzinfo=UTC)
    assert call.occurred_at.utcoffset() == timedelta(0)


def test_unknown_fields_are_rejected_so_no_personal_data_gets_in() -> None:
    assert "caller_phone: Extra inputs are not permitted" in reason(events.call(AT, caller_phone="0612345678"))


def test_naive_timestamps_are_rejected_naming_the_field() -> None:
    message = reason(events.call(AT, occurred_at="2024-03-04T10:15:00", received_at="2024-03-04T10:15:00"))
    assert message.startswith("occurred_at: must be an RFC 3339 timestamp with an offset")


def test_numbers_are_not_timestamps() -> None:
    assert "occurred_at" in reason(events.counter(AT, occurred_at=1709543700))


def test_answer_before_reception_is_rejected() -> None:
    payload = events.call(AT, answered_at=(AT - timedelta(seconds=5)).isoformat())
    assert "answered_at: must not be before received_at" in reason(payload)


def test_call_end_before_answer_is_rejected() -> None:
    payload = events.call(AT, ended_at=(AT + timedelta(seconds=10)).isoformat())  # answered at +20 s
    assert "ended_at: must not be before received_at or answered_at" in reason(payload)


def test_ivr_only_call_cannot_have_an_agent_answer() -> None:
    assert "ivr_only" in reason(events.call(AT, ivr_only=True))


def test_completion_before_submission_is_rejected() -> None:
    payload = events.case(AT, submitted_at=(AT + timedelta(days=1)).isoformat())
    assert "completed_at: must not be before submitted_at" in reason(payload)


def test_occurred_at_must_be_the_call_reception() -> None:
    payload = events.call(AT, occurred_at=(AT + timedelta(minutes=1)).isoformat())
    assert "received_at: must equal occurred_at" in reason(payload)


@pytest.mark.parametrize("field", ["event_id", "site_id", "counter_id"])
def test_empty_ids_are_rejected_naming_the_field(field: str) -> None:
    payload = events.counter(AT)
    payload[field] = ""
    assert reason(payload).startswith(f"{field}:")


def test_ids_must_be_strings_not_numbers() -> None:
    assert reason(events.counter(AT, event_id=12)).startswith("event_id:")


def test_unknown_type_and_wrong_schema_version_are_rejected() -> None:
    assert "bogus" in reason(events.counter(AT, type="bogus"))
    assert reason(events.counter(AT, schema_version=2)).startswith("schema_version:")


def test_snapshot_value_is_null_without_denominator_and_the_ratio_otherwise() -> None:
    empty = IndicatorSnapshot.of("pickup_rate", Scope(network="caf"), "1h", 0, 0, as_of=AT)
    assert empty.value is None
    full = IndicatorSnapshot.of("pickup_rate", Scope(network="caf"), "1h", 72, 90, as_of=AT)
    assert full.value == pytest.approx(0.8)
    with pytest.raises(ValidationError, match="value must equal numerator / denominator"):
        IndicatorSnapshot(
            indicator="pickup_rate", scope=Scope(), window="1h", numerator=1, denominator=2, value=0.9, as_of=AT
        )


def test_exported_json_schemas_match_the_models() -> None:
    """contracts/schemas/ is what integrators read: it must say what the services enforce."""
    generated = all_schemas()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in SCHEMA_DIR.glob("*.json")}
    assert set(on_disk) == set(generated), "run `charter schemas` to regenerate contracts/schemas/"
    for name, schema in generated.items():
        assert on_disk[name] == render(schema), f"{name} is stale: run `charter schemas`"


offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=offsets).map(
    lambda d: d.replace(microsecond=0)
)


@given(
    received=instants,
    wait=st.one_of(st.none(), st.integers(min_value=0, max_value=3600)),
    talk=st.integers(min_value=0, max_value=7200),
)
def test_any_valid_call_survives_a_round_trip_through_json(received: datetime, wait: int | None, talk: int) -> None:
    payload = events.call(received, answered_after=wait, duration=talk)
    parsed = parse_event(events.encode(payload))
    assert isinstance(parsed, CallRecord)
    assert parse_event(parsed.model_dump_json()) == parsed
    assert parsed.received_at == received


@given(received=instants, gap=st.integers(min_value=1, max_value=10**6))
def test_any_answer_before_the_call_is_rejected(received: datetime, gap: int) -> None:
    payload = events.call(received, answered_at=(received - timedelta(seconds=gap)).isoformat())
    with pytest.raises(ValidationError, match="answered_at"):
        parse_event(events.encode(payload))
