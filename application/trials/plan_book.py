"""The tenants' plans, remembered briefly: every start and every ingest key's metered batch asks
for them, and they rarely change."""

from application.ports import Clock
from application.remembered import Remembered
from application.trials.ports import PlanRepository
from domain.plans import Plan


class PlanBook(PlanRepository):
    """A PlanRepository whose `all` is remembered per tenant (application.remembered.TTL)."""

    def __init__(self, plans: PlanRepository, clock: Clock) -> None:
        self._plans = plans
        self._known: Remembered[list[Plan]] = Remembered(clock)

    async def put(self, tenant_id: str, plan: Plan) -> None:
        # Forgotten even when the write failed: one that timed out may still have happened.
        try:
            await self._plans.put(tenant_id, plan)
        finally:
            self._known.forget(tenant_id)

    async def all(self, tenant_id: str) -> list[Plan]:
        return await self._known.of(tenant_id, lambda: self._plans.all(tenant_id))

    async def get(self, tenant_id: str, plan_id: str) -> Plan | None:
        return await self._plans.get(tenant_id, plan_id)
