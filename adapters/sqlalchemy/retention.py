"""Retention in SQL: each call deletes one bounded batch, chosen by a subquery on an index, so
that no statement locks a whole table or runs long."""

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Delete, Select, Table, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.deleted_events import delete_remembering
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
    snapshots,
    webhook_deliveries,
)
from application.retention.ports import Retention
from domain.calendar import Period


@raises_storage_errors
class SqlRetention(Retention):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def delete_snapshots(self, tenant_id: str, taken_before: datetime, limit: int) -> int:
        return await self._delete(snapshots, snapshots.c.at, tenant_id, taken_before, limit)

    async def delete_events(self, tenant_id: str, before: datetime, limit: int) -> int:
        """Each session remembers the numbers of its events deleted (deleted_events)."""
        oldest = _oldest_keys(events, events.c.at, tenant_id, before, limit)
        async with self._engine.begin() as conn:
            return await delete_remembering(conn, tenant_id, oldest)

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


def _oldest(
    table: Table, at: Column[datetime], tenant_id: str, before: datetime, limit: int
) -> Delete:
    """Deletes the tenant's `limit` oldest rows (by `at`) from before the cutoff."""
    key = tuple_(*table.primary_key.columns)
    return delete(table).where(key.in_(_oldest_keys(table, at, tenant_id, before, limit)))


def _oldest_keys(
    table: Table, at: Column[datetime], tenant_id: str, before: datetime, limit: int
) -> Select[Any]:
    """The primary keys of the tenant's `limit` oldest rows (by `at`) from before the cutoff."""
    return (
        select(*table.primary_key.columns)
        .where(table.c.tenant_id == tenant_id, at < before)
        .order_by(at)
        .limit(limit)
    )
