"""Reading the procedures file: each procedure's default deadline, in calendar or working days.

::

    default: {deadline_days: 15, days: calendar}
    procedures:
      rsa: {deadline_days: 30, days: calendar}
      carte-grise: {deadline_days: 10, days: working}
      information: {deadline_days: null}      # no deadline: outside the ratio, volume shown
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from charter_contracts.types import ProcedureCode
from charter_indicators.domain.deadline import Deadline, ProcedureRules

PROJECT_ROOT = Path(__file__).resolve().parents[3]


class ProceduresFileError(ValueError):
    """The procedures file is missing or invalid; the message says where and why."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deadline_days: int | None = Field(ge=1, le=3650)
    days: Literal["calendar", "working"] = "calendar"

    def deadline(self) -> Deadline | None:
        return Deadline(self.deadline_days, self.days) if self.deadline_days is not None else None


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: _Rule = _Rule(deadline_days=15)
    procedures: dict[ProcedureCode, _Rule] = Field(default_factory=dict)


def resolve(path: str) -> Path:
    """A relative path is looked up from the working directory, then from the project root."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return PROJECT_ROOT / candidate


def load_rules(path: str | Path) -> ProcedureRules:
    """Read and check a procedures file."""
    file = resolve(str(path))
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ProceduresFileError(f"cannot read procedures file {file}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ProceduresFileError(f"procedures file {file} is not valid YAML: {exc}") from exc
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ProceduresFileError(f"procedures file {file}: {problems}") from exc
    return ProcedureRules(
        default=parsed.default.deadline(),
        procedures={name: rule.deadline() for name, rule in parsed.procedures.items()},
    )
