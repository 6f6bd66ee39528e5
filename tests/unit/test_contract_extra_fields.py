"""No field outside the contract gets in: every contract model, and every object nested in one,
refuses a key it does not define (a caller's phone number, a name...), and ingest answers ``schema``.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import charter_contracts
from charter_contracts import (
    EVENT_ADAPTER,
    AlertEvent,
    CallRecord,
    CaseCompleted,
    Closure,
    ContractModel,
    CounterClosed,
    CounterOpened,
    DeadLetter,
    IndicatorSnapshot,
    RejectReason,
    Schedule,
    Scope,
    Site,
    TimeRange,
    WeeklyHours,
)
from charter_ingest.domain import Rejected, admit
from tests.support import events

AT = datetime(2024, 3, 4, 9, 15, tzinfo=UTC)
PERSONAL = ("caller_phone", "0612345678")

SITE = Site(
    site_id="caf-75-paris",
    network="caf",
    name="Accueil Paris",
    department="75",
    timezone="Europe/Paris",
    schedules=[
        Schedule(weekly=WeeklyHours(monday=[TimeRange(start=time(9), end=time(17))])),
        Schedule(effective_from=date(2024, 6, 1), weekly=WeeklyHours(tuesday=[TimeRange(start=time(8), end=time(12))])),
    ],
    closures=[Closure(start=AT, end=AT + timedelta(hours=4), reason="works")],
)
SNAPSHOT = IndicatorSnapshot.of("pickup_rate", Scope(network="caf", department="75"), "1h", 28, 38, AT)
ALERT = AlertEvent(
    fingerprint="pickup_rate_1h/caf/*",
    episode=1,
    status="firing",
    rule="pickup_rate_1h",
    indicator="pickup_rate",
    network="caf",
    window="1h",
    value=28 / 38,
    threshold=0.85,
    since=AT,
    at=AT,
    summary_fr="taux de décroché",
    summary_en="pickup rate",
    dashboard_url="http://grafana/d/charter",
)
LETTER = DeadLetter(reason=RejectReason.SCHEMA, detail="x: missing", network="caf", payload="{}", rejected_at=AT)

#: One valid instance of each top-level contract model, as JSON a producer would send.
SAMPLES: dict[str, tuple[type[BaseModel], dict[str, Any]]] = {
    "counter_opened": (CounterOpened, events.counter(AT, opened=True, reason="planned")),
    "counter_closed": (CounterClosed, events.counter(AT, opened=False, reason="staff")),
    "call": (CallRecord, events.call(AT)),
    "case_completed": (CaseCompleted, events.case(AT, deadline_days=15)),
    "site": (Site, SITE.model_dump(mode="json")),
    "indicator_snapshot": (IndicatorSnapshot, SNAPSHOT.model_dump(mode="json")),
    "alert": (AlertEvent, ALERT.model_dump(mode="json")),
    "dead_letter": (DeadLetter, LETTER.model_dump(mode="json")),
}
EVENT_TYPES = ("counter_opened", "counter_closed", "call", "case_completed")


def nested_objects(model: type[BaseModel], data: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """(path, model) of ``data`` and of every object in it that is a contract model (not a free dict)."""
    yield path, model
    for name, field in model.model_fields.items():
        value = data.get(name)
        inner = _model_of(field.annotation)
        if inner is None or value is None:
            continue
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from nested_objects(inner, item, (*path, name, index))
        else:
            yield from nested_objects(inner, value, (*path, name))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The contract model a field holds (alone, optional, or in a list), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def with_extra(data: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
    """A deep copy of ``data`` whose object at ``path`` carries one key more."""
    copy: dict[str, Any] = json.loads(json.dumps(data))
    target: Any = copy
    for part in path:
        target = target[part]
    target[PERSONAL[0]] = PERSONAL[1]
    return copy


CASES = [
    pytest.param(name, path, id=f"{name}:{'.'.join(map(str, path)) or 'top'}:{inner.__name__}")
    for name, (model, data) in SAMPLES.items()
    for path, inner in nested_objects(model, data)
]


def contract_models() -> set[type[BaseModel]]:
    """Every pydantic model defined in the charter_contracts package."""
    for module in pkgutil.iter_modules(charter_contracts.__path__):
        importlib.import_module(f"charter_contracts.{module.name}")
    found: set[type[BaseModel]] = set()
    pending = list(BaseModel.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("charter_contracts.") and not cls.__name__.startswith("_"):
            found.add(cls)
    found.discard(ContractModel)  # the base, of no field: every model below derives from it
    return found


def test_the_cases_cover_every_contract_model_and_every_nested_one() -> None:
    covered = {inner for name, (model, data) in SAMPLES.items() for _, inner in nested_objects(model, data)}
    assert covered == contract_models()
    assert {Site, Schedule, WeeklyHours, TimeRange, Closure, Scope} <= covered


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_is_valid_as_it_is(name: str) -> None:
    model, data = SAMPLES[name]
    model.model_validate_json(json.dumps(data))  # so a refusal below is the extra key's doing


@pytest.mark.parametrize(("name", "path"), CASES)
def test_an_unknown_key_is_refused_at_the_top_and_in_every_nested_object(
    name: str, path: tuple[str | int, ...]
) -> None:
    model, data = SAMPLES[name]
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(json.dumps(with_extra(data, path)))
    errors = caught.value.errors()
    assert [(e["type"], e["loc"]) for e in errors] == [("extra_forbidden", (*path, PERSONAL[0]))]


@pytest.mark.parametrize("name", EVENT_TYPES)
def test_ingest_refuses_an_event_carrying_personal_data_as_schema_naming_the_field(name: str) -> None:
    _, data = SAMPLES[name]
    EVENT_ADAPTER.validate_json(json.dumps(data))
    outcome = admit(json.dumps(with_extra(data, ())), "caf", None)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == RejectReason.SCHEMA
    assert outcome.detail == "caller_phone: Extra inputs are not permitted"
