from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.meters import add_usage, usage_of
from adapters.sqlalchemy.quantities import from_json, to_json
from adapters.sqlalchemy.session_rows import from_row, save
from adapters.sqlalchemy.tables import events, sessions
from application.events.ports import EventLog
from domain.events import BatchOutcome, Distribution, Event, sort_batch
from domain.session import EVENT_CHANGES, Session
from domain.usage import Usage


@raises_storage_errors
class SqlEventLog(EventLog):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def append(
        self,
        tenant_id: str,
        batch: Sequence[tuple[int, Event]],
        now: datetime,
        window: timedelta,
    ) -> BatchOutcome:
        async with self._engine.begin() as conn:
            metered = {e.session_id for _, e in batch if e.meters}
            found = await self._lock_sessions(
                conn, tenant_id, {e.session_id for _, e in batch}, metered
            )
            sorted_batch = sort_batch(batch, found, now, window)
            inserted = await self._insert(conn, tenant_id, [e for _, e in sorted_batch.new])
            stored_before = await self._stored(
                conn, tenant_id, [e for _, e, _ in sorted_batch.refused]
            )
            rejections = sorted_batch.rejected(stored_before)
            repriced = await self._count(conn, tenant_id, found, inserted, now)
        duplicates = len(batch) - len(inserted) - len(rejections)
        return BatchOutcome(len(inserted), duplicates, rejections, repriced)

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

    async def _lock_sessions(
        self, conn: AsyncConnection, tenant_id: str, session_ids: set[str], metered: set[str]
    ) -> dict[str, Session]:
        """The batch's sessions, locked (in id order, so that batches touching the same sessions
        never deadlock) so a concurrent exit waits until their usage is in. Usage is read only
        for the sessions whose events carry meters: its totals are what the limit checks."""
        query = (
            select(sessions)
            .where(sessions.c.tenant_id == tenant_id, sessions.c.id.in_(session_ids))
            .order_by(sessions.c.id)
            .with_for_update()
        )
        found = {row.id: from_row(row) for row in await conn.execute(query)}
        for session_id, usage in (await usage_of(conn, tenant_id, metered & set(found))).items():
            found[session_id].usage = usage
        return found

    async def _insert(
        self, conn: AsyncConnection, tenant_id: str, batch: list[Event]
    ) -> list[Event]:
        """Insert what is new; return the events this call stored (not those already there).
        One executemany: SQLAlchemy sends it as multi-row INSERTs from a cached statement."""
        if not batch:
            return []
        by_key = {(e.session_id, e.sequence_no): e for e in batch}
        stmt = (
            insert(self._engine, events)
            .on_conflict_do_nothing()
            .returning(events.c.session_id, events.c.sequence_no)
        )
        rows = await conn.execute(stmt, [event_to_row(tenant_id, e) for e in batch])
        return [by_key[(r.session_id, r.sequence_no)] for r in rows]

    async def _stored(
        self, conn: AsyncConnection, tenant_id: str, batch: list[Event]
    ) -> set[tuple[str, int]]:
        if not batch:
            return set()
        keys = [(e.session_id, e.sequence_no) for e in batch]
        query = select(events.c.session_id, events.c.sequence_no).where(
            events.c.tenant_id == tenant_id,
            tuple_(events.c.session_id, events.c.sequence_no).in_(keys),
        )
        return {(r.session_id, r.sequence_no) for r in await conn.execute(query)}

    async def _count(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        found: dict[str, Session],
        inserted: list[Event],
        now: datetime,
    ) -> frozenset[str]:
        """Count the stored events into their sessions (Session.record_events): meters into the
        usage rows, the rest into the session rows. The sessions left to settle again."""
        by_session: dict[str, list[Event]] = defaultdict(list)
        for event in inserted:
            by_session[event.session_id].append(event)
        usage: dict[str, Usage] = {}
        repriced = set()
        for session_id, new in by_session.items():
            session = found[session_id]
            revision = session.charge_revision
            usage[session_id] = session.record_events(new, now)
            if session.charge_revision != revision:
                repriced.add(session_id)
        await add_usage(conn, self._engine, tenant_id, usage)
        await save(conn, [found[i] for i in by_session], EVENT_CHANGES)
        return frozenset(repriced)


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
