"""Cost of decoding one canonical event into the indicators' domain event, old and new.

Run: PYTHONPATH=. .venv/bin/python -m benchmarks.decoding [--events 200000] [--repeat 5]

The seeded benchmark workload (``Workload(sites=6000, events=200000)``: calls and cases,
whole-second instants), then the same events with microseconds in every instant (what
ingest writes for traffic whose instants have a fraction, the simulator's for one). Each
figure is the best of ``--repeat`` passes over every event, results discarded as the
service does after applying them. Before timing, the new decoder's events are checked
equal to the old one's, and to the contract models' on a sample. Prints figures; judges
nothing (speed depends on the machine).
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import msgspec
import orjson

from benchmarks.workload import Workload
from charter_contracts import parse_event
from charter_indicators import decoding
from charter_indicators.decoding import decode_event
from charter_indicators.domain.events import Call, Case, CounterChange, DomainEvent, from_contract

# -- the previous decoder (orjson, then the fields read in Python, instants by a minute cache) --

_minutes: dict[str, float] = {}


def _old_instant(text: Any) -> float:
    if text.__class__ is str and text[-1:] == "Z" and text[16:17] == ":":
        minute = _minutes.get(text[:16])
        if minute is None:
            if len(_minutes) > 100_000:
                _minutes.clear()
            try:
                minute = _minutes[text[:16]] = datetime.fromisoformat(text[:16] + ":00+00:00").timestamp()
            except ValueError:
                minute = None
        seconds = text[17:-1]
        if minute is not None and seconds[:2].isdigit() and seconds[2:3] in ("", "."):
            return minute + float(seconds)
    if not isinstance(text, str):
        raise TypeError("timestamp must be a string")
    return datetime.fromisoformat(text).timestamp()


def _read_fields(data: dict[str, Any]) -> DomainEvent:
    kind = data["type"]
    if data["schema_version"] != 1:
        raise ValueError("schema_version")
    event_id, network, site_id = data["event_id"], data["network"], data["site_id"]
    if not (isinstance(event_id, str) and isinstance(network, str) and isinstance(site_id, str)):
        raise TypeError("ids must be strings")
    if kind == "call":
        answered = data["answered_at"]
        ivr = data.get("ivr_only", False)
        if not isinstance(ivr, bool):
            raise TypeError("ivr_only")
        return Call(
            event_id,
            network,
            site_id,
            _old_instant(data["received_at"]),
            _old_instant(answered) if answered is not None else None,
            _old_instant(data["ended_at"]),
            ivr,
        )
    if kind == "case_completed":
        deadline = data.get("deadline_days")
        procedure = data["procedure"]
        if not isinstance(procedure, str) or (deadline is not None and type(deadline) is not int):
            raise TypeError("procedure or deadline_days")
        return Case(
            event_id,
            network,
            site_id,
            _old_instant(data["completed_at"]),
            _old_instant(data["submitted_at"]),
            procedure,
            deadline,
        )
    if kind in ("counter_opened", "counter_closed"):
        counter = data["counter_id"]
        if not isinstance(counter, str):
            raise TypeError("counter_id")
        return CounterChange(
            event_id, network, site_id, _old_instant(data["occurred_at"]), kind == "counter_opened", counter
        )
    raise ValueError(f"unknown type {kind!r}")


def old_decode(raw: bytes) -> DomainEvent:
    return _read_fields(orjson.loads(raw))


# -- one msgspec call per batch: measured to decide against a batch entry point ------------------

_batch_decode = msgspec.json.Decoder(
    list[decoding._Call | decoding._Case | decoding._CounterOpened | decoding._CounterClosed]
).decode


T = TypeVar("T")


def one_call_per_batch(values: Sequence[bytes]) -> None:
    """Every record of a batch in one ``msgspec`` call (joined into a JSON array), then the same domain
    events (calls and cases: the workload has no counter events).

    Not offered by ``decoding``: joined records can re-split differently (a record ``{..},{..``
    completed by the next one), so each record would need its own bounds checked.
    """
    events: list[Any] = _batch_decode(b"[" + b",".join(values) + b"]")
    for event in events:
        decoding.from_struct(event)


# -- workloads and timing ------------------------------------------------------------------------

_INSTANTS = ("occurred_at", "received_at", "answered_at", "ended_at", "submitted_at", "completed_at")


def with_microseconds(values: Sequence[bytes], seed: int = 7) -> list[bytes]:
    """The same events, every instant given a fraction (``...:SS.ffffffZ``, as ingest writes one)."""
    rng = random.Random(seed)
    out = []
    for value in values:
        event = orjson.loads(value)
        for name in _INSTANTS:
            if event.get(name):
                event[name] = f"{event[name][:-1]}.{rng.randrange(1, 10**6):06d}Z"
        event["occurred_at"] = event.get("received_at") or event["completed_at"]
        out.append(orjson.dumps(event))
    return out


def per_event(items: Sequence[T], decode: Callable[[T], object], repeat: int) -> float:
    """Best time per item (microseconds) of decoding every item, ``repeat`` passes."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for item in items:
            decode(item)
        best = min(best, time.perf_counter() - started)
    return best / len(items) * 1e6


def per_event_batched(values: Sequence[bytes], decode: Callable[[Sequence[bytes]], None], repeat: int) -> float:
    """Best time per event (microseconds) of decoding every value in batches of 1,000."""
    batches = [values[i : i + 1000] for i in range(0, len(values), 1000)]
    return per_event(batches, decode, repeat) * len(batches) / len(values)


def check(values: Sequence[bytes]) -> None:
    """The new decoder gives the old one's events on every value and the contract models' on a sample."""
    for value in values:
        event = decode_event(value)
        if event != old_decode(value):
            raise SystemExit(f"the decoders differ on {value!r}")
    for value in values[:: max(1, len(values) // 2000)]:
        if decode_event(value) != from_contract(parse_event(value)):
            raise SystemExit(f"the decoder differs from the contract models on {value!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--sites", type=int, default=6_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    whole = [value for _, _, value in Workload(sites=args.sites, events=args.events).records()]
    fractions = with_microseconds(whole)
    print(f"decoding one canonical event into the domain event, us/event (best of {args.repeat} passes)")
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"workload: Workload(sites={args.sites:,}, events={args.events:,}).records()")
    rows: list[tuple[str, str, str]] = []
    for label, values in (("whole seconds (the workload)", whole), ("with microseconds", fractions)):
        check(values)
        loads = per_event(values, orjson.loads, args.repeat)
        old = per_event(values, old_decode, args.repeat)
        new = per_event(values, decode_event, args.repeat)
        batched = per_event_batched(values, one_call_per_batch, args.repeat)
        rows += [
            (label, "orjson.loads alone (a floor, no domain event)", f"{loads:.3f}"),
            (label, "old: orjson.loads + fields read in Python", f"{old:.3f}"),
            (label, "new: decode_event (msgspec structs)", f"{new:.3f}  ({old / new:.2f}x)"),
            (label, "one msgspec call per 1,000 records (not offered)", f"{batched:.3f}"),
        ]
    width = max(len(a) + len(b) for a, b, _ in rows) + 3
    for label, what, figure in rows:
        print(f"{label + ', ' + what:<{width}} {figure}")


if __name__ == "__main__":
    main()
