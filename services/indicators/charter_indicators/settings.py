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
    group_id: str = Field(
        default="charter-indicators",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Kafka consumer group of indicators; also names its internal topics (<group>.state, ...).",
    )
    short_abandon_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Unanswered calls shorter than this are excluded from the pickup rate.",
    )
    service_level_seconds: float = Field(
        default=60.0, gt=0, description="Calls answered within this wait count in the service level."
    )
    grace_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Events older than the latest event of their stream (a canonical topic's partition) by "
        "more than this are late: not counted, sent to the dead-letter topic. A call is judged on its end.",
    )
    max_call_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Longest call counted, from received_at to ended_at: a call is counted once it has ended, "
        "in the window it was received in, so a longer one would revise figures published long before; it is late.",
    )
    idle_seconds: float = Field(
        default=10.0,
        ge=0,
        description="A stream read up to date with no event for this long advances with the wall clock "
        "(time passes), and a network just heard of waits this long for its streams that have no event yet; "
        "0 disables both, for replays of old history.",
    )
    stale_after_seconds: float = Field(
        default=43200.0,
        gt=0,
        description="A site with no counter status for this long is stale: reported, and no longer counted open.",
    )
    procedures_file: str = Field(
        default="deploy/config/procedures.yaml",
        description="Per-procedure deadlines (YAML); a relative path is looked up from the working "
        "directory, then from the project root.",
    )
    flush_seconds: float = Field(
        default=1.0, gt=0, description="How often figures are brought up to date and published (wall clock)."
    )
    max_flush_gap_seconds: float = Field(
        default=7200.0,
        gt=0,
        description="Event time may run this far past a partition's last flush before one is done at once "
        "(a replay): bounds the minutes kept in memory, whatever the pause between flushes. Also how far a "
        "network's time may lag the others' in a partition before it is moved on.",
    )
    site_snapshot_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How often per-site snapshots of the current windows are published at most "
        "(closed hour/day buckets are always published).",
    )
    checkpoint_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often each partition's state is saved to <group>.state; offsets are committed just after.",
    )
    max_records: int = Field(default=10000, ge=1, description="Largest batch of records handled at once.")
