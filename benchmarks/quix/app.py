"""Peer baseline: the charter's pickup-rate and deadline-compliance windows in Quix Streams.

Runs in its own environment (.venv-quix: Quix Streams pins pydantic < 2.14, the product
does not). Reads the same canonical topics and events as the indicators service, in
event time, and computes per site and per network:

- pickup rate: calls answered / calls offered per 1-hour tumbling window, voice-server
  (IVR-only) calls and unanswered calls shorter than 5 s excluded;
- deadline compliance: cases completed within their deadline / cases completed, per
  1-day tumbling window (deadline from the event, else 15 calendar days).

Closed windows are written to an output topic (``.final()``, Quix's cheapest mode).
Usage: python app.py BOOTSTRAP PREFIX GROUP EXPECTED_EVENTS
Prints one JSON line: events read and seconds from the first to the last (start-up left out,
as for the indicators).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any

from quixstreams import Application
from quixstreams.dataframe.windows import Sum

SHORT_ABANDON_SECONDS = 5.0
DEFAULT_DEADLINE_DAYS = 15
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
GRACE_MS = 300_000


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def call_counts(call: dict[str, Any]) -> dict[str, Any]:
    offered = answered = 0
    if not call.get("ivr_only"):
        if call["answered_at"] is not None:
            offered = answered = 1
        elif (_ms(call["ended_at"]) - _ms(call["received_at"])) / 1000 >= SHORT_ABANDON_SECONDS:
            offered = 1
    return {"network": call["network"], "offered": offered, "answered": answered}


def case_counts(case: dict[str, Any]) -> dict[str, Any]:
    days = case.get("deadline_days") or DEFAULT_DEADLINE_DAYS
    took = _ms(case["completed_at"]) - _ms(case["submitted_at"])
    return {"network": case["network"], "completed": 1, "within": 1 if took <= days * DAY_MS else 0}


_clock: dict[str, float] = {"events": 0, "expected": 0}
_apps: list[Application] = []


def _tick(value: dict[str, Any]) -> None:
    now = time.perf_counter()
    _clock.setdefault("first", now)
    _clock["last"] = now
    _clock["events"] += 1
    if _clock["events"] >= _clock["expected"]:
        _apps[0].stop()  # run(count=...) counts outputs, not events read


def main() -> None:
    bootstrap, prefix, group, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=f"/tmp/quix-state-{group}",
        use_changelog_topics=True,
        auto_create_topics=True,
        loglevel="ERROR",
    )
    calls = app.topic(
        f"{prefix}charter.call-records",
        value_deserializer="json",
        timestamp_extractor=lambda value, _h, _ts, _tt: _ms(value["received_at"]),
    )
    cases = app.topic(
        f"{prefix}charter.case-completions",
        value_deserializer="json",
        timestamp_extractor=lambda value, _h, _ts, _tt: _ms(value["completed_at"]),
    )
    output = app.topic(f"{prefix}quix.windows", value_serializer="json")

    pickup = app.dataframe(calls).update(_tick).apply(call_counts)
    pickup.tumbling_window(HOUR_MS, grace_ms=GRACE_MS).agg(
        offered=Sum("offered"), answered=Sum("answered")
    ).final().to_topic(output)
    pickup.group_by("network", name="network-calls").tumbling_window(HOUR_MS, grace_ms=GRACE_MS).agg(
        offered=Sum("offered"), answered=Sum("answered")
    ).final().to_topic(output)

    deadline = app.dataframe(cases).update(_tick).apply(case_counts)
    deadline.tumbling_window(DAY_MS, grace_ms=GRACE_MS).agg(
        completed=Sum("completed"), within=Sum("within")
    ).final().to_topic(output)
    deadline.group_by("network", name="network-cases").tumbling_window(DAY_MS, grace_ms=GRACE_MS).agg(
        completed=Sum("completed"), within=Sum("within")
    ).final().to_topic(output)

    _apps.append(app)
    _clock["expected"] = expected
    app.run(timeout=30)  # or stopped by _tick once every expected event is read
    seconds = _clock.get("last", 0.0) - _clock.get("first", 0.0)
    print(json.dumps({"events": int(_clock["events"]), "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
