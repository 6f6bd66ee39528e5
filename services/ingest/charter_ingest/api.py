"""``POST /v1/events``: networks publish over HTTPS (the entry point; the work is in ``intake``).

Order of checks, cheapest first: the token (401), its network served here (403), Kafka
connected (503), the body's size, type and shape (413, 415, 400), the token's rate (429);
then each event is judged and the accepted ones are written to Kafka before the answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from charter_contracts import EVENT_ADAPTER
from charter_ingest.intake import ErrorAnswer, HttpIntake, IngestReport, IntakeError, KafkaUnavailableError, split_body
from charter_ingest.ratelimit import RateLimiter
from charter_ingest.settings import IngestSettings
from charter_ingest.tokens import Refused, TokenRegistry

_DESCRIPTION = """\
Publish events of any type with a bearer token of your network: a JSON array
(`Content-Type: application/json`) or NDJSON, one event per line
(`Content-Type: application/x-ndjson`), at most {max_events} events and {max_mib:g} MiB per
request, {max_event} bytes per event.

The answer lists every event, in order, `accepted` or `rejected` with a reason and a detail
naming the field. It is sent once Kafka acknowledged every accepted event (acks=all):
`accepted` means durably recorded. Re-sending is safe: an event already recorded is
dropped downstream as a `duplicate` (visible on `charter.dead-letter`), never counted
twice. On 503 and 429, wait `Retry-After` seconds and send the same request again.
"""


#: Module level: FastAPI resolves the handler's (string) annotations in this module's namespace.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="networkToken",
    description="A token of your network, created with `charter tokens create --network <network>`.",
)


def _error(status: int, description: str) -> dict[str, Any]:
    return {"model": ErrorAnswer, "description": description}


def _answer(error: IntakeError) -> JSONResponse:
    return JSONResponse(error.answer.model_dump(), status_code=error.status, headers=error.headers)


def events_router(
    settings: IngestSettings,
    intake: HttpIntake,
    tokens: TokenRegistry,
    limiter: RateLimiter,
    ready: Callable[[], bool],
) -> APIRouter:
    """The router of ``POST /v1/events``."""
    router = APIRouter(tags=["events"])
    request_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": settings.max_request_events,
                    "items": {"$ref": "#/components/schemas/Event"},
                }
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "One event (a JSON object) per line."}
            },
        },
    }

    @router.post(
        "/v1/events",
        summary="Publish events (JSON array or NDJSON)",
        description=_DESCRIPTION.format(
            max_events=settings.max_request_events,
            max_mib=settings.max_request_bytes / 1_048_576,
            max_event=settings.max_event_bytes,
        ),
        response_model=IngestReport,
        responses={
            400: _error(400, "The body is not a JSON array (or NDJSON), or holds no event."),
            401: _error(401, "No token, or a token that is unknown, expired or revoked."),
            403: _error(403, "The token's network is not served by this ingest."),
            413: _error(413, "The body is larger than the documented limit, or holds too many events."),
            415: _error(415, "Neither JSON nor NDJSON."),
            429: _error(429, "The token's rate limit is reached; retry after Retry-After seconds."),
            503: _error(503, "Kafka is unreachable; nothing was recorded as accepted. Retry after Retry-After."),
        },
        openapi_extra={"requestBody": request_body},
    )
    async def post_events(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Any:
        arrival = datetime.now(UTC)
        try:
            network, token_id = _authorise(credentials, tokens, settings)
            if not ready():
                raise _unavailable(settings, "Kafka is not connected yet")
            body = await _read_body(request, settings.max_request_bytes)
            items = split_body(body, request.headers.get("content-type"), settings.max_request_events)
            wait = limiter.acquire(token_id, len(items))
            if wait > 0:
                raise IntakeError(
                    429,
                    "rate_limited",
                    f"at most {limiter.rate:g} events per second for this token",
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
            try:
                report = await intake.receive(network, items, arrival)
            except KafkaUnavailableError as exc:
                raise _unavailable(settings, f"Kafka did not acknowledge the events ({exc})") from exc
        except IntakeError as error:
            return _answer(error)
        return report

    return router


def _authorise(
    credentials: HTTPAuthorizationCredentials | None, tokens: TokenRegistry, settings: IngestSettings
) -> tuple[str, str]:
    challenge = {"WWW-Authenticate": 'Bearer realm="charter"'}
    if credentials is None:
        raise IntakeError(401, "unauthorized", "send your network's token: Authorization: Bearer <token>", challenge)
    verdict = tokens.authenticate(credentials.credentials)
    if isinstance(verdict, Refused):
        raise IntakeError(
            401, "unauthorized", verdict.detail, {"WWW-Authenticate": 'Bearer realm="charter", error="invalid_token"'}
        )
    if verdict.network not in settings.networks:
        raise IntakeError(403, "forbidden", f"network {verdict.network!r} is not served by this ingest")
    return verdict.network, verdict.token_id


def _unavailable(settings: IngestSettings, detail: str) -> IntakeError:
    return IntakeError(
        503,
        "kafka_unavailable",
        f"{detail}; nothing was recorded as accepted, send the request again",
        {"Retry-After": str(settings.retry_after_seconds)},
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it exceeds ``limit`` bytes (never read whole into memory first)."""
    too_large = IntakeError(413, "too_large", f"the body exceeds {limit} bytes; split it into several requests")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise IntakeError(415, "unsupported_media_type", f"Content-Encoding {encoding!r} is not supported")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def document_event_schemas(app: FastAPI) -> None:
    """Add the contract's event schemas to the OpenAPI document (the request body refers to them)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        event = EVENT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(event.pop("$defs", {}))
        components["Event"] = {"title": "Event", **event}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
