"""Bodies are decoded strictly by msgspec into the handler's `data` type.

Litestar's own decoding converts leniently ("5" becomes 5) and names only top-level fields; this
request class decodes the raw body against the declared type instead, so a wrong type is a 422
naming the full path (`events[3].at`), and the OpenAPI schema still documents the body. It reads
JSON whatever the Content-Type says, so `navigator.sendBeacon` (text/plain) works. JSON is UTF-8
(RFC 8259): a body that is not is malformed as a whole, even where msgspec would skip the bytes
(an unknown field) or meet them only later (a batch's items are decoded one by one). The guard
`text_in_the_url` holds the URL's path segments and query parameters to text every store keeps.
"""

from typing import Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import ClientException
from litestar.handlers import BaseRouteHandler
from litestar.types import Empty, Scope

from domain.errors import InvalidInput

# Litestar's name for the handler parameter that receives the body.
BODY_PARAMETER = "data"


class StrictJSONRequest(Request[Any, Any, Any]):
    @property
    def content_length(self) -> int | None:
        # As Litestar's, from the one header rather than from `headers` (see `header`).
        if self._content_length is Empty:
            value = header(self.scope, b"content-length")
            try:
                self._content_length = None if value is None else int(value)
            except ValueError:
                raise ClientException(f"Invalid content-length: {value!r}") from None
        return self._content_length

    async def json(self) -> Any:
        if self._json is Empty:
            body = await self.body()
            data = self.route_handler.parsed_fn_signature.parameters.get(BODY_PARAMETER)
            target = Any if data is None else data.annotation
            try:
                body.decode()
            except UnicodeDecodeError as error:
                raise msgspec.DecodeError(f"invalid UTF-8 at byte {error.start}") from None
            try:
                self._json = msgspec.json.decode(body or b"null", type=target, strict=True)
            except RecursionError:
                raise msgspec.DecodeError("JSON nested too deep") from None
        return self._json


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header, `name` in lower case. Read from the scope's raw
    headers: a connection's `headers` decodes every header into a Headers object first. (ASGI
    servers lowercase header names, but need not.)"""
    for raw_name, value in scope["headers"]:
        if raw_name.lower() == name:
            return value.decode("latin-1")
    return None


async def text_in_the_url(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """A guard: no path segment or query parameter holds a NUL (%00). No store keeps one
    (PostgreSQL refuses it in any text it is asked to compare), so such a value names nothing,
    and every store refuses it alike. (Async though it awaits nothing: Litestar runs a sync
    guard in a worker thread, which cost more than the check.)"""
    sent = [*connection.path_params.items()]
    if connection.scope.get("query_string"):  # parsed only if there is one
        sent += connection.query_params.multi_items()
    for name, value in sent:
        if isinstance(value, str) and "\x00" in value:
            raise InvalidInput(name, "must not contain NUL characters")
