"""What a LiveKit server sends: webhook bodies, signed exactly as LiveKit signs them (a JWT from
livekit-api's AccessToken whose `sha256` claim is the hash of the raw body)."""

import base64
import hashlib
import itertools
import json
from datetime import datetime, timedelta
from typing import Any

from livekit import api

API_KEY = "APIbootcamp"
API_SECRET = "a-secret-of-at-least-thirty-two-characters"
_ids = itertools.count(1)


class LiveKitServer:
    def __init__(
        self, key: str = API_KEY, secret: str = API_SECRET, room: str = "bootcamp"
    ) -> None:
        self.key, self.secret = key, secret
        self.room = {"sid": f"RM_{room}", "name": room}

    def webhook(self, event: str, at: datetime, **parts: Any) -> tuple[str, dict[str, str]]:
        """A body and the headers LiveKit would send with it (a new webhook id each time)."""
        body = {
            "event": event,
            "id": f"EV_{next(_ids)}",
            "createdAt": str(int(at.timestamp())),
            "room": self.room,
            **parts,
        }
        raw = json.dumps(body)
        return raw, self.headers(raw)

    def joined(self, identity: str, at: datetime) -> tuple[str, dict[str, str]]:
        return self.webhook("participant_joined", at, participant=self.participant(identity, at))

    def left(
        self, identity: str, joined: datetime, at: datetime, event: str = "participant_left"
    ) -> tuple[str, dict[str, str]]:
        return self.webhook(event, at, participant=self.participant(identity, joined))

    def track(
        self, event: str, identity: str, joined: datetime, sid: str, source: str, at: datetime
    ) -> tuple[str, dict[str, str]]:
        """track_published or track_unpublished of a participant's CAMERA, SCREEN_SHARE, …"""
        kind = "AUDIO" if source == "MICROPHONE" else "VIDEO"
        return self.webhook(
            event,
            at,
            participant=self.participant(identity, joined),
            track={"sid": sid, "type": kind, "source": source},
        )

    def participant(self, identity: str, joined: datetime) -> dict[str, str]:
        return {
            "sid": f"PA_{identity}",
            "identity": identity,
            "joinedAt": str(int(joined.timestamp())),
        }

    def headers(self, raw: str, ttl: timedelta = timedelta(minutes=5)) -> dict[str, str]:
        digest = base64.b64encode(hashlib.sha256(raw.encode()).digest()).decode()
        token = api.AccessToken(self.key, self.secret).with_sha256(digest).with_ttl(ttl).to_jwt()
        return {"Authorization": token, "Content-Type": "application/webhook+json"}
