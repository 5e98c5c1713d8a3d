"""List a session's events."""

from dataclasses import dataclass

from application.events.ports import EventLog
from application.pagination import Page, check_limit, decode_cursor, page_of
from application.sessions.get_session import GetSession
from domain.errors import InvalidInput
from domain.events import MAX_SEQUENCE_NO, Event


@dataclass(frozen=True)
class ListEventsQuery:
    tenant_id: str
    session_id: str
    limit: int | None = None
    cursor: str | None = None
    type: str | None = None
    label: str | None = None


class ListEvents:
    """A session's events in sequence order, one page at a time, optionally only those of one
    type or one label. A page holds `limit` events (50 unless told, at most 500); its
    `next_cursor`, passed back as `cursor`, continues where it stopped, and is null on the last
    page. A cursor this service did not return is invalid input; a session unknown to the tenant is
    not found."""

    def __init__(self, get_session: GetSession, events: EventLog) -> None:
        self._get_session = get_session
        self._events = events

    async def __call__(self, query: ListEventsQuery) -> Page[Event]:
        size = check_limit(query.limit)
        after = 0
        if query.cursor is not None:
            (after,) = decode_cursor(query.cursor, 1)
            valid = isinstance(after, int) and not isinstance(after, bool)
            if not valid or not 0 <= after <= MAX_SEQUENCE_NO:
                raise InvalidInput("cursor", "is not a cursor this service returned")
        session = await self._get_session(query.tenant_id, query.session_id)
        rows = await self._events.find(
            query.tenant_id, session.id, size + 1, after, query.type, query.label
        )
        return page_of(rows, size, lambda e: [e.sequence_no])
