"""What a subject's plan allows now."""

from dataclasses import dataclass, field
from datetime import datetime

from application.ports import Clock
from application.trials.plan_of_subject import PlanOfSubject
from application.trials.ports import ResourceRegistry
from domain import plans
from domain.calendar import Calendar, Period


@dataclass(frozen=True)
class GetLimitsQuery:
    tenant_id: str
    subject_id: str
    calendar: Calendar = field(default_factory=Calendar)  # the tenant's


@dataclass(frozen=True)
class Limits:
    plan_id: str | None
    unlimited: bool
    sessions_per_resource: int | None
    resources_per_month: int | None
    resources_this_month: int
    subscription_ends_at: datetime | None

    @property
    def can_register_resource(self) -> bool:
        return plans.can_register_resource(self.resources_per_month, self.resources_this_month)


class GetLimits:
    """What a subject's plan allows now: the plan it is on (its active subscription's, or else
    the tenant's default; none when there is no such plan, and then nothing is limited), the
    sessions it may start per resource of the kinds the plan names, its quota of resources a
    month, how many it has registered this calendar month (of the tenant's time zone) and whether it may register
    another (`domain.plans.can_register_resource`, the rule registering applies), and when its
    subscription ends."""

    def __init__(
        self, plan_of_subject: PlanOfSubject, resources: ResourceRegistry, clock: Clock
    ) -> None:
        self._plan_of_subject = plan_of_subject
        self._resources = resources
        self._clock = clock

    async def __call__(self, query: GetLimitsQuery) -> Limits:
        tenant_id, subject_id = query.tenant_id, query.subject_id
        now = self._clock.now()
        plan, subscription = await self._plan_of_subject(tenant_id, subject_id, now)
        return Limits(
            plan_id=None if plan is None else plan.id,
            unlimited=plan is None or plan.unlimited,
            sessions_per_resource=None if plan is None else plan.sessions_limit(),
            resources_per_month=None if plan is None else plan.resource_limit(),
            resources_this_month=await self._resources.count_in_month(
                tenant_id, subject_id, query.calendar.bucket(Period.MONTH, now)
            ),
            subscription_ends_at=None if subscription is None else subscription.ends_at,
        )
