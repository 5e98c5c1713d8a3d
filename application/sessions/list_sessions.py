"""List a tenant's sessions, newest first, one page at a time."""

from datetime import datetime

from application.pagination import Page, check_limit, decode_cursor, page_of
from application.sessions.ports import SessionFilter, SessionPosition, SessionRepository
from domain.clock import as_utc
from domain.errors import InvalidInput
from domain.session import Session


class ListSessions:
    def __init__(self, sessions: SessionRepository) -> None:
        self._sessions = sessions

    async def __call__(
        self,
        tenant_id: str,
        where: SessionFilter,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Session]:
        size = check_limit(limit)
        after = None
        if cursor is not None:
            started_at, session_id = decode_cursor(cursor, 2)
            try:
                position = as_utc("cursor", datetime.fromisoformat(started_at))
            except (TypeError, ValueError, InvalidInput):
                raise InvalidInput("cursor", "is not a cursor this service returned") from None
            after = SessionPosition(position, str(session_id))
        rows = await self._sessions.find(tenant_id, where, size + 1, after)
        return page_of(rows, size, lambda s: [s.started_at.isoformat(), s.id])
