"""Define a plan."""

from dataclasses import dataclass

from application.trials.ports import PlanRepository
from domain.plans import Plan


@dataclass(frozen=True)
class SetPlanCommand:
    tenant_id: str
    plan: Plan


class SetPlan:
    """Define a plan: what its subjects may start and register. A plan limits the sessions a
    subject may start per resource (of the session kinds it names, counted together; other
    kinds are never limited) and the resources a subject may register per calendar month
    (UTC); an unlimited plan limits nothing. A subject is on the plan of its active
    subscription, or else on the tenant's default plan; a tenant without plans limits nothing.
    The plan replaces any plan of the same id, and a new default plan makes the others
    non-default."""

    def __init__(self, plans: PlanRepository) -> None:
        self._plans = plans

    async def __call__(self, command: SetPlanCommand) -> Plan:
        await self._plans.put(command.tenant_id, command.plan)
        return command.plan
