"""Erasure in SQL. Bulk work goes in bounded statements (a subquery with a LIMIT picks the
rows); the step that changes sessions locks their rows in id order, as event ingest does, so an
event batch for one of them commits wholly before the step (and is erased with it) or after."""

import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.ledger_holds import BUSY, ERASURE_LEASE, ERASURE_WAIT_SECONDS, holding, renewed
from adapters.sqlalchemy.asyncpg_statements import Driver
from adapters.sqlalchemy.deleted_events import delete_remembering
from adapters.sqlalchemy.engine import (
    ADVISORY_LOCK,
    SEPARATOR,
    insert,
    reading,
    single_statement,
)
from adapters.sqlalchemy.errors import lock_timed_out, raises_storage_errors
from adapters.sqlalchemy.keyset import past
from adapters.sqlalchemy.session_rows import from_row, save
from adapters.sqlalchemy.settlement_batches import ledger_lock
from adapters.sqlalchemy.tables import (
    alerts,
    erasures_under_way,
    errors,
    events,
    funnel_day_groups,
    funnel_day_rows,
    funnel_days,
    ledger_entries,
    ledger_holds,
    refused_starts,
    rollup_activity,
    rollup_groups,
    sales,
    session_meters,
    sessions,
    subject_resources,
    subscription_history,
    subscriptions,
    track_intervals,
)
from adapters.sqlalchemy.telemetry_rows import error_of, error_row, sale_of, sale_row
from application.credits.ports import UnfinishedErasures
from application.data_rights.ports import (
    EndPlace,
    Erased,
    Erasure,
    Removed,
    SessionPlace,
    SessionsOf,
)
from domain.erasure import ERASED_FIELDS, PSEUDONYM_PREFIX, Forgetting, erased_error
from domain.errors import Contended
from domain.rollups import BY_RESOURCE
from domain.session import ChargeState

BILLED_STATES = (ChargeState.PENDING.value, ChargeState.CHARGED.value)
# What a session's id names besides its row; events are counted apart.
SESSION_PARTS = (session_meters, track_intervals)
Done = TypeVar("Done")


# An erasure's wait for a subject's ledger lock on PostgreSQL (as engine.serialise takes it), sent
# to the driver with a timeout of its own: a server's engine gives up a statement sooner
# (engine.LONGEST_LOCK_WAIT_SECONDS), and lock_timeout, ERASURE_WAIT_SECONDS, is to come first.
HOLD_LEDGER = ADVISORY_LOCK.format(key="$1")


@raises_storage_errors
class SqlErasure(Erasure, UnfinishedErasures):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def sessions(
        self, tenant_id: str, of: SessionsOf, limit: int, after: SessionPlace | None = None
    ) -> list[SessionPlace]:
        s = sessions.c
        conditions = [s.tenant_id == tenant_id]
        if of.subject_id is not None:
            conditions.append(s.subject_id == of.subject_id)
        if of.resource_id is not None:
            conditions.append(s.resource_id == of.resource_id)
        if after is not None:
            conditions.append(past(s.started_at, s.id, (after.started_at, after.id)))
        query = (
            select(s.started_at, s.id).where(*conditions).order_by(s.started_at, s.id).limit(limit)
        )
        async with self._single.connect() as conn:
            return [SessionPlace(r.started_at, r.id) for r in await conn.execute(query)]

    async def billed(self, tenant_id: str, session_ids: Sequence[str]) -> set[str]:
        async with self._single.connect() as conn:
            return await _billed(conn, tenant_id, session_ids)

    async def expired_sessions(
        self,
        tenant_id: str,
        ended_before: datetime,
        limit: int,
        counted: frozenset[str],
        after: EndPlace | None = None,
    ) -> list[EndPlace]:
        s = sessions.c
        resumed = (
            ()
            if after is None  # the index's range (tenant_id, ended_at), and `past` within it
            else (s.ended_at >= after.ended_at, past(s.ended_at, s.id, (after.ended_at, after.id)))
        )
        query = (
            select(s.ended_at, s.id)
            .where(
                s.tenant_id == tenant_id,
                s.ended_at < ended_before,
                *resumed,
                not_(_is_billed(tenant_id)),
                # Not what a limit counts (domain.plans.counted_by_a_limit).
                or_(
                    _none_of(self._engine, s.kind, counted),
                    s.subject_id.is_(None),
                    s.subject_id.startswith(PSEUDONYM_PREFIX, autoescape=True),
                ),
            )
            .order_by(s.ended_at, s.id)
            .limit(limit)
        )
        # A read: on SQLite without the write lock every other writer would wait for.
        async with reading(self._engine).begin() as conn:
            if self._engine.dialect.name == "postgresql":
                # Planned for each step's place: from the sixth execution PostgreSQL's generic
                # plan took 40-65 ms a step past 200,000 kept sessions, against 0.4 ms
                # (benchmarks/retention.py).
                await conn.execute(
                    text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")
                )
            return [EndPlace(*row) for row in await conn.execute(query)]

    async def clear_events(self, tenant_id: str, session_ids: Sequence[str], limit: int) -> int:
        """The sessions are locked first, in id order, as every other writer of their events
        locks them: an UPDATE of events in whatever order its plan reads them deadlocked with
        retention deleting some of the same (deleted_events.delete_remembering)."""
        async with self._engine.begin() as conn:
            await _lock(conn, tenant_id, session_ids)
            return await _clear_events(conn, tenant_id, session_ids, limit)

    async def delete_events(self, tenant_id: str, session_ids: Sequence[str], limit: int) -> int:
        """Each session remembers the numbers of its events deleted (deleted_events): a
        session kept (billed) keeps its gaps."""
        some = _of_sessions(events, tenant_id, session_ids)
        picked = select(*events.primary_key.columns).where(*some).limit(limit)
        async with self._engine.begin() as conn:
            return await delete_remembering(conn, tenant_id, picked)

    async def erase_sessions(
        self, tenant_id: str, session_ids: Sequence[str], forgetting: Forgetting
    ) -> Erased:
        async with self._engine.begin() as conn:
            locked = await _lock(conn, tenant_id, session_ids)
            erased = [session for session in map(from_row, locked) if forgetting.erase(session)]
            await save(conn, erased, ERASED_FIELDS)
            ids = [session.id for session in erased]
            cleared = await _clear_events(conn, tenant_id, ids, None)
            errors_erased = await self._erase_errors(conn, tenant_id, ids)
            sales_erased = await self._erase_sales(conn, tenant_id, ids, forgetting)
        return Erased(len(erased), cleared, errors_erased, sales_erased)

    async def delete_sessions(self, tenant_id: str, session_ids: Sequence[str]) -> Removed:
        async with self._engine.begin() as conn:
            found = [row.id for row in await _lock(conn, tenant_id, session_ids)]
            kept = await _billed(conn, tenant_id, found)
            doomed = [i for i in found if i not in kept]
            gone = await conn.execute(
                delete(events).where(*_of_sessions(events, tenant_id, doomed))
            )
            for part in SESSION_PARTS:
                await conn.execute(delete(part).where(*_of_sessions(part, tenant_id, doomed)))
            await conn.execute(
                delete(sessions).where(sessions.c.tenant_id == tenant_id, sessions.c.id.in_(doomed))
            )
        return Removed(len(doomed), gone.rowcount, frozenset(kept))

    async def pseudonym_for(self, tenant_id: str, subject_id: str, drawn: str, at: datetime) -> str:
        u = erasures_under_way.c
        under_way = (u.tenant_id == tenant_id, u.subject_id == subject_id)
        row = {
            "tenant_id": tenant_id,
            "subject_id": subject_id,
            "pseudonym": drawn,
            "started_at": at,
        }
        while True:
            # The insert waits for a concurrent one of the same subject, then does nothing; the
            # read finds that one's pseudonym unless its erasure finished in between: again.
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(self._engine, erasures_under_way).values(row).on_conflict_do_nothing()
                )
                kept = (await conn.execute(select(u.pseudonym).where(*under_way))).scalar()
            if kept is not None:
                return str(kept)

    async def unfinished(
        self, tenant_id: str, started_before: datetime, limit: int, after: str | None = None
    ) -> list[str]:
        u = erasures_under_way.c
        query = (
            select(u.subject_id)
            .where(u.tenant_id == tenant_id, u.started_at < started_before)
            .order_by(u.subject_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(u.subject_id > after)
        async with self._single.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def gave_out(self, tenant_id: str, pseudonym: str) -> bool:
        u = erasures_under_way.c
        query = select(u.subject_id).where(u.tenant_id == tenant_id, u.pseudonym == pseudonym)
        async with self._single.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def kept(self, tenant_id: str, subject_id: str) -> str | None:
        u = erasures_under_way.c
        query = select(u.pseudonym).where(u.tenant_id == tenant_id, u.subject_id == subject_id)
        async with self._single.connect() as conn:
            kept: str | None = (await conn.execute(query)).scalar()
        return kept

    async def finished(self, tenant_id: str, subject_id: str, pseudonym: str) -> None:
        u = erasures_under_way.c
        async with self._single.begin() as conn:
            await conn.execute(
                delete(erasures_under_way).where(
                    u.tenant_id == tenant_id, u.subject_id == subject_id, u.pseudonym == pseudonym
                )
            )

    async def with_ledgers_held(
        self, tenant_id: str, subject_ids: Collection[str], work: Callable[[], Awaitable[Done]]
    ) -> Done:
        """PostgreSQL: the subjects' ledger locks, which every settlement takes before it claims
        (settlement_batches.ledger_lock), in subject order as a batch takes them, held by a
        transaction of their own while `work` runs on other connections; whatever ends that
        transaction gives them back. SQLite: rows of ledger_holds, which a settlement reads,
        on a lease renewed while `work` runs.
        Contended when another holder keeps one for ERASURE_WAIT_SECONDS."""
        subjects = sorted(set(subject_ids))
        if self._engine.dialect.name == "postgresql":
            async with self._engine.begin() as conn:
                wait = f"{int(ERASURE_WAIT_SECONDS * 1000)}ms"
                # Begins the transaction the locks are taken in, on the connection's driver.
                await conn.execute(
                    text("SELECT set_config('lock_timeout', :wait, true)"), {"wait": wait}
                )
                driver: Driver = (await conn.get_raw_connection()).driver_connection
                try:
                    for subject in subjects:
                        key = SEPARATOR.join(ledger_lock(tenant_id, subject))
                        await driver.fetchval(HOLD_LEDGER, key, timeout=ERASURE_WAIT_SECONDS + 10)
                except Exception as error:  # the driver's (asyncpg is an optional dependency)
                    if lock_timed_out(error):
                        raise Contended(BUSY) from error
                    raise
                return await work()
        holder = str(uuid.uuid4())
        h = ledger_holds.c
        theirs = (h.tenant_id == tenant_id, h.subject_id.in_(subjects))

        async def hold() -> bool:
            now = datetime.now(UTC)
            async with self._engine.begin() as conn:
                await conn.execute(delete(ledger_holds).where(*theirs, h.held_until <= now))
                held = select(func.count()).select_from(ledger_holds).where(*theirs)
                if (await conn.execute(held)).scalar_one():
                    return False
                until = now + ERASURE_LEASE
                await conn.execute(
                    ledger_holds.insert(),
                    [
                        {
                            "tenant_id": tenant_id,
                            "subject_id": s,
                            "holder": holder,
                            "held_until": until,
                        }
                        for s in subjects
                    ],
                )
            return True

        async def renew() -> None:
            until = datetime.now(UTC) + ERASURE_LEASE
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(ledger_holds).where(h.holder == holder).values(held_until=until)
                )

        async def kept_while_working() -> Done:
            async with renewed(renew, ERASURE_LEASE):
                return await work()

        async def give_back() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(delete(ledger_holds).where(h.holder == holder))

        return await holding(hold, give_back, kept_while_working)

    async def move_subject(
        self, tenant_id: str, subject_id: str, pseudonym: str, limit: int
    ) -> int:
        moved = 0
        async with self._engine.begin() as conn:
            for table in (
                ledger_entries,
                alerts,
                subscriptions,
                subscription_history,
                subject_resources,
                refused_starts,
            ):
                key = tuple_(*table.primary_key.columns)
                of_subject = (table.c.tenant_id == tenant_id, table.c.subject_id == subject_id)
                picked = select(*table.primary_key.columns).where(*of_subject).limit(limit - moved)
                moved_to: dict[str, Any] = {"subject_id": pseudonym}
                if table is ledger_entries:
                    moved_to["idempotency_key"] = None  # see Erasure.move_subject
                changed = await conn.execute(
                    update(table).where(*of_subject, key.in_(picked)).values(moved_to)
                )
                moved += changed.rowcount
                if moved >= limit:
                    break
        return moved

    async def delete_rollups(self, tenant_id: str, resource_id: str, limit: int) -> int:
        a = rollup_activity
        of_resource = (a.c.tenant_id == tenant_id, a.c.resource_id == resource_id)
        picked = select(*a.primary_key.columns).where(*of_resource).limit(limit)
        g = rollup_groups.c
        its_buckets = select(a.c.period, a.c.bucket_start).where(*of_resource)
        async with self._engine.begin() as conn:
            # Its buckets' group sums count it: gone, those buckets are summed from their rows.
            await conn.execute(
                delete(rollup_groups).where(
                    g.tenant_id == tenant_id, tuple_(g.period, g.bucket_start).in_(its_buckets)
                )
            )
            deleted = await conn.execute(
                delete(a).where(*of_resource, tuple_(*a.primary_key.columns).in_(picked))
            )
            # Funnels' days lose its rows and groups, and are recounted from what is left of the
            # events.
            rows, groups = funnel_day_rows.c, funnel_day_groups.c
            await conn.execute(
                delete(funnel_day_rows).where(
                    rows.tenant_id == tenant_id, rows.resource_id == resource_id
                )
            )
            await conn.execute(
                delete(funnel_day_groups).where(
                    groups.tenant_id == tenant_id,
                    groups.grouping == BY_RESOURCE,
                    groups.grp == resource_id,
                )
            )
            await conn.execute(
                update(funnel_days).where(funnel_days.c.tenant_id == tenant_id).values(final=False)
            )
            return deleted.rowcount

    async def _erase_errors(
        self, conn: AsyncConnection, tenant_id: str, session_ids: list[str]
    ) -> int:
        found = await conn.execute(
            select(errors).where(*_of_sessions(errors, tenant_id, session_ids))
        )
        erased = [error_row(tenant_id, erased_error(error_of(row))) for row in found]
        await _rewrite(conn, errors, erased, ("document",))
        return len(erased)

    async def _erase_sales(
        self, conn: AsyncConnection, tenant_id: str, session_ids: list[str], forgetting: Forgetting
    ) -> int:
        found = await conn.execute(
            select(sales).where(*_of_sessions(sales, tenant_id, session_ids))
        )
        erased = [
            sale_row(tenant_id, replace(sale, attributes=forgetting.attributes(sale.attributes)))
            for sale in map(sale_of, found)
        ]
        await _rewrite(conn, sales, erased, ("attributes", "attribute_texts"))
        return len(erased)


async def _lock(conn: AsyncConnection, tenant_id: str, session_ids: Sequence[str]) -> list[Any]:
    """The sessions' rows, locked in id order (as event ingest locks them: no deadlock)."""
    query = (
        select(sessions)
        .where(sessions.c.tenant_id == tenant_id, sessions.c.id.in_(session_ids))
        .order_by(sessions.c.id)
        .with_for_update()
    )
    return list(await conn.execute(query))


def _is_billed(tenant_id: str) -> ColumnElement[bool]:
    """Whether the session of the row a query reads is billed: a sale or a ledger entry names
    it, or its charge is pending or charged."""
    return or_(
        sessions.c.charge_state.in_(BILLED_STATES),
        exists().where(
            ledger_entries.c.tenant_id == tenant_id, ledger_entries.c.session_id == sessions.c.id
        ),
        exists().where(sales.c.tenant_id == tenant_id, sales.c.session_id == sessions.c.id),
    )


async def _billed(conn: AsyncConnection, tenant_id: str, session_ids: Sequence[str]) -> set[str]:
    if not session_ids:
        return set()
    query = select(sessions.c.id).where(
        sessions.c.tenant_id == tenant_id, sessions.c.id.in_(session_ids), _is_billed(tenant_id)
    )
    return set((await conn.execute(query)).scalars())


def _of_sessions(table: Table, tenant_id: str, session_ids: Sequence[str]) -> tuple[Any, ...]:
    if not session_ids:
        return (false(),)
    return (table.c.tenant_id == tenant_id, table.c.session_id.in_(session_ids))


async def _clear_events(
    conn: AsyncConnection, tenant_id: str, session_ids: Sequence[str], limit: int | None
) -> int:
    """Clear data and label of up to `limit` (None: all) events of the sessions holding either.
    A JSON column keeps None as JSON null, so that is no data either."""
    holding = (
        *_of_sessions(events, tenant_id, session_ids),
        or_(
            events.c.label.is_not(None),
            and_(events.c.data.is_not(None), cast(events.c.data, Text) != "null"),
        ),
    )
    clear = update(events).values(data=None, label=None)
    if limit is None:
        return (await conn.execute(clear.where(*holding))).rowcount
    key = tuple_(events.c.session_id, events.c.sequence_no)
    picked = select(events.c.session_id, events.c.sequence_no).where(*holding).limit(limit)
    return (await conn.execute(clear.where(*holding, key.in_(picked)))).rowcount


async def _rewrite(
    conn: AsyncConnection, table: Table, rows: list[dict[str, Any]], columns: Sequence[str]
) -> None:
    """Write these columns of rows read in this transaction, by primary key, in one statement."""
    if not rows:
        return
    key = [c.name for c in table.primary_key.columns]
    await conn.execute(
        update(table)
        .where(*(table.c[k] == bindparam(f"key_{k}") for k in key))
        .values({c: bindparam(f"new_{c}") for c in columns}),
        [{f"key_{k}": row[k] for k in key} | {f"new_{c}": row[c] for c in columns} for row in rows],
    )


def _none_of(
    engine: AsyncEngine, column: ColumnElement[str], values: Collection[str]
) -> ColumnElement[bool]:
    """`column NOT IN values`; on PostgreSQL as one array parameter, since asyncpg binds at
    most 32,767 (the kinds all a tenant's plans limit may pass that)."""
    if engine.dialect.name == "postgresql":
        kinds = bindparam(None, sorted(values), type_=postgresql.ARRAY(Text))
        return not_(column == any_(kinds))
    return column.not_in(sorted(values))
