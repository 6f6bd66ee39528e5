"""Ingest settings, read once at start from ``CHARTER_*`` environment variables."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from charter_ingest.domain import Limits
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
DEFAULT_TOKENS_FILE = "~/.config/charter/ingest-tokens.json"


class IngestSettings(ServiceSettings):
    """Settings of ``charter ingest``."""

    model_config = SettingsConfigDict(env_prefix="CHARTER_INGEST_", frozen=True, extra="ignore", validate_by_name=True)

    http_port: int = Field(default=8001, ge=0, le=65535, description="Port of ingest's HTTP endpoints.")
    networks: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_NETWORKS,
        description="Networks whose raw.<network>.* topics are consumed, comma-separated.",
    )
    group_id: str = Field(default="charter-ingest", description="Kafka consumer group of ingest.")
    dedup_horizon_days: float = Field(
        default=14.0,
        gt=0,
        description=(
            "De-duplication horizon: event ids are remembered this long in event time; an event older than "
            "the newest of its partition by more than this is refused as too_old."
        ),
    )
    max_future_seconds: float = Field(
        default=900.0,
        ge=0,
        description="Tolerated clock skew: an event dated later than its arrival plus this is refused as in_future.",
    )
    max_event_bytes: int = Field(
        default=65536, ge=1024, le=900_000, description="Largest event accepted (bytes); bigger ones are too_large."
    )
    max_request_bytes: int = Field(
        default=5_242_880, ge=1024, description="Largest body of POST /v1/events (bytes); bigger ones get 413."
    )
    max_request_events: int = Field(
        default=10_000, ge=1, description="Most events in one POST /v1/events; more get 413."
    )
    tokens_file: str = Field(
        default=DEFAULT_TOKENS_FILE,
        description="Bearer tokens of the HTTPS endpoint, hashed (managed with `charter tokens`); reloaded on change.",
    )
    rate_limit_events_per_second: float = Field(
        default=2000.0,
        ge=0,
        description="Events per second each token may post (burst: one full request); 0 = no limit.",
    )
    publish_timeout_seconds: float = Field(
        default=10.0, gt=0, description="HTTPS answers 503 when Kafka has not acknowledged the events within this."
    )
    retry_after_seconds: int = Field(default=5, ge=1, description="Retry-After of 503 answers (seconds).")
    tls_certfile: str = Field(
        default="", description="PEM certificate: serve HTTPS directly (else put a TLS proxy in front)."
    )
    tls_keyfile: str = Field(default="", description="PEM private key of the certificate.")

    @field_validator("networks", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def dedup_horizon(self) -> timedelta:
        return timedelta(days=self.dedup_horizon_days)

    @property
    def limits(self) -> Limits:
        """What every event must respect, on both paths."""
        return Limits(max_event_bytes=self.max_event_bytes, max_future=timedelta(seconds=self.max_future_seconds))

    @property
    def tokens_path(self) -> Path:
        return Path(self.tokens_file).expanduser()
