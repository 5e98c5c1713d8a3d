"""List a session's events in sequence order, one page at a time."""

from application.events.ports import EventLog
from application.pagination import Page, check_limit, decode_cursor, page_of
from application.sessions.get_session import GetSession
from domain.errors import InvalidInput
from domain.events import MAX_SEQUENCE_NO, Event


class ListEvents:
    def __init__(self, get_session: GetSession, events: EventLog) -> None:
        self._get_session = get_session
        self._events = events

    async def __call__(
        self,
        tenant_id: str,
        session_id: str,
        limit: int | None = None,
        cursor: str | None = None,
        type: str | None = None,
        label: str | None = None,
    ) -> Page[Event]:
        size = check_limit(limit)
        after = 0
        if cursor is not None:
            (after,) = decode_cursor(cursor, 1)
            valid = isinstance(after, int) and not isinstance(after, bool)
            if not valid or not 0 <= after <= MAX_SEQUENCE_NO:
                raise InvalidInput("cursor", "is not a cursor this service returned")
        session = await self._get_session(tenant_id, session_id)
        rows = await self._events.find(tenant_id, session.id, size + 1, after, type, label)
        return page_of(rows, size, lambda e: [e.sequence_no])
