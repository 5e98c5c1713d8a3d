"""Put a subject on a plan until a date."""

from dataclasses import dataclass

from application.trials.ports import PlanRepository, SubscriptionRepository
from domain.clock import as_utc
from domain.errors import InvalidInput
from domain.plans import Subscription


@dataclass(frozen=True)
class SubscribeCommand:
    tenant_id: str
    subscription: Subscription


class Subscribe:
    """Put a subject on a plan until a date (e.g. a certification pass until the exam), from a
    start date if one is given; outside those dates the subject is on the tenant's default
    plan. The plan must exist, and the dates carry an offset. A subject has one subscription:
    a new one replaces the earlier."""

    def __init__(self, plans: PlanRepository, subscriptions: SubscriptionRepository) -> None:
        self._plans = plans
        self._subscriptions = subscriptions

    async def __call__(self, command: SubscribeCommand) -> Subscription:
        tenant_id, subscription = command.tenant_id, command.subscription
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
