"""List a tenant's sessions."""

from dataclasses import dataclass, field

from application.pagination import Page, check_limit, decode_instant_cursor, page_of
from application.sessions.ports import SessionFilter, SessionPosition, SessionRepository
from domain.session import Session
from domain.tenants import TenantSettings


@dataclass(frozen=True)
class ListSessionsQuery:
    tenant_id: str
    where: SessionFilter = field(default_factory=SessionFilter)
    limit: int | None = None
    cursor: str | None = None
    # The tenant's settings: only its declared dimensions may filter (where.attributes).
    settings: TenantSettings = field(default_factory=TenantSettings)


class ListSessions:
    """A tenant's sessions, newest first, one page at a time, filtered by kind, resource, subject,
    client key (one anonymous browser or device), status, when they started and declared
    dimensions: `attributes.<key>=<value>` (any number of them, all must match) where `key` is
    one of the tenant's settings.dimensions (another key is invalid input naming
    `attributes.<key>`) and a number or boolean is spelled as JSON spells it (7, 1.5, true); a
    session without the attribute never matches. A page holds `limit` sessions (50 unless told,
    at most 500); its `next_cursor`, passed back as `cursor`, continues where it stopped, and is
    null on the last page. A cursor this service did not return is invalid input."""

    def __init__(self, sessions: SessionRepository) -> None:
        self._sessions = sessions

    async def __call__(self, query: ListSessionsQuery) -> Page[Session]:
        size = check_limit(query.limit)
        query.settings.chosen(query.where.attributes)  # declared dimensions only
        after = None
        if query.cursor is not None:
            after = SessionPosition(*decode_instant_cursor(query.cursor))
        rows = await self._sessions.find(query.tenant_id, query.where, size + 1, after)
        return page_of(rows, size, lambda s: [s.started_at.isoformat(), s.id])
