"""Which plan a subject is on now: its active subscription's, or else the tenant's default."""

from datetime import datetime

from application.trials.ports import PlanRepository, SubscriptionRepository
from domain.plans import Plan, Subscription


class PlanOfSubject:
    def __init__(self, plans: PlanRepository, subscriptions: SubscriptionRepository) -> None:
        self._plans = plans
        self._subscriptions = subscriptions

    async def __call__(
        self, tenant_id: str, subject_id: str, at: datetime
    ) -> tuple[Plan | None, Subscription | None]:
        """The plan (None: the tenant defines none, so nothing is limited) and, when it comes
        from one, the active subscription."""
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
