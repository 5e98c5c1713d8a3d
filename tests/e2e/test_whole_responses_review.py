"""Whole responses (entrypoints/cli/whole_responses.py) against the real server process, over raw
sockets: every answer arrives complete and parseable, in order, on connections kept alive,
pipelined or expecting a `100 Continue`; answers without a body (HEAD, 204) included. The bytes
are parsed here, strictly, with a timeout on every read: a head held and never written fails a
test in seconds rather than hanging it (as the answer to HEAD did, found here).

Not tested: a client that half-closes its connection after its request. uvicorn closes the
connection at the client's EOF, and drops an answer not written by then (with its own protocol
as with this one): whether a quick answer gets out first is a race."""

import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from entrypoints.cli.request_deadline import TIMED_OUT
from entrypoints.http.shipped import REDOC_JS, STATIC, VENDORED
from tests.e2e.serving import Server, acme_app_key, deadlines, serving
from tests.e2e.test_slow_clients import (
    BODY_LENGTH,
    HEAD_OF_A_BATCH,
    MARGIN_SECONDS,
    REQUEST_TIMEOUT_SECONDS,
    TRICKLE_EVERY_SECONDS,
    held_for,
)

pytestmark = pytest.mark.slow

KEEP_ALIVE_SECONDS = 30  # longer than any test here: a close is the server's answer, not idleness
ANSWER_WITHIN_SECONDS = 5  # for each read: an answer on a loopback socket takes milliseconds
MAX_BODY_BYTES = 1024 * 1024  # entrypoints.settings.Settings.max_body_bytes
STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ([^\r\n]*)")
HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*?)[ \t]*")
CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]+)(;[^\r\n]*)?")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case, each once
    body: bytes

    def error(self) -> str:
        """The `error` code of the API's JSON error envelope."""
        assert self.headers["content-type"] == "application/json", self.headers
        code: str = json.loads(self.body)["error"]
        return code


class Reader:
    """The bytes a connection received, read as HTTP/1.1 answers, one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.unread = b""

    def _receive(self) -> None:
        try:
            received = self.sock.recv(65536)
        except TimeoutError:
            raise AssertionError(
                f"nothing more within {ANSWER_WITHIN_SECONDS} s; unread: {self.unread!r}"
            ) from None
        assert received, f"the server closed the connection; unread: {self.unread!r}"
        self.unread += received

    def _through(self, marker: bytes) -> bytes:
        while (end := self.unread.find(marker)) < 0:
            self._receive()
        taken, self.unread = self.unread[:end], self.unread[end + len(marker) :]
        return taken

    def _exactly(self, count: int) -> bytes:
        while len(self.unread) < count:
            self._receive()
        taken, self.unread = self.unread[:count], self.unread[count:]
        return taken

    def answer(self, *, to_head: bool = False) -> Answer:
        """The next answer, whole: its head, then the body its head announces (none to a HEAD,
        nor for a 1xx, 204 or 304)."""
        status_line, *lines = self._through(b"\r\n\r\n").split(b"\r\n")
        matched = STATUS_LINE.fullmatch(status_line)
        assert matched, status_line
        status = int(matched[1])
        headers: dict[str, str] = {}
        for line in lines:
            header = HEADER.fullmatch(line)
            assert header, line
            name = header[1].decode().lower()
            assert name not in headers, f"{name} twice in {lines}"
            headers[name] = header[2].decode()
        if to_head or status < 200 or status in (204, 304):
            return Answer(status, headers, b"")
        if headers.get("transfer-encoding") == "chunked":
            assert "content-length" not in headers, headers
            return Answer(status, headers, self._chunked())
        assert "content-length" in headers, f"no length in {headers}: a close-delimited body"
        return Answer(status, headers, self._exactly(int(headers["content-length"])))

    def _chunked(self) -> bytes:
        body = b""
        while True:
            size = CHUNK_SIZE.fullmatch(self._through(b"\r\n"))
            assert size, self.unread
            if (length := int(size[1], 16)) == 0:
                assert self._through(b"\r\n") == b"", "trailers"
                return body
            body += self._exactly(length)
            assert self._exactly(2) == b"\r\n", "a chunk not ended by CRLF"

    def nothing_more(self, within: float = 0.5) -> None:
        """Nothing was received past the answers read, nor arrives within `within` seconds;
        the connection is still open."""
        self.sock.settimeout(within)
        try:
            received = self.sock.recv(65536)
        except TimeoutError:
            received = None
        finally:
            self.sock.settimeout(ANSWER_WITHIN_SECONDS)
        assert received is None, f"unexpected bytes, or a close (b''): {received!r}"
        assert self.unread == b"", self.unread

    def closed(self) -> None:
        """The server closed the connection, with nothing past the answers read."""
        while True:
            try:
                received = self.sock.recv(65536)
            except TimeoutError:
                raise AssertionError("the connection is still open") from None
            except ConnectionResetError:
                break
            if received == b"":
                break
            self.unread += received
        assert self.unread == b"", self.unread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    options = deadlines(KEEP_ALIVE_SECONDS, REQUEST_TIMEOUT_SECONDS)
    with serving(tmp_path_factory.mktemp("whole-responses"), *options) as server:
        yield server


@pytest.fixture(scope="module")
def app_key(server: Server) -> str:
    return acme_app_key(server)


@pytest.fixture
def connection(server: Server) -> Iterator[tuple[socket.socket, Reader]]:
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.settimeout(ANSWER_WITHIN_SECONDS)
        yield sock, Reader(sock)


def request(method: str, path: str, *headers: str, body: bytes | None = None) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: sessionmeter", *headers]
    if body is not None:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


def batch(key: str, body: bytes, *headers: str) -> bytes:
    return request(
        "POST",
        "/v1/events/batch",
        f"X-API-Key: {key}",
        "Content-Type: application/json",
        *headers,
        body=body,
    )


HEALTH = request("GET", "/health")
OK = {"status": "ok"}


def assert_whole(answer: Answer, status: int) -> None:
    assert answer.status == status, answer
    if "content-length" in answer.headers:
        assert int(answer.headers["content-length"]) == len(answer.body), answer
    assert "x-request-id" in answer.headers, answer  # the app's own header: the head is the app's


def test_many_answers_on_one_connection_errors_among_them_each_whole(
    connection: tuple[socket.socket, Reader], app_key: str
) -> None:
    sock, reader = connection
    exchanges = [
        (HEALTH, 200, None),
        (request("GET", "/v1/sessions"), 401, "unauthorized"),
        (request("GET", "/no/such/route"), 404, "not_found"),
        (request("DELETE", "/health"), 405, "method_not_allowed"),
        (batch(app_key, b'{"events": "not a list"}'), 422, "validation_error"),
        (batch(app_key, b"{not json"), 400, "malformed_json"),
        (request("OPTIONS", "/health"), 204, None),
        (HEALTH, 200, None),
    ]

    for sent, status, error in exchanges:
        sock.sendall(sent)
        answer = reader.answer()

        assert_whole(answer, status)
        if error is not None:
            assert answer.error() == error, answer
        reader.nothing_more(within=0.05)
    assert json.loads(answer.body) == OK


def test_a_body_too_large_gets_its_413_whole(
    connection: tuple[socket.socket, Reader], app_key: str
) -> None:
    sock, reader = connection
    body = b"[" + b" " * 3 * MAX_BODY_BYTES + b"]"  # refused at its length, then sent all

    sock.sendall(batch(app_key, body))
    answer = reader.answer()

    assert_whole(answer, 413)
    assert answer.error() == "payload_too_large"
    assert "connection" not in answer.headers  # kept alive: the body is read past, then...
    sock.sendall(HEALTH)
    assert_whole(reader.answer(), 200)  # ...the next request answered, whole
    reader.nothing_more()


def test_pipelined_requests_are_answered_whole_and_in_order(
    connection: tuple[socket.socket, Reader],
) -> None:
    sock, reader = connection
    ids = ["first", "second", "third", "fourth"]
    paths = ["/health", "/no/such/route", "/v1/tracker.js", "/health"]
    sock.sendall(
        b"".join(
            request("GET", path, f"X-Request-ID: {rid}")
            for path, rid in zip(paths, ids, strict=True)
        )
    )

    answers = [reader.answer() for _ in ids]

    assert [a.headers["x-request-id"] for a in answers] == ids
    assert [a.status for a in answers] == [200, 404, 200, 200]
    for answer in answers:
        assert_whole(answer, answer.status)
    assert answers[2].body == (STATIC / "tracker.js").read_bytes()
    reader.nothing_more()


def test_a_head_request_on_a_kept_alive_connection_gets_its_head(
    connection: tuple[socket.socket, Reader],
) -> None:
    """Every route of this API answers HEAD with 405 (GET only): its head, no body."""
    sock, reader = connection

    sock.sendall(request("HEAD", "/health"))
    answer = reader.answer(to_head=True)

    assert answer.status == 405 and "content-length" in answer.headers, answer
    reader.nothing_more()  # no body after the head of an answer to HEAD
    sock.sendall(HEALTH)
    assert_whole(reader.answer(), 200)


def test_a_head_request_pipelined_before_a_get_is_answered_first(
    connection: tuple[socket.socket, Reader],
) -> None:
    sock, reader = connection

    sock.sendall(request("HEAD", "/health", "X-Request-ID: head") + HEALTH)
    to_head = reader.answer(to_head=True)

    assert (to_head.status, to_head.headers["x-request-id"]) == (405, "head"), to_head
    assert_whole(reader.answer(), 200)
    reader.nothing_more()


def test_a_head_request_on_a_connection_it_closes_gets_its_head_then_the_close(
    connection: tuple[socket.socket, Reader],
) -> None:
    sock, reader = connection

    sock.sendall(request("HEAD", "/health", "Connection: close"))
    answer = reader.answer(to_head=True)

    assert answer.status == 405 and answer.headers["connection"] == "close", answer
    reader.closed()


def test_an_answer_without_a_body_is_whole_and_the_connection_goes_on(
    connection: tuple[socket.socket, Reader],
) -> None:
    """Litestar's OPTIONS answer, 204: no body, no length. (No route of this API answers 304:
    its static files take no If-None-Match.)"""
    sock, reader = connection

    sock.sendall(request("OPTIONS", "/health") + request("OPTIONS", "/v1/tracker.js"))
    preflights = [reader.answer(), reader.answer()]
    sock.sendall(HEALTH)
    after = reader.answer()

    for preflight in preflights:
        assert_whole(preflight, 204)
        assert "content-length" not in preflight.headers, preflight
        assert "transfer-encoding" not in preflight.headers, preflight
    assert {p.headers["allow"] for p in preflights} <= {"GET, OPTIONS", "OPTIONS, GET"}
    assert_whole(after, 200)
    assert json.loads(after.body) == OK
    reader.nothing_more()


def test_a_continue_comes_before_the_body_is_sent_and_the_answer_whole_after_it(
    connection: tuple[socket.socket, Reader], app_key: str
) -> None:
    sock, reader = connection
    body = b'{"events": "not a list"}'
    whole = batch(app_key, body, "Expect: 100-continue")

    sock.sendall(whole.removesuffix(body))
    interim = reader.answer()
    assert (interim.status, interim.headers, reader.unread) == (100, {}, b"")
    sock.sendall(body)
    final = reader.answer()

    assert_whole(final, 422)
    assert final.error() == "validation_error"
    sock.sendall(HEALTH)
    assert_whole(reader.answer(), 200)
    reader.nothing_more()


def test_a_request_refused_before_its_body_gets_no_continue_only_its_answer(
    connection: tuple[socket.socket, Reader],
) -> None:
    sock, reader = connection
    body = b"[]"
    whole = batch("not-a-key", body, "Expect: 100-continue")

    sock.sendall(whole.removesuffix(body))
    answer = reader.answer()

    assert_whole(answer, 401)
    assert answer.error() == "unauthorized"
    reader.nothing_more()


def test_an_http_1_0_request_gets_its_answer_whole_then_the_close(
    connection: tuple[socket.socket, Reader],
) -> None:
    sock, reader = connection

    sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
    answer = reader.answer()

    assert_whole(answer, 200)
    assert answer.headers["connection"] == "close"
    reader.closed()


@pytest.mark.parametrize("answered_before", [0, 1])
def test_the_408_of_a_trickled_body_arrives_whole_then_the_close(
    connection: tuple[socket.socket, Reader], app_key: str, answered_before: int
) -> None:
    sock, reader = connection
    for _ in range(answered_before):  # an answer went out whole on this connection first
        sock.sendall(HEALTH)
        assert_whole(reader.answer(), 200)
    sock.settimeout(TRICKLE_EVERY_SECONDS)  # held_for's pace

    sock.sendall(HEAD_OF_A_BATCH.format(key=app_key, length=BODY_LENGTH).encode())
    held, answered = held_for(sock, REQUEST_TIMEOUT_SECONDS + MARGIN_SECONDS, b" ")

    assert answered == TIMED_OUT
    assert held < REQUEST_TIMEOUT_SECONDS + MARGIN_SECONDS  # closed, not given up on


def test_a_chunked_request_body_gets_its_answer_whole(
    connection: tuple[socket.socket, Reader], app_key: str
) -> None:
    sock, reader = connection
    body = b'{"events": "not a list"}'
    head = request(
        "POST",
        "/v1/events/batch",
        f"X-API-Key: {app_key}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
    )

    sock.sendall(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    answer = reader.answer()

    assert_whole(answer, 422)
    assert answer.error() == "validation_error"
    reader.nothing_more()


def test_large_answers_arrive_whole_to_a_client_slow_to_read(
    connection: tuple[socket.socket, Reader],
) -> None:
    """The Redoc bundle (1 MB, a file sent in parts) and the OpenAPI schema, asked for together;
    read once the server's writes had time to fill the socket's buffers and pause."""
    sock, reader = connection
    sock.sendall(request("GET", REDOC_JS) + request("GET", "/schema/openapi.json") + HEALTH)
    sock.recv(1, socket.MSG_PEEK)  # the first byte is in: the server is writing
    time.sleep(0.5)  # and has filled the buffers, and waits for the client to read

    bundle, schema, after = reader.answer(), reader.answer(), reader.answer()

    assert_whole(bundle, 200)
    assert bundle.body == (STATIC / "vendor" / REDOC_JS.removeprefix(f"{VENDORED}/")).read_bytes()
    assert_whole(schema, 200)
    assert json.loads(schema.body)["info"]["title"] == "sessionmeter"
    assert_whole(after, 200)
    reader.nothing_more()
