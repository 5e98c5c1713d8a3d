"""Statements run on SQLite's own thread with the sqlite3 module: a whole step in one hop.

aiosqlite runs each statement on the connection's thread and hands its result back to the event
loop: a hop per statement, with SQLAlchemy's work per execution on top, cost more than SQLite
did. The hot paths (ingest, the session lifecycle) instead send one function to that thread,
which runs its whole transaction with sqlite3. Values are kept as SQLAlchemy keeps them
(adapters.sqlalchemy.tables): instants as naive UTC text, JSON as text.
"""

import os
import sqlite3
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

import msgspec
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from adapters.sqlalchemy.engine import pooled_connection, replaced

if sys.platform != "win32":
    import fcntl

Result = TypeVar("Result")


# SQLite has one writer at a time. This process's writers take turns on one connection of the
# pool, kept for them: its thread runs their steps back to back, each as soon as the one before
# ends. Waiting in SQLite's busy handler instead, they slept and retried (1, 2, 5 … ms) and the
# lock stood idle between (32 concurrent starts and exits: 60 pairs a second, not 1,000). Taking
# turns at an asyncio.Lock, each waited for the event loop to hand it the lock, behind the work
# of every other request in flight: under 32 clients, milliseconds per write where SQLite took a
# fraction of one, and half the pairs a second. The writers' connections of several processes
# (server workers) take turns at a lock file (WritersLockFile).
_WRITERS: "WeakKeyDictionary[Engine, _Writers]" = WeakKeyDictionary()


async def on_sqlite_thread(
    engine: AsyncEngine, work: Callable[[sqlite3.Connection], Result], writes: bool = True
) -> Result:
    """`work(connection)` run on the thread of a pooled connection, with its sqlite3 one; on the
    writers' connection, after this process's other writers and in its turn at the lock file,
    if it `writes`."""
    if not writes:
        async with pooled_connection(engine) as pooled:
            return await _on_thread(pooled, work)
    writers = await _writers(engine)
    if replaced(writers.connection.info):  # its file moved away, or a backup put in its place
        await release_writers_connection(engine, invalidate=True)
        writers = await _writers(engine)
    return await writers.turn(work)


class WritersLockFile:
    """A lock file beside the database (`<file>-writers`) that the writers' connections of every
    process take in turn, around each of their steps. Waiting for SQLite's own lock, the writer
    of another process slept in the busy handler (1, 2, 5 … 100 ms) and found the lock taken
    again each time it looked: with two server workers, one served 8 event clients' batches while
    the other's got no turn (0.91 and 0.04 of a core). flock wakes the waiting writer as the
    lock is given back. A holder's step ends (SQLite's busy_timeout bounds its own wait), and
    a process that dies gives the lock back with its descriptors. No lock file for an in-memory
    database (one process), nor without flock (Windows: the busy handler alone)."""

    def __init__(self) -> None:
        self._descriptor: int | None = None
        self._opened = False

    def held(
        self, connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], Result]
    ) -> Result:
        """`work(connection)`, run holding the lock (on the connection's thread)."""
        descriptor = self._open(connection)
        if descriptor is None:
            return work(connection)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            return work(connection)
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)

    def _open(self, connection: sqlite3.Connection) -> int | None:
        if not self._opened:
            self._opened = True
            _, _, path = connection.execute("PRAGMA database_list").fetchone()  # main's file
            if path and sys.platform != "win32":
                self._descriptor = _opened_beside(path)
                if self._descriptor is not None:
                    weakref.finalize(self, os.close, self._descriptor)
        return self._descriptor


def _opened_beside(path: str) -> int | None:
    """The lock file of the database at `path`, made with the database's permissions (as SQLite
    makes its -wal and -shm files) and opened for reading, which is all flock needs, so that
    processes of other users who may read the database share it. None if it cannot be opened
    (say, made by a user whose file this one may not read): the writers then queue in SQLite's
    busy handler, as they did before it."""
    try:
        mode = os.stat(path).st_mode & 0o666
        return os.open(f"{path}-writers", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, mode)
    except OSError:
        return None


@dataclass
class _Step(Generic[Result]):
    """A writer's work, and what came of it once its group has committed."""

    work: Callable[[sqlite3.Connection], Result]
    result: Result | None = None
    error: BaseException | None = None
    _traceback: TracebackType | None = None
    done: bool = False

    def run(self, connection: sqlite3.Connection) -> None:
        try:
            self.result = self.work(connection)
        except Exception as error:
            self.failed(error)

    def failed(self, error: BaseException) -> None:
        # Its traceback as it was: each member of a group that failed raises the same error,
        # and every raise would add the raiser's frames to it.
        self.result, self.error, self._traceback = None, error, error.__traceback__

    def outcome(self) -> Result:
        if self.error is not None:
            raise self.error.with_traceback(self._traceback)
        return self.result  # type: ignore[return-value]  # set by run, unless it failed


@dataclass(frozen=True)
class _Writers:
    """This process's writers: the connection they share and their lock file.

    Writers that queue while the thread is busy commit together (group commit): the first of
    them whose turn comes runs every step waiting then, in one transaction, and the others'
    turns only hand back what came of theirs. A commit is most of a small step's cost on
    SQLite (writing its pages to the log), so a group of k costs far less than k transactions
    (benchmarks/HISTORY.md, 2026-12-07 12:25). Each step's outcome is its own: its
    transaction, if it takes one (in_transaction), is a savepoint of the group's, undone alone
    when it fails; no answer is given before the group has committed, and a group that cannot
    commit fails every member."""

    connection: PoolProxiedConnection
    lock_file: WritersLockFile = field(default_factory=WritersLockFile)
    # Filled on the event loop's thread, emptied on the connection's (deque's ends are atomic).
    waiting: "deque[_Step[Any]]" = field(default_factory=deque)

    async def turn(self, work: Callable[[sqlite3.Connection], Result]) -> Result:
        step = _Step(work)
        aiosqlite = self.connection.driver_connection
        assert aiosqlite is not None
        if not aiosqlite._running:  # closing: refused here as aiosqlite would, before it waits
            raise ValueError("Connection closed")
        self.waiting.append(step)
        return await _on_thread(self.connection, lambda c: self._taken(c, step))

    def _taken(self, connection: sqlite3.Connection, step: "_Step[Result]") -> Result:
        """On the connection's thread: the steps waiting run, unless an earlier turn ran them.
        They leave the queue first: a step whose turn fails (the lock file refused) fails, and
        is never run by a later turn."""
        if not step.done:
            group = [self.waiting.popleft() for _ in range(len(self.waiting))]
            try:
                self.lock_file.held(connection, lambda c: _run(c, group))
            except BaseException as error:
                for failed in group:
                    failed.failed(error)
                raise
            finally:
                for ended in group:
                    ended.done = True
        return step.outcome()


# Set on the writers' thread while it runs a group's steps: their transactions are savepoints.
_grouping = threading.local()


def _run(connection: sqlite3.Connection, group: list[_Step[Any]]) -> None:
    """The steps in one transaction, in order. A step whose failure ended the transaction (the
    database full, its file gone) takes the steps before it down with it; those after it run
    alone, each as it would have. Alone too: a single step, and steps on a connection in a
    transaction already (an in-memory database's one connection, shared with SQLAlchemy)."""
    if len(group) == 1 or connection.in_transaction:
        for step in group:
            step.run(connection)
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        _grouping.on = True
        for n, step in enumerate(group):
            step.run(connection)
            if not connection.in_transaction:
                lost = step.error or sqlite3.OperationalError("the group's transaction ended")
                for before in group[:n]:
                    before.failed(lost)
                _grouping.on = False
                for after in group[n + 1 :]:
                    after.run(connection)
                return
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        _grouping.on = False


async def _writers(engine: AsyncEngine) -> _Writers:
    """This process's writers: the connection they share, checked out of the pool at the first
    write and given back by `release_writers_connection`, and their lock file."""
    kept = _WRITERS.get(engine.sync_engine)
    if kept is None:
        taken = _Writers(await engine.raw_connection())
        # Another first writer may have taken one meanwhile: the first kept is the one.
        kept = _WRITERS.setdefault(engine.sync_engine, taken)
        if kept is not taken:
            await greenlet_spawn(taken.connection.close)
    return kept


async def release_writers_connection(engine: AsyncEngine, invalidate: bool = False) -> None:
    """Give the writers' connection back to the pool, so that disposing of the engine closes
    it (and its thread); or drop it (`invalidate`)."""
    kept = _WRITERS.pop(engine.sync_engine, None)
    if kept is not None:
        connection = kept.connection
        await greenlet_spawn(connection.invalidate if invalidate else connection.close)


async def _on_thread(
    pooled: PoolProxiedConnection, work: Callable[[sqlite3.Connection], Result]
) -> Result:
    aiosqlite = pooled.driver_connection
    assert aiosqlite is not None
    # aiosqlite's own way of running a call on its thread (private in 0.22, pinned): calls run
    # in the order they were sent.
    result: Result = await aiosqlite._execute(work, aiosqlite._conn)
    return result


def in_transaction(
    connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], Result]
) -> Result:
    """`work` in a transaction that takes the write lock first, as the engine's do
    (adapters.sqlalchemy.engine): concurrent writers queue instead of failing halfway. Within
    a group's transaction (_Writers), a savepoint of it."""
    if getattr(_grouping, "on", False):
        return _in_savepoint(connection, work)
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result


def _in_savepoint(
    connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], Result]
) -> Result:
    connection.execute("SAVEPOINT step")
    try:
        result = work(connection)
    except BaseException:
        if connection.in_transaction:  # not ended by the failure itself
            connection.execute("ROLLBACK TO step")
            connection.execute("RELEASE step")
        raise
    connection.execute("RELEASE step")
    return result


def run_unsuspended(coroutine: Coroutine[Any, Any, Result]) -> Result:
    """The result of a coroutine whose awaits all return at once (they only call sqlite3), run
    here: the steps shared with PostgreSQL's async driver (event_batches.append_batch), run
    on SQLite's thread."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: Result = done.value
        return result
    coroutine.close()
    raise RuntimeError("a step on SQLite's thread waited for something")


def instant(at: datetime | None) -> str | None:
    """An instant as SQLAlchemy's SQLite DateTime keeps it (UTCDateTime: naive UTC)."""
    if at is None:
        return None
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def instant_of(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def json_of(text: str | None) -> Any:
    return None if text is None else msgspec.json.decode(text)
