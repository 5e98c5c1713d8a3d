from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlalchemy.engine import insert, serialise, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.tables import (
    plans,
    subject_resources,
    subscription_history,
    subscriptions,
)
from application.trials.ports import PlanRepository, ResourceRegistry, SubscriptionRepository
from domain.calendar import Bucket
from domain.plans import (
    MonthlyQuota,
    Plan,
    PlanLimits,
    Subscription,
    SubscriptionSet,
    admit_resource,
)


@raises_storage_errors
class SqlPlanRepository(PlanRepository):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def put(self, tenant_id: str, plan: Plan) -> None:
        stmt = insert(self._engine, plans).values(plan_to_row(tenant_id, plan))
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "id"],
            set_={c: stmt.excluded[c] for c in ("is_default", "unlimited", "limits")},
        )
        async with self._engine.begin() as conn:
            if plan.default:
                # Concurrent puts of default plans take turns, so each one's UPDATE sees the
                # plan the one before it made the default (READ COMMITTED reads it afresh).
                await serialise(conn, tenant_id, "default plan")
                await conn.execute(
                    update(plans)
                    .where(plans.c.tenant_id == tenant_id, plans.c.id != plan.id)
                    .values(is_default=False)
                )
            await conn.execute(stmt)

    async def all(self, tenant_id: str) -> list[Plan]:
        query = select(plans).where(plans.c.tenant_id == tenant_id).order_by(plans.c.id)
        async with self._single.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [plan_from_row(r) for r in rows]

    async def get(self, tenant_id: str, plan_id: str) -> Plan | None:
        query = select(plans).where(plans.c.tenant_id == tenant_id, plans.c.id == plan_id)
        async with self._single.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else plan_from_row(row)


@raises_storage_errors
class SqlSubscriptionRepository(SubscriptionRepository):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def put(self, tenant_id: str, subscription: Subscription, set_at: datetime) -> None:
        row = subscription_to_row(tenant_id, subscription)
        stmt = insert(self._engine, subscriptions).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "subject_id"],
            set_={c: stmt.excluded[c] for c in ("plan_id", "starts_at", "ends_at")},
        )
        h = subscription_history
        last: Any = select(func.coalesce(func.max(h.c.number), 0)).where(
            h.c.tenant_id == tenant_id, h.c.subject_id == subscription.subject_id
        )
        async with self._engine.begin() as conn:
            # Puts for one subject take turns, so each numbers its entry after the last one
            # and the highest-numbered is the current subscription.
            await serialise(conn, tenant_id, "subscription", subscription.subject_id)
            number = int((await conn.execute(last)).scalar_one()) + 1
            entry = SubscriptionSet(subscription, set_at, number)
            await conn.execute(h.insert().values(subscription_set_to_row(tenant_id, entry)))
            await conn.execute(stmt)

    async def get(self, tenant_id: str, subject_id: str) -> Subscription | None:
        query = select(subscriptions).where(
            subscriptions.c.tenant_id == tenant_id, subscriptions.c.subject_id == subject_id
        )
        async with self._single.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return subscription_from_row(row)

    async def history(self, tenant_id: str, subject_id: str) -> list[SubscriptionSet]:
        h = subscription_history
        query = (
            select(h)
            .where(h.c.tenant_id == tenant_id, h.c.subject_id == subject_id)
            .order_by(h.c.number.desc())
        )
        async with self._single.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [subscription_set_from_row(r) for r in rows]


@raises_storage_errors
class SqlResourceRegistry(ResourceRegistry):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def register(
        self,
        tenant_id: str,
        subject_id: str,
        resource_id: str,
        kind: str,
        at: datetime,
        quota: MonthlyQuota | None,
    ) -> bool:
        row = {
            "tenant_id": tenant_id,
            "subject_id": subject_id,
            "resource_id": resource_id,
            "kind": kind,
            "registered_at": at,
        }
        stmt = insert(self._engine, subject_resources).values(row).on_conflict_do_nothing()
        async with self._engine.begin() as conn:
            await serialise(conn, tenant_id, subject_id)
            exists = await conn.execute(
                select(subject_resources.c.resource_id).where(
                    subject_resources.c.tenant_id == tenant_id,
                    subject_resources.c.subject_id == subject_id,
                    subject_resources.c.resource_id == resource_id,
                )
            )
            if exists.first() is not None:
                return False
            if quota is not None:
                used = await _count_in_month(conn, tenant_id, subject_id, quota.month)
                admit_resource(quota.limit, used)
            return bool((await conn.execute(stmt)).rowcount == 1)

    async def count_in_month(self, tenant_id: str, subject_id: str, month: Bucket) -> int:
        async with self._single.connect() as conn:
            return await _count_in_month(conn, tenant_id, subject_id, month)


async def _count_in_month(
    conn: AsyncConnection, tenant_id: str, subject_id: str, month: Bucket
) -> int:
    start, end = month.start, month.end
    query: Any = select(func.count()).where(
        subject_resources.c.tenant_id == tenant_id,
        subject_resources.c.subject_id == subject_id,
        subject_resources.c.registered_at >= start,
        subject_resources.c.registered_at < end,
    )
    return int((await conn.execute(query)).scalar_one())


def plan_to_row(tenant_id: str, plan: Plan) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": plan.id,
        "is_default": plan.default,
        "unlimited": plan.unlimited,
        "limits": {
            "sessions_per_resource": plan.limits.sessions_per_resource,
            "session_kinds": sorted(plan.limits.session_kinds),
            "resources_per_month": plan.limits.resources_per_month,
        },
    }


def subscription_to_row(tenant_id: str, subscription: Subscription) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "subject_id": subscription.subject_id,
        "plan_id": subscription.plan_id,
        "starts_at": subscription.starts_at,
        "ends_at": subscription.ends_at,
    }


def subscription_from_row(row: Any) -> Subscription:
    return Subscription(row.subject_id, row.plan_id, row.ends_at, row.starts_at)


def subscription_set_to_row(tenant_id: str, entry: SubscriptionSet) -> dict[str, Any]:
    row = subscription_to_row(tenant_id, entry.subscription)
    return {**row, "set_at": entry.set_at, "number": entry.number}


def subscription_set_from_row(row: Any) -> SubscriptionSet:
    return SubscriptionSet(subscription_from_row(row), row.set_at, row.number)


def plan_from_row(row: Any) -> Plan:
    return Plan(
        row.id,
        row.is_default,
        row.unlimited,
        PlanLimits(
            row.limits["sessions_per_resource"],
            frozenset(row.limits["session_kinds"]),
            row.limits["resources_per_month"],
        ),
    )
