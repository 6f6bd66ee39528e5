"""The README's table of environment variables, generated from the settings classes.

One source of truth: a test fails when the README and the settings disagree.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from charter_alerts.settings import AlertsSettings
from charter_indicators.settings import IndicatorsSettings
from charter_ingest.settings import IngestSettings

SERVICES: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "indicators": IndicatorsSettings,
    "alerts": AlertsSettings,
}


def env_rows() -> list[tuple[str, str, str, str]]:
    """(variable, services, default, description) for every setting, shared ones merged."""
    rows: dict[str, tuple[list[str], str, str]] = {}
    for service, settings in SERVICES.items():
        prefix = settings.model_config.get("env_prefix", "")
        for name, field in settings.model_fields.items():
            alias = field.validation_alias
            variable = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
            default = field.default
            if isinstance(default, SecretStr):  # a secret's default is never a real secret: show it
                default = default.get_secret_value()
            if isinstance(default, tuple):
                default = ",".join(str(item) for item in default)
            shown = f"`{default}`" if default != "" else "(empty)"
            entry = rows.setdefault(variable, ([], shown, field.description or ""))
            entry[0].append(service)
    return [(var, ", ".join(svc), default, text) for var, (svc, default, text) in rows.items()]


def env_table() -> str:
    """Markdown table of every ``CHARTER_*`` variable of the services."""
    lines = ["| variable | service | default | meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{var}` | {services} | {default} | {text} |" for var, services, default, text in env_rows()]
    return "\n".join(lines) + "\n"
