"""``GET /v1/indicators``: the latest snapshots for boards and integrators, filtered."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from charter_contracts import IndicatorName, IndicatorSnapshot, WindowName
from charter_indicators.readmodel import LatestSnapshots, stale_sites

SCOPE_HELP = "a value, or `*` for the aggregate over it (e.g. `department=*` for network totals); omit for any"


class StaleSite(BaseModel):
    """A site with no counter status for longer than the stale threshold."""

    site_id: str
    network: str | None
    department: str | None
    last_status_at: float | None
    as_of: str | None


def indicators_router(model: LatestSnapshots) -> APIRouter:
    """The read API over the latest snapshots."""
    router = APIRouter(prefix="/v1", tags=["indicators"])

    @router.get(
        "/indicators",
        summary="Latest indicator snapshots",
        response_model=list[IndicatorSnapshot],
        responses={200: {"headers": {"X-Charter-Complete": {"description": "false while the service is loading"}}}},
    )
    async def indicators(
        indicator: Annotated[
            IndicatorName | None, Query(description="opening_rate, pickup_rate or deadline_compliance")
        ] = None,
        network: Annotated[str | None, Query(description=f"Network: {SCOPE_HELP}.")] = None,
        department: Annotated[str | None, Query(description=f"Department code: {SCOPE_HELP}.")] = None,
        site: Annotated[str | None, Query(description=f"Site id: {SCOPE_HELP}.")] = None,
        window: Annotated[WindowName | None, Query(description=f"One of {', '.join(get_args(WindowName))}.")] = None,
        limit: Annotated[int, Query(ge=1, le=100_000, description="At most this many snapshots.")] = 10_000,
    ) -> Response:
        """The latest snapshot of every indicator, scope and window matching the filters.

        Calendar windows (``hour``, ``day``) show their latest bucket; earlier buckets are on
        the ``charter.indicators`` topic.
        """
        found = []
        for entry in model.query(
            indicator=indicator, network=network, department=department, site_id=site, window=window
        ):
            found.append(entry.value)
            if len(found) >= limit:
                break
        return Response(
            b"[" + b",".join(found) + b"]",
            media_type="application/json",
            headers={"X-Charter-Complete": "true" if model.caught_up else "false"},
        )

    @router.get("/sites/stale", summary="Stale sites", response_model=list[StaleSite])
    async def stale(
        network: Annotated[str | None, Query(description="Only this network.")] = None,
        department: Annotated[str | None, Query(description="Only this department.")] = None,
    ) -> list[dict[str, Any]]:
        """Sites that sent no counter status for longer than the stale threshold: not counted as open."""
        return stale_sites(model, network, department)

    return router
