"""Read one session of a tenant."""

from application.sessions.ports import SessionRepository
from application.sessions.session_ids import existing_session_id
from domain.errors import NotFound
from domain.session import Session


class GetSession:
    def __init__(self, sessions: SessionRepository) -> None:
        self._sessions = sessions

    async def __call__(self, tenant_id: str, session_id: str) -> Session:
        session = await self._sessions.get(tenant_id, existing_session_id(session_id))
        if session is None:
            raise NotFound(f"no session {session_id}")
        return session
