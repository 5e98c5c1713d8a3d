"""The protocol `serve` runs writes each response's head with its body: one send to the socket
where uvicorn alone makes two (entrypoints/cli/whole_responses.py). Driven here as uvicorn drives
it, bytes in from a connection and writes out to its transport, with a small ASGI app that
answers as the API does, streams, or fails midway."""

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from entrypoints.cli.serve import ServerProtocol

GET = b"GET /%s HTTP/1.1\r\nHost: sessionmeter\r\n\r\n"
HEAD = b"HEAD /whole HTTP/1.1\r\nHost: sessionmeter\r\n\r\n"
EXPECTING = (
    b"POST /whole HTTP/1.1\r\nHost: sessionmeter\r\nExpect: 100-continue\r\n"
    b"Content-Length: 2\r\n\r\n"
)


class Connection:
    """The transport uvicorn writes to, keeping each write apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self._changed = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self._changed.set()

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    async def changed(self) -> None:
        await self._changed.wait()
        self._changed.clear()

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/whole":
        await receive()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})
    elif path == "/streamed":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one", b"two"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/fails":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("the app failed after its head")


def connected() -> tuple[ServerProtocol, Connection]:
    config = Config(app=app, http=ServerProtocol, lifespan="off", log_level="critical")
    protocol = ServerProtocol(config=config, server_state=ServerState(), app_state={})
    connection = Connection()
    protocol.connection_made(connection)  # type: ignore[arg-type]
    return protocol, connection


async def answered(protocol: ServerProtocol, connection: Connection) -> None:
    while not connection.closed and not (protocol.cycle and protocol.cycle.response_complete):
        await connection.changed()


def served(*requests: bytes) -> Connection:
    """What the protocol wrote to a connection that sent `requests`, each once the answer to the
    one before it is out."""

    async def serve() -> Connection:
        protocol, connection = connected()
        for request in requests:
            protocol.data_received(request)
            await answered(protocol, connection)
        protocol.connection_lost(None)
        return connection

    return asyncio.run(asyncio.wait_for(serve(), 5))


def test_a_whole_answer_goes_out_in_one_write() -> None:
    connection = served(GET % b"whole", GET % b"whole")

    assert len(connection.writes) == 2, connection.writes  # one a response
    for written in connection.writes:
        head, body = written.split(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b'{"ok":true}'


def test_the_head_of_an_answer_to_head_goes_out_alone_and_the_connection_goes_on() -> None:
    writes = served(HEAD, GET % b"whole").writes

    assert len(writes) == 2, writes
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n")
    assert writes[1].endswith(b'\r\n\r\n{"ok":true}'), writes


def test_a_continue_goes_out_before_the_answer_and_the_answer_whole() -> None:
    async def expecting() -> list[bytes]:
        protocol, connection = connected()
        protocol.data_received(EXPECTING)
        await connection.changed()  # the app asked for the body: the client may send it
        protocol.data_received(b"{}")
        await answered(protocol, connection)
        protocol.connection_lost(None)
        return connection.writes

    writes = asyncio.run(asyncio.wait_for(expecting(), 5))

    assert writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n", writes
    assert len(writes) == 2 and writes[1].endswith(b'\r\n\r\n{"ok":true}'), writes


def test_a_streamed_answer_sends_its_head_with_its_first_part_and_the_rest_as_it_comes() -> None:
    writes = served(GET % b"streamed").writes

    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n3\r\none\r\n")
    assert writes[1:] == [b"3\r\ntwo\r\n", b"0\r\n\r\n"], writes


def test_an_app_failing_after_its_head_still_gets_its_head_out_before_the_close() -> None:
    connection = served(GET % b"fails")

    assert connection.closed
    assert len(connection.writes) == 1 and connection.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
