"""A review of SQLite's group commit (sqlite_statements._Writers, commit b0c539f): steps queued
while the writers' thread is busy run in one transaction. Each test holds a group to what the
same steps did each in a transaction of its own. The four defects it found (the tests after
"Defects") were fixed in the same stop."""

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from adapters.sqlalchemy.sqlite_statements import (
    _WRITERS,
    in_transaction,
    on_sqlite_thread,
    release_writers_connection,
)
from adapters.sqlalchemy.storage import SqlAlchemyStorage
from domain.credits import Rate, Rounding
from domain.errors import Conflict
from domain.session import Closing, Exit, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, a_grant, a_session, add_tenant, at, batch, event

pytestmark = pytest.mark.anyio

Work = Callable[[sqlite3.Connection], Any]
Request = Callable[[], Coroutine[Any, Any, Any]]


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqlAlchemyStorage]:
    async with noting_storage(f"sqlite:///{tmp_path}/review.db") as storage:
        yield storage


@contextlib.asynccontextmanager
async def noting_storage(url: str) -> AsyncIterator[SqlAlchemyStorage]:
    """A migrated storage with the tests' own table, `noted`."""
    storage = SqlAlchemyStorage(url)
    try:
        await storage.migrate()
        await on_sqlite_thread(
            storage.engine, lambda c: c.execute("CREATE TABLE noted (n TEXT PRIMARY KEY)")
        )
        yield storage
    finally:
        await storage.close()


@pytest.fixture
async def tenant(storage: SqlAlchemyStorage) -> Tenant:
    return await add_tenant(storage)


def noting(n: str) -> Work:
    def note(connection: sqlite3.Connection) -> bool:
        connection.execute("INSERT INTO noted VALUES (?)", (n,))
        return connection.in_transaction

    return note


def noting_request(storage: SqlAlchemyStorage, n: str) -> Request:
    return lambda: on_sqlite_thread(storage.engine, noting(n))


async def noted(storage: SqlAlchemyStorage) -> set[str]:
    def read(connection: sqlite3.Connection) -> set[str]:
        return {n for (n,) in connection.execute("SELECT n FROM noted")}

    return await on_sqlite_thread(storage.engine, read, writes=False)


async def writers_in_transaction(storage: SqlAlchemyStorage) -> bool:
    return bool(await on_sqlite_thread(storage.engine, lambda c: c.in_transaction))


async def behind_a_busy_writer(
    storage: SqlAlchemyStorage, requests: list[Request]
) -> tuple[list[asyncio.Task[Any]], threading.Event, asyncio.Task[Any]]:
    """The requests sent, in order, while the writers' thread runs another step: their tasks,
    the event that lets the busy step end, and its task."""
    release = threading.Event()
    busy = asyncio.create_task(on_sqlite_thread(storage.engine, lambda _: release.wait(10)))
    await asyncio.sleep(0.1)  # the thread is in the busy step
    sent: list[asyncio.Task[Any]] = []
    for request in requests:
        sent.append(asyncio.create_task(request()))
        await asyncio.sleep(0)  # each reaches its turn (queued on the thread) in this order
    await asyncio.sleep(0.1)
    return sent, release, busy


async def together(storage: SqlAlchemyStorage, requests: list[Request]) -> list[Any]:
    """What came of each request (its result or its error), all of them run as one group."""
    sent, release, busy = await behind_a_busy_writer(storage, requests)
    release.set()
    assert await busy
    return await asyncio.gather(*sent, return_exceptions=True)


async def together_while_locked(
    storage: SqlAlchemyStorage, tmp_path: Path, requests: list[Request]
) -> list[Any]:
    """`together`, while another connection holds SQLite's write lock past the writers' busy
    timeout (shortened to 0.2 s)."""
    await on_sqlite_thread(storage.engine, lambda c: c.execute("PRAGMA busy_timeout = 200"))
    other = sqlite3.connect(tmp_path / "review.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        outcomes = await together(storage, requests)
        other.execute("ROLLBACK")
    finally:
        other.close()
    return outcomes


def an_exit(minute: float) -> Exit:
    return Exit(at(minute), SessionStatus.COMPLETED)


# --- Steps of one session in one group: each sees the ones before it, as it would in turn. ---


async def test_a_start_its_batch_heartbeats_and_exits_in_one_group_answer_as_in_turn(
    storage: SqlAlchemyStorage, tenant: Tenant
) -> None:
    session = a_session(tenant)
    sessions, events = storage.sessions, storage.events

    def close(minute: float) -> Request:
        return lambda: sessions.close(
            tenant.id, session.id, an_exit(minute), frozenset(), NOW, OPEN
        )

    outcomes = await together(
        storage,
        [
            lambda: sessions.add(session),
            lambda: sessions.add(session),  # the same start again: a replay
            lambda: events.append(tenant.id, batch(event(session, 1)), NOW, OPEN),
            lambda: sessions.heartbeat(tenant.id, session.id, at(2)),
            close(3),
            close(4),  # a second exit: a replay of the first
            lambda: sessions.heartbeat(tenant.id, session.id, at(5)),  # ended: Conflict
            lambda: events.append(tenant.id, batch(event(session, 2)), NOW, OPEN),
        ],
    )

    assert outcomes[0] is True and outcomes[1] is False
    assert outcomes[2].inserted == 1
    assert outcomes[3].last_seen_at == at(2)
    assert outcomes[4][1] is Closing.CLOSED and outcomes[4][0].ended_at == at(3)
    assert outcomes[5][1] is Closing.REPLAY
    assert isinstance(outcomes[6], Conflict)
    assert outcomes[7].inserted == 1  # dated before its end (minute 3): taken
    stored = await sessions.get(tenant.id, session.id)
    assert stored is not None
    assert stored.status is SessionStatus.COMPLETED and stored.ended_at == at(3)
    assert stored.last_seen_at == at(3) and stored.event_count == 2
    assert not await writers_in_transaction(storage)


async def test_a_failing_step_in_a_group_keeps_nothing_of_its_own_and_answers_its_own_error(
    storage: SqlAlchemyStorage,
) -> None:
    def fails_after_writing(connection: sqlite3.Connection) -> None:
        noting("undone")(connection)
        raise Conflict("refused after writing")

    outcomes = await together(
        storage,
        [
            lambda: on_sqlite_thread(storage.engine, noting("a")),
            lambda: on_sqlite_thread(
                storage.engine, lambda c: in_transaction(c, fails_after_writing)
            ),
            # One statement that fails inside SQLite, outside any transaction of its own.
            lambda: on_sqlite_thread(storage.engine, noting("a")),
            lambda: on_sqlite_thread(storage.engine, noting("b")),
        ],
    )

    assert outcomes[0] is True and outcomes[3] is True
    assert isinstance(outcomes[1], Conflict)
    assert isinstance(outcomes[2], sqlite3.IntegrityError)
    assert await noted(storage) == {"a", "b"}
    assert not await writers_in_transaction(storage)


# --- Cancellation, release and the lock: nothing answered early, nothing left waiting. ---


async def test_a_cancelled_request_s_step_still_runs_as_it_did_before(
    storage: SqlAlchemyStorage,
) -> None:
    """aiosqlite runs every call sent to its thread, whether or not anyone awaits it: a request
    cancelled while its step waits was written before the change too. So is it now, and the
    others of its group are answered."""
    sent, release, busy = await behind_a_busy_writer(
        storage,
        [
            lambda: on_sqlite_thread(storage.engine, noting("first")),
            lambda: on_sqlite_thread(storage.engine, noting("cancelled")),
            lambda: on_sqlite_thread(storage.engine, noting("last")),
        ],
    )
    sent[0].cancel()  # the one whose turn runs the group
    sent[1].cancel()
    release.set()
    assert await busy
    assert await sent[2] is True
    for task in sent[:2]:
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await noted(storage) == {"first", "cancelled", "last"}
    assert not await writers_in_transaction(storage)


async def test_steps_queued_when_the_writers_connection_is_released_are_written_first(
    storage: SqlAlchemyStorage,
) -> None:
    sent, release, busy = await behind_a_busy_writer(
        storage,
        [
            lambda: on_sqlite_thread(storage.engine, noting("a")),
            lambda: on_sqlite_thread(storage.engine, noting("b")),
        ],
    )
    released = asyncio.create_task(release_writers_connection(storage.engine))
    await asyncio.sleep(0.05)
    release.set()
    assert await busy
    assert await asyncio.gather(*sent) == [True, True]
    await released
    assert storage.engine.sync_engine not in _WRITERS
    assert await on_sqlite_thread(storage.engine, noting("c")) is False  # a new connection
    assert await noted(storage) == {"a", "b", "c"}


async def test_a_group_waits_for_an_engine_writer_holding_the_lock_then_commits(
    storage: SqlAlchemyStorage,
) -> None:
    """SQLAlchemy's writers (BEGIN IMMEDIATE on another of the pool's connections) and the
    group take turns at SQLite's lock, as the steps did one by one."""
    async with storage.engine.begin() as conn:  # holds SQLite's write lock
        await conn.execute(text("INSERT INTO noted VALUES ('engine')"))
        sent, release, busy = await behind_a_busy_writer(
            storage,
            [
                lambda: on_sqlite_thread(storage.engine, noting("a")),
                lambda: on_sqlite_thread(storage.engine, noting("b")),
            ],
        )
        release.set()
        assert await busy
        await asyncio.sleep(0.3)  # the group waits in BEGIN IMMEDIATE
        assert not any(task.done() for task in sent)
    assert await asyncio.gather(*sent) == [True, True]
    assert await noted(storage) == {"engine", "a", "b"}


async def test_a_group_refused_the_lock_fails_every_member_and_leaves_no_transaction(
    storage: SqlAlchemyStorage, tmp_path: Path
) -> None:
    requests = [noting_request(storage, "a"), noting_request(storage, "b")]
    outcomes = await together_while_locked(storage, tmp_path, requests)

    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes), outcomes
    assert not await writers_in_transaction(storage)
    assert await on_sqlite_thread(storage.engine, noting("c")) is False
    assert await noted(storage) == {"c"}


async def test_writers_waiting_for_another_process_s_turn_commit_together_after_it(
    storage: SqlAlchemyStorage, tmp_path: Path
) -> None:
    """Another process's writers hold the lock file (here: another open file of it, which flock
    tells apart as it does two processes')."""
    await on_sqlite_thread(storage.engine, noting("first"))  # the lock file is open
    descriptor = os.open(f"{tmp_path}/review.db-writers", os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        sent = [asyncio.create_task(on_sqlite_thread(storage.engine, noting(n))) for n in "abc"]
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in sent)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        assert await asyncio.gather(*sent) == [True, True, True]  # one group
    finally:
        os.close(descriptor)
    assert await noted(storage) == {"first", "a", "b", "c"}


async def test_no_member_is_answered_before_its_group_committed(
    storage: SqlAlchemyStorage, tmp_path: Path
) -> None:
    """Each member, the moment it is answered, finds its write on another connection."""
    reader = sqlite3.connect(tmp_path / "review.db", isolation_level=None)

    def answered_then_seen(n: str) -> Request:
        async def request() -> bool:
            assert await on_sqlite_thread(storage.engine, noting(n)) is True  # in the group
            return reader.execute("SELECT 1 FROM noted WHERE n = ?", (n,)).fetchone() is not None

        return request

    try:
        outcomes = await together(storage, [answered_then_seen(str(n)) for n in range(20)])
    finally:
        reader.close()
    assert outcomes == [True] * 20


async def test_two_settlements_of_one_session_in_one_group_charge_it_once(
    storage: SqlAlchemyStorage, tenant: Tenant
) -> None:
    await storage.rates.put(tenant.id, Rate("counseling", 2, Rounding.CEIL, {}))
    await storage.ledger.grant(a_grant(tenant, 100, "g-1", "ana"))
    session = a_session(tenant, kind="counseling", subject_id="ana")
    assert await storage.sessions.add(session)
    closed, closing = await storage.sessions.close(
        tenant.id, session.id, an_exit(10), frozenset({"counseling"}), NOW, OPEN
    )
    assert closing is Closing.CLOSED
    revision = closed.charge_revision

    def settle() -> Coroutine[Any, Any, Any]:
        return storage.ledger.settle(tenant.id, session.id, revision, 20, at(11))

    outcomes = await together(storage, [settle, settle])

    assert outcomes[0] is not None and outcomes[0].credits == 20, outcomes
    assert outcomes[1] is None  # charged by the first: no longer awaits this settlement
    assert (await storage.ledger.balance(tenant.id, "ana")).balance == 80
    assert not await writers_in_transaction(storage)


# --- Defects the review found, fixed. ---


async def test_a_step_refused_at_the_lock_file_is_not_written_later(
    storage: SqlAlchemyStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn that fails before its steps run (flock refused, as on some network file systems)
    fails them all: none stays queued for a later turn to write after its client was told it
    failed."""
    await on_sqlite_thread(storage.engine, noting("first"))  # the lock file is open
    real = fcntl.flock
    failures = [OSError(37, "No locks available")]

    def flock(descriptor: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX and failures:
            raise failures.pop()
        real(descriptor, operation)

    monkeypatch.setattr(fcntl, "flock", flock)  # as sqlite_statements calls it
    with pytest.raises(OSError):
        await on_sqlite_thread(storage.engine, noting("refused"))
    await on_sqlite_thread(storage.engine, noting("next"))

    assert await noted(storage) == {"first", "next"}


async def test_members_of_a_failed_group_raise_its_error_with_their_own_frames_only(
    storage: SqlAlchemyStorage, tmp_path: Path
) -> None:
    """Every member of a group that cannot begin or commit raises the one error, each from its
    traceback as it was: raised as it stood, each raise added its frames to it (about four a
    member: a group of 400 gave tracebacks of ~1,900 frames), which kept every member's frames,
    and their locals, alive as long as any member's error was."""
    requests = [noting_request(storage, str(n)) for n in range(50)]
    outcomes = await together_while_locked(storage, tmp_path, requests)

    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes), outcomes
    assert len(traceback.extract_tb(outcomes[-1].__traceback__)) < 40


@pytest.fixture
async def in_memory() -> AsyncIterator[SqlAlchemyStorage]:
    """An in-memory database (`sqlite://`, as `serve --storage-url sqlite:///:memory:` runs): one
    connection (StaticPool), shared by the writers and SQLAlchemy's transactions."""
    async with noting_storage("sqlite://") as storage:
        yield storage


def noting_in_a_transaction(n: str) -> Work:
    return lambda connection: in_transaction(connection, noting(n))


async def test_in_memory_a_step_answered_as_written_is_not_undone_by_another_transaction(
    in_memory: SqlAlchemyStorage,
) -> None:
    """The one connection in a transaction SQLAlchemy began: a step's own transaction is not
    made a savepoint of it (only a group's are), so it is refused as before, not answered as
    written and then rolled back with SQLAlchemy's."""
    answered = None
    with pytest.raises(RuntimeError):
        async with in_memory.engine.begin() as conn:
            await conn.execute(text("INSERT INTO noted VALUES ('engine')"))
            # Refused (OperationalError), as before the change: answered stays None.
            with contextlib.suppress(sqlite3.OperationalError):
                answered = await on_sqlite_thread(in_memory.engine, noting_in_a_transaction("step"))
            raise RuntimeError("the engine's transaction fails, and rolls back")

    assert answered is None or "step" in await noted(in_memory)


async def test_in_memory_a_refused_group_leaves_another_transaction_whole(
    in_memory: SqlAlchemyStorage,
) -> None:
    """Steps queued together while SQLAlchemy's transaction is open on the one connection run
    each alone, as before (refused): no group begins, so none rolls back a transaction it did not
    begin."""
    async with in_memory.engine.begin() as conn:
        await conn.execute(text("INSERT INTO noted VALUES ('e1')"))
        outcomes = await together(
            in_memory,
            [
                lambda: on_sqlite_thread(in_memory.engine, noting_in_a_transaction("a")),
                lambda: on_sqlite_thread(in_memory.engine, noting_in_a_transaction("b")),
            ],
        )
        await conn.execute(text("INSERT INTO noted VALUES ('e2')"))

    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes), outcomes
    assert await noted(in_memory) == {"e1", "e2"}
