"""Alerts settings, read once at start from ``CHARTER_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from charter_runtime.settings import ServiceSettings


class AlertsSettings(ServiceSettings):
    """Settings of ``charter alerts``."""

    model_config = SettingsConfigDict(env_prefix="CHARTER_ALERTS_", frozen=True, extra="ignore", validate_by_name=True)

    http_port: int = Field(default=8003, ge=0, le=65535, description="Port of alerts' HTTP endpoints.")
    group_id: str = Field(default="charter-alerts", description="Kafka consumer group of alerts.")
    grafana_url: str = Field(default="http://127.0.0.1:3000", description="Base URL of Grafana, for links in alerts.")
