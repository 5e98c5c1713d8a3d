"""Read back a tenant's plans."""

from dataclasses import dataclass

from application.trials.ports import PlanRepository
from domain.plans import Plan


@dataclass(frozen=True)
class ListPlansQuery:
    tenant_id: str


class ListPlans:
    """The tenant's plans as they were last set, ordered by id: which one is the default (at
    most one), whether it is unlimited, and its limits."""

    def __init__(self, plans: PlanRepository) -> None:
        self._plans = plans

    async def __call__(self, query: ListPlansQuery) -> list[Plan]:
        return await self._plans.all(query.tenant_id)
