"""API keys in, a Principal (tenant and role) out.

Each controller has a guard for the role it needs. Guards run before Litestar reads the body,
so a caller without the right key learns 401 or 403, never what its body got wrong.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler

from application.tenants.authenticate import Authenticate, Principal
from domain.tenants import Role

BEARER = "bearer "

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    key = connection.headers.get("x-api-key")
    if key:
        return key
    authorization = connection.headers.get("authorization", "")
    if authorization.lower().startswith(BEARER):
        return authorization[len(BEARER) :].strip()
    return None


def requires(role: Role) -> Guard:
    """A guard that authenticates the caller and checks that its key has `role`."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        authenticate: Authenticate = connection.app.state.authenticate()
        principal = await authenticate(presented_key(connection))
        connection.state.principal = principal.require(role)

    return guard


def _principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.state.principal
    return principal


# The `caller` parameter of handlers behind a guard: the principal the guard resolved.
current_principal = Provide(_principal, sync_to_thread=False)
