"""No stack trace in an answer, from any service: the read APIs of indicators and alerts, made to fail
inside, answer a generic JSON 500 and log the trace (ingest's endpoint: ``test_ingest_http.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from charter_alerts.app import Alerts
from charter_alerts.settings import AlertsSettings
from charter_indicators.app import Indicators
from charter_indicators.settings import IndicatorsSettings
from charter_runtime.http import build_app

SECRET = "secret internals /srv/charter/state.py line 12"


def broken(*_: Any, **__: Any) -> Any:
    raise RuntimeError(SECRET)


def indicators_app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    service = Indicators(IndicatorsSettings())
    monkeypatch.setattr(service.model, "query", broken)
    return build_app(service.parts())


def alerts_app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    service = Alerts(AlertsSettings())
    monkeypatch.setattr(service.book, "current", broken)
    return build_app(service.parts())


APPS: dict[str, tuple[Callable[[pytest.MonkeyPatch], FastAPI], str]] = {
    "indicators": (indicators_app, "/v1/indicators?network=caf"),
    "alerts": (alerts_app, "/v1/alerts?status=firing"),
}


@pytest.mark.parametrize("service", APPS)
async def test_an_internal_error_answers_a_generic_json_500_and_the_trace_goes_to_the_log(
    service: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    make, path = APPS[service]
    app = make(monkeypatch)
    # the server's view: the app's own answer, not the exception re-raised to the test
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="charter_runtime.http"):
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as client:
            answer = await client.get(path)
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"error": "internal", "detail": "internal error; see the service log"}
    assert "Traceback" not in answer.text
    assert SECRET not in answer.text
    logged = [r for r in caplog.records if r.exc_info is not None]
    assert [str(r.exc_info[1]) for r in logged if r.exc_info] == [SECRET]  # the operator has the trace
