"""Metrics for Prometheus (outside /v1: a scraper holds no API key; a token of its own, if set)."""

import hmac
from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.openapi import ResponseSpec

from entrypoints.http.errors import documented, error_response
from entrypoints.http.metrics import Metrics
from entrypoints.settings import Settings

BEARER = "bearer "
NEEDS_TOKEN = (
    "SESSIONMETER_METRICS_TOKEN is set and the request's Authorization is not `Bearer <that token>`"
)


EXPOSITION = "text/plain; version=0.0.4"


@get(
    "/metrics",
    tags=["operations"],
    summary="The server's metrics, in Prometheus text format",
    operation_id="getMetrics",
    description=(
        "Counters and histograms of requests, sessions, events, refusals, charges, webhooks "
        "and background jobs, and the active sessions at the latest reaper run; with several "
        "workers, the sum over all of them. No key unless the server sets "
        "SESSIONMETER_METRICS_TOKEN: then `Authorization: Bearer <token>`."
    ),
    media_type=MediaType.TEXT,
    responses={
        200: ResponseSpec(
            str,
            media_type=MediaType.TEXT,
            description="Prometheus text exposition format 0.0.4",
            generate_examples=False,
        ),
        **documented({401: NEEDS_TOKEN}),
    },
)
async def metrics(request: Request[Any, Any, Any]) -> Response[Any]:
    settings: Settings = request.app.state.settings
    if settings.metrics_token and not _bears(request.headers.get("authorization"), settings):
        return error_response(401, "unauthorized", "this needs the metrics token")
    collected: Metrics = request.app.state.metrics
    # Prometheus's text format; Litestar adds the charset to a text/ type itself.
    return Response(collected.exposition(), media_type=EXPOSITION)


def _bears(authorization: str | None, settings: Settings) -> bool:
    """Whether the header carries the token; compared in constant time, so that the time of a
    refusal says nothing of how much of a guess was right."""
    if not authorization or not authorization.lower().startswith(BEARER):
        return False
    given = authorization[len(BEARER) :].strip().encode()
    return hmac.compare_digest(given, (settings.metrics_token or "").encode())
