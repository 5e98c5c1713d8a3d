"""What every request leaves behind: its request id (echoed in X-Request-ID), its count and
duration in the metrics, and one log line (method, route template, status, ms, tenant id).

An ASGI wrapper around the app's exception handling rather than a Litestar middleware: Litestar
runs middleware only once a route matched, and a 404, a 405 or a CORS preflight must be counted,
logged and given its request id too.
"""

import logging
import os
import re
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from application.tenants.authenticate import Principal
from entrypoints.http.auth import PRINCIPAL
from entrypoints.http.metrics import UNMATCHED, Metrics
from entrypoints.logs import request_id

log = logging.getLogger(__name__)

REQUEST_ID = b"x-request-id"
# A request id taken as the client sent it: short and harmless in a header and a log line.
_SANE_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def observed(app: ASGIApp) -> ASGIApp:
    async def observe(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _request_id(scope)
        echoed = (REQUEST_ID, rid.encode())
        status = 500  # unless an answer starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = request_id.set(rid)
        try:
            await app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            _record(scope, rid, status, seconds)
            request_id.reset(token)

    return observe


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID:
            return value.decode() if _SANE_ID.fullmatch(value) else _new_request_id()
    return _new_request_id()


def _new_request_id() -> str:
    # 32 random hex digits, as uuid4().hex, without making a UUID (a fiftieth of a request).
    return os.urandom(16).hex()


def _record(scope: HTTPScope, rid: str, status: int, seconds: float) -> None:
    # Litestar sets the template once routing matched: a label never holds an id.
    route = scope.get("path_template") or UNMATCHED
    method: str = scope["method"]
    metrics: Metrics = scope["app"].state.metrics
    metrics.request(method, route, status, seconds)
    if not log.isEnabledFor(logging.INFO):  # request lines off: nothing more to make
        return
    fields: dict[str, Any] = {
        "method": method,
        "route": route,
        "status": status,
        "ms": round(seconds * 1000, 1),
        "request_id": rid,
    }
    # The auth guard left the caller's principal in the connection's state.
    principal: Principal | None = scope.get("state", {}).get(PRINCIPAL)
    if principal is not None:
        fields["tenant_id"] = principal.tenant.id
    log.info("%s %s %s", method, route, status, extra={"fields": fields})
