"""Read back a tenant's plans."""

from dataclasses import dataclass

from application.pagination import Page, page_of_whole
from application.trials.ports import PlanRepository
from domain.plans import Plan


@dataclass(frozen=True)
class ListPlansQuery:
    tenant_id: str
    limit: int | None = None
    cursor: str | None = None


class ListPlans:
    """The tenant's plans as they were last set, ordered by id: which one is the default (at
    most one), whether it is unlimited, and its limits. A page at a time: up to `limit`
    (default 50, at most 500), and a cursor for the next page while there are more."""

    def __init__(self, plans: PlanRepository) -> None:
        self._plans = plans

    async def __call__(self, query: ListPlansQuery) -> Page[Plan]:
        plans = await self._plans.all(query.tenant_id)
        return page_of_whole(plans, query.limit, query.cursor, lambda p: [p.id])
