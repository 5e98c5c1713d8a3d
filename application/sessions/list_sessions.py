"""List a tenant's sessions."""

from dataclasses import dataclass, field

from application.pagination import Page, check_limit, decode_instant_cursor, page_of
from application.sessions.ports import SessionFilter, SessionPosition, SessionRepository
from domain.session import Session


@dataclass(frozen=True)
class ListSessionsQuery:
    tenant_id: str
    where: SessionFilter = field(default_factory=SessionFilter)
    limit: int | None = None
    cursor: str | None = None


class ListSessions:
    """A tenant's sessions, newest first, one page at a time, filtered by kind, resource, subject,
    client key (one anonymous browser or device), status and when they started. A page holds
    `limit` sessions (50 unless told, at most 500); its `next_cursor`, passed back as `cursor`,
    continues where it stopped, and is null on the last page. A cursor this service did not
    return is invalid input."""

    def __init__(self, sessions: SessionRepository) -> None:
        self._sessions = sessions

    async def __call__(self, query: ListSessionsQuery) -> Page[Session]:
        size = check_limit(query.limit)
        after = None
        if query.cursor is not None:
            after = SessionPosition(*decode_instant_cursor(query.cursor))
        rows = await self._sessions.find(query.tenant_id, query.where, size + 1, after)
        return page_of(rows, size, lambda s: [s.started_at.isoformat(), s.id])
