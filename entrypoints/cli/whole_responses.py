"""uvicorn's HTTP protocol, writing a response's head with its body.

uvicorn writes a response's head (status line and headers) as soon as the app sends it, and its
body when the app sends that: two sends to the socket, two TCP segments, and two wake-ups of a
client that reads the head and must wait for the rest. Every answer of this API is whole before
it starts (Litestar sends the start and then the body at once), so the head is held here and
written with the first part of the body, in one send. A streamed body's later parts, and a
`100 Continue` written before the response begins, go out as they come; the head of an answer to
HEAD, which has no body, goes out at once.
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

CONTINUE = b"HTTP/1.1 100 "


class HeadHeld:
    """The connection's transport as one request's cycle sees it. The cycle writes, in order:
    any `100 Continue`, the response's head, then its body in one or more parts. The head is
    kept until the first part of the body (or the close) and written with it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None  # the head, held
        self._begun = False  # the head has come

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif not self._begun and not data.startswith(CONTINUE):
            self._head, self._begun = data, True
            return
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:  # the app failed between the head and the body
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, ...
        return getattr(self._transport, name)


class WholeResponses(HttpToolsProtocol):
    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # An answer to HEAD has no body for the head to go with: uvicorn writes nothing more.
        if cycle.scope["method"] != "HEAD":
            # The cycle refers to its transport, never the other way round: no reference cycle
            # to leave for the collector.
            cycle.transport = HeadHeld(cycle.transport)  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)
