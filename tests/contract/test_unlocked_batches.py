"""On PostgreSQL the usual batch of events (new numbers only, nothing refused) is written without
a transaction: its sessions read unlocked, then its events inserted and counted in one statement
only if none of its sessions changed or is held meanwhile
(adapters.sqlalchemy.event_batches.append_unless_changed). These hold that statement to the
locked way's promises: whatever happened between the read and the write, each event is stored
once and counted once, and a batch that cannot be written so is written the locked way."""

import asyncio
from typing import Any

import asyncpg
import pytest

from adapters.sqlalchemy import asyncpg_events, event_batches, events
from domain.events import Event
from domain.session import Session
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, at, batch, stored_session
from tests.contract.test_grouped_statements import held
from tests.contract.test_sqlalchemy_specifics import on_postgresql

pytestmark = pytest.mark.anyio
Writer = asyncpg_events.AsyncpgBatchWriter


def metered(session: Session, n: int, seconds: int = 2) -> Event:
    return Event(session.id, n, "tap", at(n), meters={"seconds": seconds})


class LockedWay:
    """Counts the batches written the locked way (event_batches.append_batch)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches = 0

        async def counted(*args: Any) -> Any:
            self.batches += 1
            return await event_batches.append_batch(*args)

        monkeypatch.setattr(events, "append_batch", counted)


async def test_the_usual_batch_goes_unlocked_and_the_others_the_locked_way(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_postgresql(storage_url)
    locked = LockedWay(monkeypatch)
    session = await stored_session(storage, tenant)
    first = batch(metered(session, 1), metered(session, 2), metered(session, 2))

    outcome = await storage.events.append(tenant.id, first, NOW, OPEN)
    assert (outcome.inserted, outcome.duplicates, locked.batches) == (2, 1, 0)
    # Sent again: only a lookup tells its events are stored.
    outcome = await storage.events.append(tenant.id, first, NOW, OPEN)
    assert (outcome.inserted, outcome.duplicates, locked.batches) == (0, 3, 1)
    # A late number, below the session's highest.
    outcome = await storage.events.append(
        tenant.id, batch(metered(session, 5), metered(session, 4)), NOW, OPEN
    )
    assert (outcome.inserted, locked.batches) == (2, 1)
    outcome = await storage.events.append(tenant.id, batch(metered(session, 3)), NOW, OPEN)
    assert (outcome.inserted, locked.batches) == (1, 2)

    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.usage, stored.event_count, stored.event_gaps) == ({"seconds": 10}, 5, [])


async def test_a_session_written_between_the_read_and_the_write_is_counted_once_each(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another batch of the session is stored after this one read it: this one's counts, made
    on the session as read, would overwrite that one's. Its write finds the session changed and
    writes nothing; the locked way then counts it on the session as it is."""
    on_postgresql(storage_url)
    locked = LockedWay(monkeypatch)
    session = await stored_session(storage, tenant)
    read = Writer.read_sessions
    meanwhile = batch(metered(session, 2, seconds=5))

    async def interposed(writer: Any, session_ids: Any) -> Any:
        found = await read(writer, session_ids)
        monkeypatch.setattr(Writer, "read_sessions", read)
        outcome = await storage.events.append(tenant.id, meanwhile, NOW, OPEN)
        assert outcome.inserted == 1
        return found

    monkeypatch.setattr(Writer, "read_sessions", interposed)
    outcome = await storage.events.append(tenant.id, batch(metered(session, 1)), NOW, OPEN)

    assert (outcome.inserted, locked.batches) == (1, 1)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.usage, stored.event_count, stored.max_sequence_no) == ({"seconds": 7}, 2, 2)


async def test_a_session_another_writer_holds_is_skipped_not_waited_for(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write skips a session another transaction holds (it may be storing the session's
    events): it answers at once that it wrote nothing (as the sessions' starts left them, then
    read afresh), and the batch waits its turn the locked way, as it always did."""
    on_postgresql(storage_url)
    locked = LockedWay(monkeypatch)
    sessions = [await stored_session(storage, tenant) for _ in range(3)]
    write = Writer.insert_counted_unless_changed
    answers: list[bool] = []

    async def answered(writer: Any, *args: Any) -> bool:
        answers.append(await write(writer, *args))
        return answers[-1]

    monkeypatch.setattr(Writer, "insert_counted_unless_changed", answered)
    async with held(storage_url, sessions[1:2]) as release:
        appending = asyncio.ensure_future(
            storage.events.append(tenant.id, batch(*(metered(s, 1) for s in sessions)), NOW, OPEN)
        )
        await asyncio.wait({appending}, timeout=2)
        assert (answers, appending.done()) == ([False, False], False)
        await release()
        outcome = await asyncio.wait_for(appending, 10)

    assert (outcome.inserted, locked.batches) == (3, 1)
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert (stored.usage, stored.event_count) == ({"seconds": 2}, 1)


async def test_an_event_stored_behind_the_sessions_back_leaves_the_whole_write_undone(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A number above the session's highest is taken for new without a lookup. Should one be
    stored all the same (written by hand, or by a writer that does not count), the statement
    fails as a whole, counts included, and the locked way tells it for the duplicate it is."""
    on_postgresql(storage_url)
    locked = LockedWay(monkeypatch)
    session = await stored_session(storage, tenant)
    connection = await asyncpg.connect(storage_url)
    try:
        await connection.execute(
            "INSERT INTO events (tenant_id, session_id, sequence_no, type, at)"
            " VALUES ($1, $2, 2, 'tap', $3)",
            tenant.id,
            session.id,
            at(2),
        )
    finally:
        await connection.close()

    outcome = await storage.events.append(
        tenant.id, batch(metered(session, 1), metered(session, 2)), NOW, OPEN
    )

    assert (outcome.inserted, outcome.duplicates, locked.batches) == (1, 1, 1)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.usage, stored.event_count) == ({"seconds": 2}, 1)


async def test_copies_of_a_batch_at_once_store_and_count_each_event_once(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """Eight copies of a batch of four sessions sent at once, on their way unlocked together:
    one writes, the others find their sessions held or changed."""
    on_postgresql(storage_url)
    sessions = [await stored_session(storage, tenant) for _ in range(4)]
    copy = batch(*(metered(s, n) for s in sessions for n in (1, 2, 3)))

    outcomes = await asyncio.gather(
        *(storage.events.append(tenant.id, copy, NOW, OPEN) for _ in range(8))
    )

    assert sorted(o.inserted for o in outcomes) == [0] * 7 + [12]
    assert all(o.duplicates == 12 - o.inserted and o.rejections == [] for o in outcomes)
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert (stored.usage, stored.event_count) == ({"seconds": 6}, 3)
