"""Concurrent starts and exits: each answered as if it had been alone. On PostgreSQL the
lifecycle's statements of concurrent requests go to the database grouped
(adapters.sqlalchemy.statement_groups); these hold the group to its promises: one statement for
many members, a member never answered for another of its key, a member the database refuses
refused alone, a member locked by another writer holding up none of the others, a member whose
request is cancelled leaving the others answered."""

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy import asyncpg_sessions, statement_groups
from adapters.sqlalchemy.session_rows import to_row
from application.sessions.record_exit import RecordExitCommand
from application.storage import StorageError
from domain.charging import ChargeOnClose
from domain.credits import EntryKind, Rate, Rounding
from domain.session import Charge, ChargeState, Exit, Session, SessionStatus
from domain.tenants import Tenant
from entrypoints.logs import request_id
from tests.contract.builders import (
    NOW,
    OPEN,
    a_grant,
    a_session,
    add_tenant,
    at,
    stored_session,
    wired,
)
from tests.contract.test_sqlalchemy_specifics import (
    _connections_dropped_by_the_database,
    on_postgresql,
)
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio
STARTS = 40


def exit_at(minutes: float) -> Exit:
    return Exit(at=at(minutes))


async def close(storage: Any, session: Session, minutes: float = 1) -> Any:
    return await storage.sessions.close(
        session.tenant_id, session.id, exit_at(minutes), frozenset(), NOW, OPEN
    )


@asynccontextmanager
async def held(
    storage_url: str, sessions: list[Session]
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """These sessions' rows locked by another transaction, as a writer holds them, until the
    release it gives is awaited or the block ends."""
    holder = await asyncpg.connect(storage_url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(
            "SELECT 1 FROM sessions WHERE (tenant_id, id) IN"
            " (SELECT * FROM unnest($1::varchar[], $2::varchar[])) FOR UPDATE",
            [s.tenant_id for s in sessions],
            [s.id for s in sessions],
        )
        yield transaction.rollback
    finally:
        await holder.close()


async def versions_of(storage_url: str, sessions: list[Session]) -> set[int]:
    """The transactions that last wrote these sessions' rows (PostgreSQL's xmin)."""
    connection = await asyncpg.connect(storage_url)
    try:
        rows = await connection.fetch(
            "SELECT xmin::text::bigint AS x FROM sessions WHERE id = ANY($1::varchar[])",
            [s.id for s in sessions],
        )
    finally:
        await connection.close()
    assert len(rows) == len(sessions)
    return {row["x"] for row in rows}


async def test_starts_and_exits_at_once_each_answered_as_if_alone(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """Forty starts at once, each of five ids started twice: every id stored once, one of its
    two starts answered "stored" and the other "taken". Then every session ended twice at once:
    each ended once, the other exit a replay of it."""
    sessions = [a_session(tenant) for _ in range(STARTS - 5)]
    starts = [*sessions, *sessions[:5]]
    stored = await asyncio.gather(*(storage.sessions.add(s) for s in starts))

    for n, session in enumerate(sessions):
        answers = [a for s, a in zip(starts, stored, strict=True) if s.id == session.id]
        assert sorted(answers) == ([False, True] if n < 5 else [True])

    exits = await asyncio.gather(*(close(storage, s) for s in [*sessions, *sessions]))
    for session in sessions:
        closings = [c for s, c in exits if s.id == session.id]
        assert sorted(c.changed for c in closings) == [False, True]
    for session in sessions:
        found = await storage.sessions.get(tenant.id, session.id)
        assert (found.status, found.ended_at) == (SessionStatus.COMPLETED, at(1))

    if storage_url.startswith("postgresql"):  # grouped: fewer transactions than requests
        assert len(await versions_of(storage_url, sessions)) < len(sessions)


async def test_starts_of_several_tenants_at_once_are_each_their_tenants(
    storage: Any, tenant: Tenant
) -> None:
    """One id started at once by two tenants: two sessions, one each, both stored."""
    other = await add_tenant(storage, "other")
    mine, theirs = a_session(tenant), a_session(other)
    theirs.id = mine.id
    stored = await asyncio.gather(storage.sessions.add(mine), storage.sessions.add(theirs))
    assert list(stored) == [True, True]
    (_, closed), (_, too) = await asyncio.gather(close(storage, mine, 2), close(storage, theirs, 3))
    assert closed.changed and too.changed
    assert (await storage.sessions.get(tenant.id, mine.id)).ended_at == at(2)
    assert (await storage.sessions.get(other.id, mine.id)).ended_at == at(3)


async def test_a_start_the_database_refuses_fails_alone(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """A row PostgreSQL refuses (a resource id longer than its column) among starts sent at
    once: that start fails with a storage error, every other is stored."""
    on_postgresql(storage_url)
    sessions = [a_session(tenant) for _ in range(10)]
    sessions[4].resource_id = "r" * 300
    answers = await asyncio.gather(
        *(storage.sessions.add(s) for s in sessions), return_exceptions=True
    )
    assert isinstance(answers[4], StorageError)
    assert answers[:4] + answers[5:] == [True] * 9
    assert await storage.sessions.get(tenant.id, sessions[4].id) is None


async def test_a_session_another_writer_holds_holds_up_no_other_exit(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """Five sessions ended at once while another transaction holds one of them locked: the four
    others are answered while the lock is held; the fifth once it is released, ended."""
    on_postgresql(storage_url)
    sessions = [await stored_session(storage, tenant) for _ in range(5)]
    async with held(storage_url, sessions[:1]) as release:
        exits = [asyncio.ensure_future(close(storage, s)) for s in sessions]
        others = await asyncio.wait_for(asyncio.gather(*exits[1:]), timeout=30)
        assert all(closing.changed for _, closing in others)
        assert not exits[0].done()
        await release()
        _, closing = await asyncio.wait_for(exits[0], timeout=30)
    assert closing.changed
    assert (await storage.sessions.get(tenant.id, sessions[0].id)).ended_at == at(1)


async def test_starts_whose_requests_are_cancelled_leave_the_others_answered(
    storage: Any, tenant: Tenant
) -> None:
    """Starts at once, two of whose requests go away (their tasks cancelled): one while it
    waits to be sent, one while its statement is on its way. Every other start is stored and
    answered."""
    sessions = [a_session(tenant) for _ in range(12)]
    starts = [asyncio.ensure_future(storage.sessions.add(s)) for s in sessions]
    await asyncio.sleep(0)
    starts[7].cancel()
    for _ in range(3):
        await asyncio.sleep(0)
    starts[3].cancel()
    answers = await asyncio.gather(*starts, return_exceptions=True)
    for cancelled in (3, 7):
        assert answers[cancelled] is True or isinstance(answers[cancelled], asyncio.CancelledError)
    others = [n for n in range(12) if n not in (3, 7)]
    assert [answers[n] for n in others] == [True] * 10
    for n in others:
        assert await storage.sessions.get(tenant.id, sessions[n].id) is not None


async def test_a_group_is_sent_outside_any_of_its_members_requests(
    storage: Any, tenant: Tenant, storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group answers many requests, so what it logs names none of them: its sender runs in a
    context of its own, not that of the request that started it (entrypoints.logs.request_id)."""
    on_postgresql(storage_url)
    seen: list[str | None] = []

    def noted(session: Session) -> Any:  # as a start's row is made for its INSERT
        seen.append(request_id.get())
        return to_row(session)

    monkeypatch.setattr(asyncpg_sessions, "to_row", noted)

    async def start(n: int) -> bool:
        request_id.set(f"request-{n}")
        return bool(await storage.sessions.add(a_session(tenant)))

    assert await asyncio.gather(*(start(n) for n in range(6))) == [True] * 6
    assert seen and set(seen) == {None}, seen


async def test_a_request_arriving_as_the_last_sender_ends_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sender that finds no one waiting ends; until 2026-12-07 it left the group's senders in
    a done callback, a step later, and a request arriving in between counted it as on its way:
    nobody sent it, and it waited until another request of its kind came (a benchmark's 32
    clients, each waiting on its exit, waited forever). A few clients that each send again as
    soon as answered, on a connection and a database that take their turns in varied orders
    (seeded, so a run is repeatable): every request is answered."""

    async def run(seed: int) -> bool:
        turns = random.Random(seed)

        async def a_turn() -> None:
            for _ in range(turns.choice([0, 0, 1, 2, 3])):
                await asyncio.sleep(0)

        @asynccontextmanager
        async def connection(engine: Any) -> AsyncIterator[Any]:
            await a_turn()
            yield object()
            await a_turn()

        async def one(driver: Any, member: tuple[int, int]) -> tuple[int, int]:
            await a_turn()
            return member

        async def many(driver: Any, members: Any) -> list[tuple[int, int]]:
            await a_turn()
            return list(members)

        monkeypatch.setattr(statement_groups, "asyncpg_connection", connection)
        group = statement_groups.StatementGroup(cast(AsyncEngine, None), one, many, lambda m: m)

        async def client(i: int) -> None:
            for n in range(1000):
                await a_turn()
                assert await group((i, n)) == (i, n)

        running = [asyncio.ensure_future(client(i)) for i in range(3)]
        done, stuck = await asyncio.wait(running, timeout=2)
        for task in stuck:
            task.cancel()
        return not stuck and all(task.result() is None for task in done)

    assert [seed for seed in range(10) if not await run(seed)] == []


async def test_starts_on_connections_the_database_dropped_fail_and_are_stored_when_retried(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """The database drops every connection (a restart); starts sent at once then fail with a
    storage error (none hangs), or are stored; each failed one, sent again, is stored."""
    on_postgresql(storage_url)
    warm = [await stored_session(storage, tenant) for _ in range(3)]
    await asyncio.gather(*(storage.sessions.get(tenant.id, s.id) for s in warm))
    await _connections_dropped_by_the_database(storage_url)

    sessions = [a_session(tenant) for _ in range(10)]
    left = sessions
    for _ in range(storage.driver_engine.sync_engine.pool.size() + 1):
        answers = await asyncio.wait_for(
            asyncio.gather(*(storage.sessions.add(s) for s in left), return_exceptions=True), 30
        )
        assert all(a is True or isinstance(a, StorageError) for a in answers), answers
        left = [s for s, a in zip(left, answers, strict=True) if a is not True]
        if not left:
            break
    assert not left
    for session in sessions:
        assert await storage.sessions.get(tenant.id, session.id) is not None


# Charged exits: their reads with the subject's balance and their writes settling the first
# charge are grouped too, two of one subject never in one group.
COUNSELING = Rate("counseling", 2, Rounding.CEIL)
PRICE = 5  # 2.5 minutes at 2 a minute
SUBJECTS = [f"learner-{n}" for n in range(4)]


async def rated_sessions(storage: Any, tenant: Tenant, each: int) -> list[Session]:
    await storage.rates.put(tenant.id, COUNSELING)
    for subject in SUBJECTS:
        await storage.ledger.grant(a_grant(tenant, 100, f"welcome-{subject}", subject))
    return [
        await stored_session(storage, tenant, kind="counseling", subject_id=subject)
        for subject in SUBJECTS
        for _ in range(each)
    ]


async def test_charged_exits_of_several_subjects_at_once_each_charge_from_the_balance_left(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """Four sessions of each of four learners ended at once, no usage: every session charged
    once, each from the balance its subject's charges before it left (95, 90, 85, 80)."""
    sessions = await rated_sessions(storage, tenant, each=4)
    record_exit = wired(storage, FakeClock(at(60))).use_cases().record_exit()
    exited = await asyncio.gather(
        *(record_exit(RecordExitCommand(tenant.id, s.id, at=at(2.5))) for s in sessions)
    )

    for subject in SUBJECTS:
        charges = [e.session.charge for e in exited if e.session.subject_id == subject]
        after = sorted((c.balance_after for c in charges if c is not None), reverse=True)
        assert after == [95, 90, 85, 80]
        assert (await storage.ledger.balance(tenant.id, subject)).balance == 100 - 4 * PRICE
        entries = await storage.ledger.entries(tenant.id, subject, limit=50)
        charged = sorted(e.session_id for e in entries if e.kind is EntryKind.CHARGE)
        assert charged == sorted(s.id for s in sessions if s.subject_id == subject)
    for session in sessions:
        stored = await storage.sessions.get(tenant.id, session.id)
        assert (stored.charge_state, stored.charge.credits) == (ChargeState.CHARGED, PRICE)


async def test_a_charged_exit_whose_balance_moved_since_its_read_leaves_the_charge_pending(
    storage: Any, tenant: Tenant, storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grant lands between an exit's read (with its subject's balance) and its grouped
    write: the charge is not settled from the balance read; the session is left pending, and
    its settlement then charges it from the balance with the grant."""
    on_postgresql(storage_url)
    session = (await rated_sessions(storage, tenant, each=1))[0]
    save_many = asyncpg_sessions.save_many_unless_changed

    async def granted_first(*args: Any) -> Any:
        if len(args) > 3:  # the writes settling charges
            await storage.ledger.grant(a_grant(tenant, 50, "in between", SUBJECTS[0]))
        return await save_many(*args)

    monkeypatch.setattr(asyncpg_sessions, "save_many_unless_changed", granted_first)
    charge = ChargeOnClose({COUNSELING.kind: COUNSELING}, at(60))
    closed, closing = await storage.sessions.close(
        tenant.id, session.id, exit_at(2.5), charge.rated_kinds, NOW, OPEN, charge=charge
    )
    assert (closed.charge_state, closed.charge) == (ChargeState.PENDING, None)

    deduct_credits = wired(storage, FakeClock(at(60))).use_cases().deduct_credits()
    deduct_credits.charged_in_close(closed, closing)
    settled = await deduct_credits(closed)
    assert settled.charge == Charge(PRICE, 150 - PRICE, None)
