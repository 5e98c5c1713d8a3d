"""Funnels' days in SQL: a row per funnel and day, its rows per resource and dimension values,
and those rows added up per group of each grouping, replaced together in one transaction."""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlalchemy.dimensions import dimensions_of_text, dimensions_text, having_values
from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.tables import funnel_day_groups, funnel_day_rows, funnel_days
from application.funnels.group_tallies import group_tallies, groupings
from application.funnels.ports import FunnelDay, FunnelDays, FunnelRow, kept_for
from application.transfer.ports import ArchivedFunnelDay
from domain.calendar import Bucket
from domain.funnels import FunnelTally
from domain.rollups import ATTRIBUTES, BY_RESOURCE

# A funnel's days, all in these tables.
TABLES = (funnel_days, funnel_day_rows, funnel_day_groups)


@raises_storage_errors
class SqlFunnelDays(FunnelDays):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def replace(self, tenant_id: str, funnel: str, day: FunnelDay) -> None:
        async with self._engine.begin() as conn:
            for table in TABLES:
                await conn.execute(
                    delete(table).where(*_of_days(table, tenant_id, funnel, [day.start]))
                )
            await write_day(conn, tenant_id, funnel, day)

    async def stored(
        self, tenant_id: str, funnel: str, fingerprint: str, days: Sequence[Bucket]
    ) -> dict[datetime, bool]:
        d = funnel_days.c
        by_start = {day.start: day for day in days}
        query = select(d.day_start, d.final, d.day_end).where(
            *_of_days(funnel_days, tenant_id, funnel, list(by_start)), d.fingerprint == fingerprint
        )
        async with self._single.connect() as conn:
            found = await conn.execute(query)
            return {s: final for s, final, end in found if kept_for(by_start[s], end)}

    async def wholes(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime]
    ) -> list[FunnelTally]:
        query = select(funnel_days.c.tally).where(*_of_days(funnel_days, tenant_id, funnel, starts))
        async with self._single.connect() as conn:
            return [FunnelTally.from_document(t) for t in (await conn.execute(query)).scalars()]

    async def rows(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime], where: Mapping[str, str]
    ) -> list[FunnelRow]:
        r = funnel_day_rows.c
        query = select(r.resource_id, r.dimensions, r.tally).where(
            *_of_days(funnel_day_rows, tenant_id, funnel, starts),
            *having_values(r.dimensions, where),
        )
        async with self._single.connect() as conn:
            found = await conn.execute(query)
            return [
                FunnelRow(
                    row.resource_id,
                    dimensions_of_text(row.dimensions),
                    FunnelTally.from_document(row.tally),
                )
                for row in found
            ]

    async def groups(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime], grouping: str
    ) -> list[tuple[str | None, FunnelTally]]:
        g = funnel_day_groups.c
        query = select(g.grp, g.tally).where(
            *_of_days(funnel_day_groups, tenant_id, funnel, starts), g.grouping == grouping
        )
        async with self._single.connect() as conn:
            found = await conn.execute(query)
            return [(row.grp, FunnelTally.from_document(row.tally)) for row in found]

    async def forget(self, tenant_id: str, funnel: str) -> None:
        async with self._engine.begin() as conn:
            for table in TABLES:
                await conn.execute(delete(table).where(*_of_days(table, tenant_id, funnel)))


async def write_day(conn: AsyncConnection, tenant_id: str, funnel: str, day: FunnelDay) -> bool:
    """Store the funnel's day unless it is stored already (then False): its row, its rows per
    resource and dimension values, and those added up per group of each grouping."""
    key = {"tenant_id": tenant_id, "funnel": funnel, "day_start": day.start}
    stored = {
        **key,
        "fingerprint": day.fingerprint,
        "final": day.final,
        "tally": day.whole.document(),
        "dimensions": list(day.dimensions),
        "day_end": day.end,
    }
    first = insert(conn.engine, funnel_days).values(stored).on_conflict_do_nothing()
    if (await conn.execute(first)).rowcount != 1:
        return False
    rows = [
        {
            **key,
            "resource_id": row.resource_id,
            "dimensions": dimensions_text(row.dimensions),
            "tally": row.tally.document(),
        }
        for row in day.rows
    ]
    groups = [
        {**key, "grouping": grouping, "grp": group, "tally": tally.document()}
        for grouping in groupings(day.dimensions)
        for group, tally in group_tallies(day.rows, grouping).items()
    ]
    for table, values in ((funnel_day_rows, rows), (funnel_day_groups, groups)):
        if values:
            await conn.execute(table.insert(), values)
    return True


async def days_found(
    conn: AsyncConnection, tenant_id: str, found: Sequence[Any]
) -> list[ArchivedFunnelDay]:
    """The days of `found` (rows of funnel_days) whole, read on a connection (an export's
    snapshot): with their rows, and their dimensions (of a day stored before they were kept,
    those its groups are kept for)."""
    days = {(d.funnel, d.day_start) for d in found}
    r, g = funnel_day_rows.c, funnel_day_groups.c

    def of(c: Any) -> list[Any]:  # a superset of the days, cut to them below
        funnels, starts = {f for f, _ in days}, {s for _, s in days}
        return [c.tenant_id == tenant_id, c.funnel.in_(funnels), c.day_start.in_(starts)]

    rows: defaultdict[tuple[str, datetime], list[FunnelRow]] = defaultdict(list)
    read = select(r.funnel, r.day_start, r.resource_id, r.dimensions, r.tally).where(*of(r))
    for row in await conn.execute(read.order_by(r.resource_id, r.dimensions)):
        tally = FunnelTally.from_document(row.tally)
        dimensions = dimensions_of_text(row.dimensions)
        rows[(row.funnel, row.day_start)].append(FunnelRow(row.resource_id, dimensions, tally))
    keys: defaultdict[tuple[str, datetime], set[str]] = defaultdict(set)
    if any(d.dimensions is None for d in found):  # read only for days stored before 0033
        split = select(g.funnel, g.day_start, g.grouping).distinct().where(*of(g))
        for funnel, start, grouping in await conn.execute(split):
            if grouping != BY_RESOURCE:
                keys[(funnel, start)].add(grouping.removeprefix(ATTRIBUTES))
    return [
        ArchivedFunnelDay(
            d.funnel,
            FunnelDay(
                d.day_start,
                d.fingerprint,
                d.final,
                FunnelTally.from_document(d.tally),
                rows[(d.funnel, d.day_start)],
                tuple(
                    d.dimensions
                    if d.dimensions is not None
                    else sorted(keys[(d.funnel, d.day_start)])
                ),
                d.day_end,
            ),
        )
        for d in found
    ]


def _of_days(
    table: Any, tenant_id: str, funnel: str, starts: Sequence[datetime] | None = None
) -> list[Any]:
    chosen = [table.c.tenant_id == tenant_id, table.c.funnel == funnel]
    if starts is not None:
        chosen.append(table.c.day_start.in_(starts))
    return chosen
