"""Decoding canonical events cheaply.

Ingest validated every event on the canonical topics against the contract, so the
indicators only read the fields they need, with msgspec into small tagged structs (in C),
instead of validating each event again with pydantic (several times slower). Instants are
converted by ``instant`` (``datetime.fromisoformat`` behind RFC 3339 checks, canonical whole
seconds from a cache), and the domain events set through their slots. A test proves the
result equals ``from_contract(parse_event(...))`` on the same bytes; anything the fast path
cannot read falls back to full validation, which names the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from pydantic import ValidationError

from charter_contracts import describe_error, parse_event
from charter_indicators.domain.events import Call, Case, CounterChange, DomainEvent, from_contract


class UndecodableError(ValueError):
    """A record that is not a valid canonical event (it goes to the dead-letter topic)."""


# -- the wire: only the fields the indicators read ---------------------------------------
# Unknown fields are ignored (ingest refused them already); a missing field, a wrong type, an
# unknown ``type`` or a ``schema_version`` other than 1 fails here and goes to full validation.


class _Event(msgspec.Struct, tag_field="type", gc=False):
    event_id: str
    network: str
    site_id: str
    schema_version: Literal[1]


class _Call(_Event, tag="call", gc=False):
    received_at: str
    answered_at: str | None  # required, null when no agent answered
    ended_at: str
    ivr_only: bool = False


class _Case(_Event, tag="case_completed", gc=False):
    completed_at: str
    submitted_at: str
    procedure: str
    deadline_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class _CounterOpened(_Event, tag="counter_opened", gc=False):
    occurred_at: str
    counter_id: str


class _CounterClosed(_Event, tag="counter_closed", gc=False):
    occurred_at: str
    counter_id: str


_decode = msgspec.json.Decoder(_Call | _Case | _CounterOpened | _CounterClosed).decode


# -- instants -------------------------------------------------------------------------------
# The contract models' instants are ``datetime.fromisoformat(text).timestamp()`` (pydantic
# and datetime both truncate to microseconds): the fast path computes exactly that, in C,
# once it has checked with a few comparisons that the text is RFC 3339 as the contract's
# pattern has it (``fromisoformat`` also reads other ISO 8601 forms: ``,`` as decimal mark,
# an empty fraction, ``+0100``, ``+01``, ``+01:00:30``; it checks digits and the calendar).
# Canonical whole seconds (``...:SSZ``, what ingest writes for a whole-second event) are
# remembered in a bounded dict: one lookup, no allocation. Other forms (``t``, ``z`` or a
# space as separators, more than 9 digits, instants before 1970 or in year 9999, which the
# contract cannot always represent in UTC) raise ``ValueError``: the event then goes to full
# validation.

_CACHE_BOUND = 1 << 15  # about 4 MB; live, the last nine hours of seconds
_canonical: dict[str, float] = {}  # "2024-03-04T09:30:05Z" -> 1709544605.0
_fromisoformat = datetime.fromisoformat
_LATEST = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
_OFFSETS = frozenset(f"{sign}{h:02d}:{m:02d}" for sign in "+-" for h in range(24) for m in range(60))


def instant(text: str) -> float:
    """Epoch seconds of an RFC 3339 instant (``ValueError`` for a form the fast path does not read)."""
    value = _canonical.get(text)
    return value if value is not None else _convert(text)


def _convert(text: str) -> float:
    """``instant`` for a text not in the cache."""
    n = len(text)
    if text[4:17:3] != "--T::" or not text.isascii():  # YYYY-MM-DDTHH:MM:SS, digits checked below
        raise ValueError("timestamp: not YYYY-MM-DDTHH:MM:SS")
    if text[-1] == "Z":
        whole = n == 20
        if not (whole or (21 < n <= 30 and text[19] == "." and text[20:-1].isdigit())):  # ".d" to ".ddddddddd"
            raise ValueError("timestamp: fraction")
    else:
        whole = n == 25
        if not (text[-6:] in _OFFSETS and (whole or (26 < n <= 35 and text[19] == "." and text[20:-6].isdigit()))):
            raise ValueError("timestamp: offset or fraction")
    value = _fromisoformat(text).timestamp()
    if not 0.0 < value < _LATEST:
        raise ValueError("timestamp: out of range")
    if whole:
        if len(_canonical) >= _CACHE_BOUND:
            _canonical.clear()
        _canonical[text] = value
    return value


# -- the domain events, built through their slots --------------------------------------------
# A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__`` (half the cost
# of decoding). Setting the slots directly makes the same object; done only when the class is
# exactly the fields below (checked at import; otherwise its constructor is used).

T = TypeVar("T")
_new: Any = object.__new__  # typed Any: it makes instances of the class it is given
_Setter = Callable[[object, object], None]


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[_Setter, ...] | None:
    plain = (
        getattr(cls, "__slots__", None) == names
        and tuple(f.name for f in fields(cls)) == names
        and not hasattr(cls, "__post_init__")
        and cls.__new__ is _new
    )
    return tuple(cls.__dict__[name].__set__ for name in names) if plain else None


def _builder(cls: type[T], names: tuple[str, ...]) -> Callable[..., T]:
    """A function of the seven fields in ``names`` that makes a ``cls`` through its slots
    (its constructor when the class is not exactly those fields)."""
    setters = _slot_setters(cls, names)
    if setters is None:
        return cls
    s0, s1, s2, s3, s4, s5, s6 = setters

    def build(a: object, b: object, c: object, d: object, e: object, f: object, g: object) -> T:
        made: T = _new(cls)
        s0(made, a)
        s1(made, b)
        s2(made, c)
        s3(made, d)
        s4(made, e)
        s5(made, f)
        s6(made, g)
        return made

    return build


_build_call = _builder(Call, ("event_id", "network", "site_id", "t", "answered", "ended", "ivr_only"))
_build_case = _builder(Case, ("event_id", "network", "site_id", "t", "submitted", "procedure", "deadline_days"))


# -- decoding ----------------------------------------------------------------------------------


def decode_event(raw: bytes) -> DomainEvent:
    """The domain form of one canonical event; raises ``UndecodableError`` with a reason."""
    try:
        return from_struct(_decode(raw))
    except (msgspec.DecodeError, ValueError):  # msgspec.ValidationError is a DecodeError
        return validated(raw)


def from_struct(event: Any) -> DomainEvent:
    """The domain event of one decoded ``msgspec`` struct; ``ValueError`` for an instant it cannot read."""
    kind = event.__class__
    seconds = _canonical.get  # canonical whole seconds: one lookup (never 0.0, so ``or`` is safe)
    if kind is _Call:
        answered = event.answered_at
        return _build_call(
            event.event_id,
            event.network,
            event.site_id,
            seconds(event.received_at) or _convert(event.received_at),
            None if answered is None else seconds(answered) or _convert(answered),
            seconds(event.ended_at) or _convert(event.ended_at),
            event.ivr_only,
        )
    if kind is _Case:
        return _build_case(
            event.event_id,
            event.network,
            event.site_id,
            seconds(event.completed_at) or _convert(event.completed_at),
            seconds(event.submitted_at) or _convert(event.submitted_at),
            event.procedure,
            event.deadline_days,
        )
    return CounterChange(
        event.event_id,
        event.network,
        event.site_id,
        instant(event.occurred_at),
        kind is _CounterOpened,
        event.counter_id,
    )


def validated(raw: bytes) -> DomainEvent:
    """The slow path: full validation against the contract models (what the fast path falls back to)."""
    try:
        return from_contract(parse_event(raw))
    except ValidationError as exc:
        raise UndecodableError(describe_error(exc)) from exc
    except OverflowError as exc:  # an offset that moves year 9999 past the end of the calendar
        raise UndecodableError(f"timestamp out of range: {exc}") from exc
