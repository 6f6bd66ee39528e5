"""Site registry entries for tests, and publishing them to ``charter.sites`` as operators do."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, time
from typing import Any

from charter_contracts import Closure, Schedule, Site, TimeRange, WeeklyHours
from charter_contracts.sites import department_timezone
from charter_contracts.topics import TopicNames
from tests.support.kafka import produce

WORKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")


def weekly(start: time = time(9), end: time = time(17), days: Iterable[str] = WORKDAYS) -> WeeklyHours:
    """The same opening period on each of ``days``."""
    period = [TimeRange(start=start, end=end)]
    return WeeklyHours(**dict.fromkeys(days, period))


def site(
    site_id: str,
    *,
    network: str = "caf",
    department: str = "75",
    hours: WeeklyHours | None = None,
    changes: Iterable[tuple[date, WeeklyHours]] = (),
    closures: Iterable[Closure] = (),
    **overrides: Any,
) -> Site:
    """A registry entry; ``hours`` since always, then ``changes`` from their effective dates."""
    schedules = [Schedule(weekly=hours or weekly())]
    schedules += [Schedule(effective_from=day, weekly=week) for day, week in changes]
    fields: dict[str, Any] = {
        "site_id": site_id,
        "network": network,
        "name": f"Accueil {site_id}",
        "department": department,
        "timezone": department_timezone(department),
        "schedules": schedules,
        "closures": list(closures),
    }
    fields.update(overrides)
    return Site(**fields)


async def publish_sites(bootstrap: str, names: TopicNames, sites: Iterable[Site]) -> None:
    """Publish registry entries to ``charter.sites``, keyed by site_id."""
    await produce(bootstrap, names.sites, [(s.site_id.encode(), s.model_dump_json().encode()) for s in sites])
