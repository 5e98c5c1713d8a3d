"""Refused starts in MongoDB: a document per (tenant, day, subject, kind, reason), unique
(indexes.py), that an upsert with `$inc` counts up; the tally is one aggregation."""

from datetime import date, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.mongodb.documents import Document
from adapters.mongodb.errors import raises_storage_errors
from application.trials.ports import RefusedStarts
from domain.refusals import Refusal, RefusedStart
from domain.trial_report import RefusalTally


@raises_storage_errors
class MongoRefusedStarts(RefusedStarts):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._refused = db["refused_starts"]

    async def record(self, tenant_id: str, refused: RefusedStart) -> None:
        key = {
            "tenant_id": tenant_id,
            "day": refused.day.isoformat(),  # BSON has no dates without a time
            "subject_id": refused.subject_id,
            "kind": refused.kind,
            "reason": refused.reason.value,
        }
        try:
            await self._refused.update_one(key, {"$inc": {"count": 1}}, upsert=True)
        except DuplicateKeyError:
            # Two first refusals both tried to insert; the index let one in, so this one now
            # finds the document and adds to it.
            await self._refused.update_one(key, {"$inc": {"count": 1}})

    async def tally(self, tenant_id: str, first_day: date, last_day: date) -> RefusalTally:
        # `$lt` the next day: the test server drops the equal bound of `$lte` on this index.
        following = last_day + timedelta(days=1)
        days = {"$gte": first_day.isoformat(), "$lt": following.isoformat()}
        pipeline: list[Document] = [
            {"$match": {"tenant_id": tenant_id, "day": days}},
            # Per reason and subject, then per reason: distinct subjects without arrays.
            {
                "$group": {
                    "_id": {"reason": "$reason", "subject": "$subject_id"},
                    "count": {"$sum": "$count"},
                }
            },
            {
                "$group": {
                    "_id": "$_id.reason",
                    "count": {"$sum": "$count"},
                    "subjects": {"$sum": 1},
                }
            },
        ]
        rows = await (await self._refused.aggregate(pipeline)).to_list(None)
        starts = {Refusal(row["_id"]): row["count"] for row in rows}
        exhausted = next(
            (row["subjects"] for row in rows if row["_id"] == Refusal.TRIAL_EXHAUSTED), 0
        )
        return RefusalTally(starts, exhausted)
