"""On PostgreSQL a process remembers the sessions its batches of events wrote, each at the row
version the write left it (adapters.sqlalchemy.remembered_sessions): a session's next batch
starts from there, without reading it, and is written only if the session is still at that
version. These hold it to the promise of every batch: each event stored once and counted once,
whatever another process or request did to the session since. (Each kind of change between two
batches: test_unlocked_batches_review.py, its tests' "as remembered" runs.)"""

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from adapters.sqlalchemy import asyncpg_sessions
from adapters.sqlalchemy.asyncpg_events import AsyncpgBatchWriter
from adapters.sqlalchemy.asyncpg_statements import asyncpg_connection
from adapters.sqlalchemy.remembered_sessions import RememberedSessions
from domain.events import Event
from domain.session import Session
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, a_session, at, batch, stored_session
from tests.contract.test_sqlalchemy_specifics import on_postgresql
from tests.contract.test_unlocked_batches_review import meter_rows_held

pytestmark = pytest.mark.anyio


def tap(session: Session, n: int, **meters: Any) -> Event:
    return Event(session.id, n, "tap", at(n), meters=meters or {"taps": 1})


class Calls:
    """What each call of `owner.name` made meanwhile answered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
        self.answers: list[Any] = []
        original = getattr(owner, name)

        async def recorded(*args: Any, **kwargs: Any) -> Any:
            self.answers.append(await original(*args, **kwargs))
            return self.answers[-1]

        monkeypatch.setattr(owner, name, recorded)


def reads(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """The statements that read a batch's sessions unlocked."""
    return Calls(monkeypatch, asyncpg_sessions, "read_many")


def guarded_writes(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """The unlocked way's writes: whether each wrote."""
    return Calls(monkeypatch, AsyncpgBatchWriter, "insert_counted_unless_changed")


async def as_stored(storage: Any, tenant: Tenant, session_id: str) -> tuple[Session, Any]:
    async with asyncpg_connection(storage.driver_engine) as driver:
        (found,) = await asyncpg_sessions.read_many(driver, [(tenant.id, session_id)])
    assert found is not None
    return found


async def counted_once(storage: Any, tenant: Tenant, session: Session, exit_taps: int = 0) -> None:
    """The session's counts are exactly those of its stored events."""
    stored = await storage.sessions.get(tenant.id, session.id)
    found = await storage.events.find(tenant.id, session.id, 10_000)
    assert stored.event_count == len(found)
    assert stored.max_sequence_no == max(e.sequence_no for e in found)
    assert stored.usage == {"taps": exit_taps + sum(e.meters["taps"] for e in found)}


def test_sessions_are_recalled_whole_fresh_as_copies_and_not_while_contested() -> None:
    tenant = Tenant("t-1", "t", NOW)
    clock = [0.0]
    remembered = RememberedSessions(capacity=2, seconds=60, clock=lambda: clock[0])
    first, second, third = (a_session(tenant) for _ in range(3))
    remembered.keep(tenant.id, [(first, 1), (second, 2)], recalled=False)

    recalled = remembered.recall(tenant.id, [first.id, second.id])
    assert recalled is not None and [v for _, v in recalled.values()] == [1, 2]
    recalled[first.id][0].event_count = 99  # a batch counts into what it recalled
    again = remembered.recall(tenant.id, [first.id])
    assert again is not None and again[first.id][0].event_count == 0
    assert remembered.recall(tenant.id, [first.id, third.id]) is None
    assert remembered.recall("another tenant", [first.id]) is None

    remembered.keep(tenant.id, [(third, 3)], recalled=False)  # over capacity: the oldest goes
    assert remembered.recall(tenant.id, [first.id]) is None
    assert remembered.recall(tenant.id, [second.id, third.id]) is not None

    def refused_then_kept(version: int, recalled: bool = False) -> bool:
        """A write on `second` as remembered refused, then one read afresh kept: remembered?"""
        found = remembered.recall(tenant.id, [second.id])
        assert found is not None
        remembered.refused(tenant.id, {second.id: found[second.id][1]})
        assert remembered.recall(tenant.id, [second.id]) is None
        remembered.keep(tenant.id, [(second, version)], recalled)
        return remembered.recall(tenant.id, [second.id]) is not None

    # Refused at a Version this process has written past since (a concurrent request): kept.
    remembered.refused(tenant.id, {second.id: 1})
    found = remembered.recall(tenant.id, [second.id])
    assert found is not None and found[second.id][1] == 2
    assert refused_then_kept(4)  # refused once: remembered again
    remembered.keep(tenant.id, [(second, 5)], recalled=True)  # written as remembered
    assert refused_then_kept(6)  # so refused once again, not twice in a row
    assert not refused_then_kept(7)  # twice in a row: contested
    clock[0] = 30.0
    remembered.keep(tenant.id, [(second, 8)], recalled=False)
    assert remembered.recall(tenant.id, [second.id]) is None
    clock[0] = 60.5
    remembered.keep(tenant.id, [(second, 9)], recalled=False)
    found = remembered.recall(tenant.id, [second.id])
    assert found is not None and found[second.id][1] == 9

    assert remembered.recall(tenant.id, [third.id]) is None  # kept at 0 s: too old


async def test_a_sessions_batches_are_written_without_reading_it(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remembered Version is the one the write left, from the session's start on: its
    batches (a new meter, a decimal one) go through its guard, and the session remembered is
    the session stored."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant)
    recalled = storage.events.remembered.recall(tenant.id, [session.id])
    assert recalled is not None
    assert recalled[session.id] == await as_stored(storage, tenant, session.id)
    read = reads(monkeypatch)
    batches = [
        [tap(session, 1), tap(session, 2, bytes=10)],
        [tap(session, 3, taps=2, cost=Decimal("0.25"))],
        [tap(session, 5, cost=Decimal("1.5")), tap(session, 4, bytes=5)],
    ]
    for events in batches:
        outcome = await storage.events.append(tenant.id, batch(*events), NOW, OPEN)
        assert (outcome.inserted, outcome.duplicates, outcome.rejections) == (len(events), 0, [])
    assert read.answers == []

    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.event_count, stored.max_sequence_no) == (5, 5)
    assert stored.usage == {"taps": 3, "bytes": 15, "cost": Decimal("1.75")}
    recalled = storage.events.remembered.recall(tenant.id, [session.id])
    assert recalled is not None
    assert recalled[session.id] == await as_stored(storage, tenant, session.id)


async def test_a_batch_written_the_locked_way_leaves_its_sessions_to_be_read(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late number (below the session's highest) goes the locked way, which counts it into
    the session: the next batch reads the session rather than have a write refused first. A
    batch sent again (duplicates, nothing counted) leaves the memory as it is."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, batch(tap(session, 1), tap(session, 3)), NOW, OPEN)
    await storage.events.append(tenant.id, batch(tap(session, 3)), NOW, OPEN)  # sent again
    read, written = reads(monkeypatch), guarded_writes(monkeypatch)
    await storage.events.append(tenant.id, batch(tap(session, 4)), NOW, OPEN)
    assert (len(read.answers), written.answers) == (0, [True])
    assert (await storage.events.append(tenant.id, batch(tap(session, 2)), NOW, OPEN)).inserted
    read.answers.clear()
    written.answers.clear()
    await storage.events.append(tenant.id, batch(tap(session, 5)), NOW, OPEN)
    assert (len(read.answers), written.answers) == (1, [True])
    await counted_once(storage, tenant, session)


async def test_batches_through_two_processes_in_turn_are_counted_once_each(
    storage: Any,
    storage_url: str,
    other_process: Any,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two server processes take a session's batches in turn (a client whose connections land
    on both workers): each remembers the session as it wrote it, which the other's batch
    changed since (the first, as its start left it). Each process's first two batches from
    memory are refused, read afresh and written; refused twice in a row, the session is
    contested, and each later batch is read first, as without memory, not refused first. Each
    is counted once."""
    on_postgresql(storage_url)
    read, written = reads(monkeypatch), guarded_writes(monkeypatch)
    session = await stored_session(storage, tenant)
    for n in range(1, 9):
        process = (storage, other_process)[n % 2]
        outcome = await process.events.append(tenant.id, batch(tap(session, n)), NOW, OPEN)
        assert (outcome.inserted, outcome.duplicates) == (1, 0)
    assert len(read.answers) == 8
    assert written.answers == [True] + [False, True] * 4 + [True] * 3
    await counted_once(storage, tenant, session)


async def test_concurrent_batches_from_two_processes_count_each_event_once(
    storage: Any, storage_url: str, other_process: Any, tenant: Tenant
) -> None:
    """Batches of the same sessions at once, from two processes and several requests in each
    (copies of some among them), on sessions each process remembers, then one at a time on
    what each remembers after the crowd. Every session's counts stay exactly those of its
    stored events."""
    on_postgresql(storage_url)
    sessions = [await stored_session(storage, tenant) for _ in range(3)]

    def numbered(n: int) -> list[tuple[int, Event]]:
        return batch(*(tap(s, n, taps=n) for s in sessions))

    for process in (storage, other_process):  # each remembers them
        await process.events.append(tenant.id, numbered(1), NOW, OPEN)
    outcomes = await asyncio.gather(
        *(
            process.events.append(tenant.id, numbered(n), NOW, OPEN)
            for n in range(2, 40)
            for process in ((storage,) if n % 3 else (storage, other_process))
        )
    )
    for n in range(40, 44):
        outcomes.append(await storage.events.append(tenant.id, numbered(n), NOW, OPEN))
        outcomes.append(await other_process.events.append(tenant.id, numbered(n + 10), NOW, OPEN))
    assert sum(o.inserted for o in outcomes) == 3 * (38 + 8)
    for session in sessions:
        await counted_once(storage, tenant, session)


async def test_a_request_that_counted_on_a_remembered_session_and_gave_up_leaves_no_trace(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """A batch's write waits (another transaction holds one of the session's meter rows); a
    second batch of the session, counted on the same remembered session, is refused (the first
    holds it), goes the locked way, waits there, and its client gives up. A third batch is then
    counted on the session as stored: not on one holding the second's counts, for events never
    stored."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, batch(tap(session, 1)), NOW, OPEN)
    async with meter_rows_held(storage_url, session):
        first = asyncio.ensure_future(
            storage.events.append(tenant.id, batch(tap(session, 2)), NOW, OPEN)
        )
        second = asyncio.ensure_future(
            storage.events.append(tenant.id, batch(tap(session, 3)), NOW, OPEN)
        )
        await asyncio.wait({first, second}, timeout=1)
        assert not first.done() and not second.done()
        second.cancel()
    assert (await asyncio.wait_for(first, 10)).inserted == 1
    assert (await storage.events.append(tenant.id, batch(tap(session, 4)), NOW, OPEN)).inserted == 1
    await counted_once(storage, tenant, session)
