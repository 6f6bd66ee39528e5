"""What indicators reads and writes on the wire: the fast decoder, snapshots as in the contract."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import FrozenInstanceError, dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from charter_contracts import IndicatorSnapshot, Scope, describe_error, parse_event
from charter_contracts.types import Timestamp
from charter_indicators import decoding
from charter_indicators.decoding import UndecodableError, decode_event, instant
from charter_indicators.domain.events import Call, Case, CounterChange, DomainEvent, from_contract
from charter_indicators.domain.snapshots import SnapshotValue
from charter_indicators.encoding import SnapshotEncoder, latest_key, snapshot_key
from tests.support import events

TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(Timestamp)

instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000 if d.microsecond % 3 else d.microsecond)
)
offsets = st.one_of(
    st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-4)), timezone(timedelta(hours=4))]),
    st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes))),
)
leap_days = [datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC), datetime(2000, 2, 29, tzinfo=UTC)]


@contextmanager
def fast_path_only() -> Iterator[None]:
    """Fail the test if ``decode_event`` falls back to full validation."""
    with mock.patch.object(decoding, "validated", side_effect=AssertionError("fell back to full validation")):
        yield


def contract_outcome(raw: bytes) -> DomainEvent | str:
    """What full validation makes of ``raw``: the domain event, or the reason it is refused."""
    try:
        return from_contract(parse_event(raw))
    except ValidationError as exc:
        return describe_error(exc)


def decoder_outcome(raw: bytes) -> DomainEvent | str:
    try:
        return decode_event(raw)
    except UndecodableError as exc:
        return str(exc)


def payload_at(draw: st.DrawFn, at: datetime) -> dict[str, Any]:
    """A valid event at ``at`` as a network sends it, optional fields present or left out."""
    kind = draw(st.sampled_from(["call", "case", "counter"]))
    payload: dict[str, Any]
    if kind == "call":
        answered = draw(st.one_of(st.none(), st.floats(0, 900, allow_nan=False)))
        ivr = answered is None and draw(st.booleans())
        payload = events.call(at, answered_after=answered, duration=draw(st.floats(0, 3600)), ivr_only=ivr)
        if not ivr and draw(st.booleans()):
            del payload["ivr_only"]  # optional, false by default
    elif kind == "case":
        payload = events.case(
            at,
            days=draw(st.floats(0, 400)),
            procedure=draw(st.sampled_from(["rsa", "carte-grise", "x_1"])),
            deadline_days=draw(st.one_of(st.none(), st.integers(1, 3650))),
        )
        if payload["deadline_days"] is None and draw(st.booleans()):
            del payload["deadline_days"]  # optional: the procedure's default
    else:
        payload = events.counter(at, opened=draw(st.booleans()), reason=draw(st.sampled_from([None, "strike"])))
        if payload["reason"] is None and draw(st.booleans()):
            del payload["reason"]
    return payload


@st.composite
def canonical_events(draw: st.DrawFn) -> bytes:
    """A valid event as a network sends it (any offset), then as ingest writes it (canonical, UTC)."""
    at = draw(st.one_of(instants, st.sampled_from(leap_days))).astimezone(draw(offsets))
    return parse_event(events.encode(payload_at(draw, at))).model_dump_json().encode()


def rfc3339(moment: datetime, digits: int, zone: tzinfo, extra: str) -> str:
    """``moment`` written in ``zone`` with ``digits`` fractional digits (``extra`` past the 6th, truncated away)."""
    local = moment.astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + (f"{local.microsecond:06d}" + extra)[:digits]
    offset = local.utcoffset()
    assert offset is not None
    if zone is UTC:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    return text + f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@st.composite
def network_events(draw: st.DrawFn) -> bytes:
    """A valid event with its instants written as networks may: any offset, 0 to 9 fractional digits."""
    digits = draw(st.integers(0, 9))
    keep = 10 ** (6 - min(digits, 6))  # one precision per event, so that truncation keeps the order of its instants
    at = draw(st.one_of(instants, st.sampled_from(leap_days)))
    payload = payload_at(draw, at.replace(microsecond=at.microsecond // keep * keep))
    for name in ("occurred_at", "received_at", "answered_at", "ended_at", "submitted_at", "completed_at"):
        if payload.get(name) is not None:
            moment = datetime.fromisoformat(payload[name])
            moment = moment.replace(microsecond=moment.microsecond // keep * keep)
            payload[name] = rfc3339(moment, digits, draw(offsets), draw(st.text("0123456789", min_size=3, max_size=3)))
    return events.encode(payload)


@settings(max_examples=300, deadline=None)
@given(canonical_events())
def test_the_fast_decoder_reads_canonical_events_exactly_as_the_contract_model(raw: bytes) -> None:
    reference = from_contract(parse_event(raw))
    with fast_path_only():
        decoded = decode_event(raw)
    assert decoded == reference
    assert type(decoded) is type(reference)
    assert decode_event(raw) == reference  # again, its whole seconds now cached


@settings(max_examples=300, deadline=None)
@given(network_events())
def test_the_fast_decoder_reads_offsets_and_fractions_of_any_length_exactly_as_the_contract_model(raw: bytes) -> None:
    reference = from_contract(parse_event(raw))
    with fast_path_only():
        assert decode_event(raw) == reference


timestamp_texts = st.builds(
    lambda day, clock, separator, fraction, zone: f"{day}{separator}{clock}{fraction}{zone}",
    st.one_of(
        st.dates(min_value=datetime(1960, 1, 1).date(), max_value=datetime(9999, 12, 31).date()).map(str),
        st.sampled_from(
            ["2023-02-29", "2024-02-29", "2024-02-30", "2024-13-01", "20240304", "2024-W10-1", "２０２４-03-04"]
        ),
    ),
    st.one_of(
        st.times().map(lambda t: t.strftime("%H:%M:%S")),
        st.sampled_from(["24:00:00", "23:59:60", "10:00", "1:00:00", "10:00:0a", "10:00:٣٣"]),
    ),
    st.sampled_from(["T", "T", "T", "t", " ", "x"]),
    st.one_of(
        st.just(""),
        st.text("0123456789", min_size=1, max_size=12).map(lambda d: "." + d),
        st.sampled_from([".", ",5", ".5_0", ".1e3", ". 5", ".٣"]),
    ),
    st.one_of(
        st.sampled_from(["Z", "Z", "z", "", "+0100", "+01", "+01:00:30", "+24:00", "-00:00", " Z", "ZZ"]),
        st.builds(
            lambda sign, h, m: f"{sign}{h:02d}:{m:02d}", st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59)
        ),
    ),
)


@settings(max_examples=2000, deadline=None)
@given(timestamp_texts)
@example("2024-03-04T09:30:05Z")
@example("2024-03-04T09:30:05.123456789+14:00")
@example("9999-12-31T23:00:00-01:00")
def test_an_instant_read_by_the_fast_path_is_the_contract_instant_else_it_is_left_to_full_validation(text: str) -> None:
    try:
        value = instant(text)
    except ValueError:
        return  # the event goes to full validation
    assert value == datetime.fromisoformat(text).timestamp()
    assert value == TIMESTAMP.validate_python(text).timestamp()  # the contract accepts it, same instant


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-04T09:30:05Z",
        "2024-03-04T09:30:05.5Z",
        "2024-03-04T09:30:05.000001Z",
        "2024-03-04T09:30:05.999999Z",
        "2024-03-04T09:30:05.9999999Z",  # truncated, as datetime and pydantic do
        "2024-03-04T09:30:05.123456789Z",
        "2024-03-04T09:30:05-00:00",
        "2024-03-04T09:30:05+23:59",
        "2024-03-04T09:30:05.25-09:30",
        "2024-02-29T23:59:59.999999+01:00",
        "1971-01-01T00:00:00Z",
        "2100-02-28T12:00:00Z",
    ],
)
def test_the_fast_path_reads_every_rfc3339_form_ingest_or_a_network_writes(text: str) -> None:
    assert instant(text) == datetime.fromisoformat(text).timestamp() == TIMESTAMP.validate_python(text).timestamp()


def test_whole_seconds_are_cached_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoding, "_CACHE_BOUND", 8)
    monkeypatch.setattr(decoding, "_canonical", {})
    start = datetime(2024, 3, 4, 9, tzinfo=UTC)
    for second in range(50):
        at = start + timedelta(seconds=second, microseconds=0 if second % 2 else 250_000)
        text = rfc3339(at, 0 if second % 2 else 6, UTC, "")
        assert instant(text) == at.timestamp()
        assert instant(text) == at.timestamp()
        assert len(decoding._canonical) <= 8
    assert all(len(text) == 20 for text in decoding._canonical)  # whole seconds only, not every fraction


def test_events_are_built_through_their_slots_as_their_constructors_would() -> None:
    call = decode_event(events.encode(events.call(datetime(2024, 3, 4, 9, tzinfo=UTC))))
    case = decode_event(events.encode(events.case(datetime(2024, 3, 4, 9, tzinfo=UTC), deadline_days=30)))
    assert type(call) is Call
    assert type(case) is Case
    assert call == Call(*(getattr(call, name) for name in Call.__slots__))
    assert case == Case(*(getattr(case, name) for name in Case.__slots__))
    assert hash(call) == hash(Call(*(getattr(call, name) for name in Call.__slots__)))
    with pytest.raises(FrozenInstanceError):
        call.t = 0.0  # type: ignore[misc]
    names = ("a", "b")

    @dataclass(frozen=True, slots=True)
    class Plain:
        a: str
        b: str

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: str
        b: str

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class Wider:
        a: str
        b: str
        c: str = ""

    assert decoding._slot_setters(Plain, names) is not None
    assert decoding._slot_setters(Checked, names) is None  # its constructor is used instead
    assert decoding._slot_setters(Wider, names) is None


CALL = events.call(datetime(2024, 3, 4, 9, 0, 0, 250_000, tzinfo=UTC))
CASE = events.case(datetime(2024, 3, 4, 9, tzinfo=UTC), deadline_days=15)
COUNTER = events.counter(datetime(2024, 3, 4, 9, tzinfo=UTC))
DROP = object()  # the field left out
EDGE_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("unknown type", CALL, {"type": "call_record"}),
    ("no type", CALL, {"type": DROP}),
    ("ivr_only left out", CALL, {"ivr_only": DROP}),
    ("deadline_days left out", CASE, {"deadline_days": DROP}),
    ("answered_at null", CALL, {"answered_at": None}),
    ("schema_version 2", CALL, {"schema_version": 2}),
    ("schema_version as a string", CASE, {"schema_version": "1"}),
    ("schema_version true", COUNTER, {"schema_version": True}),
    ("schema_version 1.0", CALL, {"schema_version": 1.0}),
    ("event_id a number", CALL, {"event_id": 5}),
    ("network null", CASE, {"network": None}),
    ("site_id a list", COUNTER, {"site_id": ["caf-75-paris"]}),
    ("ivr_only 1", CALL, {"ivr_only": 1, "answered_at": None}),
    ("ivr_only a string", CALL, {"ivr_only": "true", "answered_at": None}),
    ("ivr_only null", CALL, {"ivr_only": None}),
    ("answered_at a number", CALL, {"answered_at": 5}),
    ("received_at null", CALL, {"received_at": None}),
    ("deadline_days a string", CASE, {"deadline_days": "15"}),
    ("deadline_days 15.0", CASE, {"deadline_days": 15.0}),
    ("deadline_days 0", CASE, {"deadline_days": 0}),
    ("deadline_days 3651", CASE, {"deadline_days": 3651}),
    ("deadline_days true", CASE, {"deadline_days": True}),
    ("deadline_days null", CASE, {"deadline_days": None}),
    ("procedure a number", CASE, {"procedure": 3}),
    ("counter_id null", COUNTER, {"counter_id": None}),
    ("lowercase t and z", COUNTER, {"occurred_at": "2024-03-04t09:00:00z"}),
    ("a space for T", COUNTER, {"occurred_at": "2024-03-04 09:00:00Z"}),
    ("no offset", COUNTER, {"occurred_at": "2024-03-04T09:00:00"}),
    ("offset without colon", COUNTER, {"occurred_at": "2024-03-04T10:00:00+0100"}),
    ("ten fractional digits", COUNTER, {"occurred_at": "2024-03-04T09:00:00.1234567891Z"}),
    ("comma as decimal mark", COUNTER, {"occurred_at": "2024-03-04T09:00:00,5Z"}),
    ("29 February of a common year", COUNTER, {"occurred_at": "2023-02-29T09:00:00Z"}),
    ("hour 24", COUNTER, {"occurred_at": "2024-03-04T24:00:00Z"}),
    ("before 1970", COUNTER, {"occurred_at": "1969-12-31T23:00:00-01:00"}),
    ("a week date", COUNTER, {"occurred_at": "2024-W10-1T09:00:00Z"}),
    ("submitted_at a date", CASE, {"submitted_at": "2024-03-01"}),
]


@pytest.mark.parametrize(("payload", "changes"), [(p, c) for _, p, c in EDGE_CASES], ids=[n for n, _, _ in EDGE_CASES])
def test_what_the_fast_path_cannot_read_is_validated_and_explained(
    payload: dict[str, Any], changes: dict[str, Any]
) -> None:
    """Same event or same reason as full validation (the fast path reads it, or leaves it to validation)."""
    raw = orjson.dumps({k: v for k, v in {**payload, **changes}.items() if v is not DROP})
    assert decoder_outcome(raw) == contract_outcome(raw)


@pytest.mark.parametrize(
    ("payload", "field"),
    [(CALL, "answered_at"), (CALL, "ended_at"), (CASE, "submitted_at"), (CASE, "procedure"), (COUNTER, "counter_id")],
)
def test_a_missing_required_field_is_validated_and_explained(payload: dict[str, Any], field: str) -> None:
    raw = orjson.dumps({k: v for k, v in payload.items() if k != field})
    outcome = decoder_outcome(raw)
    assert outcome == contract_outcome(raw)
    assert isinstance(outcome, str)
    assert field in outcome


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'"call"', b"{}", b'{"type": "call"}', b"\xff\xfe"])
def test_what_is_not_an_event_object_is_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(UndecodableError) as refused:
        decode_event(raw)
    assert str(refused.value) == contract_outcome(raw)


def test_an_instant_the_contract_cannot_hold_in_utc_is_refused_not_raised() -> None:
    raw = orjson.dumps({**COUNTER, "occurred_at": "9999-12-31T23:00:00-01:00"})
    with pytest.raises(UndecodableError, match="out of range"):
        decode_event(raw)


def test_the_slow_path_reads_what_the_fast_path_leaves_with_the_same_result() -> None:
    at = datetime(2024, 3, 4, 10, 0, 0, 500, tzinfo=timezone(timedelta(hours=1)))
    written_by_hand = orjson.dumps({**events.call(at), "received_at": "2024-03-04t10:00:00.000500+01:00"})
    assert decode_event(written_by_hand) == from_contract(parse_event(written_by_hand))
    broken = orjson.dumps({**events.call(at), "received_at": "yesterday"})
    with pytest.raises(UndecodableError, match="received_at"):
        decode_event(broken)
    counter = decode_event(orjson.dumps({**COUNTER, "type": "counter_closed"}))
    assert isinstance(counter, CounterChange)
    assert not counter.opened


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
