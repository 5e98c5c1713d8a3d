"""Who is in a LiveKit room, asked of the server with livekit-api (RoomService.ListParticipants
over Twirp, signed with the account's key and secret)."""

import asyncio

import aiohttp
from google.protobuf.message import DecodeError
from livekit import api
from livekit.protocol.models import ParticipantInfo

from application.livekit.ports import LiveKitUnavailable, RoomService
from domain.livekit import LiveKitAccount

# Reconciliation asks room after room on a schedule: a server that is slow to answer is taken as
# not answering rather than holding the run up (the next run asks again).
TIMEOUT_SECONDS = 5.0


class LiveKitRoomService(RoomService):
    def __init__(self, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        self._timeout = timeout_seconds

    async def participants(self, account: LiveKitAccount, room: str) -> set[str] | None:
        if account.url is None:
            raise LiveKitUnavailable(f"the LiveKit API key {account.api_key} has no server URL")
        # A client per call: the CLI and the server call from different event loops, and an
        # aiohttp session belongs to the loop it was made on. No failover: it would replay the
        # request to other LiveKit Cloud regions, multiplying the wait on a server that is down.
        # The deadline is ours: livekit-api 1.2.2 passes timeout=None to each request, which
        # turns off the timeout of its aiohttp session.
        try:
            async with (
                asyncio.timeout(self._timeout),
                api.LiveKitAPI(
                    account.url, account.api_key, account.api_secret, failover=False
                ) as livekit,
            ):
                reply = await livekit.room.list_participants(api.ListParticipantsRequest(room=room))
        except api.ServerError as error:
            if error.code == api.ServerErrorCode.NOT_FOUND:
                return None
            raise LiveKitUnavailable(
                f"it answered {error.status} {error.code}: {error.message}"
            ) from None
        except TimeoutError:
            raise LiveKitUnavailable(f"no answer within {self._timeout:g} s") from None
        except (aiohttp.ClientError, DecodeError) as error:
            raise LiveKitUnavailable(f"no answer ({type(error).__name__}: {error})") from None
        # A participant DISCONNECTED has left, though the server may still list it for a moment.
        return {p.sid for p in reply.participants if p.state != ParticipantInfo.State.DISCONNECTED}
