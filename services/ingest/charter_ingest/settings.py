"""Ingest settings, read once at start from ``CHARTER_*`` environment variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from charter_runtime.settings import ServiceSettings

DEFAULT_NETWORKS = (
    "caf",
    "cpam",
    "cnav",
    "msa",
    "france-travail",
    "dgfip",
    "ants",
    "france-services",
)


class IngestSettings(ServiceSettings):
    """Settings of ``charter ingest``."""

    model_config = SettingsConfigDict(env_prefix="CHARTER_INGEST_", frozen=True, extra="ignore", validate_by_name=True)

    http_port: int = Field(default=8001, ge=0, le=65535, description="Port of ingest's HTTP endpoints.")
    networks: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_NETWORKS,
        description="Networks whose raw.<network>.* topics are consumed, comma-separated.",
    )
    group_id: str = Field(default="charter-ingest", description="Kafka consumer group of ingest.")

    @field_validator("networks", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value
