"""Valid event payloads as networks send them, with overrides for each test's point."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from typing import Any

_ids = itertools.count(1)


def iso(at: datetime) -> str:
    return at.isoformat()


def call(
    at: datetime,
    *,
    network: str = "caf",
    site_id: str = "caf-75-paris",
    answered_after: float | None = 20.0,
    duration: float = 180.0,
    **overrides: Any,
) -> dict[str, Any]:
    """A call received at ``at``; answered ``answered_after`` seconds later (None: not answered)."""
    answered = at + timedelta(seconds=answered_after) if answered_after is not None else None
    ended = (answered or at) + timedelta(seconds=duration)
    payload: dict[str, Any] = {
        "type": "call",
        "event_id": f"call-{next(_ids)}",
        "network": network,
        "site_id": site_id,
        "occurred_at": iso(at),
        "schema_version": 1,
        "received_at": iso(at),
        "answered_at": iso(answered) if answered else None,
        "ended_at": iso(ended),
    }
    payload.update(overrides)
    return payload


def counter(
    at: datetime, opened: bool = True, *, network: str = "caf", site_id: str = "caf-75-paris", **overrides: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "counter_opened" if opened else "counter_closed",
        "event_id": f"counter-{next(_ids)}",
        "network": network,
        "site_id": site_id,
        "occurred_at": iso(at),
        "schema_version": 1,
        "counter_id": "g1",
    }
    payload.update(overrides)
    return payload


def case(
    completed: datetime, days: float = 3, *, network: str = "caf", site_id: str = "caf-75-paris", **overrides: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "case_completed",
        "event_id": f"case-{next(_ids)}",
        "network": network,
        "site_id": site_id,
        "occurred_at": iso(completed),
        "schema_version": 1,
        "case_id": f"dossier-{next(_ids)}",
        "procedure": "rsa",
        "submitted_at": iso(completed - timedelta(days=days)),
        "completed_at": iso(completed),
    }
    payload.update(overrides)
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
