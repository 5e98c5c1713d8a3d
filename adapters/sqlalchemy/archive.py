"""A tenant's whole state out of and into SQL: streamed out table by table through server-side
cursors, and in with INSERT … ON CONFLICT DO NOTHING, so an import run twice adds nothing."""

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, fields
from datetime import timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import Table, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlalchemy.credits import rate_from_row, rate_to_row
from adapters.sqlalchemy.engine import insert, reading, serialise
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.events import event_from_row, event_to_row
from adapters.sqlalchemy.funnel_days import days_found, write_day
from adapters.sqlalchemy.funnels import funnel_from_row, funnel_to_row
from adapters.sqlalchemy.ledger_rows import alert_from_row, entry_from_row, entry_to_row
from adapters.sqlalchemy.livekit import account_from_row
from adapters.sqlalchemy.meters import add_usage
from adapters.sqlalchemy.plans import (
    plan_from_row,
    plan_to_row,
    subscription_set_from_row,
    subscription_set_to_row,
)
from adapters.sqlalchemy.rollups import rollups_found, write_bucket
from adapters.sqlalchemy.session_rows import load, to_row
from adapters.sqlalchemy.tables import (
    alerts,
    api_keys,
    erasures_under_way,
    errors,
    events,
    finished_rooms,
    funnel_days,
    funnels,
    ledger_entries,
    livekit_accounts,
    performance_metrics,
    performance_steps,
    plans,
    rates,
    refused_starts,
    rollup_load,
    sales,
    sessions,
    snapshots,
    subject_resources,
    subscription_history,
    subscriptions,
    tenants,
    track_intervals,
    webhook_deliveries,
)
from adapters.sqlalchemy.telemetry_rows import (
    error_of,
    error_row,
    metric_of,
    metric_row,
    sale_of,
    sale_row,
    step_rows,
)
from adapters.sqlalchemy.tenants import (
    api_key_from_row,
    api_key_to_row,
    tenant_from_row,
    tenant_to_row,
)
from application.ports import Window
from application.transfer.ports import (
    ArchivedErasure,
    ArchivedFinishedRoom,
    ArchivedFunnelDay,
    ArchivedRefusals,
    ArchivedTrack,
    ArchivedWebhook,
    Record,
    TenantArchive,
)
from domain.calendar import Period
from domain.credits import Alert, LedgerEntry, Rate
from domain.error_reports import ErrorReport
from domain.errors import Conflict
from domain.events import Event
from domain.funnels import Funnel
from domain.livekit import LiveKitAccount, TrackReport
from domain.performance import Metric
from domain.plans import Plan, Registration, Subscription, SubscriptionSet
from domain.refusals import Refusal, RefusedStart
from domain.rollups import Rollup
from domain.sales import Sale
from domain.session import Session
from domain.snapshots import Snapshot
from domain.tenants import ApiKey, Tenant

CHUNK = 500  # rows read at a time
# Rollup buckets and funnel days read at a time: each comes with its rows (a row per resource
# and dimension values).
BUCKETS = 24


def _owned(record: Any, tenant_id: str) -> dict[str, Any]:
    """The row of a record whose fields are the table's columns, but for the tenant."""
    return {"tenant_id": tenant_id, **asdict(record)}


def _registration(row: Any) -> Registration:
    return Registration(row.subject_id, row.resource_id, row.kind, row.registered_at)


def _subscription(row: Any) -> Subscription:
    return Subscription(row.subject_id, row.plan_id, row.ends_at, row.starts_at)


def _track(row: Any) -> ArchivedTrack:
    report = TrackReport(
        row.track_sid, row.meter, row.published_at, row.unpublished_at, row.end_from_stay
    )
    return ArchivedTrack(row.session_id, report, row.counted)


def _track_row(track: ArchivedTrack, tenant_id: str) -> dict[str, Any]:
    report = track.report
    return {
        "tenant_id": tenant_id,
        "session_id": track.session_id,
        "track_sid": report.track_sid,
        "meter": report.meter,
        "published_at": report.published_at,
        "unpublished_at": report.unpublished_at,
        "end_from_stay": report.end_from_stay,
        "counted": track.counted,
    }


def _refusals_row(refusals: ArchivedRefusals, tenant_id: str) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        **asdict(refusals.refused),
        "reason": refusals.refused.reason.value,
        "count": refusals.count,
    }


def _refusals(row: Any) -> ArchivedRefusals:
    refused = RefusedStart(row.subject_id, row.kind, Refusal(row.reason), row.day)
    return ArchivedRefusals(refused, row.count)


# Per table, in the order an import applies them: its record class, the row of a record, the
# record of a row, and the columns that order the export. Sessions are read and written apart.
TableOf = tuple[Table, Callable[[Any, str], dict[str, Any]], Callable[[Any], Any], tuple[str, ...]]
BEFORE_SESSIONS: dict[type, TableOf] = {
    ApiKey: (api_keys, lambda r, _: api_key_to_row(r), api_key_from_row, ("id",)),
    Rate: (rates, lambda r, t: rate_to_row(t, r), rate_from_row, ("kind",)),
    Plan: (plans, lambda r, t: plan_to_row(t, r), plan_from_row, ("id",)),
    Subscription: (subscriptions, _owned, _subscription, ("subject_id",)),
    SubscriptionSet: (
        subscription_history,
        lambda r, t: subscription_set_to_row(t, r),
        subscription_set_from_row,
        ("subject_id", "number"),
    ),
    Registration: (subject_resources, _owned, _registration, ("subject_id", "resource_id")),
    Funnel: (funnels, lambda r, t: funnel_to_row(t, r), funnel_from_row, ("name",)),
    ArchivedErasure: (
        erasures_under_way,
        _owned,
        lambda row: ArchivedErasure(row.subject_id, row.pseudonym, row.started_at),
        ("subject_id",),
    ),
}
AFTER_SESSIONS: dict[type, TableOf] = {
    Event: (
        events,
        lambda r, t: event_to_row(t, r),
        event_from_row,
        ("session_id", "sequence_no"),
    ),
    # Before the LiveKit keys: the new store takes no webhook of the tenant until its tracks
    # (a webhook's report of a track the import has yet to store would keep it out), finished
    # rooms and handled webhook ids are in.
    ArchivedTrack: (
        track_intervals,
        _track_row,
        _track,
        ("session_id", "track_sid"),
    ),
    ArchivedFinishedRoom: (
        finished_rooms,
        _owned,
        lambda row: ArchivedFinishedRoom(row.room_sid, row.finished_at),
        ("room_sid",),
    ),
    ArchivedWebhook: (
        webhook_deliveries,
        _owned,
        lambda row: ArchivedWebhook(row.id, row.received_at),
        ("id",),
    ),
    LedgerEntry: (
        ledger_entries,
        lambda r, _: entry_to_row(r),
        entry_from_row,
        ("created_at", "id"),
    ),
    Alert: (alerts, lambda r, _: asdict(r), alert_from_row, ("id",)),
    LiveKitAccount: (
        livekit_accounts,
        lambda r, _: asdict(r),
        account_from_row,
        ("api_key",),
    ),
    Snapshot: (
        snapshots,
        _owned,
        lambda row: Snapshot(**{f.name: getattr(row, f.name) for f in fields(Snapshot)}),
        ("source", "at"),
    ),
    ErrorReport: (errors, lambda r, t: error_row(t, r), error_of, ("id",)),
    Metric: (performance_metrics, lambda r, t: metric_row(t, r), metric_of, ("id",)),
    Sale: (sales, lambda r, t: sale_row(t, r), sale_of, ("id",)),
    ArchivedRefusals: (
        refused_starts,
        _refusals_row,
        _refusals,
        ("day", "subject_id", "kind", "reason"),
    ),
}


@raises_storage_errors
class SqlTenantArchive(TenantArchive):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reading = reading(engine)

    async def export(self, tenant_id: str) -> AsyncIterator[Record]:
        # One transaction, one snapshot: an event stored meanwhile is in the export with the
        # usage it added to its session, or not at all.
        async with self._reading.connect() as conn:
            found = (await conn.execute(select(tenants).where(tenants.c.id == tenant_id))).one()
            yield tenant_from_row(found)
            for table, _, from_row, order in BEFORE_SESSIONS.values():
                async for row in _rows(conn, table, tenant_id, order):
                    yield from_row(row)
            async for session in _sessions(conn, tenant_id):
                yield session
            for table, _, from_row, order in AFTER_SESSIONS.values():
                async for row in _rows(conn, table, tenant_id, order):
                    yield from_row(row)
            async for rollup in _rollups(conn, tenant_id):
                yield rollup
            async for day in _funnel_days(conn, tenant_id):
                yield day

    async def restore(self, tenant_id: str, records: Sequence[Record]) -> int:
        new = 0
        async with self._engine.begin() as conn:
            for record in _in_lock_order(records):
                new += await self._restore(conn, tenant_id, record)
        return new

    async def _restore(self, conn: AsyncConnection, tenant_id: str, record: Record) -> bool:
        match record:
            case Tenant():
                await self._check_name(conn, record)
                stmt = insert(self._engine, tenants).values(tenant_to_row(record))
            case Session():
                stmt = insert(self._engine, sessions).values(to_row(record))
            case Rollup():
                period, start = record.period, record.start.isoformat()
                await serialise(conn, "rollup", tenant_id, period, start)  # as a rollup run
                return await write_bucket(conn, tenant_id, record)
            case ArchivedFunnelDay():
                return await write_day(conn, tenant_id, record.funnel, record.day)
            case ArchivedTrack():
                stmt = _track_of_a_stored_session(self._engine, tenant_id, record)
            case _:
                table, to_row_of, _, _ = {**BEFORE_SESSIONS, **AFTER_SESSIONS}[type(record)]
                stmt = insert(self._engine, table).values(to_row_of(record, tenant_id))
        stored = (await conn.execute(stmt.on_conflict_do_nothing())).rowcount == 1
        if stored and isinstance(record, Session):
            await add_usage(conn, self._engine, tenant_id, {record.id: record.usage})
        if stored and isinstance(record, Metric) and record.breakdown:
            await conn.execute(performance_steps.insert(), step_rows(tenant_id, record))
        return stored

    async def _check_name(self, conn: Any, tenant: Tenant) -> None:
        holder = await conn.execute(select(tenants.c.id).where(tenants.c.name == tenant.name))
        other = holder.scalar_one_or_none()
        if other is not None and other != tenant.id:
            raise Conflict(f"a tenant named {tenant.name} exists")


async def _rows(
    conn: AsyncConnection, table: Table, tenant_id: str, order: tuple[str, ...]
) -> AsyncIterator[Any]:
    query = (
        select(table).where(table.c.tenant_id == tenant_id).order_by(*(table.c[c] for c in order))
    )
    result = await conn.stream(query.execution_options(yield_per=CHUNK))
    async for row in result:
        yield row


async def _sessions(conn: AsyncConnection, tenant_id: str) -> AsyncIterator[Session]:
    """Sessions a chunk at a time, each chunk with its usage and gaps read alongside."""
    query = (
        select(sessions)
        .where(sessions.c.tenant_id == tenant_id)
        .order_by(sessions.c.id)
        .execution_options(yield_per=CHUNK)
    )
    result = await conn.stream(query)
    async for chunk in result.partitions(CHUNK):
        for session in await load(conn, chunk):
            yield session


async def _rollups(conn: AsyncConnection, tenant_id: str) -> AsyncIterator[Rollup]:
    """The tenant's buckets, BUCKETS at a time, each with its activity read alongside."""
    query = (
        select(rollup_load.c.period, rollup_load.c.bucket_start)
        .where(rollup_load.c.tenant_id == tenant_id)
        .order_by(rollup_load.c.period, rollup_load.c.bucket_start)
        .execution_options(yield_per=BUCKETS)
    )
    result = await conn.stream(query)
    async for chunk in result.partitions(BUCKETS):
        for period, starts in groupby(chunk, lambda row: row.period):
            first, *rest = [row.bucket_start for row in starts]
            last = rest[-1] if rest else first
            window = Window(first, last + timedelta(microseconds=1))
            for rollup in await rollups_found(conn, tenant_id, Period(period), window):
                yield rollup


async def _funnel_days(conn: AsyncConnection, tenant_id: str) -> AsyncIterator[ArchivedFunnelDay]:
    """The tenant's funnels' days, BUCKETS at a time, each with its rows read alongside."""
    query = (
        select(funnel_days)
        .where(funnel_days.c.tenant_id == tenant_id)
        .order_by(funnel_days.c.funnel, funnel_days.c.day_start)
        .execution_options(yield_per=BUCKETS)
    )
    result = await conn.stream(query)
    async for chunk in result.partitions(BUCKETS):
        for day in await days_found(conn, tenant_id, chunk):
            yield day


def _track_of_a_stored_session(engine: AsyncEngine, tenant_id: str, track: ArchivedTrack) -> Any:
    """The track's row, inserted only if its session is there (TrackLog.record: no session, no
    tracks)."""
    values = _track_row(track, tenant_id)
    columns = [track_intervals.c[name] for name in values]
    row = select(*(literal(values[c.name], c.type).label(c.name) for c in columns))
    session = select(sessions.c.id).where(
        sessions.c.tenant_id == tenant_id, sessions.c.id == track.session_id
    )
    return insert(engine, track_intervals).from_select(columns, row.where(session.exists()))


def _in_lock_order(records: Sequence[Record]) -> Sequence[Record]:
    """The records, their ledger entries in subject order: each entry locks its subject's
    ledger_balances row until the transaction ends (migration 0030), and the reaper's batch
    locks its subjects' rows in that order too. In export order an import and a batch could each
    wait for a row the other holds (PostgreSQL ends that deadlock by failing one of them). The
    import restores a type at a time; other records keep their order (a subject id is never
    empty)."""
    return sorted(records, key=lambda r: r.subject_id if isinstance(r, LedgerEntry) else "")
