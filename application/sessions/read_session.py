"""Read one session of a tenant as its client sees it, with its running cost."""

from application.credits.running_cost import RunningCost, SessionView
from application.sessions.get_session import GetSession
from domain.tenants import Tenant


class ReadSession:
    def __init__(self, get_session: GetSession, running_cost: RunningCost) -> None:
        self._get_session = get_session
        self._running_cost = running_cost

    async def __call__(self, tenant: Tenant, session_id: str) -> SessionView:
        session = await self._get_session(tenant.id, session_id)
        return await self._running_cost.view(session, tenant.settings)
