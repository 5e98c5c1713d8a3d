"""Read back one plan."""

from dataclasses import dataclass

from application.trials.ports import PlanRepository
from domain.errors import NotFound
from domain.plans import Plan


@dataclass(frozen=True)
class GetPlanQuery:
    tenant_id: str
    plan_id: str


class GetPlan:
    """One of the tenant's plans as it was last set: whether it is the default, whether it is
    unlimited, and its limits. A plan the tenant does not define is not found."""

    def __init__(self, plans: PlanRepository) -> None:
        self._plans = plans

    async def __call__(self, query: GetPlanQuery) -> Plan:
        plan = await self._plans.get(query.tenant_id, query.plan_id)
        if plan is None:
            raise NotFound(f"no plan {query.plan_id}")
        return plan
