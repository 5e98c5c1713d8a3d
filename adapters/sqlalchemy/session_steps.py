"""The session lifecycle's hot paths on either SQL engine (adapters.sqlalchemy.driver_steps):
steps written once against SessionRows, which asyncpg_sessions and sqlite_sessions provide."""

import sqlite3
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy import asyncpg_sessions, driver_steps, sqlite_sessions
from adapters.sqlalchemy.asyncpg_statements import Driver
from adapters.sqlalchemy.driver_steps import Writers
from domain.session import Session
from domain.usage import Usage

Result = TypeVar("Result")


class SessionRows(Protocol):
    async def lock(self, tenant_id: str, session_ids: Sequence[str]) -> dict[str, Session]:
        """The sessions of these ids, locked until the transaction ends, with usage and gaps."""
        ...

    async def read(self, tenant_id: str, session_id: str) -> Session | None: ...

    async def save(
        self, changed: Sequence[Session], columns: Sequence[str], usage: Mapping[str, Usage]
    ) -> None:
        """Write these columns of locked sessions and add `usage` to their meters."""
        ...


async def in_transaction(
    engine: AsyncEngine, step: Callable[[SessionRows], Coroutine[Any, Any, Result]]
) -> Result:
    return await driver_steps.in_transaction(engine, ROWS, step)


async def on_connection(
    engine: AsyncEngine,
    step: Callable[[SessionRows], Coroutine[Any, Any, Result]],
    writes: bool,
) -> Result:
    """`step` outside a transaction: for one statement (each is atomic on its own)."""
    return await driver_steps.on_connection(engine, ROWS, step, writes)


class _AsyncpgRows(SessionRows):
    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    async def lock(self, tenant_id: str, session_ids: Sequence[str]) -> dict[str, Session]:
        return await asyncpg_sessions.lock(self._driver, tenant_id, session_ids)

    async def read(self, tenant_id: str, session_id: str) -> Session | None:
        return await asyncpg_sessions.read(self._driver, tenant_id, session_id)

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

    async def save(
        self, changed: Sequence[Session], columns: Sequence[str], usage: Mapping[str, Usage]
    ) -> None:
        sqlite_sessions.save(self._connection, changed, columns, usage)


ROWS: Writers[SessionRows] = Writers(_AsyncpgRows, _SqliteRows)
