"""Rejected messages on ``charter.dead-letter``: the payload as sent, where it came from, why.

Integrators read this to fix their systems, so reasons are machine-readable codes plus
a human detail naming the offending field.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Literal

from pydantic import Field

from charter_contracts.events import ContractModel
from charter_contracts.types import Timestamp


class RejectReason(StrEnum):
    """Why a message was not accepted; bounded, so it can be a metric label."""

    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    WRONG_NETWORK = "wrong_network"
    WRONG_TOPIC = "wrong_topic"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"
    IN_FUTURE = "in_future"
    TOO_LARGE = "too_large"
    UNKNOWN_SITE = "unknown_site"
    LATE = "late"


class DeadLetter(ContractModel):
    """A rejected message with its origin and reason."""

    reason: RejectReason
    detail: str = Field(max_length=2000)
    network: str | None = Field(description="Network of the source (topic or token), if known.")
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    payload: str = Field(description="The rejected payload, as text, or base64 if it was not UTF-8.")
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    rejected_at: Timestamp
    schema_version: Literal[1] = 1

    @staticmethod
    def encode_payload(raw: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
        """Keep the payload readable when it is text, lossless when it is not."""
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"
