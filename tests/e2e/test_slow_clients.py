"""Slow clients against the real server process, over raw sockets: how long each may hold a
connection.

Bounded: a connection idle after a response (`--keep-alive`), a request that does not arrive
whole in time — nothing sent after connecting, headers or a body trickled a byte at a time
(`--request-timeout`, entrypoints.cli.request_deadline: uvicorn alone has no such deadline) —
and a stop held up by a request in progress (`--graceful-shutdown`).
"""

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.serving import Server, acme_app_key, deadlines, serving

pytestmark = pytest.mark.slow

KEEP_ALIVE_SECONDS = 1
GRACEFUL_SHUTDOWN_SECONDS = 1
REQUEST_TIMEOUT_SECONDS = 2
MARGIN_SECONDS = 2  # the server's timers are checked by a loop under load from other tests
TRICKLE_EVERY_SECONDS = 0.25

HEAD_OF_A_BATCH = (
    "POST /v1/events/batch HTTP/1.1\r\nHost: sessionmeter\r\nX-API-Key: {key}\r\n"
    "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
)
BODY_LENGTH = 1024  # announced, never all sent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    options = deadlines(KEEP_ALIVE_SECONDS, REQUEST_TIMEOUT_SECONDS)
    with serving(tmp_path_factory.mktemp("slow-clients"), *options) as server:
        yield server


@pytest.fixture(scope="module")
def app_key(server: Server) -> str:
    return acme_app_key(server)


def connected(server: Server) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(TRICKLE_EVERY_SECONDS)
    return sock


def held_for(sock: socket.socket, within: float, trickle: bytes = b"") -> tuple[float, bytes]:
    """Seconds until the server closes the connection (`within` and a trickle at most, when it
    is still open then), sending `trickle` every TRICKLE_EVERY_SECONDS; and what it answered."""
    start = time.monotonic()
    answered = b""
    while (elapsed := time.monotonic() - start) < within:
        try:
            sock.sendall(trickle)
            if (received := sock.recv(65536)) == b"":
                return elapsed, answered
            answered += received
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return elapsed, answered
    return time.monotonic() - start, answered


def test_a_connection_idle_after_its_response_is_closed_after_the_keep_alive(
    server: Server,
) -> None:
    with connected(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: sessionmeter\r\n\r\n")
        held, answered = held_for(sock, KEEP_ALIVE_SECONDS + MARGIN_SECONDS)

    assert answered.startswith(b"HTTP/1.1 200")

    assert held < KEEP_ALIVE_SECONDS + MARGIN_SECONDS


@pytest.mark.parametrize("kind", ["idle", "trickled headers", "trickled body"])
def test_a_client_that_sends_its_request_too_slowly_is_disconnected(
    server: Server, app_key: str, kind: str
) -> None:
    head = HEAD_OF_A_BATCH.format(key=app_key, length=BODY_LENGTH).encode()
    opening, trickle = {
        "idle": (b"", b""),
        "trickled headers": (b"GET /health HTTP/1.1\r\n", b"X"),
        "trickled body": (head, b" "),
    }[kind]
    with connected(server) as sock:
        sock.sendall(opening)
        held, answered = held_for(sock, REQUEST_TIMEOUT_SECONDS + MARGIN_SECONDS, trickle)

    assert REQUEST_TIMEOUT_SECONDS - 0.5 < held < REQUEST_TIMEOUT_SECONDS + MARGIN_SECONDS
    if kind == "idle":
        assert answered == b""  # nothing was asked, so nothing is answered
    else:
        assert answered.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in answered


def test_a_client_trickling_a_body_holds_a_stop_for_the_graceful_shutdown_at_most(
    tmp_path: Path,
) -> None:
    options = ("--graceful-shutdown", str(GRACEFUL_SHUTDOWN_SECONDS))
    # uvicorn logs the request it cancels with its traceback: what `serving` refuses to see.
    with (
        pytest.raises(AssertionError, match="timeout graceful shutdown exceeded"),
        serving(tmp_path, *options) as server,
    ):
        key = acme_app_key(server)
        sock = connected(server)
        sock.sendall(HEAD_OF_A_BATCH.format(key=key, length=BODY_LENGTH).encode())
        held_for(sock, 0.5, b" ")  # the application is reading the body now
        stopping = time.monotonic()
    stopped_after = time.monotonic() - stopping
    sock.close()

    assert stopped_after < GRACEFUL_SHUTDOWN_SECONDS + MARGIN_SECONDS
