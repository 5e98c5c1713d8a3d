from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlalchemy.engine import insert, serialise, single_statement
from adapters.sqlalchemy.meters import add_usage
from adapters.sqlalchemy.session_rows import load, to_row
from adapters.sqlalchemy.tables import sessions
from application.ports import SessionFilter, SessionPosition
from domain.errors import Conflict, NotFound
from domain.plans import SessionLimit, SessionLimitReached
from domain.session import ChargeState, Exit, Session, SessionStatus

# Columns a closing changes; the rest of a session is fixed when it starts.
CLOSING_COLUMNS = ("status", "ended_at", "last_seen_at", "exit_reason", "summary", "charge_state")


class SqlSessionRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def add(self, session: Session, limit: SessionLimit | None = None) -> bool:
        stmt = insert(self._engine, sessions).values(to_row(session)).on_conflict_do_nothing()
        if limit is None:
            async with self._single.begin() as conn:
                return bool((await conn.execute(stmt)).rowcount == 1)
        async with self._engine.begin() as conn:
            await serialise(conn, session.tenant_id, limit.subject_id, limit.resource_id)
            used = await self._count(
                conn, session.tenant_id, limit.subject_id, limit.resource_id, limit.kinds
            )
            if used >= limit.limit:
                raise SessionLimitReached(used)
            return bool((await conn.execute(stmt)).rowcount == 1)

    async def count_started(
        self, tenant_id: str, subject_id: str, resource_id: str, kinds: frozenset[str]
    ) -> int:
        async with self._single.connect() as conn:
            return await self._count(conn, tenant_id, subject_id, resource_id, kinds)

    async def _count(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        subject_id: str,
        resource_id: str,
        kinds: frozenset[str],
    ) -> int:
        query = select(func.count()).where(
            sessions.c.tenant_id == tenant_id,
            sessions.c.subject_id == subject_id,
            sessions.c.resource_id == resource_id,
            sessions.c.kind.in_(sorted(kinds)),
        )
        return int((await conn.execute(query)).scalar_one())

    async def get(self, tenant_id: str, session_id: str) -> Session | None:
        async with self._single.connect() as conn:
            found = await self._select(conn, _key(tenant_id, session_id))
        return found[0] if found else None

    async def find(
        self,
        tenant_id: str,
        where: SessionFilter,
        limit: int,
        after: SessionPosition | None = None,
    ) -> list[Session]:
        conditions = [sessions.c.tenant_id == tenant_id, *_filter(where)]
        if after is not None:
            conditions.append(
                or_(
                    sessions.c.started_at < after.started_at,
                    and_(sessions.c.started_at == after.started_at, sessions.c.id < after.id),
                )
            )
        query = (
            select(sessions)
            .where(*conditions)
            .order_by(sessions.c.started_at.desc(), sessions.c.id.desc())
            .limit(limit)
        )
        async with self._single.connect() as conn:
            return await load(conn, (await conn.execute(query)).all())

    async def heartbeat(self, tenant_id: str, session_id: str, at: datetime) -> Session:
        moved = (
            update(sessions)
            .where(*_key(tenant_id, session_id), sessions.c.status == SessionStatus.ACTIVE)
            .values(
                last_seen_at=case((sessions.c.last_seen_at < at, at), else_=sessions.c.last_seen_at)
            )
        )
        async with self._single.begin() as conn:
            result = await conn.execute(moved)
            found = await self._select(conn, _key(tenant_id, session_id))
        if not found:
            raise NotFound(f"no session {session_id}")
        if result.rowcount == 0:
            raise Conflict(f"session {session_id} has ended")
        return found[0]

    async def close(
        self,
        tenant_id: str,
        session_id: str,
        exit: Exit,
        rated_kinds: frozenset[str] = frozenset(),
    ) -> tuple[Session, bool]:
        async with self._engine.begin() as conn:
            found = await self._select(conn, _key(tenant_id, session_id), lock=True)
            if not found:
                raise NotFound(f"no session {session_id}")
            session = found[0]
            closed = session.close(exit, rated_kinds)
            if closed:
                await self._save_closing(conn, [session])
                await add_usage(conn, self._engine, tenant_id, {session_id: exit.usage})
        return session, closed

    async def time_out_idle(
        self,
        tenant_id: str,
        last_seen_before: datetime,
        limit: int,
        rated_kinds: frozenset[str] = frozenset(),
    ) -> list[Session]:
        stale = [
            sessions.c.tenant_id == tenant_id,
            sessions.c.status == SessionStatus.ACTIVE,
            sessions.c.last_seen_at < last_seen_before,
        ]
        async with self._engine.begin() as conn:
            # SKIP LOCKED: concurrent reapers take disjoint sessions instead of queueing.
            found = await self._select(conn, stale, lock=True, skip_locked=True, limit=limit)
            for session in found:
                session.close(session.time_out(), rated_kinds)
            await self._save_closing(conn, found)
        return found

    async def pending_charges(self, tenant_id: str, limit: int) -> list[Session]:
        pending = [
            sessions.c.tenant_id == tenant_id,
            sessions.c.charge_state == ChargeState.PENDING,
        ]
        async with self._single.connect() as conn:
            return await self._select(conn, pending, limit=limit)

    async def _select(
        self,
        conn: AsyncConnection,
        conditions: list[Any],
        lock: bool = False,
        skip_locked: bool = False,
        limit: int | None = None,
    ) -> list[Session]:
        query = select(sessions).where(*conditions).order_by(sessions.c.id).limit(limit)
        if lock:  # SQLite has no row locks: its transactions are already serialised
            query = query.with_for_update(skip_locked=skip_locked)
        return await load(conn, (await conn.execute(query)).all())

    async def _save_closing(self, conn: AsyncConnection, closed: list[Session]) -> None:
        if not closed:
            return
        await conn.execute(
            update(sessions)
            .where(
                sessions.c.tenant_id == bindparam("key_tenant"),
                sessions.c.id == bindparam("key_id"),
            )
            .values({c: bindparam(f"new_{c}") for c in CLOSING_COLUMNS}),
            [
                {"key_tenant": s.tenant_id, "key_id": s.id}
                | {f"new_{c}": v for c, v in to_row(s).items() if c in CLOSING_COLUMNS}
                for s in closed
            ],
        )


def _key(tenant_id: str, session_id: str) -> list[Any]:
    return [sessions.c.tenant_id == tenant_id, sessions.c.id == session_id]


def _filter(where: SessionFilter) -> list[Any]:
    conditions: list[Any] = []
    for column, value in (
        (sessions.c.kind, where.kind),
        (sessions.c.resource_id, where.resource_id),
        (sessions.c.subject_id, where.subject_id),
        (sessions.c.status, where.status),
    ):
        if value is not None:
            conditions.append(column == value)
    if where.started_from is not None:
        conditions.append(sessions.c.started_at >= where.started_from)
    if where.started_to is not None:
        conditions.append(sessions.c.started_at < where.started_to)
    return conditions
