"""Put a subject on a plan until a date (e.g. a certification pass until the exam)."""

from application.trials.ports import PlanRepository, SubscriptionRepository
from domain.clock import as_utc
from domain.errors import InvalidInput
from domain.plans import Subscription


class Subscribe:
    def __init__(self, plans: PlanRepository, subscriptions: SubscriptionRepository) -> None:
        self._plans = plans
        self._subscriptions = subscriptions

    async def __call__(self, tenant_id: str, subscription: Subscription) -> Subscription:
        if subscription.plan_id not in {p.id for p in await self._plans.all(tenant_id)}:
            raise InvalidInput("plan_id", f"no plan {subscription.plan_id}")
        starts_at = subscription.starts_at and as_utc("starts_at", subscription.starts_at)
        subscription = Subscription(
            subscription.subject_id,
            subscription.plan_id,
            as_utc("ends_at", subscription.ends_at),
            starts_at,
        )
        await self._subscriptions.put(tenant_id, subscription)
        return subscription
