"""Read one session of a tenant as its client sees it."""

from dataclasses import dataclass, field

from application.credits.running_cost import RunningCost, SessionView
from application.sessions.get_session import GetSession
from domain.tenants import Access, TenantSettings


@dataclass(frozen=True)
class ReadSessionQuery:
    tenant_id: str
    session_id: str
    settings: TenantSettings
    access: Access = field(
        default_factory=Access
    )  # a scoped key reads only sessions of its resources


class ReadSession:
    """One session of the tenant, as its client sees it: an active session of a rated kind with
    a subject comes with its running cost (`domain.charging.estimate`: what it would be charged
    if it ended now, and what that leaves of its subject's balance), warning `credits_exhausted`
    when that would be below zero and `credits_low` when below the tenant's
    `low_balance_credits` (0: no such warning). Nothing is closed for it: the client decides. A
    session of another tenant, or an id that is not a UUID, is not found; a key scoped to
    resources reads sessions of those only (`forbidden`)."""

    def __init__(self, get_session: GetSession, running_cost: RunningCost) -> None:
        self._get_session = get_session
        self._running_cost = running_cost

    async def __call__(self, query: ReadSessionQuery) -> SessionView:
        session = await self._get_session(query.tenant_id, query.session_id)
        query.access.check_scope(session.resource_id)
        return await self._running_cost.view(session, query.settings)
