"""Statements sent straight to asyncpg, on a connection of the SQLAlchemy engine's pool.

For the hot paths only (ingest, the session lifecycle): there SQLAlchemy's work per execution
(cache keys, parameter processing row by row, result adaptation, a greenlet switch) cost more
than the database did. A batch of rows goes as one array per column (`unnest`), so a statement
costs the same whatever the batch's size. Everything else keeps SQLAlchemy Core.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import String, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from adapters.sqlalchemy.engine import given_up, pooled_connection

Driver = Any  # an asyncpg.Connection (asyncpg ships no type hints)


@asynccontextmanager
async def asyncpg_connection(engine: AsyncEngine) -> AsyncIterator[Driver]:
    """A pooled connection's asyncpg connection (each statement its own transaction). One that
    broke on the way, or whose statement was given up (engine.given_up), is dropped from the
    pool rather than handed to the next request."""
    async with pooled_connection(engine) as pooled:
        driver: Driver = pooled.driver_connection
        try:
            yield driver
        except BaseException as error:
            if driver.is_closed() or given_up(error):
                await greenlet_spawn(pooled.invalidate)
            raise


@asynccontextmanager
async def asyncpg_transaction(engine: AsyncEngine) -> AsyncIterator[Driver]:
    """As asyncpg_connection, in a transaction."""
    async with asyncpg_connection(engine) as driver, driver.transaction():
        yield driver


def _type_of(table: Table, column: str) -> str:
    """The column's type as a cast names it, a string's without its length: a cast to
    varchar(200) cuts a longer value to 200 characters, where the column refuses it."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    kind = table.c[column].type
    if isinstance(kind, String):
        kind = String()
    return str(kind.compile(dialect=dialect))


def json_rows(table: Table, columns: Sequence[str], n: int) -> str:
    """`json_to_recordset($n::json) AS r(column type, …)`: rows passed as one JSON array of
    objects keyed by column. For many rows: asyncpg encodes an array parameter element by
    element (a check for nested arrays on each), which cost twice the CPU of one msgspec
    encoding of the rows, and more than PostgreSQL's parsing of it."""
    typed = ", ".join(f"{column} {_type_of(table, column)}" for column in columns)
    return f"json_to_recordset(${n}::json) AS r({typed})"


def parameters(table: Table, columns: Sequence[str], first: int) -> str:
    """`$first::type, …`: one row's values of these columns, each cast to the column's type
    (where PostgreSQL cannot tell it, as in `INSERT … SELECT $1, $2`)."""
    return ", ".join(
        f"${n}::{_type_of(table, column)}" for n, column in enumerate(columns, start=first)
    )


def unnest(table: Table, columns: Sequence[str], first: int, more: Sequence[str] = ()) -> str:
    """`unnest($first::type[], …)`: rows passed as one array parameter per column, each array
    of the column's own type; then the `more` arrays, as written (`$9::bigint[]`)."""
    arrays = (f"${n}::{_type_of(table, column)}[]" for n, column in enumerate(columns, start=first))
    return f"unnest({', '.join((*arrays, *more))})"
