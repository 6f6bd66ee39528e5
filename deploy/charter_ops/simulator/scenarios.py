"""Scenarios: when a network degrades (pickup collapses, counters close, cases run late).

A scenario is written ``NETWORK[@START][+DURATION]``: ``caf`` degrades CAF from the
start of the simulation, ``caf@10m`` ten minutes after it, ``caf@2024-03-04T09:00:00+01:00+2h``
at that instant for two hours. Durations are ``90s``, ``10m``, ``2h``, ``3d``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_DURATION = re.compile(r"^(?P<amount>\d+(?:\.\d+)?)(?P<unit>[smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SPEC = re.compile(r"^(?P<network>[a-z][a-z0-9-]+)(?:@(?P<start>[^+]+(?:\+\d{2}:\d{2})?))?(?:\+(?P<duration>[^+]+))?$")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``10m``, ``2h``, ``3d`` (also ``1.5h``)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"invalid duration {text!r}: use a number and s, m, h or d (e.g. 10m, 2h, 7d)")
    return timedelta(seconds=float(match["amount"]) * _UNITS[match["unit"]])


@dataclass(frozen=True)
class Degradation:
    """One network degrading from ``start`` (an offset from the simulation start, or an instant)."""

    network: str
    start: timedelta | datetime = timedelta(0)
    duration: timedelta | None = None

    @classmethod
    def parse(cls, text: str) -> Degradation:
        """Read ``NETWORK[@START][+DURATION]`` (see the module docstring)."""
        match = _SPEC.match(text.strip())
        if match is None:
            raise ValueError(f"invalid scenario {text!r}: expected NETWORK[@START][+DURATION], e.g. caf@10m+2h")
        start: timedelta | datetime = timedelta(0)
        if match["start"]:
            raw = match["start"]
            try:
                start = parse_duration(raw)
            except ValueError:
                try:
                    start = datetime.fromisoformat(raw)
                except ValueError:
                    raise ValueError(
                        f"invalid start {raw!r} in {text!r}: an offset such as 10m or an RFC 3339 instant"
                    ) from None
                if start.tzinfo is None:
                    raise ValueError(f"start {raw!r} in {text!r} needs a UTC offset, e.g. +01:00") from None
        try:
            duration = parse_duration(match["duration"]) if match["duration"] else None
        except ValueError as exc:
            raise ValueError(f"in scenario {text!r}: {exc}") from None
        return cls(match["network"], start, duration)

    def window(self, simulation_start: datetime) -> tuple[float, float]:
        """Start and end as unix seconds (end is infinite when there is no duration)."""
        begin = self.start if isinstance(self.start, datetime) else simulation_start + self.start
        end = float("inf") if self.duration is None else (begin + self.duration).timestamp()
        return begin.timestamp(), end

    def describe(self) -> str:
        when = "from the start" if self.start == timedelta(0) else f"from {self.start}"
        until = f" for {self.duration}" if self.duration else ""
        return f"{self.network} degraded {when}{until}"
