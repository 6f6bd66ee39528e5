"""What indicators reads and writes on the wire: the fast decoder, snapshots as in the contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charter_contracts import IndicatorSnapshot, Scope, parse_event
from charter_indicators.decoding import UndecodableError, decode_event, read_fields
from charter_indicators.domain.events import from_contract
from charter_indicators.domain.snapshots import SnapshotValue
from charter_indicators.encoding import SnapshotEncoder, latest_key, snapshot_key
from tests.support import events

instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000 if d.microsecond % 3 else d.microsecond)
)
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-4)), timezone(timedelta(hours=4))]
)


@st.composite
def canonical_events(draw: st.DrawFn) -> bytes:
    """A valid event as a network sends it (any offset), then as ingest writes it (canonical, UTC)."""
    at = draw(instants).astimezone(draw(offsets))
    kind = draw(st.sampled_from(["call", "case", "counter"]))
    payload: dict[str, Any]
    if kind == "call":
        answered = draw(st.one_of(st.none(), st.floats(0, 900, allow_nan=False)))
        ivr = answered is None and draw(st.booleans())
        payload = events.call(at, answered_after=answered, duration=draw(st.floats(0, 3600)), ivr_only=ivr)
    elif kind == "case":
        payload = events.case(
            at,
            days=draw(st.floats(0, 400)),
            procedure=draw(st.sampled_from(["rsa", "carte-grise", "x_1"])),
            deadline_days=draw(st.one_of(st.none(), st.integers(1, 3650))),
        )
    else:
        payload = events.counter(at, opened=draw(st.booleans()), reason=draw(st.sampled_from([None, "strike"])))
    return parse_event(events.encode(payload)).model_dump_json().encode()


@settings(max_examples=300, deadline=None)
@given(canonical_events())
def test_the_fast_decoder_reads_canonical_events_exactly_as_the_contract_model(raw: bytes) -> None:
    reference = from_contract(parse_event(raw))
    assert read_fields(orjson.loads(raw)) == reference  # the fast path itself, no fallback
    assert decode_event(raw) == reference


def test_what_the_fast_path_cannot_read_is_validated_and_explained() -> None:
    at = datetime(2024, 3, 4, 10, 0, 0, 500, tzinfo=timezone(timedelta(hours=1)))
    written_by_hand = events.encode(events.call(at))  # offsets and odd fractions: the slow path, same result
    assert decode_event(written_by_hand) == from_contract(parse_event(written_by_hand))
    broken = orjson.dumps({**events.call(at), "received_at": "yesterday"})
    with pytest.raises(UndecodableError, match="received_at"):
        decode_event(broken)


def test_snapshots_are_written_in_the_contract_shape_with_the_scope_as_key() -> None:
    encoder = SnapshotEncoder()
    value = SnapshotValue(
        "pickup_rate", "caf", "971", None, "1h", 1709542800.0, 72.0, 90.0, 1709546400.0, {"raw_rate": 0.72, "x": None}
    )
    snapshot = IndicatorSnapshot.model_validate_json(encoder.encode(value))
    assert snapshot == IndicatorSnapshot.of(
        "pickup_rate",
        Scope(network="caf", department="971"),
        "1h",
        72,
        90,
        as_of=datetime(2024, 3, 4, 10, tzinfo=UTC),
        window_start=datetime(2024, 3, 4, 9, tzinfo=UTC),
        details={"raw_rate": 0.72, "x": None},
    )
    assert snapshot_key(value) == snapshot.scope.key.encode()
    assert latest_key(value) == b"pickup_rate|caf/971/*|1h"
    empty = SnapshotValue("opening_rate", None, None, None, "live", None, 0.0, 0.0, 1709546400.0, {})
    assert IndicatorSnapshot.model_validate_json(encoder.encode(empty)).value is None
