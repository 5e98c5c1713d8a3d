"""Rollups in MongoDB: an hour's figures by aggregation pipelines over the raw collections; a
bucket is one document, so replacing it is one atomic write; a lease document per tenant."""

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from bson import Decimal128
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.mongodb.dimensions import dimension
from adapters.mongodb.documents import (
    Document,
    from_bson,
    meter_field,
    meter_name,
    usage_from_document,
    usage_to_document,
    within,
)
from adapters.mongodb.errors import raises_storage_errors
from application.ports import Window
from application.rollups.figures_from_found import figures_from_found
from application.rollups.ports import RollupLease, RollupLeases, RollupRepository, UsageSource
from domain.calendar import Calendar, Period
from domain.rollups import (
    Activity,
    ActivityTally,
    Dimensions,
    Rollup,
    ServerLoad,
    UsageFigures,
    UsageFilter,
    dimensions_of,
)
from domain.sales import SaleStatus
from domain.session import SessionStatus

Pipeline = list[Document]
SOLD = [SaleStatus.COMPLETED.value, SaleStatus.REFUNDED.value]  # failed sales move no money


def _overlap_ms(start: Any, end: Any, b: datetime, e: datetime) -> Document:
    return {"$subtract": [{"$min": [end, e]}, {"$max": [start, b]}]}


@raises_storage_errors
class MongoUsageSource(UsageSource):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._sessions = db["sessions"]
        self._events = db["events"]
        self._errors = db["errors"]
        self._sales = db["sales"]

    async def activity(
        self, tenant_id: str, start: datetime, end: datetime, dimensions: Sequence[str] = ()
    ) -> list[Activity]:
        figures = ActivityTally()
        by = _by(dimensions)
        count = {"$group": {"_id": by, "n": {"$sum": 1}}}

        def key(row: Document) -> tuple[str, str, Dimensions]:
            group = row["_id"]
            present = ((k, group.get(f"d{n}")) for n, k in enumerate(dimensions))
            values = tuple(sorted((k, v) for k, v in present if v is not None))
            return group["kind"], group["resource_id"], values

        mine = {"tenant_id": tenant_id}
        inside = {"$gte": start, "$lt": end}
        for row in await self._run([{"$match": {**mine, "started_at": inside}}, count]):
            figures[key(row)]["sessions_started"] = row["n"]
        ended: Pipeline = [{"$match": {**mine, "ended_at": inside}}]
        by_status = {
            "$group": {
                "_id": {**by, "status": "$status"},
                "n": {"$sum": 1},
                "ms": {"$sum": {"$subtract": ["$ended_at", "$started_at"]}},
            }
        }
        for row in await self._run([*ended, by_status]):
            figures.ended(key(row), row["_id"]["status"], row["n"], row["ms"] / 1000)
        usage: Pipeline = [
            {"$project": {**by, "usage": {"$objectToArray": {"$ifNull": ["$usage", {}]}}}},
            {"$unwind": "$usage"},
            {"$group": {"_id": {**by, "meter": "$usage.k"}, "sum": {"$sum": "$usage.v"}}},
        ]
        for row in await self._run([*ended, *usage]):
            meter = meter_name(row["_id"]["meter"])
            figures[key(row)]["meters"][meter] = from_bson(row["sum"])
        # Sessions that ran in the bucket; the index on ended_at finds them, nulls included.
        ran = {
            "$or": [{"ended_at": {"$gt": start}}, {"ended_at": None}],
            "started_at": {"$lt": end},
        }
        running: Pipeline = [
            {"$match": {**mine, **ran}},
            {"$addFields": {"until": {"$ifNull": ["$ended_at", "$last_seen_at"]}}},
            {"$match": {"until": {"$gt": start}}},
        ]
        active = {
            "$group": {
                "_id": by,
                "ms": {"$sum": _overlap_ms("$started_at", "$until", start, end)},
            }
        }
        for row in await self._run([*running, active]):
            figures[key(row)]["active_seconds"] = row["ms"] / 1000
        # Track time counts in the hours it fell in, whether or not its session ran in them (a
        # track may be unpublished after its stay's end): sessions are found by their tracks'
        # span, by index. Documents from before tracks_until was kept (it is written with every
        # end) are found as before, by their own time.
        with_tracks: Pipeline = [
            {
                "$match": {
                    **mine,
                    "$or": [
                        {"tracks_until": {"$gt": start}, "tracks_from": {"$lt": end}},
                        {**ran, "tracks_until": None, "tracks": {"$ne": None}},
                    ],
                }
            }
        ]
        tracks: Pipeline = [
            {"$project": {**by, "track": {"$objectToArray": {"$ifNull": ["$tracks", {}]}}}},
            {"$unwind": "$track"},
            {
                "$match": {
                    "track.v.published_at": {"$lt": end},
                    "track.v.unpublished_at": {"$gt": start},
                }
            },
            {
                "$group": {
                    "_id": {**by, "meter": "$track.v.meter"},
                    "ms": {
                        "$sum": _overlap_ms(
                            "$track.v.published_at", "$track.v.unpublished_at", start, end
                        )
                    },
                }
            },
        ]
        for row in await self._run([*with_tracks, *tracks]):
            figures[key(row)]["track_seconds"][row["_id"]["meter"]] = row["ms"] / 1000
        await self._count_events(tenant_id, start, end, dimensions, figures)
        return figures.rows()

    async def _count_events(
        self,
        tenant_id: str,
        start: datetime,
        end: datetime,
        dimensions: Sequence[str],
        figures: ActivityTally,
    ) -> None:
        """Events, device errors and sales are counted per session by the server, then added up
        by their sessions' kind, resource and dimensions (memory grows with the sessions of the
        hour, not with its events)."""
        inside = {"$gte": start, "$lt": end}
        events = await self._per_session(
            self._events,
            {"tenant_id": tenant_id, "at": inside},
            {"n": {"$sum": 1}},
        )
        errors = await self._per_session(
            self._errors,
            {"tenant_id": tenant_id, "at": inside, "session_id": {"$ne": None}},
            {
                "n": {"$sum": 1},
                "fatal": {"$sum": {"$cond": [{"$eq": ["$severity", "fatal"]}, 1, 0]}},
            },
        )
        sales = await self._per_session(
            self._sales,
            {"tenant_id": tenant_id, "occurred_at": inside, "status": {"$in": SOLD}},
            {"n": {"$sum": 1}, "net": {"$sum": "$amounts.net"}},
            currency="$currency",
            status="$status",
        )
        ids = {row["_id"]["session_id"] for rows in (events, errors, sales) for row in rows}
        keys = await self._keys_of(tenant_id, ids, dimensions)
        # Rows of a session no longer stored (a resource's deletion keeps its device errors) have
        # no kind or resource to count under, as the SQL stores' join leaves them out.
        for row in events:
            if key := keys.get(row["_id"]["session_id"]):
                figures.add(key, "events", row["n"])
        for row in errors:
            if key := keys.get(row["_id"]["session_id"]):
                figures.add(key, "errors", row["n"])
                figures.add(key, "fatal_errors", row["fatal"])
        for row in sales:
            group, net = row["_id"], Decimal(str(from_bson(row["net"])))
            if key := keys.get(group["session_id"]):
                figures.sold(key, group["currency"], group["status"], row["n"], net)

    @staticmethod
    async def _per_session(
        collection: AsyncCollection[Document], match: Document, sums: Document, **by: str
    ) -> list[Document]:
        grouped = {"$group": {"_id": {"session_id": "$session_id", **by}, **sums}}
        return await (await collection.aggregate([{"$match": match}, grouped])).to_list(None)

    async def _keys_of(
        self, tenant_id: str, ids: set[str], dimensions: Sequence[str]
    ) -> dict[str, tuple[str, str, Dimensions]]:
        """The kind, resource and dimension values of each session named."""
        found = self._sessions.find(
            {"tenant_id": tenant_id, "id": {"$in": list(ids)}},
            {"_id": 0, "id": 1, "kind": 1, "resource_id": 1, "attributes": 1},
        )
        return {
            session["id"]: (
                session["kind"],
                session["resource_id"],
                dimensions_of(session.get("attributes") or {}, dimensions),
            )
            async for session in found
        }

    async def earliest_active_start(self, tenant_id: str) -> datetime | None:
        return await self._earliest_active(tenant_id, "started_at")

    async def earliest_active_seen(self, tenant_id: str) -> datetime | None:
        return await self._earliest_active(tenant_id, "last_seen_at")

    async def _earliest_active(self, tenant_id: str, instant: str) -> datetime | None:
        oldest = await self._sessions.find_one(
            {"tenant_id": tenant_id, "status": SessionStatus.ACTIVE.value},
            {"_id": 0, instant: 1},
            sort=[(instant, 1)],
        )
        return None if oldest is None else oldest[instant]

    async def _run(self, pipeline: Pipeline) -> list[Document]:
        return await (await self._sessions.aggregate(pipeline)).to_list(None)


def _by(dimensions: Sequence[str]) -> Document:
    """Group by kind, resource and each dimension's value as domain.rollups.dimensions_of spells
    it (d0, d1, …: a key may hold dots); $getField, as a key may also start with $."""
    by: Document = {"kind": "$kind", "resource_id": "$resource_id"}
    for n, key in enumerate(dimensions):
        by[f"d{n}"] = dimension(key)
    return by


@raises_storage_errors
class MongoRollupRepository(RollupRepository):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._rollups = db["rollups"]

    async def replace(self, tenant_id: str, rollup: Rollup) -> None:
        key = {"tenant_id": tenant_id, "period": rollup.period.value, "start": rollup.start}
        document = rollup_to_document(tenant_id, rollup)
        try:
            await self._rollups.replace_one(key, document, upsert=True)
        except DuplicateKeyError:  # a concurrent first write of the bucket: replace it now
            await self._rollups.replace_one(key, document)

    async def find(
        self,
        tenant_id: str,
        period: Period,
        window: Window,
        kind: str | None = None,
        resource_id: str | None = None,
    ) -> list[Rollup]:
        query = {"tenant_id": tenant_id, "period": period.value, **within("start", window)}
        found = []
        async for document in self._rollups.find(query, sort=[("start", 1)]):
            rollup = rollup_from_document(document)
            activity = [
                a
                for a in rollup.activity
                if kind in (None, a.kind) and resource_id in (None, a.resource_id)
            ]
            found.append(replace(rollup, activity=activity))
        return found

    async def figures(
        self,
        tenant_id: str,
        size: Period,
        window: Window,
        calendar: Calendar,
        chosen: UsageFilter,
    ) -> list[UsageFigures]:
        return await figures_from_found(self, tenant_id, size, window, calendar, chosen)


def rollup_to_document(tenant_id: str, rollup: Rollup) -> Document:
    return {
        "tenant_id": tenant_id,
        "period": rollup.period.value,
        "start": rollup.start,
        "load": asdict(rollup.load),
        "activity": [_activity_document(a) for a in rollup.activity],
    }


def rollup_from_document(document: Document) -> Rollup:
    return Rollup(
        Period(document["period"]),
        document["start"],
        [_activity(a) for a in document["activity"]],
        ServerLoad(**document["load"]),
    )


def _activity_document(a: Activity) -> Document:
    return {
        "kind": a.kind,
        "resource_id": a.resource_id,
        "sessions_started": a.sessions_started,
        "sessions_ended": a.sessions_ended,
        "active_seconds": a.active_seconds,
        "events": a.events,
        "meters": usage_to_document(a.meters),
        "track_seconds": {meter_field(m): s for m, s in a.track_seconds.items()},
        "dimensions": [list(pair) for pair in a.dimensions],
        "ended_statuses": dict(a.ended_statuses),
        "ended_seconds": a.ended_seconds,
        "errors": a.errors,
        "fatal_errors": a.fatal_errors,
        "sales": dict(a.sales),
        "sales_net": {c: Decimal128(net) for c, net in a.sales_net.items()},
    }


def _activity(document: Document) -> Activity:
    return Activity(
        document["kind"],
        document["resource_id"],
        document["sessions_started"],
        document["sessions_ended"],
        document["active_seconds"],
        document["events"],
        usage_from_document(document["meters"]),
        {meter_name(f): s for f, s in document["track_seconds"].items()},
        tuple((k, v) for k, v in document.get("dimensions", [])),
        document.get("ended_statuses", {}),
        document.get("ended_seconds", 0.0),
        document.get("errors", 0),
        document.get("fatal_errors", 0),
        document.get("sales", {}),
        {c: net.to_decimal() for c, net in document.get("sales_net", {}).items()},
    )


@raises_storage_errors
class MongoRollupLeases(RollupLeases):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._leases = db["rollup_leases"]

    async def acquire(
        self, tenant_id: str, holder: str, now: datetime, until: datetime
    ) -> RollupLease | None:
        # Held by another, the filter matches nothing and the upsert collides with the unique
        # tenant_id: only a free or expired lease (or none yet) is taken.
        try:
            taken = await self._leases.find_one_and_update(
                {
                    "tenant_id": tenant_id,
                    "$or": [{"holder": None}, {"held_until": {"$lte": now}}],
                },
                {"$set": {"holder": holder, "held_until": until}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return None
        if taken is None:
            # An upsert racing a rewind's first write of the document may be answered without
            # it, though it took the lease (seen on the test server): read what it holds.
            taken = await self._leases.find_one({"tenant_id": tenant_id, "holder": holder})
            if taken is None:
                return None
        resume_from, rewound = taken.get("resume_from"), taken.get("rewind_to")
        if rewound is not None:
            resume_from = rewound if resume_from is None else min(resume_from, rewound)
            # Only this rewind is consumed: one that lands meanwhile is left for the next run.
            await self._leases.update_one(
                {"tenant_id": tenant_id, "holder": holder, "rewind_to": rewound},
                {"$set": {"rewind_to": None, "resume_from": resume_from}},
            )
        return RollupLease(holder, resume_from, taken.get("cut"))

    async def renew(self, tenant_id: str, holder: str, until: datetime) -> bool:
        renewed = await self._leases.update_one(
            {"tenant_id": tenant_id, "holder": holder}, {"$set": {"held_until": until}}
        )
        return renewed.matched_count == 1

    async def release(
        self, tenant_id: str, holder: str, resume_from: datetime, cut: str | None
    ) -> None:
        await self._leases.update_one(
            {"tenant_id": tenant_id, "holder": holder},
            {"$set": {"holder": None, "held_until": None, "resume_from": resume_from, "cut": cut}},
        )

    async def rewind(self, tenant_id: str, to: datetime) -> None:
        # A tenant without a lease yet gets one, rewound: its first run starts there.
        with suppress(DuplicateKeyError):  # there, with an earlier rewind: it stays
            await self._leases.update_one(
                {
                    "tenant_id": tenant_id,
                    "$or": [{"rewind_to": None}, {"rewind_to": {"$gt": to}}],
                },
                {"$set": {"rewind_to": to}},
                upsert=True,
            )
