"""Read back one funnel."""

from dataclasses import dataclass

from application.funnels.ports import FunnelRepository
from domain.errors import NotFound
from domain.funnels import Funnel


@dataclass(frozen=True)
class GetFunnelQuery:
    tenant_id: str
    name: str


class GetFunnel:
    """One of the tenant's funnels as it was last set: its kind and stages. A funnel the tenant
    does not define is not found."""

    def __init__(self, funnels: FunnelRepository) -> None:
        self._funnels = funnels

    async def __call__(self, query: GetFunnelQuery) -> Funnel:
        funnel = await self._funnels.get(query.tenant_id, query.name)
        if funnel is None:
            raise NotFound(f"no funnel {query.name}")
        return funnel
