"""Start a session; the same client-supplied id again is a replay, or a conflict if it differs."""

from dataclasses import dataclass, field

from application.ports import Clock, CreditLedger, RateRepository, SessionRepository
from application.session_ids import canonical_session_id, new_session_id
from domain.errors import Conflict, InsufficientCredits
from domain.session import Session, SessionRequest
from domain.tenants import Overdraft, TenantSettings


@dataclass(frozen=True)
class StartSessionCommand:
    tenant_id: str
    request: SessionRequest
    session_id: str | None = None
    settings: TenantSettings = field(default_factory=TenantSettings)


@dataclass(frozen=True)
class StartedSession:
    session: Session
    created: bool  # False: a replay of an earlier start


class StartSession:
    def __init__(
        self,
        sessions: SessionRepository,
        rates: RateRepository,
        ledger: CreditLedger,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._rates = rates
        self._ledger = ledger
        self._clock = clock

    async def __call__(self, command: StartSessionCommand) -> StartedSession:
        if command.session_id is None:
            session_id = new_session_id()
        else:
            session_id = canonical_session_id(command.session_id)
            replay = await self._replay(command, session_id)
            if replay is not None:
                return replay
        session = Session.start(command.tenant_id, session_id, command.request, self._clock.now())
        await self._admit(command, session)
        if await self._sessions.add(session):
            return StartedSession(session, created=True)
        # Another caller stored this id between our look-up and our insert.
        replay = await self._replay(command, session_id)
        if replay is None:
            raise Conflict(f"session {session_id} could not be stored; retry the request")
        return replay

    async def _admit(self, command: StartSessionCommand, session: Session) -> None:
        """Under the hard overdraft policy, a rated session needs the minimum balance to start."""
        settings = command.settings
        if settings.overdraft is not Overdraft.HARD or session.subject_id is None:
            return
        if session.kind not in {r.kind for r in await self._rates.all(command.tenant_id)}:
            return
        balance = (await self._ledger.balance(command.tenant_id, session.subject_id)).balance
        if balance < settings.min_start_credits:
            raise InsufficientCredits(balance, settings.min_start_credits)

    async def _replay(self, command: StartSessionCommand, session_id: str) -> StartedSession | None:
        stored = await self._sessions.get(command.tenant_id, session_id)
        if stored is None:
            return None
        if not stored.matches(command.request):
            raise Conflict(f"session {session_id} already exists with different content")
        return StartedSession(stored, created=False)
