"""Remove a funnel."""

from dataclasses import dataclass

from application.funnels.ports import FunnelDays, FunnelRepository
from domain.errors import NotFound
from domain.funnels import Funnel


@dataclass(frozen=True)
class DeleteFunnelCommand:
    tenant_id: str
    name: str


class DeleteFunnel:
    """Remove a funnel: its report and rollups are gone with it (the sessions and events it read
    stay). A funnel the tenant does not define is not found."""

    def __init__(self, funnels: FunnelRepository, days: FunnelDays) -> None:
        self._funnels = funnels
        self._days = days

    async def __call__(self, command: DeleteFunnelCommand) -> Funnel:
        funnel = await self._funnels.delete(command.tenant_id, command.name)
        if funnel is None:
            raise NotFound(f"no funnel {command.name}")
        await self._days.forget(command.tenant_id, command.name)
        return funnel
