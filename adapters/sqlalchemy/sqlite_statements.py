"""Statements run on SQLite's own thread with the sqlite3 module: a whole step in one hop.

aiosqlite runs each statement on the connection's thread and hands its result back to the event
loop: a hop per statement, with SQLAlchemy's work per execution on top, cost more than SQLite
did. The hot paths (ingest, the session lifecycle) instead send one function to that thread,
which runs its whole transaction with sqlite3. Values are kept as SQLAlchemy keeps them
(adapters.sqlalchemy.tables): instants as naive UTC text, JSON as text.
"""

import sqlite3
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import msgspec
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from adapters.sqlalchemy.engine import pooled_connection

Result = TypeVar("Result")


# SQLite has one writer at a time. This process's writers take turns on one connection of the
# pool, kept for them: its thread runs their steps back to back, each as soon as the one before
# ends. Waiting in SQLite's busy handler instead, they slept and retried (1, 2, 5 … ms) and the
# lock stood idle between (32 concurrent starts and exits: 60 pairs a second, not 1,000). Taking
# turns at an asyncio.Lock, each waited for the event loop to hand it the lock, behind the work
# of every other request in flight: under 32 clients, milliseconds per write where SQLite took a
# fraction of one, and half the pairs a second. Other processes' writers still queue in the busy
# handler (busy_timeout).
_WRITERS: "WeakKeyDictionary[Engine, PoolProxiedConnection]" = WeakKeyDictionary()


async def on_sqlite_thread(
    engine: AsyncEngine, work: Callable[[sqlite3.Connection], Result], writes: bool = True
) -> Result:
    """`work(connection)` run on the thread of a pooled connection, with its sqlite3 one; on the
    writers' connection, after this process's other writers, if it `writes`."""
    if not writes:
        async with pooled_connection(engine) as pooled:
            return await _on_thread(pooled, work)
    return await _on_thread(await _writers_connection(engine), work)


async def _writers_connection(engine: AsyncEngine) -> PoolProxiedConnection:
    """The connection this process's writers share: checked out of the pool at the first write,
    given back by `release_writers_connection`."""
    kept = _WRITERS.get(engine.sync_engine)
    if kept is None:
        taken = await engine.raw_connection()
        # Another first writer may have taken one meanwhile: the first kept is the one.
        kept = _WRITERS.setdefault(engine.sync_engine, taken)
        if kept is not taken:
            await greenlet_spawn(taken.close)
    return kept


async def release_writers_connection(engine: AsyncEngine) -> None:
    """Give the writers' connection back to the pool, so that disposing of the engine closes
    it (and its thread)."""
    kept = _WRITERS.pop(engine.sync_engine, None)
    if kept is not None:
        await greenlet_spawn(kept.close)


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
    (adapters.sqlalchemy.engine): concurrent writers queue instead of failing halfway."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
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
