"""Erasure in MongoDB, without multi-document transactions: bulk work goes a bounded batch of
documents at a time (ids found, then one update or delete by id), and each session is erased or
deleted by one write guarded on what was read, so of concurrent callers one does it and counts
it. Its events, errors and sales follow that write."""

import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.ledger_holds import BUSY, ERASURE_LEASE, ERASURE_WAIT_SECONDS
from adapters.mongodb.credits import finish_due
from adapters.mongodb.deleted_events import delete_remembering
from adapters.mongodb.documents import Document, past
from adapters.mongodb.errors import raises_storage_errors
from adapters.mongodb.ledger_turns import LedgerTurns
from adapters.mongodb.session_documents import HAS_SALES, NO_SALES, from_document
from adapters.mongodb.telemetry_documents import (
    error_from_document,
    error_to_document,
    sale_from_document,
    sale_to_document,
)
from application.credits.ports import UnfinishedErasures
from application.data_rights.ports import (
    EndPlace,
    Erased,
    Erasure,
    Removed,
    SessionPlace,
    SessionsOf,
)
from domain.erasure import ERASED_FIELDS, PSEUDONYM_PREFIX, Forgetting, erased_error
from domain.errors import Contended
from domain.session import ChargeState

BILLED_STATES = [ChargeState.PENDING.value, ChargeState.CHARGED.value]
# What erasure changes in an error's and a sale's document (domain.erasure).
ERROR_FIELDS = ("context", "breadcrumbs")
SALE_FIELDS = ("attributes", "attribute_texts")
HOLDING = {"$or": [{"data": {"$ne": None}}, {"label": {"$ne": None}}]}
# A subject's, not an erased one's (domain.erasure.is_pseudonym).
A_SUBJECTS = {"$ne": None, "$not": {"$regex": f"^{re.escape(PSEUDONYM_PREFIX)}"}}
Done = TypeVar("Done")


# On the tenant's document: how many erasures its subjects have had begun.
ERASURES_BEGUN = "erasures_begun"


@raises_storage_errors
class MongoErasure(Erasure, UnfinishedErasures):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db
        self._sessions = db["sessions"]
        self._events = db["events"]
        self._turns = LedgerTurns(db)
        self._under_way = db["erasures_under_way"]

    async def sessions(
        self, tenant_id: str, of: SessionsOf, limit: int, after: SessionPlace | None = None
    ) -> list[SessionPlace]:
        query: Document = {"tenant_id": tenant_id}
        if of.subject_id is not None:
            query["subject_id"] = of.subject_id
        if of.resource_id is not None:
            query["resource_id"] = of.resource_id
        if after is not None:
            query |= past("started_at", "id", (after.started_at, after.id))
        found = self._sessions.find(
            query,
            {"_id": 0, "started_at": 1, "id": 1},
            sort=[("started_at", 1), ("id", 1)],
            limit=limit,
        )
        return [SessionPlace(d["started_at"], d["id"]) async for d in found]

    async def billed(self, tenant_id: str, session_ids: Sequence[str]) -> set[str]:
        ids = list(session_ids)
        charged = self._sessions.find(
            {
                "tenant_id": tenant_id,
                "id": {"$in": ids},
                "$or": [{"charge_state": {"$in": BILLED_STATES}}, HAS_SALES],
            },
            {"_id": 0, "id": 1},
        )
        billed = {d["id"] async for d in charged}
        for collection in ("ledger", "sales"):
            named = await self._db[collection].distinct(
                "session_id", {"tenant_id": tenant_id, "session_id": {"$in": ids}}
            )
            billed.update(named)
        return billed

    async def expired_sessions(
        self,
        tenant_id: str,
        ended_before: datetime,
        limit: int,
        counted: frozenset[str],
        after: EndPlace | None = None,
    ) -> list[EndPlace]:
        query: Document = {
            "tenant_id": tenant_id,
            "ended_at": {"$lt": ended_before},
            "charge_state": {"$nin": BILLED_STATES},
            # Not what a limit counts (domain.plans.counted_by_a_limit).
            "$nor": [{"kind": {"$in": sorted(counted)}, "subject_id": A_SUBJECTS}],
        }
        if after is not None:
            query["ended_at"]["$gte"] = after.ended_at  # the index's range; `past` within it
            query |= past("ended_at", "id", (after.ended_at, after.id))
        # Sessions with sales but no charge match too: walk on past them to `limit` others.
        ended = self._sessions.find(
            query,
            {"_id": 0, "ended_at": 1, "id": 1},
            sort=[("ended_at", 1), ("id", 1)],  # ix_sessions_ended_id's order
            batch_size=limit,
        )
        expired: list[EndPlace] = []
        page: list[EndPlace] = []
        async for document in ended:
            page.append(EndPlace(document["ended_at"], document["id"]))
            if len(page) == limit:
                expired += await self._unbilled(tenant_id, page)
                page = []
                if len(expired) >= limit:
                    break
        expired += await self._unbilled(tenant_id, page)
        return expired[:limit]

    async def clear_events(self, tenant_id: str, session_ids: Sequence[str], limit: int) -> int:
        return await self._clear_events(tenant_id, session_ids, limit)

    async def delete_events(self, tenant_id: str, session_ids: Sequence[str], limit: int) -> int:
        """Each session remembers the numbers of its events deleted (deleted_events): a
        session kept (billed) keeps its gaps."""
        of_sessions = _of_sessions(tenant_id, session_ids)
        return await delete_remembering(self._db, tenant_id, of_sessions, limit)

    async def erase_sessions(
        self, tenant_id: str, session_ids: Sequence[str], forgetting: Forgetting
    ) -> Erased:
        erased = []
        query = {"tenant_id": tenant_id, "id": {"$in": list(session_ids)}}
        async for document in self._sessions.find(query):
            if await self._erase_session(document, forgetting):
                erased.append(document["id"])
        cleared = await self._clear_events(tenant_id, erased, None)

        def erased_sale(document: Document) -> Document:
            sale = sale_from_document(document)
            attributes = forgetting.attributes(sale.attributes)
            return sale_to_document(tenant_id, replace(sale, attributes=attributes))

        def error(document: Document) -> Document:
            return error_to_document(tenant_id, erased_error(error_from_document(document)))

        errors = await self._rewrite("errors", tenant_id, erased, error, ERROR_FIELDS)
        sales = await self._rewrite("sales", tenant_id, erased, erased_sale, SALE_FIELDS)
        return Erased(len(erased), cleared, errors, sales)

    async def _erase_session(self, document: Document | None, forgetting: Forgetting) -> bool:
        """Erase one session, guarded on what was read: of racing erasures one writes. One that
        another writer changed meanwhile (an exit giving its reason) is read again and erased,
        not skipped: skipped, it kept the person's id, and the charge its exit settled went to
        her ledger after it had moved. Whether this call erased it."""
        while document is not None:
            if document.get("due"):
                # A settlement that died owes the ledger this entry, under the subject: in it
                # goes before the ledger moves (the erasure holds the subject's turn).
                await finish_due(self._db, document)
            session = from_document(document)
            if not forgetting.erase(session):
                return False
            guard = {"_id": document["_id"], **{f: document.get(f) for f in ERASED_FIELDS}}
            changes = {f: getattr(session, f) for f in ERASED_FIELDS}
            if (await self._sessions.update_one(guard, {"$set": changes})).modified_count:
                return True
            document = await self._sessions.find_one({"_id": document["_id"]})
        return False

    async def delete_sessions(self, tenant_id: str, session_ids: Sequence[str]) -> Removed:
        kept = await self.billed(tenant_id, session_ids)
        sessions = events = 0
        missed: list[str] = []
        for session_id in session_ids:
            if session_id in kept:
                continue
            gone = await self._sessions.delete_one(
                {
                    "tenant_id": tenant_id,
                    "id": session_id,
                    "charge_state": {"$nin": BILLED_STATES},
                    **NO_SALES,  # a sale may be being stored: MongoSaleBook
                }
            )
            if gone.deleted_count:
                sessions += 1
                deleted = await self._events.delete_many(_of_sessions(tenant_id, [session_id]))
                events += deleted.deleted_count
            else:
                missed.append(session_id)
        if missed:  # billed since it was read (a sale marked it), or deleted meanwhile
            of_missed = {"tenant_id": tenant_id, "id": {"$in": missed}}
            kept.update(await self._sessions.distinct("id", of_missed))
        return Removed(sessions, events, frozenset(kept))

    async def pseudonym_for(self, tenant_id: str, subject_id: str, drawn: str, at: datetime) -> str:
        under_way = {"tenant_id": tenant_id, "subject_id": subject_id}
        # Before anything of the subject changes: an export under way learns of it at its end
        # (MongoTenantArchive.export), having no snapshot to read it all from before.
        await self._db["tenants"].update_one({"id": tenant_id}, {"$inc": {ERASURES_BEGUN: 1}})
        while True:
            # Of concurrent upserts one inserts; the others (DuplicateKeyError) read its
            # pseudonym, unless that erasure finished in between: then they try again.
            with suppress(DuplicateKeyError):
                await self._under_way.update_one(
                    under_way, {"$setOnInsert": {"pseudonym": drawn, "started_at": at}}, upsert=True
                )
            kept = await self._under_way.find_one(under_way, {"_id": 0, "pseudonym": 1})
            if kept is not None:
                return str(kept["pseudonym"])

    async def unfinished(
        self, tenant_id: str, started_before: datetime, limit: int, after: str | None = None
    ) -> list[str]:
        begun: Document = {"tenant_id": tenant_id, "started_at": {"$lt": started_before}}
        if after is not None:
            begun["subject_id"] = {"$gt": after}
        found = self._under_way.find(
            begun, {"_id": 0, "subject_id": 1}, sort=[("subject_id", 1)], limit=limit
        )
        return [document["subject_id"] async for document in found]

    async def gave_out(self, tenant_id: str, pseudonym: str) -> bool:
        found = await self._under_way.find_one({"tenant_id": tenant_id, "pseudonym": pseudonym})
        return found is not None

    async def kept(self, tenant_id: str, subject_id: str) -> str | None:
        found = await self._under_way.find_one(
            {"tenant_id": tenant_id, "subject_id": subject_id}, {"_id": 0, "pseudonym": 1}
        )
        return None if found is None else str(found["pseudonym"])

    async def finished(self, tenant_id: str, subject_id: str, pseudonym: str) -> None:
        await self._under_way.delete_one(
            {"tenant_id": tenant_id, "subject_id": subject_id, "pseudonym": pseudonym}
        )

    async def with_ledgers_held(
        self, tenant_id: str, subject_ids: Collection[str], work: Callable[[], Awaitable[Done]]
    ) -> Done:
        """The subjects' settlement turns (ledger_turns), on a lease of ERASURE_LEASE renewed
        while `work` runs."""
        wanted = set(subject_ids)
        async with self._turns.held(
            tenant_id, wanted, ERASURE_WAIT_SECONDS, ERASURE_LEASE, renew=True
        ) as held:
            if held != wanted:
                raise Contended(BUSY)
            return await work()

    async def move_subject(
        self, tenant_id: str, subject_id: str, pseudonym: str, limit: int
    ) -> int:
        moved = 0
        for name in (
            "ledger",
            "alerts",
            "subscriptions",
            "subscription_history",
            "subject_resources",
            "refused_starts",
        ):
            collection = self._db[name]
            of_subject = {"tenant_id": tenant_id, "subject_id": subject_id}
            ids = await _ids(collection, of_subject, limit - moved)
            if ids:
                change: Document = {"$set": {"subject_id": pseudonym}}
                if name == "ledger":
                    change["$unset"] = {"idempotency_key": ""}  # see Erasure.move_subject
                changed = await collection.update_many({"_id": {"$in": ids}, **of_subject}, change)
                moved += changed.modified_count
            if moved >= limit:
                break
        return moved

    async def delete_rollups(self, tenant_id: str, resource_id: str, limit: int) -> int:
        rollups = self._db["rollups"]
        holding = {"tenant_id": tenant_id, "activity.resource_id": resource_id}
        removed = 0
        async for document in rollups.find(holding, {"activity.resource_id": 1}, limit=limit):
            result = await rollups.update_one(
                {"_id": document["_id"]}, {"$pull": {"activity": {"resource_id": resource_id}}}
            )
            if result.modified_count:
                removed += sum(a["resource_id"] == resource_id for a in document["activity"])
        # Funnels' days lose its rows, and are recounted from what is left of the events.
        await self._db["funnel_days"].update_many(
            {"tenant_id": tenant_id},
            {"$pull": {"rows": {"resource_id": resource_id}}, "$set": {"final": False}},
        )
        return removed

    async def _unbilled(self, tenant_id: str, places: list[EndPlace]) -> list[EndPlace]:
        ids = [p.id for p in places]
        billed = await self.billed(tenant_id, ids) if ids else set()
        return [p for p in places if p.id not in billed]

    async def _clear_events(
        self, tenant_id: str, session_ids: Sequence[str], limit: int | None
    ) -> int:
        holding = {**_of_sessions(tenant_id, session_ids), **HOLDING}
        if limit is None:
            cleared = await self._events.update_many(
                holding, {"$set": {"data": None, "label": None}}
            )
            return cleared.modified_count
        ids = await _ids(self._events, holding, limit)
        if not ids:
            return 0
        cleared = await self._events.update_many(
            {"_id": {"$in": ids}, **HOLDING}, {"$set": {"data": None, "label": None}}
        )
        return cleared.modified_count

    async def _rewrite(
        self,
        collection: str,
        tenant_id: str,
        session_ids: list[str],
        erased: Callable[[Document], Document],
        fields: Sequence[str],
    ) -> int:
        """Write these fields of each record of the sessions as `erased` makes them; how many."""
        records = self._db[collection]
        count = 0
        async for document in records.find(_of_sessions(tenant_id, session_ids)):
            new = erased(document)
            await records.update_one(
                {"_id": document["_id"]}, {"$set": {f: new[f] for f in fields}}
            )
            count += 1
        return count


def _of_sessions(tenant_id: str, session_ids: Sequence[str]) -> Document:
    return {"tenant_id": tenant_id, "session_id": {"$in": list(session_ids)}}


async def _ids(collection: AsyncCollection[Document], query: Document, limit: int) -> list[Any]:
    return [d["_id"] async for d in collection.find(query, {"_id": 1}, limit=limit)]
