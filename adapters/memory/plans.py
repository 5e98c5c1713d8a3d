from dataclasses import replace
from datetime import datetime

from adapters.memory.store import MemoryStore
from application.trials.ports import PlanRepository, ResourceRegistry, SubscriptionRepository
from domain.calendar import Bucket
from domain.plans import (
    MonthlyQuota,
    Plan,
    Registration,
    Subscription,
    SubscriptionSet,
    admit_resource,
)


class MemoryPlanRepository(PlanRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def put(self, tenant_id: str, plan: Plan) -> None:
        if plan.default:
            for key, other in self._store.plans.items():
                if key[0] == tenant_id and other.default:
                    self._store.plans[key] = replace(other, default=False)
        self._store.plans[(tenant_id, plan.id)] = plan

    async def all(self, tenant_id: str) -> list[Plan]:
        return [p for (tenant, _), p in sorted(self._store.plans.items()) if tenant == tenant_id]

    async def get(self, tenant_id: str, plan_id: str) -> Plan | None:
        return self._store.plans.get((tenant_id, plan_id))


class MemorySubscriptionRepository(SubscriptionRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def put(self, tenant_id: str, subscription: Subscription, set_at: datetime) -> None:
        key = (tenant_id, subscription.subject_id)
        history = self._store.subscription_history.setdefault(key, [])
        number = history[-1].number + 1 if history else 1
        history.append(SubscriptionSet(subscription, set_at, number))
        self._store.subscriptions[key] = subscription

    async def get(self, tenant_id: str, subject_id: str) -> Subscription | None:
        return self._store.subscriptions.get((tenant_id, subject_id))

    async def history(self, tenant_id: str, subject_id: str) -> list[SubscriptionSet]:
        return self._store.subscription_history.get((tenant_id, subject_id), [])[::-1]


class MemoryResourceRegistry(ResourceRegistry):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def register(
        self,
        tenant_id: str,
        subject_id: str,
        resource_id: str,
        kind: str,
        at: datetime,
        quota: MonthlyQuota | None,
    ) -> bool:
        key = (tenant_id, subject_id, resource_id)
        if key in self._store.resources:
            return False
        if quota is not None:
            admit_resource(
                quota.limit, await self.count_in_month(tenant_id, subject_id, quota.month)
            )
        self._store.resources[key] = Registration(subject_id, resource_id, kind, at)
        return True

    async def count_in_month(self, tenant_id: str, subject_id: str, month: Bucket) -> int:
        start, end = month.start, month.end
        return sum(
            1
            for (tenant, subject, _), registration in self._store.resources.items()
            if (tenant, subject) == (tenant_id, subject_id)
            and start <= registration.registered_at < end
        )
