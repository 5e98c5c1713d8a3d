"""The session lifecycle's hot paths on either SQL engine, their statements sent to its driver
directly (asyncpg_sessions on PostgreSQL, sqlite_sessions on SQLite's thread).

A step is written once, against SessionRows; `in_transaction` and `on_connection` run it with
the engine's rows. On SQLite its awaits return at once, and the whole step runs in one hop to
SQLite's thread (sqlite_statements.run_unsuspended).
"""

import sqlite3
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy import asyncpg_sessions, sqlite_sessions
from adapters.sqlalchemy.asyncpg_statements import (
    Driver,
    asyncpg_connection,
    asyncpg_transaction,
)
from adapters.sqlalchemy.sqlite_statements import in_transaction as sqlite_transaction
from adapters.sqlalchemy.sqlite_statements import on_sqlite_thread, run_unsuspended
from domain.session import Session
from domain.usage import Usage

Result = TypeVar("Result")


class SessionRows(Protocol):
    async def lock(self, tenant_id: str, session_ids: Sequence[str]) -> dict[str, Session]:
        """The sessions of these ids, locked until the transaction ends, with usage and gaps."""
        ...

    async def read(self, tenant_id: str, session_id: str) -> Session | None: ...

    async def insert(self, session: Session) -> bool:
        """Store a new session; False (nothing stored) if its id is taken."""
        ...

    async def save(
        self, changed: Sequence[Session], columns: Sequence[str], usage: Mapping[str, Usage]
    ) -> None:
        """Write these columns of locked sessions and add `usage` to their meters."""
        ...


Step = Callable[[SessionRows], Coroutine[Any, Any, Result]]


async def in_transaction(engine: AsyncEngine, step: Step[Result]) -> Result:
    if engine.dialect.name == "postgresql":
        async with asyncpg_transaction(engine) as driver:
            return await step(_AsyncpgRows(driver))
    return await on_sqlite_thread(
        engine, lambda c: sqlite_transaction(c, lambda c: run_unsuspended(step(_SqliteRows(c))))
    )


async def on_connection(engine: AsyncEngine, step: Step[Result], writes: bool) -> Result:
    """`step` outside a transaction: for one statement (each is atomic on its own)."""
    if engine.dialect.name == "postgresql":
        async with asyncpg_connection(engine) as driver:
            return await step(_AsyncpgRows(driver))
    return await on_sqlite_thread(
        engine, lambda c: run_unsuspended(step(_SqliteRows(c))), writes=writes
    )


class _AsyncpgRows(SessionRows):
    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    async def lock(self, tenant_id: str, session_ids: Sequence[str]) -> dict[str, Session]:
        return await asyncpg_sessions.lock(self._driver, tenant_id, session_ids)

    async def read(self, tenant_id: str, session_id: str) -> Session | None:
        return await asyncpg_sessions.read(self._driver, tenant_id, session_id)

    async def insert(self, session: Session) -> bool:
        return await asyncpg_sessions.insert(self._driver, session)

    async def save(
        self, changed: Sequence[Session], columns: Sequence[str], usage: Mapping[str, Usage]
    ) -> None:
        await asyncpg_sessions.save(self._driver, changed, columns, usage)


class _SqliteRows(SessionRows):
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def lock(self, tenant_id: str, session_ids: Sequence[str]) -> dict[str, Session]:
        # Read in a transaction that holds SQLite's one write lock already.
        return sqlite_sessions.read(self._connection, tenant_id, session_ids)

    async def read(self, tenant_id: str, session_id: str) -> Session | None:
        return sqlite_sessions.read_one(self._connection, tenant_id, session_id)

    async def insert(self, session: Session) -> bool:
        return sqlite_sessions.insert(self._connection, session)

    async def save(
        self, changed: Sequence[Session], columns: Sequence[str], usage: Mapping[str, Usage]
    ) -> None:
        sqlite_sessions.save(self._connection, changed, columns, usage)
