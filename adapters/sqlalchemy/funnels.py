from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.dimensions import dimension
from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.tables import events, funnels, sessions
from application.funnels.ports import (
    ALL_SESSIONS,
    FunnelEvents,
    FunnelRepository,
    FunnelScope,
)
from application.ports import Window
from domain.funnels import Funnel, Stage, StageMatch, Touch, Trail, trails_of
from domain.session import SessionStatus

# Rows fetched per round trip while a report streams a window's events.
CHUNK = 1000


@raises_storage_errors
class SqlFunnelRepository(FunnelRepository):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = single_statement(engine)

    async def put(self, tenant_id: str, funnel: Funnel) -> None:
        stmt = insert(self._engine, funnels).values(funnel_to_row(tenant_id, funnel))
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "name"],
            set_={c: stmt.excluded[c] for c in ("kind", "stages")},
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    async def get(self, tenant_id: str, name: str) -> Funnel | None:
        query = select(funnels).where(funnels.c.tenant_id == tenant_id, funnels.c.name == name)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else funnel_from_row(row)

    async def all(self, tenant_id: str) -> list[Funnel]:
        query = select(funnels).where(funnels.c.tenant_id == tenant_id).order_by(funnels.c.name)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [funnel_from_row(r) for r in rows]

    async def delete(self, tenant_id: str, name: str) -> Funnel | None:
        stmt = (
            delete(funnels)
            .where(funnels.c.tenant_id == tenant_id, funnels.c.name == name)
            .returning(*funnels.c)
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else funnel_from_row(row)


@raises_storage_errors
class SqlFunnelEvents(FunnelEvents):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)
        self._sqlite = engine.dialect.name == "sqlite"

    async def trails(
        self,
        tenant_id: str,
        kind: str,
        window: Window,
        types: frozenset[str],
        scope: FunnelScope = ALL_SESSIONS,
    ) -> AsyncIterator[Trail]:
        query = (
            select(
                events.c.session_id,
                sessions.c.status,
                *self._group(scope),
                events.c.sequence_no,
                events.c.at,
                events.c.type,
                events.c.label,
                events.c.category,
            )
            .join(
                sessions,
                (sessions.c.tenant_id == events.c.tenant_id)
                & (sessions.c.id == events.c.session_id),
            )
            .where(*self._of_kind(tenant_id, kind, window, scope), events.c.type.in_(sorted(types)))
            .order_by(events.c.session_id, events.c.at, events.c.sequence_no)
            .execution_options(yield_per=CHUNK)
        )
        # A server-side cursor (PostgreSQL: inside a transaction), so the window's events are
        # never all in memory.
        async with self._engine.connect() as conn:
            result = await conn.stream(query)
            async for trail in trails_of(_touches(result, scope)):
                yield trail

    async def statuses(
        self, tenant_id: str, kind: str, window: Window, scope: FunnelScope = ALL_SESSIONS
    ) -> dict[str | None, dict[SessionStatus, int]]:
        # Grouped outside the subquery that names the group: PostgreSQL would not see an
        # expression with a parameter (the attribute's key) in SELECT and GROUP BY as the same.
        rows = (
            select(sessions.c.status, *self._group(scope))
            .where(*self._of_kind(tenant_id, kind, window, scope))
            .subquery()
        )
        by = [c for c in rows.c if c.name != "status"]
        query = select(rows.c.status, func.count(), *by).group_by(rows.c.status, *by)
        counts: dict[str | None, Counter[SessionStatus]] = {}
        async with self._single.connect() as conn:
            for row in await conn.execute(query):
                group = _group_of(row, scope)
                counts.setdefault(group, Counter())[SessionStatus(row.status)] += row[1]
        return {group: dict(counted) for group, counted in counts.items()}

    def _group(self, scope: FunnelScope) -> list[Any]:
        """The columns that tell a session's group (_group_of reads them)."""
        values = [dimension(k, self._sqlite).label(f"d{n}") for n, k in enumerate(scope.keys)]
        return [sessions.c.resource_id, *values] if scope.by_resource else values

    def _of_kind(self, tenant_id: str, kind: str, window: Window, scope: FunnelScope) -> list[Any]:
        """Sessions of the kind started in the window (ix_sessions_kind), with the values the
        scope asks for."""
        conditions = [sessions.c.tenant_id == tenant_id, sessions.c.kind == kind]
        if window.start is not None:
            conditions.append(sessions.c.started_at >= window.start)
        if window.end is not None:
            conditions.append(sessions.c.started_at < window.end)
        conditions += [dimension(k, self._sqlite) == v for k, v in scope.where.items()]
        return conditions


def _group_of(row: Any, scope: FunnelScope) -> str | None:
    present = ((k, row._mapping[f"d{n}"]) for n, k in enumerate(scope.keys))
    values = tuple((k, v) for k, v in present if v is not None)
    return scope.group_of(row.resource_id if scope.by_resource else "", values)


async def _touches(
    rows: Any, scope: FunnelScope
) -> AsyncIterator[tuple[str, SessionStatus, str | None, Touch]]:
    # A chunk at a time: each row read from the async stream alone costs a switch of greenlets,
    # which was most of a month's funnel report.
    async for chunk in rows.partitions(CHUNK):
        for r in chunk:
            yield (
                r.session_id,
                SessionStatus(r.status),
                _group_of(r, scope),
                Touch(r.sequence_no, r.at, r.type, r.label, r.category),
            )


def funnel_to_row(tenant_id: str, funnel: Funnel) -> dict[str, Any]:
    stages = [asdict(s) for s in funnel.stages]
    return {"tenant_id": tenant_id, "name": funnel.name, "kind": funnel.kind, "stages": stages}


def funnel_from_row(row: Any) -> Funnel:
    stages = tuple(Stage(s["name"], StageMatch(**s["match"])) for s in row.stages)
    return Funnel(row.name, row.kind, stages)
