"""Bodies are decoded strictly by msgspec into the handler's `data` type.

Litestar's own decoding converts leniently ("5" becomes 5) and names only top-level fields; this
request class decodes the raw body against the declared type instead, so a wrong type is a 422
naming the full path (`events[3].at`), and the OpenAPI schema still documents the body. It reads
JSON whatever the Content-Type says, so `navigator.sendBeacon` (text/plain) works.
"""

from typing import Any

import msgspec
from litestar import Request
from litestar.types import Empty

# Litestar's name for the handler parameter that receives the body.
BODY_PARAMETER = "data"


class StrictJSONRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        if self._json is Empty:
            body = await self.body()
            data = self.route_handler.parsed_fn_signature.parameters.get(BODY_PARAMETER)
            target = Any if data is None else data.annotation
            try:
                self._json = msgspec.json.decode(body or b"null", type=target, strict=True)
            except RecursionError:
                raise msgspec.DecodeError("JSON nested too deep") from None
        return self._json
