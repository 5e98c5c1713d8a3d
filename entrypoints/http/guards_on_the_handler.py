"""Guards are given the route handler itself, not a copy of it.

Litestar's `BaseRouteHandler.authorize_connection` passes each guard `copy(self)`, so that a guard
cannot change the handler. Ours (auth.admitted, the one /v1 guard) only reads the handler's
`opt`, and the copy of a handler's slots, about 10 µs a request, was 6 % of the route's samples
of a session's start and exit (py-spy on the server under benchmarks/ingest.py's pairs).

This replaces `authorize_connection` of the Litestar pinned in requirements.lock;
tests/http/test_guards_on_the_handler.py fails if an upgrade changes what it does.
"""

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler


async def _authorize_connection(
    self: BaseRouteHandler, connection: ASGIConnection[Any, Any, Any, Any]
) -> None:
    for guard in self.resolve_guards():
        await guard(connection, self)  # type: ignore[misc]  # made async: resolve_guards


def guards_on_the_handler() -> None:
    BaseRouteHandler.authorize_connection = _authorize_connection  # type: ignore[method-assign]
