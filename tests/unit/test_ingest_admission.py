"""Ingest's admission of raw messages: every message is admitted or rejected with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

from charter_contracts import CallRecord, EventKind, RejectReason
from charter_ingest.domain import Admitted, Rejected, admit
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
