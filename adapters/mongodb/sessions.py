"""Sessions in MongoDB: every step that must be race-free is one guarded single-document write.

A close is `find_one_and_update` on {id, status: active}: of concurrent closers exactly one
matches. A start under a trial limit takes a numbered slot that a unique index keeps to one
session (see indexes.py), so counting and inserting need no transaction.
"""

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.mongodb.documents import Document, increments
from adapters.mongodb.event_counting import finish_stale_batches
from adapters.mongodb.session_documents import from_document, load, to_document
from application.ports import SessionFilter, SessionPosition
from domain.errors import Conflict, NotFound
from domain.plans import SessionLimit, SessionLimitReached
from domain.session import ChargeState, Exit, Session, SessionStatus

ACTIVE = SessionStatus.ACTIVE.value


class MongoSessionRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db
        self._sessions = db["sessions"]

    async def add(self, session: Session, limit: SessionLimit | None = None) -> bool:
        document = to_document(session)
        if limit is None:
            return await self._insert(document)
        group = ",".join(sorted(limit.kinds))
        while True:
            if await self._exists(session.tenant_id, session.id):
                return False
            used = await self.count_started(
                session.tenant_id, limit.subject_id, limit.resource_id, limit.kinds
            )
            if used >= limit.limit:
                raise SessionLimitReached(used)
            # A concurrent start that took slot `used` first makes this insert fail; counting
            # again then sees its session, so every retry follows someone else's success.
            if await self._insert({**document, "slot": {"group": group, "n": used}}):
                return True

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
            query["$or"] = [
                {"started_at": {"$lt": after.started_at}},
                {"started_at": after.started_at, "id": {"$lt": after.id}},
            ]
        cursor = self._sessions.find(query, sort=[("started_at", -1), ("id", -1)], limit=limit)
        return [await load(self._db, document) async for document in cursor]

    async def heartbeat(self, tenant_id: str, session_id: str, at: datetime) -> Session:
        moved = await self._sessions.find_one_and_update(
            {**_key(tenant_id, session_id), "status": ACTIVE},
            {"$max": {"last_seen_at": at}},
            return_document=ReturnDocument.AFTER,
        )
        if moved is not None:
            return await load(self._db, moved)
        if not await self._exists(tenant_id, session_id):
            raise NotFound(f"no session {session_id}")
        raise Conflict(f"session {session_id} has ended")

    async def close(
        self,
        tenant_id: str,
        session_id: str,
        exit: Exit,
        rated_kinds: frozenset[str] = frozenset(),
    ) -> tuple[Session, bool]:
        found = await self._sessions.find_one(_key(tenant_id, session_id))
        if found is None:
            raise NotFound(f"no session {session_id}")
        if found["status"] == ACTIVE:
            # Meters of events whose counting was cut short by a crash belong in the usage
            # this close may charge.
            await finish_stale_batches(self._db, tenant_id, [session_id])
        closed = await self._close(from_document(found), exit, rated_kinds, {})
        if closed is not None:
            return closed, True
        stored = await self.get(tenant_id, session_id)
        assert stored is not None  # sessions are never deleted
        return stored, False

    async def time_out_idle(
        self,
        tenant_id: str,
        last_seen_before: datetime,
        limit: int,
        rated_kinds: frozenset[str] = frozenset(),
    ) -> list[Session]:
        await finish_stale_batches(self._db, tenant_id)
        stale = self._sessions.find(
            {"tenant_id": tenant_id, "status": ACTIVE, "last_seen_at": {"$lt": last_seen_before}},
            sort=[("id", 1)],
            limit=limit,
        )
        closed = []
        async for document in stale:
            session = from_document(document)
            # Guarded on the last_seen_at it was read with: a heartbeat in between keeps it open.
            timed_out = await self._close(
                session, session.time_out(), rated_kinds, {"last_seen_at": session.last_seen_at}
            )
            if timed_out is not None:
                closed.append(timed_out)
        return closed

    async def pending_charges(self, tenant_id: str, limit: int) -> list[Session]:
        cursor = self._sessions.find(
            {"tenant_id": tenant_id, "charge_state": ChargeState.PENDING.value},
            sort=[("id", 1)],
            limit=limit,
        )
        return [await load(self._db, document) async for document in cursor]

    async def _close(
        self, session: Session, exit: Exit, rated_kinds: frozenset[str], guard: Document
    ) -> Session | None:
        """Close `session` as read, if it is still active (and matches `guard`): the session as
        closed by this call, or None when another caller closed it first."""
        if not session.close(exit, rated_kinds):
            return None
        update: dict[str, Any] = {
            "$set": {
                "status": session.status.value,
                "ended_at": session.ended_at,
                "exit_reason": session.exit_reason,
                "summary": session.summary,
                "charge_state": session.charge_state.value,
            },
            "$max": {"last_seen_at": exit.at},
        }
        if exit.usage:  # added here, atomically, rather than overwriting what events added
            update["$inc"] = increments("usage", exit.usage)
        closed = await self._sessions.find_one_and_update(
            {**_key(session.tenant_id, session.id), "status": ACTIVE, **guard},
            update,
            return_document=ReturnDocument.AFTER,
        )
        return None if closed is None else await load(self._db, closed)

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


def _filter(where: SessionFilter) -> Document:
    query: Document = {
        name: value
        for name, value in (
            ("kind", where.kind),
            ("resource_id", where.resource_id),
            ("subject_id", where.subject_id),
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
    return query
