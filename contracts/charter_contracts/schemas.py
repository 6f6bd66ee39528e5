"""JSON Schema of every contract model, exported into ``contracts/schemas/``.

Integrators who do not write Python validate against these files; a test keeps them in
sync with the models, so the files never drift from what the services enforce.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from charter_contracts.alerts import AlertEvent
from charter_contracts.deadletter import DeadLetter
from charter_contracts.events import (
    EVENT_ADAPTER,
    CallRecord,
    CaseCompleted,
    CounterClosed,
    CounterOpened,
)
from charter_contracts.indicators import IndicatorSnapshot
from charter_contracts.sites import Site

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
_BASE_URI = "https://charter.example.gouv.fr/schemas/v1/"

MODELS: dict[str, type[BaseModel]] = {
    "counter_opened": CounterOpened,
    "counter_closed": CounterClosed,
    "call": CallRecord,
    "case_completed": CaseCompleted,
    "site": Site,
    "indicator_snapshot": IndicatorSnapshot,
    "alert": AlertEvent,
    "dead_letter": DeadLetter,
}


def all_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema (validation mode: what a producer must send)."""
    schemas: dict[str, dict[str, Any]] = {}
    for name, model in MODELS.items():
        schemas[f"{name}.schema.json"] = _with_id(model.model_json_schema(), name)
    event = EVENT_ADAPTER.json_schema()
    event["title"] = "Event"
    schemas["event.schema.json"] = _with_id(event, "event")
    return schemas


def _with_id(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{_BASE_URI}{name}.schema.json",
        **schema,
    }


def render(schema: dict[str, Any]) -> str:
    """Stable text form, so the files diff cleanly."""
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def export(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, schema in all_schemas().items():
        path = directory / file_name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written
