"""A hot path's step on either SQL engine, its statements sent to the engine's driver directly:
asyncpg on PostgreSQL (asyncpg_statements), sqlite3 on SQLite's thread (sqlite_statements).

A step is written once, against a writer that each engine provides (`Writers`). On SQLite the
writer's awaits return at once, and the whole step runs in one hop to SQLite's thread
(sqlite_statements.run_unsuspended).
"""

import sqlite3
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.asyncpg_statements import (
    Driver,
    asyncpg_connection,
    asyncpg_transaction,
)
from adapters.sqlalchemy.sqlite_statements import in_transaction as sqlite_transaction
from adapters.sqlalchemy.sqlite_statements import on_sqlite_thread, run_unsuspended

Writer = TypeVar("Writer")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Writers(Generic[Writer]):
    """The step's writer on each engine's connection."""

    asyncpg: Callable[[Driver], Writer]
    sqlite: Callable[[sqlite3.Connection], Writer]


Step = Callable[[Writer], Coroutine[Any, Any, Result]]


async def in_transaction(
    engine: AsyncEngine, writers: Writers[Writer], step: Step[Writer, Result]
) -> Result:
    """`step` in one transaction (on SQLite one that takes the write lock first, after this
    process's other writers)."""
    if engine.dialect.name == "postgresql":
        async with asyncpg_transaction(engine) as driver:
            return await step(writers.asyncpg(driver))
    return await on_sqlite_thread(
        engine,
        lambda c: sqlite_transaction(c, lambda c: run_unsuspended(step(writers.sqlite(c)))),
    )


async def on_connection(
    engine: AsyncEngine, writers: Writers[Writer], step: Step[Writer, Result], writes: bool
) -> Result:
    """`step` outside a transaction: for one statement (each is atomic on its own)."""
    if engine.dialect.name == "postgresql":
        async with asyncpg_connection(engine) as driver:
            return await step(writers.asyncpg(driver))
    return await on_sqlite_thread(
        engine, lambda c: run_unsuspended(step(writers.sqlite(c))), writes=writes
    )
