"""Ingest's admission of raw messages: every message is admitted or rejected with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from charter_contracts import CallRecord, EventKind, RejectReason
from charter_ingest.domain import Admitted, Limits, Rejected, admit, dead_letter_payload
from tests.support import events

AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def test_a_valid_call_on_its_networks_call_topic_is_admitted() -> None:
    outcome = admit(events.encode(events.call(AT)), "caf", EventKind.CALL_RECORDS)
    assert isinstance(outcome, Admitted)
    assert isinstance(outcome.event, CallRecord)


def test_malformed_json_is_rejected_as_invalid_json() -> None:
    outcome = admit(b'{"type": "call", ', "caf", EventKind.CALL_RECORDS)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is RejectReason.INVALID_JSON


def test_schema_errors_are_rejected_with_the_field_named() -> None:
    outcome = admit(events.encode(events.call(AT, ended_at="yesterday")), "caf", EventKind.CALL_RECORDS)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is RejectReason.SCHEMA
    assert outcome.detail.startswith("ended_at:")


def test_an_event_of_another_network_is_rejected() -> None:
    outcome = admit(events.encode(events.call(AT, network="cpam")), "caf", EventKind.CALL_RECORDS)
    assert outcome == Rejected(RejectReason.WRONG_NETWORK, "network: event says 'cpam' but was published by 'caf'")


def test_an_event_on_the_wrong_stream_is_rejected() -> None:
    outcome = admit(events.encode(events.case(AT)), "caf", EventKind.CALL_RECORDS)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is RejectReason.WRONG_TOPIC


def test_any_type_is_allowed_when_no_stream_is_imposed() -> None:
    assert isinstance(admit(events.encode(events.case(AT)), "caf", None), Admitted)


def test_wrong_types_missing_and_extra_fields_are_schema_rejects_naming_the_field() -> None:
    cases = {
        "site_id: Input should be a valid string": {**events.call(AT), "site_id": 75},
        "ivr_only: Input should be a valid boolean": events.call(AT, ivr_only="yes"),
        "schema_version: Input should be 1": events.call(AT, schema_version=2),
        "counter_id: Field required": {k: v for k, v in events.counter(AT).items() if k != "counter_id"},
        "caller_phone: Extra inputs are not permitted": events.call(AT, caller_phone="0600000000"),
    }
    for expected, payload in cases.items():
        outcome = admit(events.encode(payload), "caf", None)
        assert isinstance(outcome, Rejected)
        assert (outcome.reason, outcome.detail) == (RejectReason.SCHEMA, expected)


def test_an_oversized_message_is_too_large_before_anything_is_parsed() -> None:
    huge = b'{"type": "call", "padding": "' + b"x" * 70_000 + b'"}'
    outcome = admit(huge, "caf", EventKind.CALL_RECORDS)
    assert outcome == Rejected(RejectReason.TOO_LARGE, "the event is 70031 bytes; at most 65536 bytes are accepted")
    small = admit(huge, "caf", EventKind.CALL_RECORDS, limits=Limits(max_event_bytes=200_000))
    assert isinstance(small, Rejected)
    assert small.reason is RejectReason.SCHEMA


def test_an_event_dated_after_its_arrival_beyond_the_tolerated_skew_is_in_future() -> None:
    arrival = AT + timedelta(minutes=30)
    skewed = admit(events.encode(events.counter(AT + timedelta(minutes=40))), "caf", None, arrival=arrival)
    assert isinstance(skewed, Admitted)  # 10 minutes ahead: a clock a little fast
    ahead = admit(events.encode(events.counter(AT + timedelta(hours=2))), "caf", None, arrival=arrival)
    assert isinstance(ahead, Rejected)
    assert ahead.reason is RejectReason.IN_FUTURE
    assert ahead.detail.startswith("occurred_at: 2024-03-04T11:00:00+00:00 is after the event arrived")
    assert "15 min" in ahead.detail


def test_a_call_that_ends_in_the_future_is_in_future_even_if_it_started_in_the_past() -> None:
    outcome = admit(events.encode(events.call(AT, duration=4 * 3600)), "caf", None, arrival=AT + timedelta(hours=1))
    assert isinstance(outcome, Rejected)
    assert (outcome.reason, outcome.detail.split(":")[0]) == (RejectReason.IN_FUTURE, "ended_at")


def test_dead_letters_keep_the_payload_whole_or_its_first_bytes_without_splitting_a_character() -> None:
    limits = Limits(max_event_bytes=10)
    assert dead_letter_payload(b'{"a": 1}', limits) == (b'{"a": 1}', "")
    cut, note = dead_letter_payload("ééééééé".encode(), limits)  # 14 bytes, 2 per character
    assert cut.decode() == "ééééé"
    assert note == " (payload truncated to its first 10 of 14 bytes)"
    odd, _ = dead_letter_payload("aéééééé".encode(), limits)  # the 10th byte is half an é
    assert odd.decode() == "aéééé"
