"""Read back a tenant's funnels."""

from dataclasses import dataclass

from application.funnels.ports import FunnelRepository
from application.pagination import Page, page_of_whole
from domain.funnels import Funnel


@dataclass(frozen=True)
class ListFunnelsQuery:
    tenant_id: str
    limit: int | None = None
    cursor: str | None = None


class ListFunnels:
    """The tenant's funnels as they were last set, ordered by name, a page at a time: up to
    `limit` (default 50, at most 500), and a cursor for the next page while there are more."""

    def __init__(self, funnels: FunnelRepository) -> None:
        self._funnels = funnels

    async def __call__(self, query: ListFunnelsQuery) -> Page[Funnel]:
        funnels = await self._funnels.all(query.tenant_id)
        return page_of_whole(funnels, query.limit, query.cursor, lambda f: [f.name])
