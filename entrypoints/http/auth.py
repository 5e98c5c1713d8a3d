"""API keys in, a Principal (tenant and role) out.

The /v1 router has one guard, `admitted` (the key, then the URL's text), and each controller
under it says the role its routes need with `opt = needs(role)`.
Guards run before Litestar reads the body, so a caller without the right key learns 401 or 403,
never what its body got wrong.
"""

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler

from application.tenants.authenticate import Authenticate, Principal
from domain.tenants import Role
from entrypoints.http.rate_limits import RateLimits
from entrypoints.http.request import header, text_in_the_url

BEARER = "bearer "
# How routes document a refused key (their 401 and 403 responses in the OpenAPI schema).
AUTH = "the API key is missing, unknown, revoked or expired"
NEEDS_APP = "the key is an ingest key: this needs an app or admin key"
NEEDS_ADMIN = "the key is not an admin key"
OUT_OF_SCOPE = "the key is scoped to other resources or devices"
# The key of a layer's `opt` that names the role its routes need.
ROLE = "role"
# The key of the `opt` of the one route that also takes its API key as the query parameter `key`:
# the exit, which pages send with navigator.sendBeacon as they go, and a beacon cannot set
# headers. Elsewhere a key in the URL is ignored: URLs end up in logs and browser histories.
KEY_IN_QUERY = "key_in_query"
# Where the guard leaves the caller's Principal in the connection's state.
PRINCIPAL = "principal"


def needs(role: Role) -> dict[str, Role]:
    """The `opt` of a layer whose routes need a key with `role`."""
    return {ROLE: role}


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """X-API-Key, else a bearer token (each header's first), else the query's `key` where the
    route takes one. Read from the scope's raw headers (`request.header`)."""
    if key := header(connection.scope, b"x-api-key"):
        return key
    bearer = header(connection.scope, b"authorization") or ""
    if bearer.lower().startswith(BEARER):
        return bearer[len(BEARER) :].strip()
    if connection.route_handler.opt.get(KEY_IN_QUERY):
        return connection.query_params.get("key")
    return None


async def authenticated(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Authenticate the caller, check that its key has the role the route needs, and count the
    request against the key's rate limit."""
    authenticate: Authenticate = connection.app.state.use_cases.get("authenticate")
    principal = await authenticate(presented_key(connection))
    _state(connection)[PRINCIPAL] = principal.require(route_handler.opt[ROLE])
    rate_limits: RateLimits = connection.app.state.rate_limits
    await rate_limits.count(principal)


async def admitted(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """The /v1 guard. The key first: a caller without one learns 401 before anything about its
    URL. One guard calling both, not two: Litestar copies the route handler for each guard."""
    await authenticated(connection, route_handler)
    await text_in_the_url(connection, route_handler)


def _principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = _state(request)[PRINCIPAL]
    return principal


def _state(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
    """The connection's state as Litestar keeps it, in its scope (`connection.state` wraps it in
    a new State object at each access)."""
    state: dict[str, Any] = connection.scope.setdefault("state", {})
    return state


# The `caller` parameter of handlers behind the guard: the principal the guard resolved.
current_principal = Provide(_principal, sync_to_thread=False)
