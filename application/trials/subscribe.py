"""Put a subject on a plan until a date."""

from dataclasses import dataclass

from application.ports import Clock
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
    a new one replaces the earlier, which stays in the subject's subscription history with
    when it was set."""

    def __init__(
        self, plans: PlanRepository, subscriptions: SubscriptionRepository, clock: Clock
    ) -> None:
        self._plans = plans
        self._subscriptions = subscriptions
        self._clock = clock

    async def __call__(self, command: SubscribeCommand) -> Subscription:
        tenant_id, subscription = command.tenant_id, command.subscription
        if await self._plans.get(tenant_id, subscription.plan_id) is None:
            raise InvalidInput("plan_id", f"no plan {subscription.plan_id}")
        starts_at = subscription.starts_at and as_utc("starts_at", subscription.starts_at)
        subscription = Subscription(
            subscription.subject_id,
            subscription.plan_id,
            as_utc("ends_at", subscription.ends_at),
            starts_at,
        )
        await self._subscriptions.put(tenant_id, subscription, self._clock.now())
        return subscription
