"""Which plan a subject is on at an instant: its active subscription's, or else the tenant's
default."""

from datetime import datetime

from application.trials.ports import PlanRepository, SubscriptionRepository
from domain.plans import Plan, Subscription


class PlanOfSubject:
    """A service, not a route (StartSession, RegisterResource, GetLimits and GetTrialStatus
    call it): the plan a subject is on at an instant. A subscription active then
    (`domain.plans.Subscription.active_at`: from its start, if it has one, until before its
    end) to a plan the tenant defines gives that plan; otherwise the subject is on the tenant's
    default plan. No plan (None) when the tenant defines none, or has no default for a subject
    without an active subscription: then nothing is limited."""

    def __init__(self, plans: PlanRepository, subscriptions: SubscriptionRepository) -> None:
        self._plans = plans
        self._subscriptions = subscriptions

    async def __call__(
        self, tenant_id: str, subject_id: str, at: datetime
    ) -> tuple[Plan | None, Subscription | None]:
        """The plan (or None) and the active subscription it comes from (or None)."""
        plans = {plan.id: plan for plan in await self._plans.all(tenant_id)}
        if not plans:
            return None, None
        subscription = await self._subscriptions.get(tenant_id, subject_id)
        if (
            subscription is not None
            and subscription.active_at(at)
            and subscription.plan_id in plans
        ):
            return plans[subscription.plan_id], subscription
        return next((p for p in plans.values() if p.default), None), None
