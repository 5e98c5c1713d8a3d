"""A LiveKit server's RoomService on a loopback port, answering ListParticipants as LiveKit does.

Twirp over HTTP: `POST /twirp/livekit.RoomService/ListParticipants` with `Authorization: Bearer
<JWT>` signed with the API secret (issuer: the key; a video grant `roomAdmin` for the room). The
body is protobuf (`application/protobuf`, what livekit-api sends) or JSON (`application/json`,
what curl users send), and the reply is in the same encoding; errors are always JSON
`{"code", "msg"}` with the status Twirp gives the code (404 `not_found`, 401 `unauthenticated`, …).

Configurable: rooms and who is in them, a room that does not exist, an error answer, and a
server that hangs (never answers); `unreachable_url()` is a port nobody listens on.
"""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from livekit import api
from livekit.protocol.models import ParticipantInfo
from livekit.protocol.room import ListParticipantsRequest, ListParticipantsResponse

from tests.livekit_server import API_KEY, API_SECRET
from tests.servers import free_port

PATH = "/twirp/livekit.RoomService/ListParticipants"
TWIRP_STATUS = {
    "not_found": 404,
    "bad_route": 404,
    "malformed": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "internal": 500,
    "unavailable": 503,
}


class FakeLiveKit:
    def __init__(self, key: str = API_KEY, secret: str = API_SECRET) -> None:
        self.key, self.secret = key, secret
        self.rooms: dict[str, dict[str, ParticipantInfo]] = {}  # room -> sid -> participant
        self.hangs = False  # take requests and never answer them
        self.error: str | None = None  # answer every request with this Twirp error code
        self.asked: list[str] = []  # the rooms asked about, in order
        self.released = threading.Event()  # lets hung requests end when the server stops
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def join(self, room: str, sid: str, identity: str, state: str = "ACTIVE") -> None:
        participant = ParticipantInfo(sid=sid, identity=identity, state=state)
        self.rooms.setdefault(room, {})[sid] = participant

    def leave(self, room: str, sid: str) -> None:
        del self.rooms[room][sid]

    def close_room(self, room: str) -> None:
        del self.rooms[room]

    def start(self) -> "FakeLiveKit":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()  # hung requests end (their clients gave up long ago)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def answer(self, token: str, request: ListParticipantsRequest) -> tuple[str, Any]:
        """("ok", the response) or (a Twirp error code, its message)."""
        self.asked.append(request.room)
        if self.error is not None:
            return self.error, "the fake server was told to fail"
        try:
            claims = api.TokenVerifier(self.key, self.secret).verify(token)
        except Exception as error:  # livekit-api raises PyJWTError subclasses and ValueErrors
            return "unauthenticated", f"invalid token: {error}"
        if not claims.video or not claims.video.room_admin or claims.video.room != request.room:
            return "permission_denied", "the token does not grant roomAdmin on this room"
        if request.room not in self.rooms:
            return "not_found", "requested room does not exist"
        participants = list(self.rooms[request.room].values())
        return "ok", ListParticipantsResponse(participants=participants)


def _handler(server: FakeLiveKit) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if server.hangs:
                server.released.wait()
                return
            if self.path != PATH:
                return self._error("bad_route", f"no handler for path {self.path}")
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            try:
                if content_type == "application/protobuf":
                    request = ListParticipantsRequest.FromString(body)
                elif content_type == "application/json":
                    request = json_format.Parse(body or b"{}", ListParticipantsRequest())
                else:
                    return self._error("bad_route", f"unexpected Content-Type: {content_type}")
            except Exception as error:  # a body that does not decode
                return self._error("malformed", f"the body does not decode: {error}")
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            code, reply = server.answer(token, request)
            if code != "ok":
                return self._error(code, reply)
            if content_type == "application/protobuf":
                self._send(200, content_type, reply.SerializeToString())
            else:
                self._send(200, content_type, json_format.MessageToJson(reply).encode())

        def _error(self, code: str, message: str) -> None:
            body = json.dumps({"code": code, "msg": message}).encode()
            self._send(TWIRP_STATUS[code], "application/json", body)

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass  # tests read what was asked from `asked`, not from standard error

    return Handler


@contextmanager
def fake_livekit(key: str = API_KEY, secret: str = API_SECRET) -> Iterator[FakeLiveKit]:
    server = FakeLiveKit(key, secret).start()
    try:
        yield server
    finally:
        server.stop()


def unreachable_url() -> str:
    """A loopback port nobody listens on: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"
