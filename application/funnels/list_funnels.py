"""Read back a tenant's funnels."""

from dataclasses import dataclass

from application.funnels.ports import FunnelRepository
from domain.funnels import Funnel


@dataclass(frozen=True)
class ListFunnelsQuery:
    tenant_id: str


class ListFunnels:
    """The tenant's funnels as they were last set, ordered by name."""

    def __init__(self, funnels: FunnelRepository) -> None:
        self._funnels = funnels

    async def __call__(self, query: ListFunnelsQuery) -> list[Funnel]:
        return await self._funnels.all(query.tenant_id)
