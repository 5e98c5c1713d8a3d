"""Funnels in MongoDB, and the events a funnel report reads: the window's sessions a batch at a
time, each batch's matching events in one sorted query."""

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.dimensions import dimension, having
from adapters.mongodb.documents import Document, within
from adapters.mongodb.errors import raises_storage_errors
from application.funnels.ports import ALL_SESSIONS, FunnelEvents, FunnelRepository, FunnelScope
from application.ports import Window
from domain.funnels import Funnel, Stage, StageMatch, Touch, Trail, trails_of
from domain.rollups import dimensions_of
from domain.session import SessionStatus

# Sessions whose events one query reads while a report streams a window.
CHUNK = 500


@raises_storage_errors
class MongoFunnelRepository(FunnelRepository):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._funnels = db["funnels"]

    async def put(self, tenant_id: str, funnel: Funnel) -> None:
        await self._funnels.replace_one(
            {"tenant_id": tenant_id, "name": funnel.name},
            funnel_to_document(tenant_id, funnel),
            upsert=True,
        )

    async def get(self, tenant_id: str, name: str) -> Funnel | None:
        document = await self._funnels.find_one({"tenant_id": tenant_id, "name": name})
        return None if document is None else funnel_from_document(document)

    async def all(self, tenant_id: str) -> list[Funnel]:
        cursor = self._funnels.find({"tenant_id": tenant_id}, sort=[("name", 1)])
        return [funnel_from_document(d) async for d in cursor]

    async def delete(self, tenant_id: str, name: str) -> Funnel | None:
        document = await self._funnels.find_one_and_delete({"tenant_id": tenant_id, "name": name})
        return None if document is None else funnel_from_document(document)


@raises_storage_errors
class MongoFunnelEvents(FunnelEvents):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._sessions = db["sessions"]
        self._events = db["events"]

    async def trails(
        self,
        tenant_id: str,
        kind: str,
        window: Window,
        types: frozenset[str],
        scope: FunnelScope = ALL_SESSIONS,
    ) -> AsyncIterator[Trail]:
        async for trail in trails_of(self._touches(tenant_id, kind, window, types, scope)):
            yield trail

    async def _touches(
        self,
        tenant_id: str,
        kind: str,
        window: Window,
        types: frozenset[str],
        scope: FunnelScope,
    ) -> AsyncIterator[tuple[str, SessionStatus, str | None, Touch]]:
        cursor = self._sessions.find(
            _of_kind(tenant_id, kind, window, scope),
            {"_id": 0, "id": 1, "status": 1, "resource_id": 1, "attributes": 1},
            sort=[("id", 1)],
            batch_size=CHUNK,
        )
        sessions: dict[str, tuple[SessionStatus, str | None]] = {}
        async for session in cursor:
            sessions[session["id"]] = (SessionStatus(session["status"]), _group(session, scope))
            if len(sessions) == CHUNK:
                async for row in self._of_sessions(tenant_id, sessions, types):
                    yield row
                sessions = {}
        async for row in self._of_sessions(tenant_id, sessions, types):
            yield row

    async def _of_sessions(
        self,
        tenant_id: str,
        sessions: dict[str, tuple[SessionStatus, str | None]],
        types: frozenset[str],
    ) -> AsyncIterator[tuple[str, SessionStatus, str | None, Touch]]:
        if not sessions:
            return
        cursor = self._events.find(
            {
                "tenant_id": tenant_id,
                "session_id": {"$in": sorted(sessions)},
                "type": {"$in": sorted(types)},
            },
            {
                "_id": 0,
                "session_id": 1,
                "sequence_no": 1,
                "at": 1,
                "type": 1,
                "label": 1,
                "category": 1,
            },
            sort=[("session_id", 1), ("at", 1), ("sequence_no", 1)],
        )
        async for e in cursor:
            touch = Touch(e["sequence_no"], e["at"], e["type"], e["label"], e["category"])
            yield e["session_id"], *sessions[e["session_id"]], touch

    async def statuses(
        self, tenant_id: str, kind: str, window: Window, scope: FunnelScope = ALL_SESSIONS
    ) -> dict[str | None, dict[SessionStatus, int]]:
        by: Document = {f"d{n}": dimension(k) for n, k in enumerate(scope.keys)}
        if scope.by_resource:
            by["resource_id"] = "$resource_id"
        cursor = await self._sessions.aggregate(
            [
                {"$match": _of_kind(tenant_id, kind, window, scope)},
                {"$group": {"_id": {**by, "status": "$status"}, "count": {"$sum": 1}}},
            ]
        )
        counts: dict[str | None, Counter[SessionStatus]] = {}
        async for d in cursor:
            key = d["_id"]
            present = ((k, key.get(f"d{n}")) for n, k in enumerate(scope.keys))
            values = tuple((k, v) for k, v in present if v is not None)
            group = scope.group_of(str(key.get("resource_id", "")), values)
            counts.setdefault(group, Counter())[SessionStatus(key["status"])] += d["count"]
        return {group: dict(counted) for group, counted in counts.items()}


def _group(session: Document, scope: FunnelScope) -> str | None:
    values = dimensions_of(session.get("attributes") or {}, scope.keys)
    return scope.group_of(str(session["resource_id"]), values)


def _of_kind(tenant_id: str, kind: str, window: Window, scope: FunnelScope) -> Document:
    """Sessions of the kind started in the window (ix_sessions_kind), with the values the scope
    asks for."""
    return {
        "tenant_id": tenant_id,
        "kind": kind,
        **within("started_at", window),
        **having(scope.where),
    }


def funnel_to_document(tenant_id: str, funnel: Funnel) -> Document:
    stages = [asdict(s) for s in funnel.stages]
    return {"tenant_id": tenant_id, "name": funnel.name, "kind": funnel.kind, "stages": stages}


def funnel_from_document(document: Document) -> Funnel:
    stages: list[Any] = document["stages"]
    return Funnel(
        document["name"],
        document["kind"],
        tuple(Stage(s["name"], StageMatch(**s["match"])) for s in stages),
    )
