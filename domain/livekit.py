"""LiveKit rooms as sessions: who was in which room, from when to when.

A participant's session id is derived from the room's and the participant's sids, so every
webhook about that stay names the same session: a redelivered or reordered webhook is a replay.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

KIND = "livekit"
# Any fixed namespace works; it must never change, or ids of stays already recorded would.
SESSION_NAMESPACE = uuid.UUID("6f1d5a3e-2c0b-4d8e-9a55-4c1b7e0f9d21")


class RoomEventKind(StrEnum):
    PARTICIPANT_JOINED = "participant_joined"
    PARTICIPANT_LEFT = "participant_left"
    PARTICIPANT_CONNECTION_ABORTED = "participant_connection_aborted"
    ROOM_FINISHED = "room_finished"


@dataclass(frozen=True)
class LiveKitAccount:
    """A LiveKit server's API key, the tenant its webhooks belong to, and the secret that
    verifies them (kept to verify; never shown)."""

    api_key: str
    tenant_id: str
    api_secret: str


@dataclass(frozen=True)
class RoomEvent:
    """A verified webhook, as much of it as sessions need."""

    id: str
    kind: str  # a RoomEventKind, or another event this service ignores
    created_at: datetime  # when it happened on the LiveKit server
    room_sid: str
    room_name: str
    participant_sid: str | None = None
    identity: str | None = None
    joined_at: datetime | None = None

    @property
    def session_id(self) -> str:
        return session_id_of(self.room_sid, self.participant_sid or "")


def session_id_of(room_sid: str, participant_sid: str) -> str:
    return str(uuid.uuid5(SESSION_NAMESPACE, f"{room_sid}/{participant_sid}"))
