"""Rollups in SQL: an hour's figures by GROUP BY over the raw tables (each query reads only what
touches the hour, by index), buckets replaced in one transaction, a lease row per tenant."""

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlalchemy.dimensions import dimension, dimensions_of_text, dimensions_text
from adapters.sqlalchemy.engine import insert, reads_only, serialise, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.meters import meter_sums
from adapters.sqlalchemy.quantities import from_json, from_nanos, to_json
from adapters.sqlalchemy.rollup_sums import LOAD_FIELDS, group_text, in_window, summed_figures
from adapters.sqlalchemy.spans import Spans
from adapters.sqlalchemy.tables import (
    UTCDateTime,
    errors,
    events,
    rollup_activity,
    rollup_groups,
    rollup_leases,
    rollup_load,
    sales,
    sessions,
    track_intervals,
)
from adapters.sqlalchemy.telemetry_rows import amount_sums, summed
from application.ports import Window
from application.rollups.figures_from_found import figures_from_found
from application.rollups.ports import RollupLease, RollupLeases, RollupRepository, UsageSource
from domain.calendar import Calendar, Period
from domain.error_reports import Severity
from domain.money import amount_text
from domain.rollups import (
    Activity,
    ActivityTally,
    Dimensions,
    Rollup,
    ServerLoad,
    UsageFigures,
    UsageFilter,
    group_sums,
)
from domain.sales import SaleStatus
from domain.session import SessionStatus


@raises_storage_errors
class SqlUsageSource(UsageSource):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = reads_only(engine)
        self._spans = Spans(engine)
        self._sqlite = engine.dialect.name == "sqlite"

    async def activity(
        self, tenant_id: str, start: datetime, end: datetime, dimensions: Sequence[str] = ()
    ) -> list[Activity]:
        b, e = literal(start, UTCDateTime), literal(end, UTCDateTime)
        spans = self._spans
        values = [dimension(key, self._sqlite).label(f"d{n}") for n, key in enumerate(dimensions)]
        by = (sessions.c.kind, sessions.c.resource_id, *values)
        width = len(by)

        def key(row: Any) -> tuple[str, str, Dimensions]:
            present = zip(dimensions, row[2:width], strict=True)
            return row[0], row[1], tuple(sorted((k, v) for k, v in present if v is not None))

        mine = sessions.c.tenant_id == tenant_id
        of_session = and_(sessions.c.tenant_id == tenant_id)
        started = select(*by, func.count()).where(
            mine, sessions.c.started_at >= start, sessions.c.started_at < end
        )
        ended = select(
            *by,
            sessions.c.status,
            func.count(),
            spans.seconds(func.sum(spans.span(sessions.c.started_at, sessions.c.ended_at))),
        ).where(mine, sessions.c.ended_at >= start, sessions.c.ended_at < end)
        until = func.coalesce(sessions.c.ended_at, sessions.c.last_seen_at)
        active = select(
            *by,
            spans.seconds(
                func.sum(spans.span(spans.later(sessions.c.started_at, b), spans.earlier(until, e)))
            ),
        ).where(
            mine,
            or_(sessions.c.ended_at > start, sessions.c.ended_at.is_(None)),
            sessions.c.started_at < end,
            until > start,
        )
        happened = (
            select(*by, func.count())
            .join_from(events, sessions, and_(of_session, events.c.session_id == sessions.c.id))
            .where(events.c.tenant_id == tenant_id, events.c.at >= start, events.c.at < end)
        )
        meters = meter_sums(*by).where(
            mine, sessions.c.ended_at >= start, sessions.c.ended_at < end
        )
        err, sold = errors.c, sales.c
        raised = (
            select(*by, func.count(), func.sum(case((err.severity == Severity.FATAL, 1), else_=0)))
            .join_from(errors, sessions, and_(of_session, err.session_id == sessions.c.id))
            .where(err.tenant_id == tenant_id, err.at >= start, err.at < end)
        )
        selling = (
            select(*by, sold.currency, sold.status, func.count(), *amount_sums(sold, "net"))
            .join_from(sales, sessions, and_(of_session, sold.session_id == sessions.c.id))
            .where(
                sold.tenant_id == tenant_id,
                sold.occurred_at >= start,
                sold.occurred_at < end,
                sold.status.in_([SaleStatus.COMPLETED, SaleStatus.REFUNDED]),
            )
        )
        t = track_intervals.c
        tracks = (
            select(
                *by,
                t.meter,
                spans.seconds(
                    func.sum(
                        spans.span(
                            spans.later(t.published_at, b), spans.earlier(t.unpublished_at, e)
                        )
                    )
                ),
            )
            .join_from(track_intervals, sessions, and_(of_session, t.session_id == sessions.c.id))
            .where(
                t.tenant_id == tenant_id,
                t.unpublished_at > start,
                t.published_at < end,
            )
            .group_by(t.meter)
        )
        figures = ActivityTally()
        async with self._engine.connect() as conn:
            for name, query in (
                ("sessions_started", started),
                ("active_seconds", active),
                ("events", happened),
            ):
                for row in await conn.execute(query.group_by(*by)):
                    figures[key(row)][name] = row[width]
            for row in await conn.execute(ended.group_by(*by, sessions.c.status)):
                status, count, seconds = row[width:]
                figures.ended(key(row), status, count, float(seconds))
            for row in await conn.execute(meters.group_by(*by)):
                meter, nanos, is_decimal = row[width:]
                figures[key(row)]["meters"][meter] = from_nanos(int(nanos), bool(is_decimal))
            for row in await conn.execute(tracks.group_by(*by)):
                meter, seconds = row[width:]
                figures[key(row)]["track_seconds"][meter] = float(seconds)
            for row in await conn.execute(raised.group_by(*by)):
                found = figures[key(row)]
                found["errors"], found["fatal_errors"] = (int(n) for n in row[width:])
            for row in await conn.execute(selling.group_by(*by, sold.currency, sold.status)):
                currency, status, count, *sums = row[width:]
                figures.sold(key(row), currency, status, count, *summed(sums))
        return figures.rows()

    async def earliest_active_start(self, tenant_id: str) -> datetime | None:
        return await self._earliest_active(tenant_id, sessions.c.started_at)

    async def earliest_active_seen(self, tenant_id: str) -> datetime | None:
        return await self._earliest_active(tenant_id, sessions.c.last_seen_at)

    async def _earliest_active(self, tenant_id: str, instant: Any) -> datetime | None:
        query = select(func.min(instant)).where(
            sessions.c.tenant_id == tenant_id, sessions.c.status == SessionStatus.ACTIVE
        )
        async with self._engine.connect() as conn:
            found: datetime | None = (await conn.execute(query)).scalar_one()
        return found


@raises_storage_errors
class SqlRollupRepository(RollupRepository):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reads = reads_only(engine)
        self._sqlite = engine.dialect.name == "sqlite"

    async def replace(self, tenant_id: str, rollup: Rollup) -> None:
        bucket = _bucket_key(tenant_id, rollup)
        async with self._engine.begin() as conn:
            await serialise(conn, "rollup", tenant_id, rollup.period, rollup.start.isoformat())
            for table in (rollup_activity, rollup_groups, rollup_load):
                await conn.execute(delete(table).where(*_bucket(table, bucket)))
            await write_bucket(conn, tenant_id, rollup)

    async def find(
        self,
        tenant_id: str,
        period: Period,
        window: Window,
        kind: str | None = None,
        resource_id: str | None = None,
    ) -> list[Rollup]:
        async with self._reads.connect() as conn:
            return await rollups_found(conn, tenant_id, period, window, kind, resource_id)

    async def figures(
        self,
        tenant_id: str,
        size: Period,
        window: Window,
        calendar: Calendar,
        chosen: UsageFilter,
    ) -> list[UsageFigures]:
        if self._sqlite:  # the embedded store: little data, and no exact decimal sums in SQL
            return await figures_from_found(self, tenant_id, size, window, calendar, chosen)
        async with self._reads.connect() as conn:
            return await summed_figures(conn, tenant_id, size, window, calendar, chosen)


@raises_storage_errors
class SqlRollupLeases(RollupLeases):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def acquire(
        self, tenant_id: str, holder: str, now: datetime, until: datetime
    ) -> RollupLease | None:
        first = (
            insert(self._engine, rollup_leases)
            .values(tenant_id=tenant_id, holder=holder, held_until=until)
            .on_conflict_do_nothing()
        )
        # The UPDATE locks the row; a concurrent acquirer re-reads it after this one commits and
        # finds it held.
        take = (
            update(rollup_leases)
            .where(
                rollup_leases.c.tenant_id == tenant_id,
                or_(rollup_leases.c.holder.is_(None), rollup_leases.c.held_until <= now),
            )
            .values(
                holder=holder,
                held_until=until,
                # Late data rewound it: resume there (right-hand sides read the old row).
                resume_from=case(
                    (rollup_leases.c.resume_from.is_(None), rollup_leases.c.rewind_to),
                    (
                        rollup_leases.c.rewind_to < rollup_leases.c.resume_from,
                        rollup_leases.c.rewind_to,
                    ),
                    else_=rollup_leases.c.resume_from,
                ),
                rewind_to=None,
            )
            .returning(rollup_leases.c.resume_from, rollup_leases.c.cut)
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(first)).rowcount == 1:
                return RollupLease(holder, None)
            taken = (await conn.execute(take)).first()
        return None if taken is None else RollupLease(holder, taken.resume_from, taken.cut)

    async def renew(self, tenant_id: str, holder: str, until: datetime) -> bool:
        return await self._update(tenant_id, holder, held_until=until)

    async def release(
        self, tenant_id: str, holder: str, resume_from: datetime, cut: str | None
    ) -> None:
        await self._update(
            tenant_id, holder, holder=None, held_until=None, resume_from=resume_from, cut=cut
        )

    async def rewind(self, tenant_id: str, to: datetime) -> None:
        # A tenant without a lease yet gets one, rewound: its first run starts there.
        stmt = (
            insert(self._engine, rollup_leases)
            .values(tenant_id=tenant_id, rewind_to=to)
            .on_conflict_do_update(
                index_elements=[rollup_leases.c.tenant_id],
                set_={"rewind_to": to},
                where=or_(rollup_leases.c.rewind_to.is_(None), rollup_leases.c.rewind_to > to),
            )
        )
        async with self._single.begin() as conn:
            await conn.execute(stmt)

    async def _update(self, tenant_id: str, current: str, **values: Any) -> bool:
        stmt = (
            update(rollup_leases)
            .where(rollup_leases.c.tenant_id == tenant_id, rollup_leases.c.holder == current)
            .values(**values)
        )
        async with self._single.begin() as conn:
            return bool((await conn.execute(stmt)).rowcount)


async def write_bucket(conn: AsyncConnection, tenant_id: str, rollup: Rollup) -> bool:
    """Store the bucket's rows unless it is stored already (then False): its load row first,
    which marks the bucket rolled up, then a row per activity and, on PostgreSQL, per group."""
    bucket = _bucket_key(tenant_id, rollup)
    load = {**bucket, **{f: getattr(rollup.load, f) for f in LOAD_FIELDS}}
    stored = await conn.execute(
        insert(conn.engine, rollup_load).values(load).on_conflict_do_nothing()
    )
    if stored.rowcount != 1:
        return False
    activity = [
        {
            **bucket,
            "kind": a.kind,
            "resource_id": a.resource_id,
            "dimensions": dimensions_text(a.dimensions),
            **_figures(a),
        }
        for a in rollup.activity
    ]
    # Only PostgreSQL adds the usage report up in SQL (rollup_sums); elsewhere unread.
    groups = (
        []
        if conn.dialect.name == "sqlite"
        else [
            {**bucket, "grouping": g.grouping, "kind": g.activity.kind, "grp": group_text(g)}
            | _figures(g.activity)
            for g in group_sums(rollup.activity)
        ]
    )
    for table, rows in ((rollup_activity, activity), (rollup_groups, groups)):
        if rows:
            await conn.execute(table.insert(), rows)
    return True


async def rollups_found(
    conn: AsyncConnection,
    tenant_id: str,
    period: Period,
    window: Window,
    kind: str | None = None,
    resource_id: str | None = None,
) -> list[Rollup]:
    """The buckets in the window, oldest first, with the activity of that kind and resource
    only (when given): RollupRepository.find, on a connection (an export's snapshot)."""
    loads = select(rollup_load).where(*in_window(rollup_load, tenant_id, period, window))
    chosen = in_window(rollup_activity, tenant_id, period, window)
    if kind is not None:
        chosen.append(rollup_activity.c.kind == kind)
    if resource_id is not None:
        chosen.append(rollup_activity.c.resource_id == resource_id)
    activity = select(rollup_activity).where(*chosen)
    load_rows = (await conn.execute(loads.order_by(rollup_load.c.bucket_start))).all()
    activity_rows = await conn.execute(
        activity.order_by(
            rollup_activity.c.bucket_start,
            rollup_activity.c.kind,
            rollup_activity.c.resource_id,
            rollup_activity.c.dimensions,
        )
    )
    by_bucket: dict[datetime, list[Activity]] = defaultdict(list)
    for r in activity_rows:
        by_bucket[r.bucket_start].append(
            Activity(
                r.kind,
                r.resource_id,
                r.sessions_started,
                r.sessions_ended,
                r.active_seconds,
                r.events,
                from_json(r.meters),
                r.track_seconds,
                dimensions_of_text(r.dimensions),
                r.ended_statuses,
                r.ended_seconds,
                r.errors,
                r.fatal_errors,
                r.sales,
                {c: Decimal(net) for c, net in r.sales_net.items()},
            )
        )
    return [
        Rollup(
            period,
            r.bucket_start,
            # In the order the domain sorts them (JSON text may sort otherwise).
            sorted(by_bucket[r.bucket_start], key=_activity_order),
            ServerLoad(**{f: getattr(r, f) for f in LOAD_FIELDS}),
        )
        for r in load_rows
    ]


def _bucket_key(tenant_id: str, rollup: Rollup) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "period": rollup.period, "bucket_start": rollup.start}


def _figures(a: Activity) -> dict[str, Any]:
    """An Activity's figures as a rollup row keeps them (tables.activity_figures)."""
    return {
        "sessions_started": a.sessions_started,
        "sessions_ended": a.sessions_ended,
        "active_seconds": a.active_seconds,
        "events": a.events,
        "meters": to_json(a.meters),
        "track_seconds": dict(a.track_seconds),
        "ended_statuses": dict(a.ended_statuses),
        "ended_seconds": a.ended_seconds,
        "errors": a.errors,
        "fatal_errors": a.fatal_errors,
        "sales": dict(a.sales),
        "sales_net": {c: amount_text(net) for c, net in a.sales_net.items()},
    }


def _activity_order(a: Activity) -> tuple[str, str, Dimensions]:
    return a.kind, a.resource_id, a.dimensions


def _bucket(table: Any, bucket: dict[str, Any]) -> list[Any]:
    return [table.c[name] == value for name, value in bucket.items()]
