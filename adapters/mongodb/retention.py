"""Retention in MongoDB: each call deletes one bounded batch of the oldest documents. A TTL index
cannot serve snapshots, events, errors, metrics or rollups, whose windows are set per tenant (a
TTL index has one age for a whole collection); handled webhook ids, kept WEBHOOK_MEMORY for
every tenant, also expire by a TTL index (indexes.py), so they go even where the retention job
is turned off."""

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.deleted_events import delete_remembering
from adapters.mongodb.documents import Document
from adapters.mongodb.errors import raises_storage_errors
from application.retention.ports import Retention
from domain.calendar import Period


@raises_storage_errors
class MongoRetention(Retention):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def delete_snapshots(self, tenant_id: str, taken_before: datetime, limit: int) -> int:
        return await self._delete("snapshots", tenant_id, taken_before, limit)

    async def delete_events(self, tenant_id: str, before: datetime, limit: int) -> int:
        """Each session remembers the numbers of its events deleted (deleted_events)."""
        old = {"tenant_id": tenant_id, "at": {"$lt": before}}
        return await delete_remembering(self._db, tenant_id, old, limit, sort=[("at", 1)])

    async def delete_errors(self, tenant_id: str, before: datetime, limit: int) -> int:
        return await self._delete("errors", tenant_id, before, limit)

    async def delete_metrics(self, tenant_id: str, started_before: datetime, limit: int) -> int:
        old = {"tenant_id": tenant_id, "started_at": {"$lt": started_before}}
        return await self._delete_oldest("performance_metrics", old, "started_at", limit)

    async def forget_webhooks(self, tenant_id: str, received_before: datetime, limit: int) -> int:
        old = {"tenant_id": tenant_id, "received_at": {"$lt": received_before}}
        ids = await self._delete_oldest("webhooks", old, "received_at", limit)
        if ids == limit:  # (a limit of 0 would be none)
            return ids
        finished = {"tenant_id": tenant_id, "finished_at": {"$lt": received_before}}
        rooms = await self._delete_oldest("finished_rooms", finished, "finished_at", limit - ids)
        return ids + rooms

    async def delete_rollups(
        self, tenant_id: str, period: Period, started_before: datetime, limit: int
    ) -> int:
        old = {"tenant_id": tenant_id, "period": period.value, "start": {"$lt": started_before}}
        if period is Period.DAY:  # funnels' days go with the days (a document a day)
            days = {"tenant_id": tenant_id, "day_start": {"$lt": started_before}}
            await self._db["funnel_days"].delete_many(days)
        return await self._delete_oldest("rollups", old, "start", limit)

    async def _delete(self, collection: str, tenant_id: str, before: datetime, limit: int) -> int:
        old = {"tenant_id": tenant_id, "at": {"$lt": before}}
        return await self._delete_oldest(collection, old, "at", limit)

    async def _delete_oldest(self, collection: str, query: Document, by: str, limit: int) -> int:
        oldest = self._db[collection].find(query, {"_id": 1}, sort=[(by, 1)], limit=limit)
        ids = [document["_id"] async for document in oldest]
        if not ids:
            return 0
        deleted = await self._db[collection].delete_many({"_id": {"$in": ids}})
        return deleted.deleted_count
