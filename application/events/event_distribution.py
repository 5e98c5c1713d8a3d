"""Count a session's events by a field."""

from dataclasses import dataclass

from application.events.ports import EventLog
from application.sessions.get_session import GetSession
from domain.errors import InvalidInput
from domain.events import DISTRIBUTION_FIELDS, Distribution


@dataclass(frozen=True)
class EventDistributionQuery:
    tenant_id: str
    session_id: str
    field: str  # one of DISTRIBUTION_FIELDS


class EventDistribution:
    """A session's events counted by label, type or category (e.g. red/yellow/green answers),
    with each value's share of the total; events without a value for the field are not counted.
    Any other field is invalid input; a session unknown to the tenant is not found."""

    def __init__(self, get_session: GetSession, events: EventLog) -> None:
        self._get_session = get_session
        self._events = events

    async def __call__(self, query: EventDistributionQuery) -> Distribution:
        if query.field not in DISTRIBUTION_FIELDS:
            raise InvalidInput("field", f"must be one of {', '.join(DISTRIBUTION_FIELDS)}")
        session = await self._get_session(query.tenant_id, query.session_id)
        return await self._events.distribution(query.tenant_id, session.id, query.field)
