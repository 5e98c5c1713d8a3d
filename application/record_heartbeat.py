"""Keep a session alive: its last sign of life moves forward, never back."""

from dataclasses import dataclass
from datetime import datetime

from application.ports import Clock, SessionRepository
from application.session_ids import existing_session_id
from domain.clock import not_in_future
from domain.session import Session


@dataclass(frozen=True)
class RecordHeartbeatCommand:
    tenant_id: str
    session_id: str
    at: datetime | None = None


class RecordHeartbeat:
    def __init__(self, sessions: SessionRepository, clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def __call__(self, command: RecordHeartbeatCommand) -> Session:
        now = self._clock.now()
        at = now if command.at is None else not_in_future("at", command.at, now)
        session_id = existing_session_id(command.session_id)
        return await self._sessions.heartbeat(command.tenant_id, session_id, at)
