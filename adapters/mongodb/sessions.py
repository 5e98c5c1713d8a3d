"""Sessions in MongoDB: every step that must be race-free is one guarded single-document write.

A close is `find_one_and_update` on {id, status: active}: of concurrent closers exactly one
matches. A start under a trial limit takes a numbered slot that a unique index keeps to one
session (see indexes.py), so counting and inserting need no transaction.

Round trips: a start is an insert; under a trial limit a count, then the insert (a `find` more
for a start refused at the limit, or whose insert a concurrent start refused). A close is two:
an `aggregate` that reads the session with the events of any batch whose append died before
counting them (counted first: their meters belong in what the close prices), then the guarded
`find_one_and_update`. Loading a session's event gaps, where it has some, is one more.
"""

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.mongodb.credits import finish_due
from adapters.mongodb.dimensions import having
from adapters.mongodb.documents import Document, increments, past
from adapters.mongodb.errors import raises_storage_errors
from adapters.mongodb.event_counting import finish_batches, finish_stale_batches, uncounted
from adapters.mongodb.livekit import finish_dead_track_ends
from adapters.mongodb.session_documents import from_document, load, to_document
from application.sessions.ports import SessionFilter, SessionPosition, SessionRepository
from domain.charging import ChargeOnClose
from domain.errors import Contended, NotFound
from domain.plans import SessionLimit, SessionLimitReached
from domain.session import (
    DECIDED_BY,
    END_CHANGES,
    LIFE_CHANGES,
    ChargeState,
    Closing,
    Exit,
    Session,
    SessionStatus,
    WriteCheck,
)
from domain.staleness import Staleness
from domain.usage import Usage

ACTIVE = SessionStatus.ACTIVE.value
# A guarded write lost to a concurrent writer is decided again on what that writer left.
ATTEMPTS = 20


@raises_storage_errors
class MongoSessionRepository(SessionRepository):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db
        self._sessions = db["sessions"]

    async def add(self, session: Session, limit: SessionLimit | None = None) -> bool:
        document = to_document(session)
        if limit is None:
            return await self._insert(document)
        group = ",".join(sorted(limit.kinds))
        floor = 0  # no slot below it is free, as far as this start has seen
        for _ in range(ATTEMPTS):
            used = await self.count_started(
                session.tenant_id, limit.subject_id, limit.resource_id, limit.kinds
            )
            try:
                limit.admit(used)
            except SessionLimitReached:
                if await self._exists(session.tenant_id, session.id):
                    return False  # a start of a session stored already is not refused
                raise
            slot = {"group": group, "n": max(used, floor)}
            if await self._insert({**document, "slot": slot}):
                return True
            # The id is taken (its unique index refused the insert), or the slot is: a
            # concurrent start took it first (counting again sees its session, so every retry
            # follows someone else's success), or a session holds it whose older ones
            # retention deleted (the count fell below the slots held): the next is above them.
            if await self._exists(session.tenant_id, session.id):
                return False
            floor = await self._next_slot(session.tenant_id, limit, group)
        raise Contended("too many starts at once under this subject's limit; retry the start")

    async def _next_slot(self, tenant_id: str, limit: SessionLimit, group: str) -> int:
        """One above the highest slot held in the limit's group."""
        highest = await self._sessions.find_one(
            {
                "tenant_id": tenant_id,
                "slot.group": group,
                "subject_id": limit.subject_id,
                "resource_id": limit.resource_id,
            },
            {"slot.n": 1},
            sort=[("slot.n", -1)],
        )
        return 0 if highest is None else int(highest["slot"]["n"]) + 1

    async def count_started(
        self, tenant_id: str, subject_id: str, resource_id: str, kinds: frozenset[str]
    ) -> int:
        return await self._sessions.count_documents(
            {
                "tenant_id": tenant_id,
                "resource_id": resource_id,
                "subject_id": subject_id,
                "kind": {"$in": sorted(kinds)},
            }
        )

    async def existing(self, tenant_id: str, session_ids: Collection[str]) -> set[str]:
        if not session_ids:
            return set()
        query = {"tenant_id": tenant_id, "id": {"$in": list(session_ids)}}
        return {d["id"] async for d in self._sessions.find(query, {"id": 1, "_id": 0})}

    async def get(self, tenant_id: str, session_id: str) -> Session | None:
        found = await self._sessions.find_one(_key(tenant_id, session_id))
        return None if found is None else await load(self._db, found)

    async def find(
        self,
        tenant_id: str,
        where: SessionFilter,
        limit: int,
        after: SessionPosition | None = None,
    ) -> list[Session]:
        query = {"tenant_id": tenant_id, **_filter(where)}
        if after is not None:
            query |= past("started_at", "id", (after.started_at, after.id), descending=True)
        cursor = self._sessions.find(query, sort=[("started_at", -1), ("id", -1)], limit=limit)
        return [await load(self._db, document) async for document in cursor]

    async def heartbeat(self, tenant_id: str, session_id: str, at: datetime) -> Session:
        return await self._change(tenant_id, session_id, lambda session: session.heartbeat(at))

    async def sign_of_life(
        self, tenant_id: str, session_id: str, at: datetime, now: datetime, window: timedelta
    ) -> Session:
        return await self._change(
            tenant_id, session_id, lambda session: session.sign_of_life(at, now, window)
        )

    async def _change(
        self, tenant_id: str, session_id: str, change: Callable[[Session], bool]
    ) -> Session:
        """Let the domain change the session as read; save what a sign of life changes, if it is
        still as read (else decide again). A decision that raises (Conflict) has written nothing."""
        for _ in range(ATTEMPTS):
            found = await self._sessions.find_one(_key(tenant_id, session_id))
            if found is None:
                raise NotFound(f"no session {session_id}")
            session = from_document(found)
            if not change(session):
                return await load(self._db, found)
            changed = await self._save(found, session, LIFE_CHANGES)
            if changed is not None:
                return changed
        raise Contended(f"session {session_id} changed too often to be updated; retry")

    async def close(
        self,
        tenant_id: str,
        session_id: str,
        exit: Exit,
        rated_kinds: frozenset[str],
        now: datetime,
        window: timedelta,
        check: WriteCheck | None = None,
        charge: ChargeOnClose | None = None,  # left to DeductCredits: a session's close and a
        # ledger entry are two documents, and the settlement's claim notes keep them exact
    ) -> tuple[Session, Closing]:
        for _ in range(ATTEMPTS):
            # With the events of any batch whose counting was cut short by a crash: their
            # meters belong in the usage this close may charge.
            read = await self._sessions.aggregate(
                [{"$match": _key(tenant_id, session_id)}, uncounted(tenant_id, "uncounted")]
            )
            documents = await read.to_list(1)
            if not documents:
                raise NotFound(f"no session {session_id}")
            found = documents[0]
            marked = found.pop("uncounted")
            if check is not None:  # the kind and resource it judges never change
                check(from_document(found))
            if marked and found["status"] == ACTIVE:
                await finish_batches(self._db, tenant_id, marked, now, window)
                counted = await self._sessions.find_one(_key(tenant_id, session_id))
                assert counted is not None  # sessions are never deleted
                found = counted
            session = from_document(found)
            closing = session.close(exit, rated_kinds, now, window)
            if not closing.changed:
                return await load(self._db, found), closing
            changed = await self._save(found, session, END_CHANGES, exit.usage)
            if changed is not None:
                return changed, closing
        raise Contended(f"session {session_id} changed too often to be closed; retry the exit")

    async def time_out_idle(
        self,
        tenant_id: str,
        staleness: Staleness,
        limit: int,
        rated_kinds: frozenset[str],
        now: datetime,
        window: timedelta,
    ) -> list[Session]:
        await finish_stale_batches(self._db, tenant_id, now, window)
        # And the track ends that writes which died left in flight (one `find` by index).
        await finish_dead_track_ends(self._db, tenant_id)
        stale = self._sessions.find(
            {"tenant_id": tenant_id, "status": ACTIVE, **_stale(staleness)},
            sort=[("id", 1)],
            limit=limit,
        )
        closed = []
        async for document in stale:
            session = from_document(document)
            if not staleness.is_stale(session):  # the filter only narrows; the domain decides
                continue
            session.close(session.time_out(), rated_kinds)
            # Guarded on the session as read: a sign of life in between keeps it open.
            timed_out = await self._save(document, session, END_CHANGES)
            if timed_out is not None:
                closed.append(timed_out)
        return closed

    async def pending_charges(
        self, tenant_id: str, limit: int, after: str | None = None
    ) -> list[Session]:
        cut_short_claims = {"tenant_id": tenant_id, "due.revision": {"$exists": True}}
        async for cut_short in self._sessions.find(cut_short_claims):
            await finish_due(self._db, cut_short)
        pending: Document = {"tenant_id": tenant_id, "charge_state": ChargeState.PENDING.value}
        if after is not None:
            pending["id"] = {"$gt": after}
        cursor = self._sessions.find(
            pending,
            sort=[("id", 1)],
            limit=limit,
        )
        return [await load(self._db, document) async for document in cursor]

    async def _save(
        self, read: Document, session: Session, fields: tuple[str, ...], usage: Usage | None = None
    ) -> Session | None:
        """Write `fields` of `session` (decided from the document `read`) if the session is
        still as read: the session as saved, or None when another writer changed it first."""
        document = to_document(session)
        update: dict[str, Any] = {"$set": {f: document[f] for f in fields}}
        if usage:  # added here, atomically, rather than overwriting what events added
            update["$inc"] = increments("usage", usage)
        saved = await self._sessions.find_one_and_update(
            {**_key(session.tenant_id, session.id), **{f: read.get(f) for f in DECIDED_BY}},
            update,
            return_document=ReturnDocument.AFTER,
        )
        return None if saved is None else await load(self._db, saved)

    async def _insert(self, document: Document) -> bool:
        try:
            await self._sessions.insert_one(document)
        except DuplicateKeyError:
            return False
        return True

    async def _exists(self, tenant_id: str, session_id: str) -> bool:
        found = await self._sessions.find_one(_key(tenant_id, session_id), {"_id": 1})
        return found is not None


def _key(tenant_id: str, session_id: str) -> Document:
    return {"tenant_id": tenant_id, "id": session_id}


def _stale(staleness: Staleness) -> Document:
    """Staleness.is_stale as a filter on active sessions."""
    conditions: list[Document] = []
    if staleness.started_before is not None:
        conditions.append({"started_at": {"$lt": staleness.started_before}})
    for kind, cutoff in staleness.by_kind.items():
        if cutoff is not None:
            conditions.append({"kind": kind, "last_seen_at": {"$lt": cutoff}})
    if staleness.default is not None:
        others: Document = {"last_seen_at": {"$lt": staleness.default}}
        if staleness.by_kind:
            others["kind"] = {"$nin": sorted(staleness.by_kind)}
        conditions.append(others)
    return {"$or": conditions} if conditions else {"_id": {"$exists": False}}


def _filter(where: SessionFilter) -> Document:
    query: Document = {
        name: value
        for name, value in (
            ("kind", where.kind),
            ("resource_id", where.resource_id),
            ("subject_id", where.subject_id),
            ("client_key", where.client_key),
            ("status", where.status and where.status.value),
        )
        if value is not None
    }
    started: Document = {}
    if where.started_from is not None:
        started["$gte"] = where.started_from
    if where.started_to is not None:
        started["$lt"] = where.started_to
    if started:
        query["started_at"] = started
    return {**query, **having(where.attributes)}
