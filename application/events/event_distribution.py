"""Count a session's events by label, type or category (e.g. red/yellow/green answers)."""

from application.events.ports import EventLog
from application.sessions.get_session import GetSession
from domain.errors import InvalidInput
from domain.events import DISTRIBUTION_FIELDS, Distribution


class EventDistribution:
    def __init__(self, get_session: GetSession, events: EventLog) -> None:
        self._get_session = get_session
        self._events = events

    async def __call__(self, tenant_id: str, session_id: str, field: str) -> Distribution:
        if field not in DISTRIBUTION_FIELDS:
            raise InvalidInput("field", f"must be one of {', '.join(DISTRIBUTION_FIELDS)}")
        session = await self._get_session(tenant_id, session_id)
        return await self._events.distribution(tenant_id, session.id, field)
