"""Read side: what is firing now and why (``GET /v1/alerts``), and the rules in force."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from charter_contracts import AlertEvent, AlertStatus

if TYPE_CHECKING:
    from charter_alerts.app import Alerts

_ORDER = {"firing": 0, "pending": 1, "resolved": 2}


class AlertView(BaseModel):
    """An alert's latest event, with the last value judged since the service started."""

    alert: AlertEvent
    value_now: float | None = Field(description="Last value judged for this alert (null if none since start).")
    value_now_at: datetime | None = Field(description="Event time of value_now.")


class AlertList(BaseModel):
    alerts: list[AlertView]
    count: int = Field(description="Alerts matching the filters (before the limit).")


class RulesView(BaseModel):
    source: str = Field(description="The rules file, or 'built-in defaults'.")
    sha256: str
    loaded_at: float = Field(description="When the rules in force were loaded (unix seconds).")
    last_error: str | None = Field(description="Why the last change of the file was refused; null if it was not.")
    rules: dict[str, Any]
    not_judged: dict[str, int] = Field(
        description="Snapshots not judged since start, by reason: already_judged (duplicates, replays), "
        "low_volume, volume_unknown (the rule's details key is missing), burn_window_missing."
    )


def alerts_router(service: Alerts) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["alerts"])

    @router.get(
        "/alerts", summary="Alerts active now (firing, pending) and recently resolved", response_model=AlertList
    )
    async def list_alerts(
        network: str | None = None,
        department: str | None = None,
        status: Annotated[list[AlertStatus] | None, Query(description="Repeatable: firing, pending, resolved.")] = None,
        rule: str | None = None,
        kind: Literal["threshold", "burn_rate"] | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> AlertList:
        """Firing first, then pending, then resolved; most recent first within each."""
        shown = [
            event
            for event in service.book.current()
            if (network is None or event.network == network)
            and (department is None or event.department == department)
            and (not status or event.status in status)
            and (rule is None or event.rule == rule)
            and (kind is None or event.kind == kind)
        ]
        shown.sort(key=lambda e: (_ORDER[e.status], -e.at.timestamp(), e.fingerprint))
        views = []
        for event in shown[:limit]:
            latest = service.book.latest_value(event.fingerprint)
            views.append(
                AlertView(
                    alert=event,
                    value_now=latest[0] if latest else None,
                    value_now_at=latest[1] if latest else None,
                )
            )
        return AlertList(alerts=views, count=len(shown))

    @router.get(
        "/rules", summary="The charter rules in force and the outcome of the last reload", response_model=RulesView
    )
    async def rules() -> RulesView:
        status = service.rules_file.status
        return RulesView(
            source=status.source,
            sha256=status.sha256,
            loaded_at=status.loaded_at,
            last_error=status.last_error,
            rules=service.book.rules.document.model_dump(mode="json", by_alias=True),
            not_judged=dict(service.book.unjudged),
        )

    return router
