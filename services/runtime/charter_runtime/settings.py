"""Settings shared by every service: one frozen pydantic-settings class per service, read once.

Shared values (the Kafka address) have one variable for all services; service values
carry the service's prefix (``CHARTER_INGEST_HTTP_PORT``) so that the three services
can run side by side from one shell.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from charter_contracts.topics import TopicNames
from charter_runtime.kafka import KafkaAuth


class KafkaClientSettings(BaseSettings):
    """How to reach the cluster: read by the services and by the ``charter`` tools that write to Kafka.

    ``charter publish``, ``charter sites load`` and the simulator read the same variables as
    the services (a secured cluster needs them all), once, when the command starts.
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore", validate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias="CHARTER_KAFKA_BOOTSTRAP_SERVERS",
        description="Kafka bootstrap servers, comma-separated host:port.",
    )
    kafka_partitions: int = Field(
        default=6,
        ge=1,
        validation_alias="CHARTER_KAFKA_PARTITIONS",
        description="Partitions of the charter.* topics when this service creates them.",
    )
    kafka_topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        validation_alias="CHARTER_KAFKA_TOPIC_PREFIX",
        description="Prefix of every topic and consumer group, to share a cluster between environments.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        validation_alias="CHARTER_KAFKA_SECURITY_PROTOCOL",
        description="How the Kafka clients connect: PLAINTEXT, or SASL_PLAINTEXT/SASL_SSL with a principal.",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512",
        validation_alias="CHARTER_KAFKA_SASL_MECHANISM",
        description="SASL mechanism of the principal.",
    )
    kafka_sasl_username: str = Field(
        default="",
        validation_alias="CHARTER_KAFKA_SASL_USERNAME",
        description="The Kafka principal (one per service and per network, so that ACLs hold each to its topics).",
    )
    kafka_sasl_password: SecretStr = Field(
        default=SecretStr(""),
        validation_alias="CHARTER_KAFKA_SASL_PASSWORD",
        description="Password of the Kafka principal.",
    )

    @property
    def kafka_auth(self) -> KafkaAuth:
        """The options every Kafka client is created with."""
        return KafkaAuth(
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password.get_secret_value(),
        )

    @property
    def topics(self) -> TopicNames:
        """Topic and group names under this environment's prefix."""
        return TopicNames(self.kafka_topic_prefix)


class ServiceSettings(KafkaClientSettings):
    """Base of each service's settings; subclasses set ``env_prefix`` to ``CHARTER_<SERVICE>_``."""

    log_level: str = Field(
        default="INFO",
        validation_alias="CHARTER_LOG_LEVEL",
        description="Python log level of the services.",
    )
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP endpoints listen on.")
    http_port: int = Field(default=8000, ge=0, le=65535, description="Port of the HTTP endpoints.")
    lag_interval_seconds: float = Field(
        default=15.0, gt=0, description="How often the consumer lag metric is sampled (seconds)."
    )
