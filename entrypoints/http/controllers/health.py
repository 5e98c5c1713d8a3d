"""Health: whether the service and its storage answer (no key, outside /v1)."""

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from application.health.check_health import CheckHealth, CheckHealthQuery
from entrypoints.http.errors import RETRY_STORAGE_AFTER, documented, error_response, retry_after
from entrypoints.http.openapi import rules_of
from entrypoints.http.schemas.common import StatusOut


@get(
    "/health",
    tags=["health"],
    summary="Whether the service and its storage answer",
    operation_id="checkHealth",
    description=rules_of(CheckHealth),
    responses=documented({503: "the storage does not answer"}),
)
async def health(check_health: NamedDependency[CheckHealth]) -> Response[Any]:
    if (await check_health(CheckHealthQuery())).storage_answers:
        return Response(StatusOut("ok"))
    unavailable = "the storage does not answer"
    return error_response(503, "unavailable", unavailable, retry_after(RETRY_STORAGE_AFTER))
