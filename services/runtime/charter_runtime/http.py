"""The HTTP side every service shares: health, Prometheus metrics, AsyncAPI and OpenAPI docs.

FastAPI serves HTTP (and generates the OpenAPI document that integrators and
schemathesis use); the FastStream broker is started and stopped by the app's lifespan.
The broker connects in the background with retries, so the service comes up (and says
so on /health) even while Kafka is still starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI, get_asyncapi_html
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)

from charter_runtime.kafka import NO_AUTH, KafkaAuth, TopicSpec, ensure_topics, retry_forever
from charter_runtime.lag import ConsumerLag
from charter_runtime.memory import keep_releasing_free_pages, return_large_buffers

log = logging.getLogger(__name__)
# `_created` series double the series count for no use on our boards.
disable_created_metrics()  # type: ignore[no-untyped-call]

Hook = Callable[[], Awaitable[None]]


@dataclass
class ServiceParts:
    """What a service hands to ``build_app``: its broker, metrics and extra routes."""

    name: str
    description: str
    broker: KafkaBroker
    registry: CollectorRegistry
    bootstrap_servers: str
    topics: Sequence[TopicSpec] = ()
    routers: Sequence[APIRouter] = ()
    on_started: Sequence[Hook] = ()
    on_stopping: Sequence[Hook] = ()
    version: str = "1.0.0"
    kafka_auth: KafkaAuth = NO_AUTH
    #: How often the consumer lag of every subscriber of ``broker`` is sampled.
    lag_interval_seconds: float = 15.0
    #: Metrics rendered by the service itself, served after the registry's (large families kept
    #: out of prometheus_client's formatting at every scrape).
    exposition: Callable[[], bytes] | None = None
    #: Set by ``build_app``: ``charter_kafka_consumer_lag_messages`` of this service.
    lag: ConsumerLag | None = field(default=None, init=False)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ready(self) -> bool:
        """True once topics exist and the broker's consumers and producer are running."""
        return self._ready.is_set()

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the service is connected (for tests and orchestration)."""
        await asyncio.wait_for(self._ready.wait(), timeout)


def build_app(parts: ServiceParts) -> FastAPI:
    """The ASGI app of one service: HTTP endpoints plus the broker's lifecycle."""
    lag = parts.lag = ConsumerLag(parts.name, parts.registry, parts.lag_interval_seconds)

    async def start() -> None:
        await ensure_topics(parts.bootstrap_servers, parts.topics, auth=parts.kafka_auth)
        await parts.broker.start()
        for subscriber in parts.broker.subscribers:
            lag.watch(subscriber)
        await lag.start()
        for hook in parts.on_started:
            await hook()
        parts._ready.set()
        log.info("%s connected to Kafka at %s", parts.name, parts.bootstrap_servers)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        starter = asyncio.create_task(retry_forever(start, f"{parts.name}: connecting to Kafka"))
        try:
            yield
        finally:
            starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starter
            await lag.stop()
            for hook in parts.on_stopping:
                await hook()
            await parts.broker.stop()

    app = FastAPI(
        title=f"charter {parts.name}",
        description=parts.description,
        version=parts.version,
        lifespan=lifespan,
    )
    spec = AsyncAPI(
        parts.broker,
        title=f"charter {parts.name}",
        version=parts.version,
        description=parts.description,
    )

    @app.get("/health", tags=["operations"], summary="Liveness and Kafka connectivity")
    async def health() -> JSONResponse:
        kafka = parts.ready and await parts.broker.ping(timeout=2.0)
        status = "ok" if kafka else ("starting" if not parts.ready else "kafka_unreachable")
        return JSONResponse(
            {"service": parts.name, "status": status, "kafka": kafka},
            status_code=200 if kafka else 503,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        body = generate_latest(parts.registry)
        if parts.exposition is not None:
            body += parts.exposition()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", tags=["documentation"], summary="AsyncAPI document of the Kafka side")
    async def asyncapi_json() -> Response:
        return Response(spec.to_specification().to_json(), media_type="application/json")

    @app.get(
        "/asyncapi",
        tags=["documentation"],
        summary="AsyncAPI document, rendered",
        response_class=HTMLResponse,
    )
    async def asyncapi_html() -> HTMLResponse:
        return HTMLResponse(get_asyncapi_html(spec.to_specification(), try_it_out_path=None))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        # Never a stack trace in an answer: the trace goes to the log, the client gets a code.
        log.error("unhandled error", exc_info=exc)
        return JSONResponse({"error": "internal", "detail": "internal error; see the service log"}, status_code=500)

    for router in parts.routers:
        app.include_router(router)
    return app


#: Allocations between young-generation collections, and collections between older ones.
GC_THRESHOLDS = (100_000, 50, 100)


def serve(
    app: FastAPI,
    host: str,
    port: int,
    log_level: str = "info",
    *,
    tls_certfile: str | None = None,
    tls_keyfile: str | None = None,
) -> None:
    """Run the app until SIGINT/SIGTERM; uvicorn's shutdown runs the lifespan's clean stop.

    With a certificate and key the endpoints are served over HTTPS (TLS terminated here
    rather than by a proxy in front).
    """
    import uvicorn  # noqa: PLC0415 - only the process entry point needs the server

    # A service keeps a large, long-lived state and its Kafka client makes objects for every
    # record: CPython's default (a collection every 700 allocations, the state re-scanned by the
    # older generations) cost the indicators a fifth of their throughput. Young objects are
    # collected every 100,000 allocations instead; garbage cycles are rare here.
    gc.set_threshold(*GC_THRESHOLDS)
    return_large_buffers()
    keep_releasing_free_pages()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        ssl_certfile=tls_certfile,
        ssl_keyfile=tls_keyfile,
    )
