"""API keys in, a Principal (tenant and role) out; each controller says which role it needs."""

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from application.authenticate import Authenticate, Principal
from domain.tenants import Role

BEARER = "bearer "


def presented_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith(BEARER):
        return authorization[len(BEARER) :].strip()
    return None


def requires(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks that its key has `role`."""

    async def caller(
        request: Request[Any, Any, Any], authenticate: NamedDependency[Authenticate]
    ) -> Principal:
        principal = await authenticate(presented_key(request))
        return principal.require(role)

    return caller
