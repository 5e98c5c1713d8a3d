from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlalchemy.asyncpg_events import AsyncpgBatchWriter
from adapters.sqlalchemy.asyncpg_statements import asyncpg_transaction
from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.event_batches import BatchWriter, Key, append_batch
from adapters.sqlalchemy.meters import add_usage, usage_of
from adapters.sqlalchemy.quantities import from_json, to_json
from adapters.sqlalchemy.session_rows import from_row, save
from adapters.sqlalchemy.tables import events, sessions
from application.events.ports import EventLog
from domain.events import Admission, BatchOutcome, Distribution, Event
from domain.session import EVENT_CHANGES, Session
from domain.usage import Usage


@raises_storage_errors
class SqlEventLog(EventLog):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)
        self._postgresql = engine.dialect.name == "postgresql"

    async def append(
        self,
        tenant_id: str,
        batch: Sequence[tuple[int, Event]],
        now: datetime,
        window: timedelta,
        admits: Admission | None = None,
    ) -> BatchOutcome:
        if self._postgresql:
            # The hot path of ingest: its statements go to asyncpg as they are, arrays and all,
            # without SQLAlchemy's per-row and per-statement work (adapters.sqlalchemy.asyncpg_statements).
            async with asyncpg_transaction(self._engine) as driver:
                writer: BatchWriter = AsyncpgBatchWriter(driver, tenant_id)
                return await append_batch(writer, batch, now, window, admits)
        async with self._engine.begin() as conn:
            writer = _CoreBatchWriter(conn, self._engine, tenant_id)
            return await append_batch(writer, batch, now, window, admits)

    async def find(
        self,
        tenant_id: str,
        session_id: str,
        limit: int,
        after_sequence_no: int = 0,
        type: str | None = None,
        label: str | None = None,
    ) -> list[Event]:
        conditions = [
            events.c.tenant_id == tenant_id,
            events.c.session_id == session_id,
            events.c.sequence_no > after_sequence_no,
        ]
        if type is not None:
            conditions.append(events.c.type == type)
        if label is not None:
            conditions.append(events.c.label == label)
        query = select(events).where(*conditions).order_by(events.c.sequence_no).limit(limit)
        async with self._single.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [event_from_row(row) for row in rows]

    async def distribution(self, tenant_id: str, session_id: str, field: str) -> Distribution:
        column = events.c[field]
        query = (
            select(column, func.count())
            .where(
                events.c.tenant_id == tenant_id,
                events.c.session_id == session_id,
                column.is_not(None),
            )
            .group_by(column)
        )
        async with self._single.connect() as conn:
            counts = {value: n for value, n in await conn.execute(query)}
        return Distribution(total=sum(counts.values()), counts=counts)


class _CoreBatchWriter(BatchWriter):
    """The batch's statements through SQLAlchemy Core (SQLite)."""

    def __init__(self, conn: AsyncConnection, engine: AsyncEngine, tenant_id: str) -> None:
        self._conn = conn
        self._engine = engine
        self._tenant_id = tenant_id

    async def lock_sessions(self, session_ids: set[str], metered: set[str]) -> dict[str, Session]:
        query = (
            select(sessions)
            .where(sessions.c.tenant_id == self._tenant_id, sessions.c.id.in_(session_ids))
            .order_by(sessions.c.id)
            .with_for_update()
        )
        found = {row.id: from_row(row) for row in await self._conn.execute(query)}
        usage = await usage_of(self._conn, self._tenant_id, metered & set(found))
        for session_id, meters in usage.items():
            found[session_id].usage = meters
        return found

    async def insert(self, batch: list[Event]) -> list[Key]:
        # One executemany: SQLAlchemy sends it as multi-row INSERTs from a cached statement.
        stmt = (
            insert(self._engine, events)
            .on_conflict_do_nothing()
            .returning(events.c.session_id, events.c.sequence_no)
        )
        rows = await self._conn.execute(stmt, [event_to_row(self._tenant_id, e) for e in batch])
        return [(r.session_id, r.sequence_no) for r in rows]

    async def stored(self, keys: list[Key]) -> set[Key]:
        query = select(events.c.session_id, events.c.sequence_no).where(
            events.c.tenant_id == self._tenant_id,
            tuple_(events.c.session_id, events.c.sequence_no).in_(keys),
        )
        return {(r.session_id, r.sequence_no) for r in await self._conn.execute(query)}

    async def count(self, usage: dict[str, Usage], changed: list[Session]) -> None:
        await add_usage(self._conn, self._engine, self._tenant_id, usage)
        await save(self._conn, changed, EVENT_CHANGES)


def event_to_row(tenant_id: str, event: Event) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "session_id": event.session_id,
        "sequence_no": event.sequence_no,
        "type": event.type,
        "at": event.at,
        "category": event.category,
        "label": event.label,
        "data": event.data,
        "meters": to_json(event.meters),
    }


def event_from_row(row: Any) -> Event:
    return Event(
        session_id=row.session_id,
        sequence_no=row.sequence_no,
        type=row.type,
        at=row.at,
        category=row.category,
        label=row.label,
        data=row.data,
        meters=from_json(row.meters),
    )
