"""Trials: plans, a subject's subscription, its resources, limits and trial status."""

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from application.tenants.authenticate import Principal
from application.trials.get_limits import GetLimits, GetLimitsQuery
from application.trials.get_plan import GetPlan, GetPlanQuery
from application.trials.get_trial_status import GetTrialStatus, GetTrialStatusQuery
from application.trials.list_plans import ListPlans, ListPlansQuery
from application.trials.list_subscriptions import ListSubscriptions, ListSubscriptionsQuery
from application.trials.register_resource import RegisterResource, RegisterResourceCommand
from application.trials.set_plan import SetPlan, SetPlanCommand
from application.trials.subscribe import Subscribe, SubscribeCommand
from domain.plans import Plan, PlanLimits, Subscription
from domain.tenants import Role
from entrypoints.http.auth import AUTH, NEEDS_ADMIN, needs
from entrypoints.http.errors import documented
from entrypoints.http.openapi import rules_of
from entrypoints.http.schemas.common import Page
from entrypoints.http.schemas.trials import (
    LimitsOut,
    PlanBody,
    PlanOut,
    ResourceBody,
    ResourceOut,
    SubscriptionBody,
    SubscriptionOut,
    SubscriptionSetOut,
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
        return PlanOut.of(await set_plan(SetPlanCommand(caller.tenant.id, plan)))

    @get(
        "/plans",
        summary="Read back the tenant's plans",
        operation_id="listPlans",
        description=rules_of(ListPlans),
        responses=documented({401: AUTH, 403: NEEDS_ADMIN}),
    )
    async def list_plans(
        self,
        caller: NamedDependency[Principal],
        list_plans: NamedDependency[ListPlans],
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Page[PlanOut]:
        plans = await list_plans(ListPlansQuery(caller.tenant.id, limit, cursor))
        return Page.of(plans, PlanOut.of)

    @get(
        "/plans/{plan_id:str}",
        summary="Read back one plan",
        operation_id="getPlan",
        description=rules_of(GetPlan),
        responses=documented({401: AUTH, 403: NEEDS_ADMIN, 404: "no such plan in this tenant"}),
    )
    async def get_plan(
        self,
        plan_id: FromPath[str],
        caller: NamedDependency[Principal],
        get_plan: NamedDependency[GetPlan],
    ) -> PlanOut:
        return PlanOut.of(await get_plan(GetPlanQuery(caller.tenant.id, plan_id)))

    @get(
        "/accounts/{subject_id:str}/subscriptions",
        summary="The subject's subscription history, newest first",
        operation_id="listSubscriptions",
        description=rules_of(ListSubscriptions),
        responses=documented({401: AUTH, 403: NEEDS_ADMIN}),
    )
    async def subscriptions(
        self,
        subject_id: FromPath[str],
        caller: NamedDependency[Principal],
        list_subscriptions: NamedDependency[ListSubscriptions],
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Page[SubscriptionSetOut]:
        query = ListSubscriptionsQuery(caller.tenant.id, subject_id, limit, cursor)
        return Page.of(await list_subscriptions(query), SubscriptionSetOut.of_entry)

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
        return SubscriptionOut.of(await subscribe(SubscribeCommand(caller.tenant.id, subscription)))

    @get(
        "/accounts/{subject_id:str}/limits",
        summary="What the subject's plan allows now",
        operation_id="getLimits",
        opt=needs(Role.APP),
        description=rules_of(GetLimits),
    )
    async def limits(
        self,
        subject_id: FromPath[str],
        caller: NamedDependency[Principal],
        get_limits: NamedDependency[GetLimits],
    ) -> LimitsOut:
        calendar = caller.tenant.settings.calendar
        return LimitsOut.of(
            await get_limits(GetLimitsQuery(caller.tenant.id, subject_id, calendar))
        )

    @post(
        "/accounts/{subject_id:str}/resources",
        summary="Register a resource (within the monthly quota)",
        operation_id="registerResource",
        opt=needs(Role.APP),
        description=rules_of(RegisterResource),
        status_code=201,
        responses=documented({402: "`quota_exceeded`, with the plan's limits"}),
    )
    async def register(
        self,
        subject_id: FromPath[str],
        data: JSONBody[ResourceBody],
        caller: NamedDependency[Principal],
        register_resource: NamedDependency[RegisterResource],
    ) -> Response[ResourceOut]:
        registered = await register_resource(
            RegisterResourceCommand(
                caller.tenant.id,
                subject_id,
                data.resource_id,
                data.kind,
                caller.tenant.settings.calendar,
            )
        )
        body = ResourceOut(registered.subject_id, registered.resource_id, registered.kind)
        return Response(body, status_code=201 if registered.created else 200)

    @get(
        "/accounts/{subject_id:str}/resources/{resource_id:str}/trial-status",
        summary="Where the subject stands on a trial",
        operation_id="getTrialStatus",
        opt=needs(Role.APP),
        description=rules_of(GetTrialStatus),
    )
    async def trial_status(
        self,
        subject_id: FromPath[str],
        resource_id: FromPath[str],
        caller: NamedDependency[Principal],
        get_trial_status: NamedDependency[GetTrialStatus],
    ) -> TrialStatusOut:
        status = await get_trial_status(
            GetTrialStatusQuery(caller.tenant.id, subject_id, resource_id)
        )
        return TrialStatusOut.of(status)
