"""Alerts settings, read once at start from ``CHARTER_*`` environment variables."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from charter_runtime.settings import ServiceSettings

#: Internal compacted topic (under the environment's prefix): every alert's state and the deliveries done.
STATE_TOPIC = "charter.alerts-state"


class AlertsSettings(ServiceSettings):
    """Settings of ``charter alerts``."""

    model_config = SettingsConfigDict(env_prefix="CHARTER_ALERTS_", frozen=True, extra="ignore", validate_by_name=True)

    http_port: int = Field(default=8003, ge=0, le=65535, description="Port of alerts' HTTP endpoints.")
    group_id: str = Field(default="charter-alerts", description="Kafka consumer group of alerts.")
    grafana_url: str = Field(default="http://127.0.0.1:3000", description="Base URL of Grafana, for links in alerts.")
    grafana_dashboard_uid: str = Field(
        default="charter-network",
        description="Uid of the Grafana board alerts link to (with var-network, var-department).",
    )
    rules_file: str = Field(
        default="",
        description="Charter rules file (YAML, see deploy/config/charter-rules.yaml); empty: built-in SPEC defaults.",
    )
    rules_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often the rules file is checked for changes (SIGHUP reloads at once)."
    )
    alertmanager_url: str = Field(
        default="", description="Alertmanager base URL, e.g. http://127.0.0.1:9093; empty: not notified."
    )
    alertmanager_resend_seconds: float = Field(
        default=60.0, gt=0, description="Firing alerts are re-sent to Alertmanager this often (endsAt = 4x later)."
    )
    webhook_url: str = Field(
        default="", description="URL that receives each alert as signed JSON; empty: not notified."
    )
    webhook_secret: str = Field(
        default="", description="HMAC-SHA256 key of the webhook's X-Charter-Signature header (required with a URL)."
    )
    smtp_host: str = Field(default="", description="SMTP server for e-mail alerts; empty: no e-mail.")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP port.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_username: str = Field(default="", description="SMTP login; empty: no authentication.")
    smtp_password: str = Field(default="", description="SMTP password.")
    smtp_from: str = Field(default="charter-alerts@localhost", description="Sender address of alert e-mails.")
    smtp_to: str = Field(default="", description="Recipients of alert e-mails, comma-separated.")
    notify_timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one delivery attempt.")
    notify_retry_max_seconds: float = Field(
        default=300.0, gt=0, description="Longest wait between two attempts of a failing delivery (backoff cap)."
    )

    @model_validator(mode="after")
    def _receivers_complete(self) -> Self:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError(
                "CHARTER_ALERTS_WEBHOOK_SECRET is required with CHARTER_ALERTS_WEBHOOK_URL (HMAC signature)"
            )
        if self.smtp_host and not self.smtp_recipients:
            raise ValueError("CHARTER_ALERTS_SMTP_TO is required with CHARTER_ALERTS_SMTP_HOST")
        return self

    @property
    def state_topic(self) -> str:
        return self.kafka_topic_prefix + STATE_TOPIC

    @property
    def smtp_recipients(self) -> list[str]:
        return [address.strip() for address in self.smtp_to.split(",") if address.strip()]
