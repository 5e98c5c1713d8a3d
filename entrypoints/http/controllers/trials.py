"""Trials: plans, a subject's subscription, its resources, limits and trial status."""

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from application.tenants.authenticate import Principal
from application.trials.get_limits import GetLimits
from application.trials.get_trial_status import GetTrialStatus
from application.trials.register_resource import RegisterResource
from application.trials.set_plan import SetPlan
from application.trials.subscribe import Subscribe
from domain.plans import Plan, PlanLimits, Subscription
from domain.tenants import Role
from entrypoints.http.auth import needs
from entrypoints.http.openapi import rules_of
from entrypoints.http.schemas.trials import (
    LimitsOut,
    PlanBody,
    PlanOut,
    ResourceBody,
    ResourceOut,
    SubscriptionBody,
    SubscriptionOut,
    TrialStatusOut,
)


class TrialsController(Controller):
    path = "/"
    tags = ["trials"]
    opt = needs(Role.ADMIN)

    @put(
        "/plans/{plan_id:str}",
        summary="Define a plan and its limits",
        operation_id="setPlan",
        description=rules_of(SetPlan),
    )
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

    @put(
        "/accounts/{subject_id:str}/subscription",
        summary="Put the subject on a plan until a date",
        operation_id="subscribe",
        description=rules_of(Subscribe),
    )
    async def subscribe(
        self,
        subject_id: FromPath[str],
        data: JSONBody[SubscriptionBody],
        caller: NamedDependency[Principal],
        subscribe: NamedDependency[Subscribe],
    ) -> SubscriptionOut:
        subscription = Subscription(subject_id, data.plan_id, data.ends_at, data.starts_at)
        return SubscriptionOut.of(await subscribe(caller.tenant.id, subscription))

    @get(
        "/accounts/{subject_id:str}/limits",
        summary="What the subject's plan allows now",
        operation_id="getLimits",
        description=rules_of(GetLimits),
    )
    async def limits(
        self,
        subject_id: FromPath[str],
        caller: NamedDependency[Principal],
        get_limits: NamedDependency[GetLimits],
    ) -> LimitsOut:
        return LimitsOut.of(await get_limits(caller.tenant.id, subject_id))

    @post(
        "/accounts/{subject_id:str}/resources",
        summary="Register a resource (within the monthly quota)",
        operation_id="registerResource",
        description=rules_of(RegisterResource),
        status_code=201,
    )
    async def register(
        self,
        subject_id: FromPath[str],
        data: JSONBody[ResourceBody],
        caller: NamedDependency[Principal],
        register_resource: NamedDependency[RegisterResource],
    ) -> Response[ResourceOut]:
        created = await register_resource(caller.tenant.id, subject_id, data.resource_id, data.kind)
        body = ResourceOut(subject_id, data.resource_id, data.kind)
        return Response(body, status_code=201 if created else 200)

    @get(
        "/accounts/{subject_id:str}/resources/{resource_id:str}/trial-status",
        summary="Where the subject stands on a trial",
        operation_id="getTrialStatus",
        description=rules_of(GetTrialStatus),
    )
    async def trial_status(
        self,
        subject_id: FromPath[str],
        resource_id: FromPath[str],
        caller: NamedDependency[Principal],
        get_trial_status: NamedDependency[GetTrialStatus],
    ) -> TrialStatusOut:
        return TrialStatusOut.of(await get_trial_status(caller.tenant.id, subject_id, resource_id))
