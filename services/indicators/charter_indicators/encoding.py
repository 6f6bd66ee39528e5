"""Wire formats of what indicators publishes: snapshots (contract v1) and its internal records.

Snapshots are written with orjson in exactly the shape of ``IndicatorSnapshot``'s JSON
(a test validates them against the model): the service writes thousands per flush and
building a pydantic model for each would cost more than computing it.
"""

from __future__ import annotations

from typing import Any

import orjson

from charter_indicators.domain.calendar import iso
from charter_indicators.domain.partition import Payload, ScopeKey
from charter_indicators.domain.snapshots import SnapshotValue


def scope_key(network: str | None, department: str | None, site_id: str | None = None) -> str:
    """Kafka key of a scope, as ``Scope.key``: ``network/department/site_id`` with ``*`` for null."""
    return f"{network or '*'}/{department or '*'}/{site_id or '*'}"


class SnapshotEncoder:
    """Encodes snapshots; caches the text of instants, which repeat across a flush."""

    def __init__(self) -> None:
        self._instants: dict[float, str] = {}

    def _iso(self, t: float) -> str:
        text = self._instants.get(t)
        if text is None:
            if len(self._instants) > 10_000:
                self._instants.clear()
            text = self._instants[t] = iso(t)
        return text

    def document(self, s: SnapshotValue) -> dict[str, Any]:
        """The snapshot as the JSON object of ``IndicatorSnapshot``."""
        return {
            "indicator": s.indicator,
            "scope": {"network": s.network, "department": s.department, "site_id": s.site_id},
            "window": s.window,
            "window_start": self._iso(s.window_start) if s.window_start is not None else None,
            "numerator": float(s.numerator),
            "denominator": float(s.denominator),
            "value": s.numerator / s.denominator if s.denominator else None,
            "as_of": self._iso(s.as_of),
            "details": s.details,
            "schema_version": 1,
        }

    def encode(self, s: SnapshotValue) -> bytes:
        return orjson.dumps(self.document(s))


def snapshot_key(s: SnapshotValue) -> bytes:
    """Key on ``charter.indicators``: the scope (contract v1)."""
    return scope_key(s.network, s.department, s.site_id).encode()


def latest_key(s: SnapshotValue) -> bytes:
    """Key on the compacted ``<group>.latest`` topic: one record per indicator, scope and window."""
    return f"{s.indicator}|{scope_key(s.network, s.department, s.site_id)}|{s.window}".encode()


# -- partial sums between the two stages ---------------------------------------------


def partial_key(source: str, scope: ScopeKey) -> bytes:
    return f"{source}|{scope_key(scope[0], scope[1])}".encode()


def progress_key(source: str) -> bytes:
    return f"{source}|progress".encode()


def encode_partial(source: str, scope: ScopeKey, payload: Payload) -> bytes:
    return orjson.dumps(
        {"source": source, "network": scope[0], "department": scope[1], "parts": _trimmed(payload)},
        option=orjson.OPT_NON_STR_KEYS,
    )


def encode_progress(source: str, as_of: float) -> bytes:
    return orjson.dumps({"source": source, "as_of": as_of})


def decode_internal(raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(raw)
    return data


def _trimmed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _trimmed(v) for k, v in value.items()}
    if isinstance(value, list):
        end = len(value)
        while end and not value[end - 1]:
            end -= 1
        return value[:end]
    return value
