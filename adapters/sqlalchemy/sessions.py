import functools
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlalchemy import (
    asyncpg_sessions,
    asyncpg_time_outs,
    sqlite_sessions,
    sqlite_time_outs,
)
from adapters.sqlalchemy.asyncpg_statements import asyncpg_connection
from adapters.sqlalchemy.dimensions import dimension
from adapters.sqlalchemy.driver_steps import Writers
from adapters.sqlalchemy.driver_steps import in_transaction as driver_transaction
from adapters.sqlalchemy.engine import insert, serialise, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.grouped_sessions import GroupedSessions, Read
from adapters.sqlalchemy.keyset import past
from adapters.sqlalchemy.ledger_rows import Record, settlement_records
from adapters.sqlalchemy.remembered_sessions import RememberedSessions
from adapters.sqlalchemy.session_rows import SETTLED_COLUMNS, load, to_row
from adapters.sqlalchemy.session_steps import SessionRows, in_transaction, on_connection
from adapters.sqlalchemy.settlement_claims import shape_of
from adapters.sqlalchemy.sqlite_statements import on_sqlite_thread
from adapters.sqlalchemy.tables import sessions
from adapters.sqlalchemy.time_outs import TimeOut
from application.sessions.ports import SessionFilter, SessionPosition, SessionRepository
from domain.charging import ChargeOnClose, Settled
from domain.errors import DomainError, NotFound
from domain.plans import SessionLimit
from domain.session import (
    END_CHANGES,
    LIFE_CHANGES,
    ChargeState,
    Closing,
    Exit,
    Session,
    WriteCheck,
)
from domain.staleness import Staleness
from domain.usage import Usage

Outcome = TypeVar("Outcome")


@raises_storage_errors
class SqlSessionRepository(SessionRepository):
    def __init__(
        self,
        engine: AsyncEngine,
        driver_engine: AsyncEngine,
        remembered: RememberedSessions,
    ) -> None:
        """`remembered`: the sessions this process last wrote, shared with the event log
        (PostgreSQL): a start remembers its session, an exit or a sign of life starts from it."""
        self._engine = engine
        self._single = single_statement(engine)
        self._driver = driver_engine  # for the statements sent to the driver (driver_steps)
        self._sqlite = engine.dialect.name == "sqlite"
        self._grouped = None if self._sqlite else GroupedSessions(driver_engine)
        self.remembered = None if self._sqlite else remembered

    async def add(self, session: Session, limit: SessionLimit | None = None) -> bool:
        if limit is None:  # the lifecycle's hot path
            if self._grouped is not None:
                version = await self._grouped.insert(session)
                if version is not None and self.remembered is not None:
                    # A copy: the session is the caller's, to answer with or change.
                    kept = session.copy()
                    self.remembered.keep(session.tenant_id, [(kept, version)], recalled=False)
                return version is not None
            return await on_sqlite_thread(
                self._driver, lambda c: sqlite_sessions.insert(c, session), writes=True
            )
        stmt = insert(self._engine, sessions).values(to_row(session)).on_conflict_do_nothing()
        async with self._engine.begin() as conn:
            await serialise(conn, session.tenant_id, limit.subject_id, limit.resource_id)
            # A retried start whose id is taken is a replay, even when it took the last slot.
            taken = select(sessions.c.id).where(*_key(session.tenant_id, session.id))
            if (await conn.execute(taken)).first() is not None:
                return False
            limit.admit(
                await self._count(
                    conn, session.tenant_id, limit.subject_id, limit.resource_id, limit.kinds
                )
            )
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

    async def existing(self, tenant_id: str, session_ids: Collection[str]) -> set[str]:
        if not session_ids:
            return set()
        query = select(sessions.c.id).where(
            sessions.c.tenant_id == tenant_id, sessions.c.id.in_(session_ids)
        )
        async with self._single.connect() as conn:
            return set((await conn.execute(query)).scalars())

    async def get(self, tenant_id: str, session_id: str) -> Session | None:
        return await on_connection(
            self._driver, lambda rows: rows.read(tenant_id, session_id), writes=False
        )

    async def find(
        self,
        tenant_id: str,
        where: SessionFilter,
        limit: int,
        after: SessionPosition | None = None,
    ) -> list[Session]:
        conditions = [sessions.c.tenant_id == tenant_id, *_filter(where, self._sqlite)]
        if after is not None:
            place = (after.started_at, after.id)
            conditions.append(past(sessions.c.started_at, sessions.c.id, place, descending=True))
        query = (
            select(sessions)
            .where(*conditions)
            .order_by(sessions.c.started_at.desc(), sessions.c.id.desc())
            .limit(limit)
        )
        async with self._single.connect() as conn:
            return await load(conn, (await conn.execute(query)).all())

    async def heartbeat(self, tenant_id: str, session_id: str, at: datetime) -> Session:
        return await self._change(tenant_id, session_id, lambda session: session.heartbeat(at))

    async def sign_of_life(
        self, tenant_id: str, session_id: str, at: datetime, now: datetime, window: timedelta
    ) -> Session:
        return await self._change(
            tenant_id, session_id, lambda session: session.sign_of_life(at, now, window)
        )

    async def _change(
        self, tenant_id: str, session_id: str, change: Callable[[Session], bool]
    ) -> Session:
        """Let the domain change the session, save what a sign of life changes. A decision that
        raises (Conflict) saves nothing."""

        def decided(session: Session) -> tuple[Session, bool]:
            return session, change(session)

        async def changed(rows: SessionRows) -> Session:
            session = _the_one(await rows.lock(tenant_id, [session_id]), session_id)
            if change(session):
                await rows.save([session], LIFE_CHANGES, {})
            return session

        with self._forgotten(tenant_id, session_id):
            if self._grouped is not None:
                written = await self._unless_changed(
                    self._grouped, tenant_id, session_id, decided, LIFE_CHANGES, {}
                )
                if written is not None:
                    return written
            return await in_transaction(self._driver, changed)

    async def close(
        self,
        tenant_id: str,
        session_id: str,
        exit: Exit,
        rated_kinds: frozenset[str],
        now: datetime,
        window: timedelta,
        check: WriteCheck | None = None,
        charge: ChargeOnClose | None = None,
    ) -> tuple[Session, Closing]:
        def decided(session: Session) -> tuple[tuple[Session, Closing], bool]:
            if check is not None:
                check(session)
            closing = session.close(exit, rated_kinds, now, window)
            return (session, closing), closing.changed

        async def closed(rows: SessionRows) -> tuple[Session, Closing]:
            session = _the_one(await rows.lock(tenant_id, [session_id]), session_id)
            outcome, changed = decided(session)
            if changed:
                await rows.save([session], END_CHANGES, {session_id: exit.usage})
            return outcome

        with self._forgotten(tenant_id, session_id):
            if self._grouped is not None:
                written = await self._unless_changed(
                    self._grouped, tenant_id, session_id, decided, END_CHANGES, exit.usage, charge
                )
                if written is not None:
                    return written
            return await in_transaction(self._driver, closed)

    @contextmanager
    def _forgotten(self, tenant_id: str, session_id: str) -> Iterator[None]:
        """A change of the session leaves what this process remembers of it past: forgotten
        once made (or failed), so that its next batch reads it rather than be refused first.
        Only starts and batches of events remember (a session rarely has a batch after its
        exit, and a batch a second has a sign of life a half minute)."""
        try:
            yield
        finally:
            if self.remembered is not None:
                self.remembered.forget(tenant_id, [session_id])

    async def _unless_changed(
        self,
        grouped: GroupedSessions,
        tenant_id: str,
        session_id: str,
        decided: Callable[[Session], tuple[Outcome, bool]],
        columns: Sequence[str],
        usage: Usage,
        charge: ChargeOnClose | None = None,
    ) -> Outcome | None:
        """PostgreSQL: a change of one session (an exit, a sign of life) in two statements and
        no transaction, where the locked way takes five (BEGIN, lock, meters, save, COMMIT):
        read the session, let the domain decide (the outcome, and whether to write), and write
        `columns` and `usage` only if it is still as read. None if it was not (someone wrote to
        it in between, or it is not there): then the change is made the locked way. A decision
        to write nothing (a replay) writes nothing.

        With a close's `charge`, the session is read with its subject's balance, and a close
        that leaves it pending its first charge settles it in the same statement
        (ChargeOnClose.settlement, written as CreditLedger.settle writes it) if its subject's
        ledger lock is free and the balance is still the one read; else it is written pending,
        for DeductCredits to settle taking its turn.

        A LiveKit track's seconds reach the meters in a statement that writes the session's row
        too (TrackLog.record), and the meters' fingerprint in the Version catches usage added
        to them without one.

        The read, and a write that adds no usage (most of them, settling a charge or not), go
        in statements grouped with concurrent requests' (grouped_sessions).

        A session this process remembers (as its start or its last batch of events wrote it;
        not with its subject's balance) is not read: the write is guarded by the Version
        remembered, and if that is past, the session is read and written afresh. Only the
        write's guard tells that the copy was still the session: a decision on it to write
        nothing (a replay, a sign of life dated before the last), or one that fails, is made
        again on the session read."""
        rated = charge is not None and bool(charge.rates)
        recalled = None if rated else self._recalled(tenant_id, session_id)
        if recalled is not None:
            outcome = _decided_to_write(decided, recalled[0])
            if outcome is not None:
                if await self._written(grouped, recalled, columns, usage, charge):
                    await grouped.add_gaps(recalled[0])  # for the answer: no decision reads them
                    return outcome
                if self.remembered is not None:
                    self.remembered.refused(tenant_id, {session_id: recalled[1]})
        read = await grouped.read((tenant_id, session_id), with_balance=rated)
        if read is None:
            return None
        outcome, write = decided(read[0])
        if not write or await self._written(grouped, read, columns, usage, charge):
            return outcome
        return None

    def _recalled(self, tenant_id: str, session_id: str) -> Read | None:
        """A copy of the session as this process remembers it, with its Version; or None."""
        if self.remembered is None:
            return None
        found = self.remembered.recall(tenant_id, [session_id])
        return None if found is None else cast(Read, found[session_id])

    async def _written(
        self,
        grouped: GroupedSessions,
        read: Read,
        columns: Sequence[str],
        usage: Usage,
        charge: ChargeOnClose | None,
    ) -> bool:
        """`_unless_changed`'s write of the session `read`, as decided: False if the session
        was no longer as read."""
        session, version = read
        settled = _settled(session, version, charge)
        if not usage:
            if settled is not None and await _written_with_charge(
                lambda settled_session, with_charge, records: grouped.settle(
                    with_charge, shape_of(records)
                )((settled_session, version, records)),
                session,
                columns,
                settled,
            ):
                return True
            return await grouped.save(columns)(read)
        async with asyncpg_connection(self._driver) as driver:
            if settled is not None and await _written_with_charge(
                lambda settled_session, with_charge, records: asyncpg_sessions.save_unless_changed(
                    driver, settled_session, version, with_charge, usage, records
                ),
                session,
                columns,
                settled,
            ):
                return True
            return await asyncpg_sessions.save_unless_changed(
                driver, session, version, columns, usage
            )

    async def time_out_idle(
        self,
        tenant_id: str,
        staleness: Staleness,
        limit: int,
        rated_kinds: frozenset[str],
        now: datetime,
        window: timedelta,
    ) -> list[Session]:
        # `now` and `window` go unused: an append counts its events in its own atomic step, so
        # none are left uncounted here.
        # One statement (adapters.sqlalchemy.time_outs) sent to the driver directly.
        writers: Writers[TimeOut] = Writers(
            lambda driver: functools.partial(asyncpg_time_outs.time_out, driver),
            lambda connection: functools.partial(sqlite_time_outs.time_out, connection),
        )
        # On `engine`'s connections, planned for each run: the pick's best plan depends on its
        # cutoffs and limit (a generic plan took 264 ms a pick on the reaper's benchmark).
        return await driver_transaction(
            self._engine,
            writers,
            lambda time_out: time_out(tenant_id, staleness, limit, rated_kinds),
        )

    async def pending_charges(
        self, tenant_id: str, limit: int, after: str | None = None
    ) -> list[Session]:
        pending = [
            sessions.c.tenant_id == tenant_id,
            sessions.c.charge_state == ChargeState.PENDING,
        ]
        if after is not None:
            pending.append(sessions.c.id > after)
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


def _decided_to_write(
    decided: Callable[[Session], tuple[Outcome, bool]], session: Session
) -> Outcome | None:
    """The outcome of a change decided on a remembered copy of the session, if it writes; else
    None: with no write to guard it, nothing tells that the copy was still the session."""
    try:
        outcome, write = decided(session)
    except DomainError:  # decided again on the session read, which may decide otherwise
        return None
    return outcome if write else None


def _settled(
    session: Session, version: asyncpg_sessions.Version, charge: ChargeOnClose | None
) -> tuple[Settled, datetime] | None:
    """What the close of `session` (as decided; read at `version`, with its subject's balance)
    settles in its write (ChargeOnClose.settlement), and when; None when it has none to settle
    here."""
    if charge is None or version.balance is None:
        return None
    settled = charge.settlement(session, version.balance)
    return None if settled is None else (settled, charge.at)


async def _written_with_charge(
    write: Callable[[Session, tuple[str, ...], Sequence[Record]], Awaitable[bool]],
    session: Session,
    columns: Sequence[str],
    settled: tuple[Settled, datetime],
) -> bool:
    """Whether the close of `session` was written with its first charge `settled` by `write`
    (the session as settled, the columns and the records to write); the session then takes the
    charge. False when the write's guards did not hold (asyncpg_sessions.save_unless_changed):
    nothing was written."""
    settlement, at = settled
    records = settlement_records(settlement.settlement, session, at)
    if not await write(settlement.settled_session(), _with_charge(tuple(columns)), records):
        return False
    session.settle(settlement.charge)
    return True


@functools.cache
def _with_charge(columns: tuple[str, ...]) -> tuple[str, ...]:
    """`columns` and those a settlement writes (some of them are among the first)."""
    return tuple(dict.fromkeys((*columns, *SETTLED_COLUMNS)))


def _the_one(found: dict[str, Session], session_id: str) -> Session:
    if session_id not in found:
        raise NotFound(f"no session {session_id}")
    return found[session_id]


def _key(tenant_id: str, session_id: str) -> list[Any]:
    return [sessions.c.tenant_id == tenant_id, sessions.c.id == session_id]


def _filter(where: SessionFilter, sqlite: bool) -> list[Any]:
    conditions: list[Any] = []
    for column, value in (
        (sessions.c.kind, where.kind),
        (sessions.c.resource_id, where.resource_id),
        (sessions.c.subject_id, where.subject_id),
        (sessions.c.client_key, where.client_key),
        (sessions.c.status, where.status),
    ):
        if value is not None:
            conditions.append(column == value)
    if where.started_from is not None:
        conditions.append(sessions.c.started_at >= where.started_from)
    if where.started_to is not None:
        conditions.append(sessions.c.started_at < where.started_to)
    for key, value in where.attributes.items():
        conditions.append(dimension(key, sqlite) == value)  # NULL, never true, without it
    return conditions
