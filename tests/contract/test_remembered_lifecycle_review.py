"""Hostile review of commit 7843dd9 (a start remembers its session; an exit or a sign of life
starts from the remembered copy, guarded by the Version the start or the last batch left).

Each test puts another writer (another process, the reaper, an erasure, a deletion, usage added
to the meters without a row write, a charged exit, a replayed start) between what this process
remembers and its exit or sign of life, or mutates an object the memory might share, and holds
the outcome to what a fresh read gives: each event and exit's usage counted once, nothing
another writer did undone, the answer equal to what is stored."""

import asyncio
import contextlib
from typing import Any

import pytest
from sqlalchemy import text

from adapters.sqlalchemy import asyncpg_sessions
from adapters.sqlalchemy import sessions as sql_sessions
from adapters.sqlalchemy.asyncpg_statements import asyncpg_connection
from adapters.sqlalchemy.quantities import to_nanos
from domain.erasure import Forgetting, Pseudonyms, is_pseudonym
from domain.errors import Conflict, NotFound
from domain.session import ChargeState, Closing, Exit, Session, SessionStatus
from domain.staleness import Staleness
from domain.tenants import Tenant
from tests.contract.builders import (
    NOW,
    OPEN,
    SHUT,
    a_session,
    add_tenant,
    at,
    batch,
    stored_session,
)
from tests.contract.test_remembered_lifecycle import lifecycle_reads
from tests.contract.test_remembered_sessions import as_stored, counted_once, tap
from tests.contract.test_sqlalchemy_specifics import METERS_ADDED, forgotten, on_postgresql

pytestmark = pytest.mark.anyio
NOT_RATED: frozenset[str] = frozenset()
RATED = frozenset({"counseling"})


def remembered(storage: Any, tenant: Tenant, session: Session) -> Any:
    found = storage.sessions.remembered.recall(tenant.id, [session.id])
    return None if found is None else found[session.id]


async def ended_elsewhere(way: str, storage: Any, other: Any, tenant: Tenant, s: Session) -> None:
    """The session ended (or went) by a writer other than this process's repository calls."""
    if way == "other process exit":
        await other.sessions.close(tenant.id, s.id, Exit(at(5)), NOT_RATED, NOW, SHUT)
    elif way == "reaper here":
        closed = await storage.sessions.time_out_idle(
            tenant.id, Staleness(default=NOW), 10, NOT_RATED, NOW, OPEN
        )
        assert s.id in {c.id for c in closed}
    elif way == "reaper elsewhere":
        await other.sessions.time_out_idle(
            tenant.id, Staleness(default=NOW), 10, NOT_RATED, NOW, OPEN
        )
    else:
        raise AssertionError(way)


ENDINGS = ["other process exit", "reaper here", "reaper elsewhere"]
# "as remembered": the change starts from the start's copy (the change under review);
# "forgotten": the control, the session read first (as before the change).
memory = pytest.mark.parametrize("memory", ["as remembered", "forgotten"])


def as_configured(storage: Any, tenant: Tenant, session: Session, memory: str) -> None:
    if memory == "forgotten":
        forgotten(storage, tenant, session)


@memory
@pytest.mark.parametrize("ending", ENDINGS)
async def test_a_heartbeat_that_moves_nothing_on_a_session_ended_elsewhere_is_a_conflict(
    storage: Any, storage_url: str, other_process: Any, tenant: Tenant, ending: str, memory: str
) -> None:
    """Risk: the remembered copy says active; a heartbeat dated at (or before) its last sign of
    life decides "no write" on it and answers that stale copy, never checking its Version.
    Holds: an ended session takes no heartbeat (Conflict), as a fresh read says."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, 1)
    await ended_elsewhere(ending, storage, other_process, tenant, session)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert not stored.is_active
    as_configured(storage, tenant, session, memory)

    with pytest.raises(Conflict):
        await storage.sessions.heartbeat(tenant.id, session.id, at(1))
    assert await storage.sessions.get(tenant.id, session.id) == stored


@memory
@pytest.mark.parametrize("ending", ENDINGS)
async def test_a_sign_of_life_that_moves_nothing_answers_the_session_as_stored(
    storage: Any, storage_url: str, other_process: Any, tenant: Tenant, ending: str, memory: str
) -> None:
    """Risk: a sign of life (a LiveKit webhook) dated at the last sign of life decides "no
    write" on the remembered (active) copy and answers it, though the stay has ended: the
    webhook handler then takes an ended stay for an open one. Holds: the answer is the
    session as stored."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, 1)
    await ended_elsewhere(ending, storage, other_process, tenant, session)
    stored = await storage.sessions.get(tenant.id, session.id)
    as_configured(storage, tenant, session, memory)

    answered = await storage.sessions.sign_of_life(tenant.id, session.id, at(1), NOW, SHUT)
    assert answered == stored
    assert not answered.is_active


@memory
async def test_a_heartbeat_on_a_deleted_session_is_not_found(
    storage: Any, storage_url: str, tenant: Tenant, memory: str
) -> None:
    """Risk: the session was deleted (erasure's delete_sessions) after its start here; a
    heartbeat that moves nothing answers the remembered copy of a session that no longer
    exists. Holds: NotFound, and nothing stored again."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, 1)
    removed = await storage.erasure.delete_sessions(tenant.id, [session.id])
    assert removed.sessions == 1
    as_configured(storage, tenant, session, memory)

    with pytest.raises(NotFound):
        await storage.sessions.heartbeat(tenant.id, session.id, at(1))
    assert await storage.sessions.get(tenant.id, session.id) is None


@memory
async def test_a_heartbeat_after_an_erasure_never_answers_the_subject(
    storage: Any, storage_url: str, tenant: Tenant, memory: str
) -> None:
    """Risk: the subject was erased (pseudonymised) after the start here; a heartbeat that
    moves nothing answers the remembered copy, with the erased subject's id. Holds: the answer
    carries the pseudonym, as stored."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, 1, subject_id="ana")
    forgetting = Forgetting(Pseudonyms(), subject_id="ana")
    await storage.erasure.erase_sessions(tenant.id, [session.id], forgetting)
    as_configured(storage, tenant, session, memory)

    beat = await storage.sessions.heartbeat(tenant.id, session.id, at(1))
    assert is_pseudonym(beat.subject_id)
    assert beat == await storage.sessions.get(tenant.id, session.id)


@pytest.mark.parametrize("ending", ENDINGS)
async def test_an_exit_from_memory_never_overwrites_an_end_made_elsewhere(
    storage: Any, storage_url: str, other_process: Any, tenant: Tenant, ending: str
) -> None:
    """Risk: the exit decides on the remembered active copy (CLOSED) and writes its end over
    the other writer's. Holds: refused, read afresh: a client exit after another client's is
    a replay; after the reaper's within the window, a correction (usage counted once); the
    answer is what is stored."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, 1)
    await ended_elsewhere(ending, storage, other_process, tenant, session)

    closed, closing = await storage.sessions.close(
        tenant.id, session.id, Exit(at(9), usage={"taps": 2}), NOT_RATED, NOW, OPEN
    )
    stored = await storage.sessions.get(tenant.id, session.id)
    assert closed == stored
    if ending == "other process exit":
        assert closing is Closing.REPLAY
        assert (stored.ended_at, stored.usage) == (at(5), {})
    else:
        assert closing is Closing.CORRECTED
        assert (stored.status, stored.ended_at, stored.usage) == (
            SessionStatus.COMPLETED,
            at(9),
            {"taps": 2},
        )


async def test_an_exit_with_usage_from_memory_keeps_usage_added_without_a_row_write(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Risk: a LiveKit track's seconds reach the meters with no write of the session's row
    (xmin unchanged); the exit from memory (Version xmin, 0, 0) would add its usage and answer
    a session without those seconds. Holds: the meters' fingerprint refuses it; read afresh,
    the stored usage is both, counted once, and the answer says so."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, 1)
    async with storage.engine.begin() as conn:
        await conn.execute(METERS_ADDED, {"t": tenant.id, "i": session.id, "n": to_nanos(7)})
    read = lifecycle_reads(monkeypatch)

    closed, _ = await storage.sessions.close(
        tenant.id, session.id, Exit(at(3), usage={"taps": 2, "minutes": 1}), NOT_RATED, NOW, SHUT
    )
    assert len(read.answers) == 1
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.usage == {"taps": 2, "minutes": 8}
    assert closed == stored


async def test_a_heartbeat_from_memory_never_hides_usage_added_without_a_row_write(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """Risk: a heartbeat that moves the session writes as remembered; the guard checks the
    row but the answer (its running cost) comes from the copy, without the track's minutes.
    Holds: the answer's usage is the stored usage."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, 1)
    async with storage.engine.begin() as conn:
        await conn.execute(METERS_ADDED, {"t": tenant.id, "i": session.id, "n": to_nanos(7)})

    beat = await storage.sessions.heartbeat(tenant.id, session.id, at(4))
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.usage == {"minutes": 7}
    assert beat == stored


async def test_mutating_the_started_session_changes_nothing_remembered(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Risk: the memory keeps the very object the caller started (or shares its dicts); the
    caller then changes it (as StartSession answers with it, or a LiveKit handler moves its
    sign of life), and the exit from memory writes and answers the change. Holds: the
    remembered copy is the stored session; the exit, made without a read, stores and answers
    what was stored plus the exit alone."""
    on_postgresql(storage_url)
    session = a_session(tenant, 1, attributes={"room": "a", "n": 2, "x": 1.5, "ok": True})
    assert await storage.sessions.add(session)
    session.attributes["room"] = "b"
    session.usage["taps"] = 100
    session.last_seen_at = at(50)
    session.status = SessionStatus.FAILED
    session.summary = {"leaked": True}
    assert remembered(storage, tenant, session) == await as_stored(storage, tenant, session.id)
    read = lifecycle_reads(monkeypatch)

    closed, closing = await storage.sessions.close(
        tenant.id, session.id, Exit(at(3), summary={"score": [1, 2]}), NOT_RATED, NOW, SHUT
    )
    assert read.answers == [] and closing is Closing.CLOSED
    stored = await storage.sessions.get(tenant.id, session.id)
    assert closed == stored
    assert (stored.status, stored.last_seen_at, stored.ended_at, stored.usage) == (
        SessionStatus.COMPLETED,
        at(3),
        at(3),
        {},
    )
    assert stored.attributes == {"room": "a", "n": 2, "x": 1.5, "ok": True}
    assert stored.summary == {"score": [1, 2]}


async def test_mutating_what_a_batch_or_a_heartbeat_answered_changes_nothing_remembered(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """Risk: the object a heartbeat answered, or the summary an exit's session holds, is shared
    with what the memory keeps; a caller mutating it changes the next exit from memory.
    Holds: after a batch (remembered again) and mutations of every answer, the exit stores and
    answers exactly what the database held plus the exit."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, 1)
    beat = await storage.sessions.heartbeat(tenant.id, session.id, at(2))
    beat.usage["taps"] = 50
    beat.status = SessionStatus.FAILED
    await storage.events.append(tenant.id, batch(tap(session, 3)), NOW, OPEN)
    kept = remembered(storage, tenant, session)
    assert kept is not None and kept == await as_stored(storage, tenant, session.id)
    kept[0].usage["taps"] = 99  # a recalled copy mutated
    summary = {"nested": {"a": [1]}}

    closed, _ = await storage.sessions.close(
        tenant.id, session.id, Exit(at(4), summary=summary), NOT_RATED, NOW, SHUT
    )
    summary["nested"]["a"].append(2)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.usage == {"taps": 1} and stored.summary == {"nested": {"a": [1]}}
    closed.summary["nested"]["a"].append(3)
    again, closing = await storage.sessions.close(
        tenant.id, session.id, Exit(at(6)), NOT_RATED, NOW, SHUT
    )
    assert closing is Closing.REPLAY
    assert again == await storage.sessions.get(tenant.id, session.id) == stored
    await counted_once(storage, tenant, session)


async def test_a_replayed_start_keeps_the_first_copy_and_another_start_of_the_id_is_not_kept(
    storage: Any, storage_url: str, other_process: Any, tenant: Tenant, monkeypatch: Any
) -> None:
    """Risk: a retried start whose id is taken (here, or started by another process with other
    fields) is remembered at a wrong Version, or replaces the stored session's copy with its
    own fields. Holds: a refused start remembers nothing; the exit answers the session as the
    first start stored it."""
    on_postgresql(storage_url)
    mine = await stored_session(storage, tenant, 1, resource_id="room-a")
    retry = a_session(tenant, 2, resource_id="room-b", subject_id="eve")
    retry.id = mine.id
    assert not await storage.sessions.add(retry)
    assert remembered(storage, tenant, mine) == await as_stored(storage, tenant, mine.id)

    theirs = await stored_session(other_process, tenant, 1, resource_id="room-c")
    late = a_session(tenant, 3, resource_id="room-d")
    late.id = theirs.id
    assert not await storage.sessions.add(late)
    assert remembered(storage, tenant, late) is None
    read = lifecycle_reads(monkeypatch)

    for s, resource in ((mine, "room-a"), (theirs, "room-c")):
        closed, _ = await storage.sessions.close(tenant.id, s.id, Exit(at(5)), NOT_RATED, NOW, SHUT)
        stored = await storage.sessions.get(tenant.id, s.id)
        assert closed == stored and stored.resource_id == resource
    assert len(read.answers) == 1  # only the session another process started


async def test_concurrent_starts_of_one_id_remember_only_the_stored_one(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """Risk: two starts of one id at once in one process (grouped inserts): both answered as
    stored, or the loser's fields remembered at the winner's Version. Holds: one start is
    stored; what is remembered is the session stored; an exit from it answers it."""
    on_postgresql(storage_url)
    first = a_session(tenant, 1, resource_id="room-a")
    others = [a_session(tenant, 1, resource_id=f"room-{n}") for n in range(6)]
    for s in others:
        s.id = first.id
    added = await asyncio.gather(*(storage.sessions.add(s) for s in [first, *others]))
    assert sum(added) == 1
    stored = await storage.sessions.get(tenant.id, first.id)
    assert remembered(storage, tenant, first) == await as_stored(storage, tenant, first.id)

    closed, _ = await storage.sessions.close(tenant.id, first.id, Exit(at(5)), NOT_RATED, NOW, SHUT)
    assert closed == await storage.sessions.get(tenant.id, first.id)
    assert closed.resource_id == stored.resource_id


async def test_a_start_of_one_id_in_another_tenant_is_neither_changed_nor_answered(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Risk: the memory's key or the guarded write misses the tenant: an exit of one tenant's
    session from memory answers or closes the other tenant's session of the same id. Holds:
    each exit closes its own tenant's session only, from memory."""
    on_postgresql(storage_url)
    other = await add_tenant(storage, "other")
    mine = await stored_session(storage, tenant, 1, resource_id="mine")
    theirs = a_session(other, 2, resource_id="theirs")
    theirs.id = mine.id
    assert await storage.sessions.add(theirs)
    read = lifecycle_reads(monkeypatch)

    closed, _ = await storage.sessions.close(
        tenant.id, mine.id, Exit(at(5), usage={"taps": 1}), NOT_RATED, NOW, SHUT
    )
    assert read.answers == []
    assert closed == await storage.sessions.get(tenant.id, mine.id)
    assert closed.resource_id == "mine"
    untouched = await storage.sessions.get(other.id, mine.id)
    assert (untouched.status, untouched.usage, untouched.resource_id) == (
        SessionStatus.ACTIVE,
        {},
        "theirs",
    )
    beat = await storage.sessions.heartbeat(other.id, mine.id, at(8))
    assert beat == await storage.sessions.get(other.id, mine.id)
    assert beat.last_seen_at == at(8)


async def test_a_charged_exit_elsewhere_is_not_undone_by_an_exit_from_memory(
    storage: Any, storage_url: str, other_process: Any, tenant: Tenant
) -> None:
    """Risk: another process's rated exit closed and charged the session; this process's exit
    from its start's copy writes over the charge state. Holds: a replay, the charge kept."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, 1, kind="counseling", subject_id="ana")
    await other_process.sessions.close(tenant.id, session.id, Exit(at(4)), RATED, NOW, SHUT)
    pending = await storage.sessions.get(tenant.id, session.id)
    assert pending.charge_state is ChargeState.PENDING

    closed, closing = await storage.sessions.close(
        tenant.id, session.id, Exit(at(6), usage={"taps": 3}), NOT_RATED, NOW, SHUT
    )
    assert closing is Closing.REPLAY
    assert closed == await storage.sessions.get(tenant.id, session.id) == pending


async def test_exits_with_usage_at_once_from_two_processes_count_one_exit(
    storage: Any, storage_url: str, other_process: Any, tenant: Tenant
) -> None:
    """Risk: sessions started in both processes, each remembered by its starter; exits with
    usage from both at once (each from memory where it can), and heartbeats among them, count
    two exits' usage, or a heartbeat undoes an end. Holds: one exit's usage per session, its
    end stored once; every answer is a session as stored at some point (ended ones as
    stored)."""
    on_postgresql(storage_url)
    started = [await stored_session(storage, tenant, 1) for _ in range(4)]
    started += [await stored_session(other_process, tenant, 1) for _ in range(4)]

    async def beat(process: Any, s: Session) -> Any:
        try:
            return await process.sessions.heartbeat(tenant.id, s.id, at(2))
        except Conflict:
            return None

    calls = []
    for s in started:
        for n, process in enumerate((storage, other_process)):
            exit = Exit(at(3 + n), usage={"taps": 10 + n})
            calls.append(process.sessions.close(tenant.id, s.id, exit, NOT_RATED, NOW, SHUT))
            calls.append(beat(process, s))
    answers = await asyncio.gather(*calls)

    for s in started:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert stored.status is SessionStatus.COMPLETED
        assert (stored.ended_at, stored.usage) in ((at(3), {"taps": 10}), (at(4), {"taps": 11}))
        assert stored.last_seen_at == stored.ended_at
    for answer in answers:
        if isinstance(answer, tuple) and answer[1] is not Closing.REPLAY:
            assert answer[0] == await storage.sessions.get(tenant.id, answer[0].id)


async def test_batches_heartbeats_and_exits_at_once_in_one_process_count_once(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """Risk: one process's concurrent requests all start from one remembered copy: a batch
    keeps its copy after an exit forgot the session, and the exit's usage or the events are
    counted twice or lost. Holds: every event and the exit's usage counted once; the end is
    the exit's."""
    on_postgresql(storage_url)
    sessions = [await stored_session(storage, tenant) for _ in range(3)]

    async def one(n: int) -> None:
        s = sessions[n % 3]
        if n % 5 == 4:
            with contextlib.suppress(Conflict):
                await storage.sessions.heartbeat(tenant.id, s.id, at(n))
        else:
            await storage.events.append(tenant.id, batch(tap(s, n)), NOW, OPEN)

    exits = [
        storage.sessions.close(
            tenant.id, s.id, Exit(at(30), usage={"taps": 5}), NOT_RATED, NOW, OPEN
        )
        for s in sessions
    ]
    await asyncio.gather(*(one(n) for n in range(1, 25)), *exits)
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert (stored.status, stored.ended_at) == (SessionStatus.COMPLETED, at(30))
        await counted_once(storage, tenant, s, exit_taps=5)
        kept = remembered(storage, tenant, s)
        assert kept is None or kept == await as_stored(storage, tenant, s.id)


async def _exit_after_another_processes_exit(
    storage: Any, other_process: Any, tenant: Tenant
) -> tuple[Session, Session]:
    session = await stored_session(storage, tenant, 1)
    await other_process.sessions.close(
        tenant.id, session.id, Exit(at(5), usage={"taps": 2}), NOT_RATED, NOW, SHUT
    )
    closed, _ = await storage.sessions.close(
        tenant.id, session.id, Exit(at(9), usage={"taps": 3}), NOT_RATED, NOW, SHUT
    )
    return closed, await storage.sessions.get(tenant.id, session.id)


async def test_the_guard_is_what_keeps_another_processes_exit(
    storage: Any, storage_url: str, other_process: Any, tenant: Tenant, monkeypatch: Any
) -> None:
    """Risk: the tests above would pass with no guard at all. Holds: as written, the other
    process's exit stands (ended at 5, its 2 taps); with the mutation "the remembered copy
    written at the row's current Version" (the guard skipped), it does not, so the scenario
    detects a missing guard."""
    on_postgresql(storage_url)
    closed, stored = await _exit_after_another_processes_exit(storage, other_process, tenant)
    assert (stored.ended_at, stored.usage) == (at(5), {"taps": 2}) and closed == stored

    recalled = sql_sessions.SqlSessionRepository._recalled

    def unguarded(self: Any, tenant_id: str, session_id: str) -> Any:
        found = recalled(self, tenant_id, session_id)
        if found is None:
            return None
        return found[0], current[(tenant_id, session_id)]

    current: dict[Any, Any] = {}
    original_close = sql_sessions.SqlSessionRepository.close

    async def close(self: Any, tenant_id: str, session_id: str, *args: Any, **kw: Any) -> Any:
        if self is storage.sessions:
            async with asyncpg_connection(storage.driver_engine) as driver:
                (found,) = await asyncpg_sessions.read_many(driver, [(tenant_id, session_id)])
            assert found is not None
            current[(tenant_id, session_id)] = found[1]
        return await original_close(self, tenant_id, session_id, *args, **kw)

    monkeypatch.setattr(sql_sessions.SqlSessionRepository, "_recalled", unguarded)
    monkeypatch.setattr(sql_sessions.SqlSessionRepository, "close", close)
    _, mutated = await _exit_after_another_processes_exit(storage, other_process, tenant)
    assert (mutated.ended_at, mutated.usage) == (at(9), {"taps": 5})  # the other's exit undone


async def test_nothing_is_remembered_of_a_start_the_database_rolled_back(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """Risk: the memory keeps a start whose row is gone (deleted right after, by raw SQL, as a
    rolled-back or purged start): the next exit from memory answers a session that does not
    exist. Holds: the exit is NotFound, nothing is stored."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, 1)
    async with storage.engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM sessions WHERE tenant_id = :t AND id = :i"),
            {"t": tenant.id, "i": session.id},
        )
    with pytest.raises(NotFound):
        await storage.sessions.close(tenant.id, session.id, Exit(at(2)), NOT_RATED, NOW, SHUT)
    assert await storage.sessions.get(tenant.id, session.id) is None
    assert remembered(storage, tenant, session) is None


@memory
async def test_an_exit_replayed_from_a_batchs_copy_answers_the_session_as_stored(
    storage: Any, storage_url: str, other_process: Any, tenant: Tenant, memory: str
) -> None:
    """Risk: a late batch (events dated before the end) leaves the ended session remembered;
    another process then counts another late event into it; the exit sent again is decided a
    replay on the stale copy and answered from it, with neither write nor check. Holds: the
    replay answers the session as stored (both events, their usage)."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, 1)
    await storage.sessions.close(tenant.id, session.id, Exit(at(10)), NOT_RATED, NOW, SHUT)
    await storage.events.append(tenant.id, batch(tap(session, 5)), NOW, OPEN)
    await other_process.events.append(tenant.id, batch(tap(session, 6)), NOW, OPEN)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.event_count, stored.usage) == (2, {"taps": 2})
    as_configured(storage, tenant, session, memory)

    again, closing = await storage.sessions.close(
        tenant.id, session.id, Exit(at(10)), NOT_RATED, NOW, SHUT
    )
    assert closing is Closing.REPLAY
    assert again == stored
