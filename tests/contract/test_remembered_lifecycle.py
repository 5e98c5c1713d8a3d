"""On PostgreSQL a process also remembers the sessions it starts (adapters.sqlalchemy.
remembered_sessions, shared with the event log): a session's first batch, and an exit or a sign
of life after its start or its batches, start from the session as this process wrote it, without
reading it, guarded by the row version that write left. An exit or a sign of life forgets the
session: its next batch reads it rather than be refused first. These hold the lifecycle to its
promises (each event and each exit's usage counted once, the exit written as decided) whatever
another process did to the session meanwhile."""

import asyncio
from typing import Any

import pytest

from adapters.sqlalchemy.grouped_sessions import GroupedSessions
from domain.session import Exit, Session, SessionStatus
from domain.tenants import Tenant
from domain.usage import Usage
from tests.contract.builders import NOW, OPEN, SHUT, at, batch, stored_session
from tests.contract.test_remembered_sessions import (
    Calls,
    as_stored,
    counted_once,
    guarded_writes,
    reads,
    tap,
)
from tests.contract.test_sqlalchemy_specifics import on_postgresql

pytestmark = pytest.mark.anyio
NOT_RATED: frozenset[str] = frozenset()


def lifecycle_reads(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """The statements that read a session for an exit or a sign of life."""
    return Calls(monkeypatch, GroupedSessions, "read")


async def test_an_exit_after_its_start_or_its_batches_does_not_read_the_session(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exit right after the start, and one after batches with a gap (its usage added to
    theirs): neither reads the session, and each is stored as a close after a read stores it,
    the gaps found included."""
    on_postgresql(storage_url)
    read = lifecycle_reads(monkeypatch)
    bare, counted = await stored_session(storage, tenant), await stored_session(storage, tenant)
    await storage.events.append(tenant.id, batch(tap(counted, 1), tap(counted, 3)), NOW, OPEN)

    closed = {}
    exits: list[tuple[Session, Usage]] = [(bare, {}), (counted, {"taps": 4})]
    for session, usage in exits:
        closed[session.id], _ = await storage.sessions.close(
            tenant.id, session.id, Exit(at(5), usage=usage), NOT_RATED, NOW, SHUT
        )
    assert read.answers == []

    for session in (bare, counted):
        stored = await storage.sessions.get(tenant.id, session.id)
        assert stored == closed[session.id]
        assert (stored.status, stored.ended_at) == (SessionStatus.COMPLETED, at(5))
        assert storage.events.remembered.recall(tenant.id, [session.id]) is None
    assert closed[counted.id].event_gaps == [(2, 2)]
    await counted_once(storage, tenant, counted, exit_taps=4)


async def test_a_sign_of_life_from_memory_leaves_the_next_batch_to_read_the_session(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heartbeat between batches is written without a read, and forgets the session: the
    next batch reads it and is written at once, not refused first as remembered."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, batch(tap(session, 1)), NOW, OPEN)
    read, batch_reads = lifecycle_reads(monkeypatch), reads(monkeypatch)
    written = guarded_writes(monkeypatch)

    beat = await storage.sessions.heartbeat(tenant.id, session.id, at(30))
    assert read.answers == [] and beat.last_seen_at == at(30)
    await storage.events.append(tenant.id, batch(tap(session, 2)), NOW, OPEN)
    assert (len(batch_reads.answers), written.answers) == (1, [True])

    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.last_seen_at == at(30)
    await counted_once(storage, tenant, session)
    recalled = storage.events.remembered.recall(tenant.id, [session.id])
    assert recalled is not None and recalled[session.id] == await as_stored(
        storage, tenant, session.id
    )


@pytest.mark.parametrize("change", ["batch", "heartbeat", "exit"])
async def test_a_change_by_another_process_is_read_before_the_exit_is_written(
    storage: Any,
    storage_url: str,
    other_process: Any,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    """The session started here, then another process counted a batch into it, sent a sign
    of life, or ended it. This process's exit, as remembered, is refused; it reads the session
    and decides on what is stored: the other's events and its own usage counted once, the
    other's sign of life kept, an exit already made answered as the replay it is."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant)
    if change == "batch":
        await other_process.events.append(tenant.id, batch(tap(session, 1)), NOW, OPEN)
    elif change == "heartbeat":
        await other_process.sessions.heartbeat(tenant.id, session.id, at(40))
    else:
        await other_process.sessions.close(
            tenant.id, session.id, Exit(at(45), usage={"taps": 2}), NOT_RATED, NOW, SHUT
        )
    read = lifecycle_reads(monkeypatch)

    closed, _ = await storage.sessions.close(
        tenant.id, session.id, Exit(at(50), usage={"taps": 3}), NOT_RATED, NOW, SHUT
    )
    assert len(read.answers) == 1
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored == closed
    if change == "exit":
        assert (stored.ended_at, stored.usage) == (at(45), {"taps": 2})
        return
    assert stored.ended_at == at(50)
    if change == "batch":
        await counted_once(storage, tenant, session, exit_taps=3)
    else:
        assert stored.usage == {"taps": 3}


async def test_starts_batches_signs_of_life_and_exits_at_once_from_two_processes(
    storage: Any, storage_url: str, other_process: Any, tenant: Tenant
) -> None:
    """Sessions started by both processes, then batches and heartbeats from both at once on
    what each remembers, then exits from both at once (one of them twice): every event and
    every exit's usage is counted once, and every session ends at its one exit."""
    on_postgresql(storage_url)
    processes = (storage, other_process)
    sessions = [await stored_session(storage, tenant) for _ in range(3)]
    sessions += [await stored_session(other_process, tenant) for _ in range(3)]

    async def traffic(process: Any, n: int) -> int:
        if n % 4 == 3:
            for s in sessions:
                await process.sessions.heartbeat(tenant.id, s.id, at(n))
            return 0
        outcome = await process.events.append(
            tenant.id, batch(*(tap(s, n) for s in sessions)), NOW, OPEN
        )
        return int(outcome.inserted)

    inserted = await asyncio.gather(*(traffic(processes[n % 2], n) for n in range(1, 41)))
    exits = [
        process.sessions.close(
            tenant.id, s.id, Exit(at(60), usage={"taps": 5}), NOT_RATED, NOW, SHUT
        )
        for n, s in enumerate(sessions)
        for process in (processes[n % 2], processes[(n + 1) % 2])[: 1 + n % 2]
    ]
    await asyncio.gather(*exits)

    assert sum(inserted) == len(sessions) * 30
    for session in sessions:
        stored = await storage.sessions.get(tenant.id, session.id)
        assert (stored.status, stored.ended_at) == (SessionStatus.COMPLETED, at(60))
        await counted_once(storage, tenant, session, exit_taps=5)
