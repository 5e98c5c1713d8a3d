from litestar import Controller, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from application.tenants.authenticate import Principal
from application.trials.set_plan import SetPlan
from domain.plans import Plan, PlanLimits
from domain.tenants import Role
from entrypoints.http.auth import current_principal, requires
from entrypoints.http.schemas import PlanBody, PlanOut


class PlanController(Controller):
    path = "/v1/plans"
    tags = ["trials"]
    guards = [requires(Role.ADMIN)]
    dependencies = {"caller": current_principal}

    @put("/{plan_id:str}", summary="Define a plan and its limits")
    async def put_plan(
        self,
        plan_id: FromPath[str],
        data: JSONBody[PlanBody],
        caller: NamedDependency[Principal],
        set_plan: NamedDependency[SetPlan],
    ) -> PlanOut:
        limits = PlanLimits(
            data.limits.sessions_per_resource,
            frozenset(data.limits.session_kinds),
            data.limits.resources_per_month,
        )
        plan = Plan(plan_id, data.default, data.unlimited, limits)
        return PlanOut.of(await set_plan(caller.tenant.id, plan))
