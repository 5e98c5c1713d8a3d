"""Remove a funnel."""

from dataclasses import dataclass

from application.funnels.ports import FunnelRepository
from domain.errors import NotFound
from domain.funnels import Funnel


@dataclass(frozen=True)
class DeleteFunnelCommand:
    tenant_id: str
    name: str


class DeleteFunnel:
    """Remove a funnel: its report is gone with it (the sessions and events it read stay). A
    funnel the tenant does not define is not found."""

    def __init__(self, funnels: FunnelRepository) -> None:
        self._funnels = funnels

    async def __call__(self, command: DeleteFunnelCommand) -> Funnel:
        funnel = await self._funnels.delete(command.tenant_id, command.name)
        if funnel is None:
            raise NotFound(f"no funnel {command.name}")
        return funnel
