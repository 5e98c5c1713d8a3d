"""Retention in SQL: each call deletes one bounded batch, chosen by a subquery on an index, so
that no statement locks a whole table or runs long."""

from datetime import datetime

from sqlalchemy import Column, Delete, Table, bindparam, delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.funnel_days import TABLES as FUNNEL_DAY_TABLES
from adapters.sqlalchemy.tables import (
    errors,
    events,
    finished_rooms,
    performance_metrics,
    performance_steps,
    rollup_activity,
    rollup_groups,
    rollup_load,
    sessions,
    snapshots,
    webhook_deliveries,
)
from application.retention.ports import Retention
from domain.calendar import Period
from domain.event_gaps import deleted_too


@raises_storage_errors
class SqlRetention(Retention):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def delete_snapshots(self, tenant_id: str, taken_before: datetime, limit: int) -> int:
        return await self._delete(snapshots, snapshots.c.at, tenant_id, taken_before, limit)

    async def delete_events(self, tenant_id: str, before: datetime, limit: int) -> int:
        """And, in the same transaction, each session remembers the numbers of its events
        deleted (Session.deleted_events): they are no gaps. The sessions are locked first, in id
        order, as a client's batch locks them before it writes their events."""
        picked = (
            select(events.c.session_id, events.c.sequence_no)
            .where(events.c.tenant_id == tenant_id, events.c.at < before)
            .order_by(events.c.at)
            .limit(limit)
        )
        async with self._engine.begin() as conn:
            keys = [tuple(key) for key in await conn.execute(picked)]
            if not keys:
                return 0
            deleted = await _deleted_of(conn, tenant_id, {session_id for session_id, _ in keys})
            gone = await conn.execute(
                delete(events)
                .where(
                    events.c.tenant_id == tenant_id,
                    events.c.at < before,
                    tuple_(events.c.session_id, events.c.sequence_no).in_(keys),
                )
                .returning(events.c.session_id, events.c.sequence_no)
            )
            numbers: dict[str, list[int]] = {}
            for session_id, number in gone:
                numbers.setdefault(session_id, []).append(number)
            changed = [
                {"session_id": session_id, "deleted": deleted_too(deleted[session_id], numbers_of)}
                for session_id, numbers_of in numbers.items()
                if session_id in deleted
            ]
            if changed:
                await conn.execute(
                    update(sessions)
                    .where(
                        sessions.c.tenant_id == tenant_id, sessions.c.id == bindparam("session_id")
                    )
                    .values(deleted_events=bindparam("deleted")),
                    changed,
                )
        return sum(map(len, numbers.values()))

    async def delete_errors(self, tenant_id: str, before: datetime, limit: int) -> int:
        return await self._delete(errors, errors.c.at, tenant_id, before, limit)

    async def delete_metrics(self, tenant_id: str, started_before: datetime, limit: int) -> int:
        metrics, steps = performance_metrics, performance_steps
        oldest = _oldest(metrics, metrics.c.started_at, tenant_id, started_before, limit)
        async with self._engine.begin() as conn:
            ids = list((await conn.execute(oldest.returning(metrics.c.id))).scalars())
            await conn.execute(
                delete(steps).where(steps.c.tenant_id == tenant_id, steps.c.metric_id.in_(ids))
            )
        return len(ids)

    async def forget_webhooks(self, tenant_id: str, received_before: datetime, limit: int) -> int:
        received = webhook_deliveries.c.received_at
        ids = await self._delete(webhook_deliveries, received, tenant_id, received_before, limit)
        if ids == limit:
            return ids
        finished = finished_rooms.c.finished_at
        rooms = await self._delete(
            finished_rooms, finished, tenant_id, received_before, limit - ids
        )
        return ids + rooms

    async def delete_rollups(
        self, tenant_id: str, period: Period, started_before: datetime, limit: int
    ) -> int:
        oldest = (
            select(rollup_load.c.bucket_start)
            .where(
                rollup_load.c.tenant_id == tenant_id,
                rollup_load.c.period == period,
                rollup_load.c.bucket_start < started_before,
            )
            .order_by(rollup_load.c.bucket_start)
            .limit(limit)
        )
        async with self._engine.begin() as conn:
            starts = list((await conn.execute(oldest)).scalars())
            for table in (rollup_activity, rollup_groups, rollup_load):
                await conn.execute(
                    delete(table).where(
                        table.c.tenant_id == tenant_id,
                        table.c.period == period,
                        table.c.bucket_start.in_(starts),
                    )
                )
            if period is Period.DAY:  # funnels' days go with the days (a few rows a day)
                for table in FUNNEL_DAY_TABLES:
                    await conn.execute(
                        delete(table).where(
                            table.c.tenant_id == tenant_id, table.c.day_start < started_before
                        )
                    )
        return len(starts)

    async def _delete(
        self, table: Table, at: Column[datetime], tenant_id: str, before: datetime, limit: int
    ) -> int:
        async with self._engine.begin() as conn:
            return (await conn.execute(_oldest(table, at, tenant_id, before, limit))).rowcount


async def _deleted_of(
    conn: AsyncConnection, tenant_id: str, session_ids: set[str]
) -> dict[str, list[tuple[int, int]]]:
    """The sessions' deleted_events, their rows locked in id order."""
    found = await conn.execute(
        select(sessions.c.id, sessions.c.deleted_events)
        .where(sessions.c.tenant_id == tenant_id, sessions.c.id.in_(sorted(session_ids)))
        .order_by(sessions.c.id)
        .with_for_update()
    )
    return {session_id: [(a, b) for a, b in deleted] for session_id, deleted in found}


def _oldest(
    table: Table, at: Column[datetime], tenant_id: str, before: datetime, limit: int
) -> Delete:
    """Deletes the tenant's `limit` oldest rows (by `at`) from before the cutoff."""
    key = tuple_(*table.primary_key.columns)
    oldest = (
        select(*table.primary_key.columns)
        .where(table.c.tenant_id == tenant_id, at < before)
        .order_by(at)
        .limit(limit)
    )
    return delete(table).where(key.in_(oldest))
