"""Snapshots in SQL; each one's traffic delta is computed where it is read (LAG over its
source's counters), so a snapshot that arrives late corrects the deltas around it."""

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.keyset import past
from adapters.sqlalchemy.tables import snapshots
from application.ports import Window
from application.snapshots.ports import SnapshotLog, SnapshotPlace
from domain.snapshots import MeasuredSnapshot, Snapshot

FIELDS = [c.name for c in snapshots.columns if c.name != "tenant_id"]


@raises_storage_errors
class SqlSnapshotLog(SnapshotLog):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def add(self, tenant_id: str, batch: Sequence[Snapshot]) -> int:
        if not batch:
            return 0
        stmt = (
            insert(self._engine, snapshots).on_conflict_do_nothing().returning(snapshots.c.source)
        )
        async with self._engine.begin() as conn:
            stored = await conn.execute(
                stmt, [{"tenant_id": tenant_id, **asdict(s)} for s in batch]
            )
            return len(stored.all())

    async def find(
        self,
        tenant_id: str,
        source: str | None,
        window: Window,
        limit: int,
        after: SnapshotPlace | None = None,
    ) -> list[MeasuredSnapshot]:
        total = snapshots.c.traffic_bytes_total
        previous = func.lag(total).over(partition_by=snapshots.c.source, order_by=snapshots.c.at)
        mine: list[Any] = [snapshots.c.tenant_id == tenant_id]
        if source is not None:
            mine.append(snapshots.c.source == source)
        if window.end is not None:
            mine.append(snapshots.c.at < window.end)
        # The delta needs the snapshot before the window's first: filter after the LAG.
        measured = (
            select(
                *(snapshots.c[f] for f in FIELDS),
                case(
                    (previous.is_(None), 0),
                    (total >= previous, total - previous),
                    else_=total,
                ).label("traffic_bytes"),
            )
            .where(*mine)
            .subquery()
        )
        query = select(measured).order_by(measured.c.source, measured.c.at).limit(limit)
        if window.start is not None:
            query = query.where(measured.c.at >= window.start)
        if after is not None:
            query = query.where(past(measured.c.source, measured.c.at, (after.source, after.at)))
        async with self._single.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            MeasuredSnapshot(Snapshot(**{f: getattr(r, f) for f in FIELDS}), int(r.traffic_bytes))
            for r in rows
        ]
