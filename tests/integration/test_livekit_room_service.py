"""LiveKitRoomService against a LiveKit RoomService on a loopback port (tests/fake_livekit.py),
through livekit-api's real Twirp client: who is in a room, and every way of not answering."""

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest
from livekit import api

from adapters.livekit.room_service import LiveKitRoomService
from application.livekit.ports import LiveKitUnavailable
from domain.livekit import LiveKitAccount
from tests.fake_livekit import FakeLiveKit, fake_livekit, unreachable_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def livekit() -> Iterator[FakeLiveKit]:
    with fake_livekit() as server:
        yield server


def account(
    server: FakeLiveKit, secret: str | None = None, url: str | None = None
) -> LiveKitAccount:
    return LiveKitAccount(server.key, "tenant-1", secret or server.secret, url or server.url)


async def test_a_rooms_participants_are_their_sids_and_a_room_that_is_not_there_is_none(
    livekit: FakeLiveKit,
) -> None:
    livekit.join("bootcamp", "PA_ana", "ana")
    livekit.join("bootcamp", "PA_ben", "ben", state="JOINING")
    livekit.join("bootcamp", "PA_cy", "cy", state="DISCONNECTED")  # leaving as we ask
    livekit.join("empty", "PA_dee", "dee")
    livekit.leave("empty", "PA_dee")
    rooms = LiveKitRoomService()

    assert await rooms.participants(account(livekit), "bootcamp") == {"PA_ana", "PA_ben"}
    assert await rooms.participants(account(livekit), "empty") == set()
    assert await rooms.participants(account(livekit), "finished") is None


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("refused key", "it answered 401 unauthenticated: invalid token"),
        ("server error", "it answered 500 internal"),
        ("hang", "no answer within 0.3 s"),
        ("closed port", "no answer (ClientConnectorError"),
    ],
)
async def test_a_server_that_does_not_answer_as_asked_is_unavailable(
    livekit: FakeLiveKit, failure: str, reason: str
) -> None:
    livekit.join("bootcamp", "PA_ana", "ana")
    asking = account(livekit)
    if failure == "refused key":
        asking = account(livekit, secret="not-the-secret-the-server-knows-at-all")
    elif failure == "server error":
        livekit.error = "internal"
    elif failure == "hang":
        livekit.hangs = True
    else:
        asking = account(livekit, url=unreachable_url())
    started = time.monotonic()

    with pytest.raises(LiveKitUnavailable) as unavailable:
        await LiveKitRoomService(timeout_seconds=0.3).participants(asking, "bootcamp")

    assert unavailable.value.detail.startswith(reason), unavailable.value.detail
    assert time.monotonic() - started < 3  # one attempt, never a wait past the timeout


def test_the_fake_server_answers_json_to_json_as_livekit_does(livekit: FakeLiveKit) -> None:
    """What a curl user sends (LiveKit's documented JSON form), to keep the fake honest."""
    livekit.join("bootcamp", "PA_ana", "ana")
    grants = api.VideoGrants(room_admin=True, room="bootcamp")
    token = api.AccessToken(livekit.key, livekit.secret).with_grants(grants).to_jwt()
    request = urllib.request.Request(
        f"{livekit.url}/twirp/livekit.RoomService/ListParticipants",
        data=json.dumps({"room": "bootcamp"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    with urllib.request.urlopen(request, timeout=5) as reply:
        answer = json.loads(reply.read())

    assert [(p["sid"], p["identity"]) for p in answer["participants"]] == [("PA_ana", "ana")]
