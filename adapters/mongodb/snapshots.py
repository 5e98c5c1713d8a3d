"""Snapshots in MongoDB; each one's traffic delta is computed where it is read ($shift over its
source's counters), so a snapshot that arrives late corrects the deltas around it."""

from collections.abc import Sequence
from dataclasses import asdict, fields

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from adapters.mongodb.documents import Document, duplicates_in, past
from adapters.mongodb.errors import raises_storage_errors
from application.ports import Window
from application.snapshots.ports import SnapshotLog, SnapshotPlace
from domain.snapshots import MeasuredSnapshot, Snapshot

FIELDS = [f.name for f in fields(Snapshot)]


@raises_storage_errors
class MongoSnapshotLog(SnapshotLog):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._snapshots = db["snapshots"]

    async def add(self, tenant_id: str, batch: Sequence[Snapshot]) -> int:
        if not batch:
            return 0
        try:
            stored = await self._snapshots.insert_many(
                [{"tenant_id": tenant_id, **asdict(s)} for s in batch], ordered=False
            )
        except BulkWriteError as error:
            return len(batch) - len(duplicates_in(error))
        return len(stored.inserted_ids)

    async def find(
        self,
        tenant_id: str,
        source: str | None,
        window: Window,
        limit: int,
        after: SnapshotPlace | None = None,
    ) -> list[MeasuredSnapshot]:
        mine: Document = {"tenant_id": tenant_id}
        if source is not None:
            mine["source"] = source
        if window.end is not None:
            mine["at"] = {"$lt": window.end}
        total, previous = "$traffic_bytes_total", "$previous"
        # The delta needs the snapshot before the window's first: kept until after the shift.
        shown: Document = {} if window.start is None else {"at": {"$gte": window.start}}
        if after is not None:
            shown |= past("source", "at", (after.source, after.at))
        pipeline: list[Document] = [
            {"$match": mine},
            {
                "$setWindowFields": {
                    "partitionBy": "$source",
                    "sortBy": {"at": 1},
                    "output": {"previous": {"$shift": {"output": total, "by": -1}}},
                }
            },
            {"$match": shown},
            {"$sort": {"source": 1, "at": 1}},
            {"$limit": limit},
            {
                "$set": {
                    "traffic_bytes": {
                        "$switch": {
                            "branches": [
                                {"case": {"$eq": [previous, None]}, "then": 0},
                                {
                                    "case": {"$gte": [total, previous]},
                                    "then": {"$subtract": [total, previous]},
                                },
                            ],
                            "default": total,
                        }
                    }
                }
            },
        ]
        rows = await (await self._snapshots.aggregate(pipeline)).to_list(None)
        return [
            MeasuredSnapshot(Snapshot(**{f: r[f] for f in FIELDS}), int(r["traffic_bytes"]))
            for r in rows
        ]
