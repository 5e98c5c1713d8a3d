"""Kiosk telemetry in MongoDB: errors, performance metrics and sales, a document each.

A unique index on (tenant_id, id) keeps one record per client id (indexes.py): `add` inserts a
batch unordered and reads back what the index refused. Reports are aggregation pipelines; for
percentiles the server sorts and numbers each group's values ($setWindowFields), so only the
values at the ranks asked for leave it.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Generic

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from adapters.mongodb.documents import Document, duplicates_in, past, wall_clock, within
from adapters.mongodb.errors import raises_storage_errors
from adapters.mongodb.session_documents import HAS_SALES, KEPT_FOR_SALES
from adapters.mongodb.telemetry_documents import (
    amount_of,
    error_from_document,
    error_to_document,
    metric_from_document,
    metric_to_document,
    money,
    sale_from_document,
    sale_to_document,
    settlement_to_document,
)
from adapters.record_batches import RecordBatch
from application.pagination import Position
from application.ports import Window
from application.telemetry.ports import (
    Added,
    ErrorLog,
    MetricLog,
    Record,
    SaleBook,
)
from domain.error_reports import (
    PER_FINGERPRINT,
    ErrorFilter,
    ErrorGroup,
    ErrorGroupBy,
    ErrorGrouping,
    ErrorReport,
    Severity,
    in_report_order,
)
from domain.errors import Contended, InvalidInput
from domain.money import sum_by_currency
from domain.performance import (
    PERCENTILES,
    STEP_PERCENTILES,
    GroupBy,
    Metric,
    PerformanceRow,
    StepTimes,
    rank,
)
from domain.sales import (
    PaymentMethod,
    Sale,
    SaleFigures,
    SalesFilter,
    SalesGroupBy,
    SalesGrouping,
    SaleStatus,
    Settlement,
    SettlementState,
    over_refunds,
)

Pipeline = list[Document]


@raises_storage_errors
class _MongoRecordLog(Generic[Record]):
    def __init__(
        self,
        collection: AsyncCollection[Document],
        to_document: Callable[[str, Record], Document],
        from_document: Callable[[Document], Record],
    ) -> None:
        self._collection = collection
        self._to_document = to_document
        self._from_document = from_document

    async def add(self, tenant_id: str, records: Sequence[Record]) -> list[Added[Record]]:
        gone = await self._sessions_gone(tenant_id, list(records))
        batch = RecordBatch(records, gone)
        taken = batch.judged(await self._refused(tenant_id, batch.there))
        before = await self._store(tenant_id, taken)
        inserted = [r for r in taken if r.id not in before]
        await self._stored(tenant_id, records, inserted, gone)
        return batch.outcome({r.id for r in inserted}, before)

    async def _sessions_gone(self, tenant_id: str, records: list[Record]) -> set[str]:
        """The sessions the records name that must exist as they are stored, and do not."""
        return set()

    async def _refused(self, tenant_id: str, records: list[Record]) -> list[InvalidInput | None]:
        """Why each of the records (in the batch's order) may not be stored, if it is new and
        may not (None: it may)."""
        return [None] * len(records)

    async def _stored(
        self,
        tenant_id: str,
        records: Sequence[Record],
        inserted: list[Record],
        gone: set[str],
    ) -> None:
        """Of `records` (naming no session in `gone`), this call inserted `inserted`."""

    async def _store(self, tenant_id: str, records: list[Record]) -> dict[str, Record]:
        """Insert the records; those stored before under their ids, by id. One insert, and one
        read when the unique index refused some (again for any deleted in between)."""
        before: dict[str, Record] = {}
        while records:
            refused = await self._insert(tenant_id, records)
            found = await self._get(tenant_id, [r.id for r in refused])
            before.update(found)
            records = [r for r in refused if r.id not in found]
        return before

    async def _insert(self, tenant_id: str, records: list[Record]) -> list[Record]:
        """The records the unique index refused."""
        documents = [self._to_document(tenant_id, r) for r in records]
        try:
            await self._collection.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            return [records[i] for i in sorted(duplicates_in(error))]
        return []

    async def _get(self, tenant_id: str, ids: Sequence[str]) -> dict[str, Record]:
        if not ids:
            return {}
        cursor = self._collection.find({"tenant_id": tenant_id, "id": {"$in": list(ids)}})
        return {d["id"]: self._from_document(d) async for d in cursor}

    async def _newest_first(
        self, query: Document, at: str, window: Window, limit: int, after: Position | None
    ) -> list[Record]:
        query = {**query, **within(at, window)}
        if after is not None:
            query |= past(at, "id", (after.at, after.id), descending=True)
        cursor = self._collection.find(query, sort=[(at, -1), ("id", -1)], limit=limit)
        return [self._from_document(d) async for d in cursor]

    async def _aggregate(self, pipeline: Pipeline) -> list[Document]:
        return await (await self._collection.aggregate(pipeline)).to_list(None)


def _equal_to(wanted: Mapping[str, object]) -> Document:
    """A filter on the fields whose wanted value is given (enums as their values)."""
    return {name: str(value) for name, value in wanted.items() if value is not None}


# Severity.rank on the server: worse is higher.
_SEVERITY_RANK = {"$indexOfArray": [[s.value for s in Severity], "$severity"]}


def _local_day(instant: str, time_zone: str) -> Document:
    """The calendar day (YYYY-MM-DD) that holds the instant (a field path, `$at`) in the time
    zone: the group of the sales and errors reports by day."""
    return {"$dateToString": {"date": instant, "format": "%Y-%m-%d", "timezone": time_zone}}


def _distinct_count(sets: str) -> Document:
    """How many distinct values, but null, the arrays of arrays at `sets` hold together."""
    union = {
        "$reduce": {"input": sets, "initialValue": [], "in": {"$setUnion": ["$$value", "$$this"]}}
    }
    return {"$size": {"$setDifference": [union, [None]]}}


@raises_storage_errors
class MongoErrorLog(_MongoRecordLog[ErrorReport], ErrorLog):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db["errors"], error_to_document, error_from_document)

    async def find(
        self,
        tenant_id: str,
        where: ErrorFilter,
        window: Window,
        limit: int,
        after: Position | None = None,
    ) -> list[ErrorReport]:
        return await self._newest_first(self._query(tenant_id, where), "at", window, limit, after)

    async def report(
        self,
        tenant_id: str,
        where: ErrorFilter,
        window: Window,
        grouping: ErrorGrouping = PER_FINGERPRINT,
    ) -> list[ErrorGroup]:
        # Grouped by (day, fingerprint, app version, loss currency) first, then by (day,
        # fingerprint): each group's counts per version and losses per currency come out as a
        # few sub-rows. Without a grouping by day there is no day: a group per fingerprint.
        day: Document = {}
        if grouping.by is ErrorGroupBy.DAY:
            day = {"day": _local_day("$at", grouping.time_zone)}
        latest = {"at": "$at", "id": "$id", "type": "$type", "code": "$code", "message": "$message"}
        by_version_and_currency = {
            "_id": {
                **day,
                "fingerprint": "$fingerprint",
                "version": "$app_version",
                "currency": "$impact.estimated_loss.currency",
            },
            "count": {"$sum": 1},
            "devices": {"$addToSet": "$device_id"},
            "sessions": {"$addToSet": "$session_id"},
            "first_seen": {"$min": "$at"},
            "last_seen": {"$max": "$at"},
            "worst": {"$max": _SEVERITY_RANK},
            "sales_lost": {"$sum": {"$cond": ["$impact.sale_lost", 1, 0]}},
            "loss": {"$sum": "$impact.estimated_loss.amount"},
            "latest": {"$top": {"sortBy": {"at": -1, "id": -1}, "output": latest}},
        }
        by_fingerprint = {
            "_id": {"day": "$_id.day", "fingerprint": "$_id.fingerprint"},
            "count": {"$sum": "$count"},
            "devices": {"$push": "$devices"},
            "sessions": {"$push": "$sessions"},
            "first_seen": {"$min": "$first_seen"},
            "last_seen": {"$max": "$last_seen"},
            "worst": {"$max": "$worst"},
            "sales_lost": {"$sum": "$sales_lost"},
            "versions": {"$push": {"version": "$_id.version", "count": "$count"}},
            "losses": {"$push": {"currency": "$_id.currency", "amount": "$loss"}},
            "latest": {"$top": {"sortBy": {"latest.at": -1, "latest.id": -1}, "output": "$latest"}},
        }
        pipeline: Pipeline = [
            {"$match": {**self._query(tenant_id, where), **within("at", window)}},
            {"$group": by_version_and_currency},
            {"$group": by_fingerprint},
            {
                "$set": {
                    "devices": _distinct_count("$devices"),
                    "sessions": _distinct_count("$sessions"),
                }
            },
        ]
        return in_report_order(_error_group(row) for row in await self._aggregate(pipeline))

    @staticmethod
    def _query(tenant_id: str, where: ErrorFilter) -> Document:
        return {"tenant_id": tenant_id, **_equal_to(vars(where))}


def _error_group(row: Document) -> ErrorGroup:
    versions: dict[str, int] = defaultdict(int)
    for v in row["versions"]:
        versions[v["version"]] += v["count"]
    latest = row["latest"]
    return ErrorGroup(
        fingerprint=row["_id"]["fingerprint"],
        type=latest["type"],
        code=latest["code"],
        sample_message=latest["message"],
        count=row["count"],
        devices=row["devices"],
        sessions=row["sessions"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        app_versions=dict(versions),
        severity=list(Severity)[row["worst"]],
        sales_lost=row["sales_lost"],
        estimated_loss=sum_by_currency(
            (loss["currency"], amount_of(loss["amount"]))
            for loss in row["losses"]
            if loss.get("currency") is not None
        ),
        day=row["_id"].get("day"),  # not grouped by day: left out (or null)
    )


_WHOLE_PARTITION = {"documents": ["unbounded", "unbounded"]}
MAX = 100  # the 100th percentile's nearest rank is the last: the largest value


def _at_ranks(
    partition: Document, field: str, percentiles: Iterable[int], **totals: Document
) -> Pipeline:
    """Per partition: its count (n), `totals`, and the values of `field` at the nearest ranks of
    the percentiles, as `ranked` [{rank, ms}]."""

    def nearest_rank(p: int) -> Document:  # domain.performance.rank, on the server
        return {"$max": [1, {"$ceil": {"$divide": [{"$multiply": [p, "$n"]}, 100]}}]}

    counted = {"n": 1, **totals}
    return [
        {
            "$setWindowFields": {
                "partitionBy": partition,
                "sortBy": {field: 1},
                "output": {
                    "rank": {"$documentNumber": {}},
                    **{
                        name: {"$sum": value, "window": _WHOLE_PARTITION}
                        for name, value in counted.items()
                    },
                },
            }
        },
        {"$match": {"$expr": {"$in": ["$rank", list(map(nearest_rank, percentiles))]}}},
        {
            "$group": {
                "_id": partition,
                **{name: {"$first": f"${name}"} for name in counted},
                "ranked": {"$push": {"rank": "$rank", "ms": f"${field}"}},
            }
        },
    ]


def _values_at(row: Document, percentiles: Iterable[int]) -> list[float]:
    ranked = {r["rank"]: r["ms"] for r in row["ranked"]}
    return [ranked[rank(row["n"], p)] for p in percentiles]


@raises_storage_errors
class MongoMetricLog(_MongoRecordLog[Metric], MetricLog):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db["performance_metrics"], metric_to_document, metric_from_document)

    async def report(
        self, tenant_id: str, type: str | None, window: Window, group_by: GroupBy
    ) -> list[PerformanceRow]:
        started = {
            "$match": {
                "tenant_id": tenant_id,
                **_equal_to({"type": type}),
                **within("started_at", window),
            }
        }
        by = {"type": "$type", "group": f"${group_by.value}"}
        successes = {"$cond": ["$success", 1, 0]}
        steps: Pipeline = [
            started,
            {"$unwind": "$steps"},
            *_at_ranks({**by, "step": "$steps.step"}, "steps.ms", STEP_PERCENTILES),
        ]
        pipeline: Pipeline = [
            started,
            *_at_ranks(by, "duration_ms", (*PERCENTILES, MAX), successes=successes),
            {"$unionWith": {"coll": self._collection.name, "pipeline": steps}},
        ]
        durations: dict[tuple[str, str], Document] = {}
        breakdowns: dict[tuple[str, str], dict[str, StepTimes]] = defaultdict(dict)
        for row in await self._aggregate(pipeline):
            key = row["_id"]["type"], row["_id"]["group"]
            if "step" in row["_id"]:
                breakdowns[key][row["_id"]["step"]] = StepTimes(*_values_at(row, STEP_PERCENTILES))
            else:
                durations[key] = row
        return [
            _performance_row(type, group, row, dict(sorted(breakdowns[(type, group)].items())))
            for (type, group), row in sorted(durations.items())
        ]


def _performance_row(
    type: str, group: str, row: Document, breakdown: dict[str, StepTimes]
) -> PerformanceRow:
    p50, p95, p99, longest = _values_at(row, (*PERCENTILES, MAX))
    return PerformanceRow(
        type, group, row["n"], row["successes"], p50, p95, p99, longest, breakdown
    )


AMOUNTS = ("gross", "discount", "tax", "net")


def _group_of_sale(grouping: SalesGrouping) -> str | Document:
    if grouping.by is SalesGroupBy.DEVICE_ID:
        return "$device_id"
    if grouping.by is SalesGroupBy.DAY:
        return _local_day("$occurred_at", grouping.time_zone)
    # $getField: an attribute's name may hold dots or start with $.
    return {"$getField": {"field": {"$literal": grouping.attribute}, "input": "$attribute_texts"}}


# On a sale, what its new refunds give back while they are stored ({id, net, since} each),
# and the turn that every change of those holds moves on (MongoSaleBook._hold).
REFUND_HOLDS, REFUND_TURN = "refund_holds", "refund_turn"
HOLD_DEAD_AFTER = timedelta(seconds=60)
ATTEMPTS = 20  # changes of one sale's holds lost to concurrent ones, tried again


@raises_storage_errors
class MongoSaleBook(_MongoRecordLog[Sale], SaleBook):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db["sales"], sale_to_document, sale_from_document)
        self._sessions = db["sessions"]

    async def _sessions_gone(self, tenant_id: str, records: list[Sale]) -> set[str]:
        # Each session counts its sales, stored or being stored: the count goes up before they
        # are stored, and session retention deletes only sessions that count none
        # (MongoErasure.delete_sessions): of the count and the delete, one comes first. What a
        # call counted and did not store goes back (_stored); a crash in between keeps the
        # session.
        counted = _per_session(records)
        if not counted:
            return set()
        marks = [
            UpdateOne({"tenant_id": tenant_id, "id": session_id}, {"$inc": {KEPT_FOR_SALES: n}})
            for session_id, n in counted.items()
        ]
        marked = await self._sessions.bulk_write(marks, ordered=False)
        if marked.matched_count == len(counted):
            return set()
        present = await self._sessions.distinct(
            "id", {"tenant_id": tenant_id, "id": {"$in": list(counted)}, **HAS_SALES}
        )
        return set(counted) - set(present)

    async def _stored(
        self, tenant_id: str, records: Sequence[Sale], inserted: list[Sale], gone: set[str]
    ) -> None:
        # Replays, conflicts and copies within the batch were counted and not stored.
        stored = _per_session(inserted)
        unmarks = [
            UpdateOne(
                {"tenant_id": tenant_id, "id": session_id},
                {"$inc": {KEPT_FOR_SALES: stored.get(session_id, 0) - n}},
            )
            for session_id, n in _per_session(records).items()
            if session_id not in gone and n > stored.get(session_id, 0)
        ]
        if unmarks:
            await self._sessions.bulk_write(unmarks, ordered=False)

    async def _refused(self, tenant_id: str, records: list[Sale]) -> list[InvalidInput | None]:
        judged: list[InvalidInput | None] = [None] * len(records)
        for sale_id in sorted({r.refund_of for r in records if r.refund_of is not None}):
            of_sale = [(n, r) for n, r in enumerate(records) if r.refund_of == sale_id]
            refusals = await self._hold(tenant_id, sale_id, [r for _, r in of_sale])
            for (n, _), why in zip(of_sale, refusals, strict=True):
                judged[n] = why
        return judged

    async def _hold(
        self, tenant_id: str, sale_id: str, refunds: list[Sale]
    ) -> list[InvalidInput | None]:
        """Before new refunds of a sale are stored, what they give back is held on the sale
        (REFUND_HOLDS), in a write guarded on the sale's turn that every such write moves on:
        of two adds of refunds of one sale, the second counts the first's holds, whether its
        refunds are stored yet or not. A hold counts until its id is stored (as a refund of the
        sale, which then counts itself, or as another record: it never will be), or for
        HOLD_DEAD_AFTER: one left by an add that died before storing its refund is then
        dropped; meanwhile that refund sent again (the same id and net) is taken on its hold.
        Why each refund may not be stored, in order (over_refunds)."""
        for _ in range(ATTEMPTS):
            document = await self._collection.find_one({"tenant_id": tenant_id, "id": sale_id})
            if document is None:
                return [None] * len(refunds)  # sales are never deleted: the use case found it
            holds = document.get(REFUND_HOLDS, [])
            # The sale's refunds stored, and which of the batch's and the holds' ids are stored.
            ids = sorted({r.id for r in refunds} | {h["id"] for h in holds})
            found = self._collection.find(
                {"tenant_id": tenant_id, "$or": [{"refund_of": sale_id}, {"id": {"$in": ids}}]},
                {"_id": 0, "id": 1, "refund_of": 1, "amounts.net": 1},
            )
            given_back: dict[str, Decimal] = {}
            stored: set[str] = set()
            async for record in found:
                stored.add(record["id"])
                if record["refund_of"] == sale_id:
                    given_back[record["id"]] = amount_of(record["amounts"]["net"])
            now = wall_clock()
            sent = {(r.id, r.amounts.net) for r in refunds}
            live = [
                h
                for h in holds
                if h["id"] not in stored
                and ((h["id"], amount_of(h["net"])) in sent or h["since"] > now - HOLD_DEAD_AFTER)
            ]
            held = {(h["id"], amount_of(h["net"])) for h in live}
            new = [
                n
                for n, r in enumerate(refunds)
                if r.id not in stored and (r.id, r.amounts.net) not in held
            ]
            counted = [*given_back.values(), *(amount_of(h["net"]) for h in live)]
            sale = sale_from_document(document)
            judged: list[InvalidInput | None] = [None] * len(refunds)
            refusals = over_refunds(sale, counted, [refunds[n] for n in new])
            for n, why in zip(new, refusals, strict=True):
                judged[n] = why
            holding: dict[str, Document] = {}
            for n in new:
                refund = refunds[n]
                if judged[n] is None:
                    hold = {"id": refund.id, "net": money(refund.amounts.net), "since": now}
                    holding.setdefault(refund.id, hold)
            if not holding and len(live) == len(holds):
                return judged
            turn = {"tenant_id": tenant_id, "id": sale_id, REFUND_TURN: document.get(REFUND_TURN)}
            moved = await self._collection.update_one(
                turn,
                {"$set": {REFUND_HOLDS: live + list(holding.values())}, "$inc": {REFUND_TURN: 1}},
            )
            if moved.matched_count:
                return judged
        raise Contended(f"the refunds of sale {sale_id} changed too often to be checked; retry")

    async def get_many(self, tenant_id: str, sale_ids: Sequence[str]) -> dict[str, Sale]:
        return await self._get(tenant_id, sale_ids)

    async def refunds_of(self, tenant_id: str, sale_ids: Sequence[str]) -> list[Sale]:
        found = self._collection.find(
            {"tenant_id": tenant_id, "refund_of": {"$in": list(sale_ids)}}
        )
        return [sale_from_document(d) async for d in found]

    async def move_settlement(
        self, tenant_id: str, sale_id: str, expected: SettlementState, settlement: Settlement
    ) -> bool:
        moved = await self._collection.update_one(
            {"tenant_id": tenant_id, "id": sale_id, "settlement.state": expected.value},
            {"$set": {"settlement": settlement_to_document(settlement)}},
        )
        # Matched, not modified: a move to the settlement it already has is a move too.
        return moved.matched_count == 1

    async def find(
        self,
        tenant_id: str,
        where: SalesFilter,
        window: Window,
        limit: int,
        after: Position | None = None,
    ) -> list[Sale]:
        wanted = {
            "session_id": where.session_id,
            "device_id": where.device_id,
            "settlement.state": where.state,
        }
        query = {"tenant_id": tenant_id, **_equal_to(wanted)}
        return await self._newest_first(query, "occurred_at", window, limit, after)

    async def report(
        self, tenant_id: str, window: Window, grouping: SalesGrouping, currency: str | None
    ) -> list[SaleFigures]:
        key = {
            "group": _group_of_sale(grouping),
            "currency": "$currency",
            "status": "$status",
            "payment_method": "$payment_method",
            "state": "$settlement.state",
        }
        pipeline: Pipeline = [
            {
                "$match": {
                    "tenant_id": tenant_id,
                    **_equal_to({"currency": currency}),
                    **within("occurred_at", window),
                }
            },
            {
                "$group": {
                    "_id": key,
                    "count": {"$sum": 1},
                    **{name: {"$sum": f"$amounts.{name}"} for name in AMOUNTS},
                }
            },
        ]
        return [
            SaleFigures(
                group=row["_id"].get("group"),  # a missing attribute leaves it out
                currency=row["_id"]["currency"],
                status=SaleStatus(row["_id"]["status"]),
                payment_method=PaymentMethod(row["_id"]["payment_method"]),
                state=SettlementState(row["_id"]["state"]),
                count=row["count"],
                **{name: amount_of(row[name]) for name in AMOUNTS},
            )
            for row in await self._aggregate(pipeline)
        ]


def _per_session(sales: Sequence[Sale]) -> dict[str, int]:
    """How many sales (distinct ids) name each session."""
    ids: dict[str, set[str]] = {}
    for sale in sales:
        if sale.session_id:
            ids.setdefault(sale.session_id, set()).add(sale.id)
    return {session_id: len(named) for session_id, named in ids.items()}
