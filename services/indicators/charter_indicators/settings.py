"""Indicators settings, read once at start from ``CHARTER_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from charter_runtime.settings import ServiceSettings


class IndicatorsSettings(ServiceSettings):
    """Settings of ``charter indicators``."""

    model_config = SettingsConfigDict(
        env_prefix="CHARTER_INDICATORS_", frozen=True, extra="ignore", validate_by_name=True
    )

    http_port: int = Field(default=8002, ge=0, le=65535, description="Port of indicators' HTTP endpoints.")
    group_id: str = Field(default="charter-indicators", description="Kafka consumer group of indicators.")
    short_abandon_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Unanswered calls shorter than this are excluded from the pickup rate.",
    )
