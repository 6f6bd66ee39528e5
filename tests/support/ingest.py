"""The ingest service run in-process on a real broker, with its HTTP side reachable through httpx."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from charter_contracts.topics import TopicNames
from charter_ingest.app import Ingest
from charter_ingest.settings import IngestSettings


def ingest_settings(bootstrap: str, names: TopicNames, **overrides: Any) -> IngestSettings:
    """Settings of an ingest on the test broker, with the test's private topics."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topic_prefix": names.prefix,
        "kafka_partitions": 3,
        "networks": ("caf", "cpam"),
        "lag_interval_seconds": 0.5,
    }
    values.update(overrides)
    return IngestSettings(**values)


@contextlib.asynccontextmanager
async def running_ingest(settings: IngestSettings) -> AsyncIterator[tuple[Ingest, httpx.AsyncClient]]:
    """Start ingest (topics, consumers, producer), yield it with an HTTP client, stop it cleanly."""
    service = Ingest(settings)
    app = service.app()
    async with app.router.lifespan_context(app):
        await service.parts().wait_ready(90)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
            yield service, client
