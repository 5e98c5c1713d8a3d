"""Plans, subscriptions and resource registrations in MongoDB.

A registration under a monthly quota takes a numbered slot of its month that a unique index keeps
to one registration (see indexes.py): counting and inserting need no transaction. The current
subscription's document counts its subject's puts (`puts`): the number of the history entry
each put adds.
"""

from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.mongodb.documents import Document
from adapters.mongodb.errors import raises_storage_errors
from application.trials.ports import PlanRepository, ResourceRegistry, SubscriptionRepository
from domain.calendar import Bucket
from domain.errors import Contended
from domain.plans import (
    MonthlyQuota,
    Plan,
    PlanLimits,
    Subscription,
    SubscriptionSet,
    admit_resource,
)

# A default plan's write lost to a concurrent one is tried again.
ATTEMPTS = 20


@raises_storage_errors
class MongoPlanRepository(PlanRepository):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._plans = db["plans"]

    async def put(self, tenant_id: str, plan: Plan) -> None:
        # A unique index keeps one default plan per tenant (see indexes.py): while another plan
        # is the default, writing a default plan fails; that one stops being the default and
        # the write is tried again. Of concurrent puts of default plans the last to write wins;
        # until it has, no plan is the default (for a moment, not two).
        document = plan_to_document(tenant_id, plan)
        for _ in range(ATTEMPTS):
            try:
                await self._plans.replace_one(
                    {"tenant_id": tenant_id, "id": plan.id}, document, upsert=True
                )
                return
            except DuplicateKeyError:  # another default, or a concurrent first put of this id
                if plan.default:
                    await self._plans.update_many(
                        {"tenant_id": tenant_id, "id": {"$ne": plan.id}, "default": True},
                        {"$set": {"default": False}},
                    )
        raise Contended(f"plan {plan.id} was changed too often to be stored; retry")

    async def all(self, tenant_id: str) -> list[Plan]:
        cursor = self._plans.find({"tenant_id": tenant_id}, sort=[("id", 1)])
        return [plan_from_document(d) async for d in cursor]

    async def get(self, tenant_id: str, plan_id: str) -> Plan | None:
        found = await self._plans.find_one({"tenant_id": tenant_id, "id": plan_id})
        return None if found is None else plan_from_document(found)


@raises_storage_errors
class MongoSubscriptionRepository(SubscriptionRepository):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._subscriptions = db["subscriptions"]
        self._history = db["subscription_history"]

    async def put(self, tenant_id: str, subscription: Subscription, set_at: datetime) -> None:
        # One write sets the subscription and takes the subject's next history number, so of
        # concurrent puts the one numbered highest is current. Then the history entry.
        of_subject = {"tenant_id": tenant_id, "subject_id": subscription.subject_id}
        change = {"$set": subscription_to_document(tenant_id, subscription), "$inc": {"puts": 1}}
        for _ in range(ATTEMPTS):
            try:
                counted = await self._subscriptions.find_one_and_update(
                    of_subject,
                    change,
                    {"puts": 1},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                break
            except DuplicateKeyError:  # a concurrent first put inserted it: update it now
                continue
        else:
            raise Contended(f"the subscription of {subscription.subject_id} changed too often")
        assert counted is not None  # upserted and returned after the change
        entry = SubscriptionSet(subscription, set_at, counted["puts"])
        await self._history.insert_one(subscription_set_to_document(tenant_id, entry))

    async def get(self, tenant_id: str, subject_id: str) -> Subscription | None:
        found = await self._subscriptions.find_one(
            {"tenant_id": tenant_id, "subject_id": subject_id}
        )
        return None if found is None else subscription_from_document(found)

    async def history(self, tenant_id: str, subject_id: str) -> list[SubscriptionSet]:
        cursor = self._history.find(
            {"tenant_id": tenant_id, "subject_id": subject_id}, sort=[("number", -1)]
        )
        return [subscription_set_from_document(d) async for d in cursor]


@raises_storage_errors
class MongoResourceRegistry(ResourceRegistry):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._registrations = db["subject_resources"]

    async def register(
        self,
        tenant_id: str,
        subject_id: str,
        resource_id: str,
        kind: str,
        at: datetime,
        quota: MonthlyQuota | None,
    ) -> bool:
        key = {"tenant_id": tenant_id, "subject_id": subject_id, "resource_id": resource_id}
        registration = {**key, "kind": kind, "registered_at": at}
        while True:
            if await self._registrations.find_one(key, {"_id": 1}) is not None:
                return False
            if quota is not None:
                used = await self.count_in_month(tenant_id, subject_id, quota.month)
                admit_resource(quota.limit, used)
                # By the month's first instant, not its label: after a change of time zone the
                # same label names another month, whose slots would collide with the old ones.
                registration["slot"] = {"month": quota.month.start, "n": used}
            try:
                await self._registrations.insert_one(dict(registration))
                return True
            except DuplicateKeyError:
                # The resource was registered meanwhile, or another registration took slot
                # `used`: look again (each retry follows someone else's success).
                continue

    async def count_in_month(self, tenant_id: str, subject_id: str, month: Bucket) -> int:
        start, end = month.start, month.end
        return await self._registrations.count_documents(
            {
                "tenant_id": tenant_id,
                "subject_id": subject_id,
                "registered_at": {"$gte": start, "$lt": end},
            }
        )


def plan_to_document(tenant_id: str, plan: Plan) -> Document:
    return {
        "tenant_id": tenant_id,
        "id": plan.id,
        "default": plan.default,
        "unlimited": plan.unlimited,
        "limits": {
            "sessions_per_resource": plan.limits.sessions_per_resource,
            "session_kinds": sorted(plan.limits.session_kinds),
            "resources_per_month": plan.limits.resources_per_month,
        },
    }


def plan_from_document(document: Document) -> Plan:
    limits = document["limits"]
    return Plan(
        document["id"],
        document["default"],
        document["unlimited"],
        PlanLimits(
            limits["sessions_per_resource"],
            frozenset(limits["session_kinds"]),
            limits["resources_per_month"],
        ),
    )


def subscription_to_document(tenant_id: str, subscription: Subscription) -> Document:
    return {
        "tenant_id": tenant_id,
        "subject_id": subscription.subject_id,
        "plan_id": subscription.plan_id,
        "starts_at": subscription.starts_at,
        "ends_at": subscription.ends_at,
    }


def subscription_from_document(document: Document) -> Subscription:
    return Subscription(
        document["subject_id"], document["plan_id"], document["ends_at"], document["starts_at"]
    )


def subscription_set_to_document(tenant_id: str, entry: SubscriptionSet) -> Document:
    document = subscription_to_document(tenant_id, entry.subscription)
    return {**document, "set_at": entry.set_at, "number": entry.number}


def subscription_set_from_document(document: Document) -> SubscriptionSet:
    return SubscriptionSet(
        subscription_from_document(document), document["set_at"], document["number"]
    )
