"""Record that someone left: the session closes once, every later exit is a replay."""

from dataclasses import dataclass, field
from datetime import datetime

from application.deduct_credits import DeductCredits
from application.ports import Clock, SessionRepository
from application.session_ids import existing_session_id
from domain.clock import not_in_future
from domain.errors import InvalidInput
from domain.session import CLIENT_EXIT_STATUSES, Exit, JSONObject, Session, SessionStatus
from domain.usage import Usage


@dataclass(frozen=True)
class RecordExitCommand:
    tenant_id: str
    session_id: str
    at: datetime | None = None
    status: str = SessionStatus.COMPLETED
    reason: str | None = None
    summary: JSONObject | None = None
    usage: Usage = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedExit:
    session: Session
    closed: bool  # False: the session was already closed and this exit is a replay


class RecordExit:
    def __init__(
        self, sessions: SessionRepository, deduct_credits: DeductCredits, clock: Clock
    ) -> None:
        self._sessions = sessions
        self._deduct_credits = deduct_credits
        self._clock = clock

    async def __call__(self, command: RecordExitCommand) -> RecordedExit:
        if command.status not in CLIENT_EXIT_STATUSES:
            allowed = ", ".join(sorted(CLIENT_EXIT_STATUSES))
            raise InvalidInput("status", f"must be one of {allowed}")
        now = self._clock.now()
        exit = Exit(
            at=now if command.at is None else not_in_future("at", command.at, now),
            status=SessionStatus(command.status),
            reason=command.reason,
            summary=command.summary,
            usage=command.usage,
        )
        session_id = existing_session_id(command.session_id)
        rated = await self._deduct_credits.rated_kinds(command.tenant_id)
        session, closed = await self._sessions.close(command.tenant_id, session_id, exit, rated)
        # A replay settles too: it finishes a charge that a crash left pending.
        return RecordedExit(await self._deduct_credits(session), closed)
