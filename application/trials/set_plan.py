"""Define a plan: what its subjects may start and register."""

from application.trials.ports import PlanRepository
from domain.plans import Plan


class SetPlan:
    def __init__(self, plans: PlanRepository) -> None:
        self._plans = plans

    async def __call__(self, tenant_id: str, plan: Plan) -> Plan:
        await self._plans.put(tenant_id, plan)
        return plan
