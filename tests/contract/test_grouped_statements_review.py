"""A hostile review of 4246c60: on PostgreSQL, concurrent requests' lifecycle statements sent
to the database grouped (adapters/sqlalchemy/statement_groups.py, grouped_sessions.py): a
start's INSERT, an exit's or a sign of life's read, and its write guarded by the row version
read. Each request must be answered as if it had been alone (API.md: a second exit is a replay,
a heartbeat on an ended session a 409, a storage failure a 503 of its own request).

Its two findings, fixed since (a lone write waiting for a held row held up its kind's every
write; one member's own error failed its whole group), are the first two tests; the others pin
what the commit's own tests leave out: sessions with event gaps of
several tenants read in one group, heartbeats and exits of one session racing in two groups,
and the grouped guarded UPDATE refusing what the single one refuses."""

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from adapters.sqlalchemy import asyncpg_sessions
from adapters.sqlalchemy.asyncpg_statements import asyncpg_connection
from adapters.sqlalchemy.storage import SqlAlchemyStorage
from application.storage import StorageError
from domain.errors import Conflict
from domain.session import LIFE_CHANGES, Exit, Session, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, a_session, add_tenant, at, event, stored_session
from tests.contract.test_grouped_statements import held
from tests.contract.test_sqlalchemy_specifics import on_postgresql

pytestmark = pytest.mark.anyio

# Long enough for a statement of a few rows on a test server, however loaded.
ANSWERED_WITHIN = 5.0


async def heartbeat(storage: Any, session: Session, minutes: float = 10) -> Any:
    return await storage.sessions.heartbeat(session.tenant_id, session.id, at(minutes))


async def close(storage: Any, session: Session, minutes: float = 1) -> Any:
    return await storage.sessions.close(
        session.tenant_id, session.id, Exit(at=at(minutes)), frozenset(), NOW, OPEN
    )


async def lock_waiters(storage_url: str, at_least: int) -> None:
    """Until `at_least` backends of the test's database wait for a lock (a row lock here)."""
    watcher = await asyncpg.connect(storage_url)
    try:
        deadline = time.monotonic() + 30
        while True:
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= at_least:
                return
            assert time.monotonic() < deadline, f"{waiting} waiting for a lock, not {at_least}"
            await asyncio.sleep(0.05)
    finally:
        await watcher.close()


# --- Findings (fixed) -------------------------------------------------------------------------------


async def test_lone_writes_waiting_for_held_sessions_hold_up_no_other_heartbeat(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """Two sessions another transaction holds locked (a settlement waiting for a held ledger
    keeps its session's row up to 5 s; an erasure longer), each heartbeat alone in its group:
    their writes wait for the lock. A heartbeat of a third session, which nobody holds, must be
    answered meanwhile, as it was before the grouping (its own statement, its own connection)
    and as the commit promises ("a session another writer holds locked ... holds up no one").
    It was not: the two lone writes were sent with the plain UPDATE, which waits, and they were
    both senders of LIFE_CHANGES' group; the third waited in the group until the lock went.
    Fixed: a group of one is written as a group is (save_many_unless_changed, SKIP LOCKED: a
    held row is answered False and written the locked way in its own request)."""
    on_postgresql(storage_url)
    held_a, held_b, free = [await stored_session(storage, tenant) for _ in range(3)]
    beats: list[asyncio.Future[Any]] = []
    try:
        async with held(storage_url, [held_a, held_b]) as release:
            beats.append(asyncio.ensure_future(heartbeat(storage, held_a)))
            await lock_waiters(storage_url, 1)
            beats.append(asyncio.ensure_future(heartbeat(storage, held_b)))
            await lock_waiters(storage_url, 2)
            beats.append(asyncio.ensure_future(heartbeat(storage, free)))
            done, _ = await asyncio.wait({beats[2]}, timeout=ANSWERED_WITHIN)
            answered_while_held = beats[2] in done
            await release()
            answers = await asyncio.wait_for(asyncio.gather(*beats), timeout=60)
    finally:
        for beat in beats:
            beat.cancel()
    assert [s.last_seen_at for s in answers] == [at(10)] * 3
    assert answered_while_held, "a heartbeat of a session nobody holds waited for the lock"


async def test_a_heartbeat_whose_own_gaps_statement_is_given_up_fails_alone(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """A server's statements are given up after their bound (asyncpg's command_timeout, 1 s
    here through the URL). Ten heartbeats at once on a server's storage; one session has an
    event gap, and its GAPS statement (read_many -> _loaded: all of its events read) outlasts
    the bound: here events is held by another transaction, as a session with a long event log
    would make it slow. Alone, that heartbeat is a StorageError (a 503) and the nine others,
    whose sessions have no gap and need no GAPS statement, are answered. Grouped, the nine were
    read by the same READ_MANY, and the group's `many` raised that one member's TimeoutError:
    every heartbeat of the group was a 503. Fixed: a session's gaps are found apart from its
    group (GroupedSessions.read), and a group refused by anything but a lost connection (a
    value one member cannot encode, say) is sent again member by member."""
    on_postgresql(storage_url)
    served = SqlAlchemyStorage(
        f"{storage_url}{'&' if '?' in storage_url else '?'}command_timeout=1",
        wait_seconds=1,
        serving=True,
    )
    holder = await asyncpg.connect(storage_url)
    try:
        gapped, *others = [await stored_session(served, tenant) for _ in range(10)]
        await served.events.append(
            tenant.id, [(0, event(gapped, 1)), (1, event(gapped, 4))], NOW, OPEN
        )
        async with holder.transaction():
            await holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            answers = await asyncio.wait_for(
                asyncio.gather(
                    *(heartbeat(served, s) for s in [gapped, *others]), return_exceptions=True
                ),
                timeout=30,
            )
    finally:
        await holder.close()
        await served.close()
    assert isinstance(answers[0], StorageError), answers[0]
    assert [getattr(a, "last_seen_at", a) for a in answers[1:]] == [at(10)] * 9


# --- Guarantees that hold -------------------------------------------------------------------


async def test_heartbeats_of_sessions_with_gaps_of_two_tenants_at_once_each_get_their_own(
    storage: Any, tenant: Tenant
) -> None:
    """One id in two tenants, one of the two with an event gap (read_many loads its gaps with a
    statement of its own), and other sessions, all heartbeating at once: each answer is its own
    tenant's session, with its own events, gaps and new last_seen_at."""
    other = await add_tenant(storage, "other")
    mine = await stored_session(storage, tenant, attributes={"who": "mine"})
    theirs = a_session(other, attributes={"who": "theirs"})
    theirs.id = mine.id
    assert await storage.sessions.add(theirs)
    more = [await stored_session(storage, t) for t in (tenant, other) * 4]
    await storage.events.append(tenant.id, [(0, event(mine, 1)), (1, event(mine, 4))], NOW, OPEN)
    await storage.events.append(other.id, [(0, event(theirs, 1)), (1, event(theirs, 2))], NOW, OPEN)

    everyone = [mine, theirs, *more, mine, theirs]
    answers = await asyncio.gather(*(heartbeat(storage, s, 10 + n) for n, s in enumerate(everyone)))
    for session, answer in zip(everyone, answers, strict=True):
        assert (answer.tenant_id, answer.id) == (session.tenant_id, session.id)
        assert answer.attributes == session.attributes
    for answer in (answers[0], answers[-2]):
        assert (answer.event_count, list(map(tuple, answer.event_gaps))) == (2, [(2, 3)])
    for answer in (answers[1], answers[-1]):
        assert (answer.event_count, list(answer.event_gaps)) == (2, [])
    assert (await storage.sessions.get(tenant.id, mine.id)).last_seen_at == at(10 + 10)
    assert (await storage.sessions.get(other.id, mine.id)).last_seen_at == at(10 + 11)


async def test_heartbeats_and_exits_of_the_same_sessions_at_once_end_each_once(
    storage: Any, tenant: Tenant
) -> None:
    """Sessions of two tenants each sent a heartbeat, an exit and a second exit at once (their
    writes go in two groups, LIFE_CHANGES' and END_CHANGES', which may be on their way
    together): each session is ended once, at its exit's instant; the other exit is a replay;
    the heartbeat is taken before the end or refused (Conflict), never written over it."""
    other = await add_tenant(storage, "other")
    sessions = [await stored_session(storage, t) for t in (tenant, other) * 6]
    calls = [
        call
        for s in sessions
        for call in (heartbeat(storage, s, 0.5), close(storage, s, 1), close(storage, s, 2))
    ]
    answers: list[Any] = await asyncio.gather(*calls, return_exceptions=True)
    for n, session in enumerate(sessions):
        beat, *exits = answers[3 * n : 3 * n + 3]
        assert isinstance(beat, Conflict) or beat.id == session.id, beat
        assert sorted(closing.changed for _, closing in exits) == [False, True]
        ends = {ended.ended_at for ended, _ in exits}
        assert len(ends) == 1, ends
        found = await storage.sessions.get(session.tenant_id, session.id)
        assert (found.status, found.ended_at) == (SessionStatus.COMPLETED, ends.pop())
        assert found.last_seen_at <= found.ended_at


async def test_the_grouped_guarded_write_refuses_what_the_single_one_refuses(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """save_many_unless_changed, for sessions read by read_many: written only where the row and
    the meters are still as read. One untouched (written), one with usage added to its meters
    and its row left alone (a LiveKit track's seconds: refused, as the single statement's meters
    fingerprint refuses it), one whose row was written in between (refused); each answered in
    its own place whatever the order of their keys."""
    on_postgresql(storage_url)
    other = await add_tenant(storage, "other")
    sessions = [await stored_session(storage, t) for t in (other, tenant, other)]
    keys = [(s.tenant_id, s.id) for s in sessions]
    async with asyncpg_connection(storage.driver_engine) as driver:
        found = await asyncpg_sessions.read_many(driver, keys)
        read = [pair for pair in found if pair is not None]
        assert [(s.tenant_id, s.id) for s, _ in read] == keys
        await driver.execute(
            "INSERT INTO session_meters (tenant_id, session_id, meter, quantity_nanos,"
            " is_decimal) VALUES ($1, $2, 'seconds', 1000000000, false)",
            *keys[1],
        )
        await driver.execute(
            "UPDATE sessions SET exit_reason = 'elsewhere' WHERE tenant_id = $1 AND id = $2",
            *keys[2],
        )
        for session, _ in read:
            assert session.heartbeat(at(30))
        written = await asyncpg_sessions.save_many_unless_changed(driver, read, LIFE_CHANGES)
    assert written == [True, False, False]
    stored = [await storage.sessions.get(*key) for key in keys]
    assert [s.last_seen_at for s in stored] == [at(30), at(0), at(0)]
