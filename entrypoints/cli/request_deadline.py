"""uvicorn's HTTP protocol with a deadline on reading each request.

uvicorn bounds a connection idle between requests (`--keep-alive`) but not the reading of a
request: a client that connects and sends nothing, or trickles its headers or body a byte at a
time, holds a connection for good (encode/uvicorn#157). Here a request must arrive whole within
`--request-timeout` seconds — of the connection for its first request, of its first byte for
the next ones — or the client gets 408 `request_timeout` (if it had begun) and is disconnected.
"""

import asyncio
import json
import os
from functools import cache

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# `serve` puts it in the environment, where each worker finds it at its first connection.
TIMEOUT_ENV = "SESSIONMETER_REQUEST_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 20.0
_BODY = json.dumps(
    {"error": "request_timeout", "detail": "the request did not arrive whole in time"}
).encode()
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BODY), _BODY)
)


@cache
def timeout_seconds() -> float:
    return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_SECONDS))


class RequestDeadline(HttpToolsProtocol):
    _deadline: asyncio.TimerHandle | None = None
    _begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(timeout_seconds(), self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        # A client that never began a request gets no answer: there is nothing to answer.
        if self._begun and (self.cycle is None or not self.cycle.response_started):
            self.transport.write(TIMED_OUT)
        self.transport.close()
