"""Funnels' days in MongoDB: a document per funnel and day, its rows inside, replaced whole (one
write, so a reader sees the old day or the new one). A row is about 300 bytes: a document's
16 MB holds some 50,000 resource and dimension values a day."""

from collections.abc import Mapping, Sequence
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.documents import Document
from adapters.mongodb.errors import raises_storage_errors
from application.funnels.group_tallies import group_tallies
from application.funnels.ports import FunnelDay, FunnelDays, FunnelRow, kept_for
from domain.calendar import Bucket
from domain.funnels import FunnelTally


@raises_storage_errors
class MongoFunnelDays(FunnelDays):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._days = db["funnel_days"]

    async def replace(self, tenant_id: str, funnel: str, day: FunnelDay) -> None:
        key = {"tenant_id": tenant_id, "funnel": funnel, "day_start": day.start}
        await self._days.replace_one(key, day_to_document(tenant_id, funnel, day), upsert=True)

    async def stored(
        self, tenant_id: str, funnel: str, fingerprint: str, days: Sequence[Bucket]
    ) -> dict[datetime, bool]:
        by_start = {day.start: day for day in days}
        found = self._days.find(
            {**_of_days(tenant_id, funnel, list(by_start)), "fingerprint": fingerprint},
            {"_id": 0, "day_start": 1, "final": 1, "day_end": 1},
        )
        return {
            d["day_start"]: d["final"]
            async for d in found
            if kept_for(by_start[d["day_start"]], d.get("day_end"))
        }

    async def wholes(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime]
    ) -> list[FunnelTally]:
        found = self._days.find(_of_days(tenant_id, funnel, starts), {"_id": 0, "tally": 1})
        return [FunnelTally.from_document(d["tally"]) async for d in found]

    async def rows(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime], where: Mapping[str, str]
    ) -> list[FunnelRow]:
        # Every row of the days: the caller keeps those with the values asked for.
        return [row for day in await self._rows_by_day(tenant_id, funnel, starts) for row in day]

    async def groups(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime], grouping: str
    ) -> list[tuple[str | None, FunnelTally]]:
        days = await self._rows_by_day(tenant_id, funnel, starts)
        return [pair for rows in days for pair in group_tallies(rows, grouping).items()]

    async def _rows_by_day(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime]
    ) -> list[list[FunnelRow]]:
        found = self._days.find(_of_days(tenant_id, funnel, starts), {"_id": 0, "rows": 1})
        return [_rows(d) async for d in found]

    async def forget(self, tenant_id: str, funnel: str) -> None:
        await self._days.delete_many({"tenant_id": tenant_id, "funnel": funnel})


def day_to_document(tenant_id: str, funnel: str, day: FunnelDay) -> Document:
    rows = [
        {
            "resource_id": row.resource_id,
            "dimensions": [list(pair) for pair in row.dimensions],
            "tally": row.tally.document(),
        }
        for row in day.rows
    ]
    return {
        "tenant_id": tenant_id,
        "funnel": funnel,
        "day_start": day.start,
        "fingerprint": day.fingerprint,
        "final": day.final,
        "tally": day.whole.document(),
        "rows": rows,
        "dimensions": list(day.dimensions),
        "day_end": day.end,
    }


def day_from_document(document: Document) -> FunnelDay:
    rows = _rows(document)
    # Days stored before their dimensions were kept: the keys their rows have at least.
    keys = {k for row in rows for k, _ in row.dimensions}
    return FunnelDay(
        document["day_start"],
        document["fingerprint"],
        document["final"],
        FunnelTally.from_document(document["tally"]),
        rows,
        tuple(document.get("dimensions", sorted(keys))),
        document.get("day_end"),
    )


def _rows(document: Document) -> list[FunnelRow]:
    return [
        FunnelRow(
            row["resource_id"],
            tuple((k, v) for k, v in row["dimensions"]),
            FunnelTally.from_document(row["tally"]),
        )
        for row in document["rows"]
    ]


def _of_days(tenant_id: str, funnel: str, starts: Sequence[datetime]) -> Document:
    return {"tenant_id": tenant_id, "funnel": funnel, "day_start": {"$in": list(starts)}}
