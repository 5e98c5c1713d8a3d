"""Reports computed by aggregation pipelines on the server: nothing is loaded per session.

Date differences come out of MongoDB in milliseconds. A real mongod groups no input into no
document at all, so every figure has its default for an empty result.
"""

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.dimensions import dimension, having
from adapters.mongodb.documents import Document, from_bson, meter_name, within
from adapters.mongodb.errors import raises_storage_errors
from application.ports import Window
from application.reports.ports import EVERY, Reports
from domain.reports import ResourceActivity, UsageStats, WatchTime, keyed
from domain.rollups import Dimensions
from domain.session import SessionStatus

Pipeline = list[Document]
Expression = str | Document  # a field path ("$resource_id") or an aggregation expression
EXITED = {"$ne": ["$ended_at", None]}
DURATION_MS = {"$subtract": ["$ended_at", "$started_at"]}


@raises_storage_errors
class MongoReports(Reports):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._sessions = db["sessions"]

    async def watch_time(
        self,
        tenant_id: str,
        resource_id: str,
        window: Window,
        where: Dimensions = EVERY,
        group_by: str | None = None,
    ) -> list[WatchTime]:
        # In start order, a visit adds to the time watched only what reaches past the furthest
        # end of the subject's earlier visits (`reach`): overlapping tabs count once. Grouped,
        # a subject's visits are taken group by group: in each, its own union.
        per = _per("$subject_id", group_by)
        viewer = "$subject_id" if group_by is None else {"group": per, "subject": "$subject_id"}
        rows = await self._run(
            [
                _match(
                    tenant_id,
                    window,
                    where,
                    resource_id=resource_id,
                    subject_id={"$ne": None},
                    ended_at={"$ne": None},
                ),
                {
                    "$setWindowFields": {
                        "partitionBy": viewer,
                        "sortBy": {"started_at": 1, "ended_at": 1},
                        "output": {
                            "reach": {
                                "$max": "$ended_at",
                                "window": {"documents": ["unbounded", -1]},
                            }
                        },
                    }
                },
                {
                    "$group": {
                        "_id": per,
                        "visits": {"$sum": 1},
                        "total_ms": {"$sum": DURATION_MS},
                        "unique_ms": {"$sum": {"$max": [0, _past("$reach")]}},
                    }
                },
                {"$sort": {"_id": 1}},
            ]
        )
        report = []
        for r in rows:
            subject_id, group = keyed(r["_id"], group_by)
            total, unique = _seconds(r["total_ms"]), _seconds(r["unique_ms"])
            report.append(WatchTime(subject_id, r["visits"], total, unique, group))
        return report

    async def resources(
        self,
        tenant_id: str,
        kind: str | None,
        window: Window,
        where: Dimensions = EVERY,
        group_by: str | None = None,
    ) -> list[ResourceActivity]:
        chosen = _match(tenant_id, window, where, **({} if kind is None else {"kind": kind}))
        per = _per("$resource_id", group_by)
        totals = await self._run(
            [
                chosen,
                {
                    "$group": {
                        "_id": per,
                        "sessions": {"$sum": 1},
                        "subjects": {"$addToSet": "$subject_id"},
                        # The client keys of anonymous sessions (null for the others).
                        "browsers": {
                            "$addToSet": {
                                "$cond": [{"$ifNull": ["$subject_id", False]}, None, "$client_key"]
                            }
                        },
                        "exited": {"$sum": {"$cond": [EXITED, 1, 0]}},
                        "exited_ms": {"$sum": {"$cond": [EXITED, DURATION_MS, 0]}},
                        "active": {
                            "$sum": {"$cond": [{"$eq": ["$status", SessionStatus.ACTIVE]}, 1, 0]}
                        },
                    }
                },
                {
                    "$project": {
                        "sessions": 1,
                        "exited": 1,
                        "exited_ms": 1,
                        "active": 1,
                        # Anonymous sessions are not viewers.
                        "subjects": {"$size": {"$setDifference": ["$subjects", [None]]}},
                        "browsers": {"$size": {"$setDifference": ["$browsers", [None]]}},
                    }
                },
                {"$sort": {"_id": 1}},
            ]
        )
        peaks = {r["_id"]: r["peak"] for r in await self._run([chosen, *_peak_concurrency(per)])}
        report = []
        for r in totals:
            resource_id, group = keyed(r["_id"], group_by)
            report.append(
                ResourceActivity(
                    resource_id,
                    r["sessions"],
                    r["subjects"],
                    r["subjects"] + r["browsers"],
                    r["exited"],
                    _seconds(r["exited_ms"]),
                    r["active"],
                    peaks.get(r["_id"], 0),
                    group,
                )
            )
        return report

    async def usage_stats(self, tenant_id: str, subject_id: str, window: Window) -> UsageStats:
        mine = _match(tenant_id, window, EVERY, subject_id=subject_id)
        totals = await self._run(
            [
                mine,
                {
                    "$group": {
                        "_id": None,
                        "sessions": {"$sum": 1},
                        "ms": {"$sum": {"$cond": [EXITED, DURATION_MS, 0]}},
                        "events": {"$sum": "$event_count"},
                        "credits": {"$sum": {"$ifNull": ["$charge.credits", 0]}},
                    }
                },
            ]
        )
        meters = await self._run(
            [
                mine,
                {"$project": {"usage": {"$objectToArray": {"$ifNull": ["$usage", {}]}}}},
                {"$unwind": "$usage"},
                # Decimal128 sums stay exact; integers summed stay integers.
                {"$group": {"_id": "$usage.k", "sum": {"$sum": "$usage.v"}}},
            ]
        )
        total = totals[0] if totals else {"sessions": 0, "ms": 0, "events": 0, "credits": 0}
        return UsageStats(
            total_sessions=total["sessions"],
            total_duration_seconds=_seconds(total["ms"]),
            total_events=total["events"],
            total_credits_consumed=total["credits"],
            meters={meter_name(m["_id"]): from_bson(m["sum"]) for m in meters},
        )

    async def active(self, tenant_id: str, resource_id: str | None) -> int:
        query: Document = {"tenant_id": tenant_id, "status": SessionStatus.ACTIVE.value}
        if resource_id is not None:
            query["resource_id"] = resource_id
        return await self._sessions.count_documents(query)

    async def _run(self, pipeline: Pipeline) -> list[Document]:
        return await (await self._sessions.aggregate(pipeline)).to_list(None)


def _peak_concurrency(per: Expression) -> Pipeline:
    """The peak per resource or group (`per`): +1 at each start, -1 at each end; the running
    sum's maximum is the peak. Ends sort before starts at the same instant: one leaving as
    another enters do not overlap."""
    return [
        {
            "$project": {
                "per": per,
                "points": {
                    "$concatArrays": [
                        [{"t": "$started_at", "step": 1}],
                        {"$cond": [EXITED, [{"t": "$ended_at", "step": -1}], []]},
                    ]
                },
            }
        },
        {"$unwind": "$points"},
        {
            "$setWindowFields": {
                "partitionBy": "$per",
                "sortBy": {"points.t": 1, "points.step": 1},
                "output": {
                    "open": {
                        "$sum": "$points.step",
                        "window": {"documents": ["unbounded", "current"]},
                    }
                },
            }
        },
        {"$group": {"_id": "$per", "peak": {"$max": "$open"}}},
    ]


def _per(own: str, group_by: str | None) -> Expression:
    """What a report's rows are per: its own field (a resource, a subject) or, grouped, the
    value of a dimension (missing: null)."""
    return own if group_by is None else dimension(group_by)


def _match(tenant_id: str, window: Window, where: Dimensions, **fields: Any) -> Document:
    chosen = {"tenant_id": tenant_id, **fields, **within("started_at", window)}
    return {"$match": {**chosen, **having(dict(where))}}


def _past(reach: str) -> Document:
    """What a visit reaches past `reach` (all of it when there is no earlier visit)."""
    return {
        "$subtract": ["$ended_at", {"$max": ["$started_at", {"$ifNull": [reach, "$started_at"]}]}]
    }


def _seconds(milliseconds: int | float | None) -> float:
    return (milliseconds or 0) / 1000
