"""The event log in MongoDB: a unique index stores each (session, sequence_no) once, and
event_counting.py adds what was stored to the sessions exactly once."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from adapters.mongodb.documents import Document, duplicates_in
from adapters.mongodb.errors import raises_storage_errors
from adapters.mongodb.event_counting import count_batch, finish_stale_batches
from adapters.mongodb.event_documents import from_document, to_document
from adapters.mongodb.session_documents import from_document as from_session_document
from application.events.ports import EventLog
from domain.events import Admission, BatchOutcome, Distribution, Event, sort_batch
from domain.session import Session


@raises_storage_errors
class MongoEventLog(EventLog):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db
        self._events = db["events"]

    async def append(
        self,
        tenant_id: str,
        batch: Sequence[tuple[int, Event]],
        now: datetime,
        window: timedelta,
        admits: Admission | None = None,
    ) -> BatchOutcome:
        found = await self._sessions(tenant_id, {e.session_id for _, e in batch})
        sorted_batch = sort_batch(batch, found, now, window, admits)
        token = ObjectId()
        inserted, repeated = await self._insert(tenant_id, [e for _, e in sorted_batch.new], token)
        refused, repriced = await count_batch(self._db, tenant_id, token, inserted, now, window)
        if repeated:  # a retry: maybe of a batch whose append died before counting it
            await finish_stale_batches(self._db, tenant_id, now, window, repeated)
        # Events their session no longer took when they were counted were refused then.
        reasons = {(e.session_id, e.sequence_no): reason for e, reason in refused}
        sorted_batch.refused += [
            (i, e, reasons[(e.session_id, e.sequence_no)])
            for i, e in sorted_batch.new
            if (e.session_id, e.sequence_no) in reasons
        ]
        stored_before = await self._stored(tenant_id, [e for _, e, _ in sorted_batch.refused])
        rejections = sorted_batch.rejected(stored_before)
        counted = len(inserted) - len(refused)
        return BatchOutcome(counted, len(batch) - counted - len(rejections), rejections, repriced)

    async def find(
        self,
        tenant_id: str,
        session_id: str,
        limit: int,
        after_sequence_no: int = 0,
        type: str | None = None,
        label: str | None = None,
    ) -> list[Event]:
        query: Document = {
            "tenant_id": tenant_id,
            "session_id": session_id,
            "sequence_no": {"$gt": after_sequence_no},
        }
        if type is not None:
            query["type"] = type
        if label is not None:
            query["label"] = label
        cursor = self._events.find(query, sort=[("sequence_no", 1)], limit=limit)
        return [from_document(document) async for document in cursor]

    async def distribution(self, tenant_id: str, session_id: str, field: str) -> Distribution:
        pipeline: list[Document] = [
            {"$match": {"tenant_id": tenant_id, "session_id": session_id, field: {"$ne": None}}},
            {"$group": {"_id": f"${field}", "n": {"$sum": 1}}},
        ]
        counts = {g["_id"]: g["n"] async for g in await self._events.aggregate(pipeline)}
        return Distribution(total=sum(counts.values()), counts=counts)

    async def _sessions(self, tenant_id: str, session_ids: set[str]) -> dict[str, Session]:
        cursor = self._db["sessions"].find(
            {"tenant_id": tenant_id, "id": {"$in": sorted(session_ids)}}
        )
        return {document["id"]: from_session_document(document) async for document in cursor}

    async def _insert(
        self, tenant_id: str, events: list[Event], token: ObjectId
    ) -> tuple[list[Event], set[str]]:
        """Insert what is new, marked with `token`: the events this call stored, and the
        sessions of those that were stored already."""
        if not events:
            return [], set()
        documents = [{**to_document(tenant_id, e), "batch": token} for e in events]
        try:
            await self._events.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            failed = duplicates_in(error)
            stored = [e for i, e in enumerate(events) if i not in failed]
            return stored, {events[i].session_id for i in failed}
        return events, set()

    async def _stored(self, tenant_id: str, events: list[Event]) -> set[tuple[str, int]]:
        if not events:
            return set()
        cursor = self._events.find(
            {
                "tenant_id": tenant_id,
                "$or": [{"session_id": e.session_id, "sequence_no": e.sequence_no} for e in events],
            },
            {"session_id": 1, "sequence_no": 1},
        )
        return {(d["session_id"], d["sequence_no"]) async for d in cursor}
