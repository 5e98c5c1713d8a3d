"""SQLite's writers commit together: the steps that queue while the writers' thread is busy run
in one transaction (sqlite_statements._Writers), each step's outcome still its own."""

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.sqlite_statements import in_transaction, on_sqlite_thread
from adapters.sqlalchemy.storage import SqlAlchemyStorage

pytestmark = pytest.mark.anyio

Work = Callable[[sqlite3.Connection], Any]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite file's engine, with a table of the tests' own (deferred foreign keys
    let a COMMIT fail: see below)."""
    storage = SqlAlchemyStorage(f"sqlite:///{tmp_path}/group.db")
    try:
        await storage.migrate()
        await on_sqlite_thread(storage.engine, create_tables)
        yield storage.engine
    finally:
        await storage.close()


def create_tables(connection: sqlite3.Connection) -> None:
    connection.execute("CREATE TABLE parent (id TEXT PRIMARY KEY)")
    connection.execute(
        "CREATE TABLE noted (n TEXT PRIMARY KEY,"
        " parent TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )


def noting(n: str, parent: str | None = None) -> Work:
    """A step of one statement: `n` noted; what it returns says whether a transaction was open
    around it (the group's)."""

    def note(connection: sqlite3.Connection) -> bool:
        connection.execute("INSERT INTO noted VALUES (?, ?)", (n, parent))
        return connection.in_transaction

    return note


def noting_then_failing(n: str) -> Work:
    """A step in a transaction of its own that notes `n`, then fails."""

    def fail(connection: sqlite3.Connection) -> None:
        noting(n)(connection)
        raise ValueError(f"{n} refused")

    return lambda connection: in_transaction(connection, fail)


async def queued_behind_a_busy_writer(engine: AsyncEngine, steps: list[Work]) -> list[Any]:
    """The steps sent while the writers' thread runs another's step, and let go together: what
    came of each (its result or its error)."""
    release = threading.Event()
    busy = asyncio.create_task(on_sqlite_thread(engine, lambda _: release.wait(10)))
    await asyncio.sleep(0.1)  # the thread is in the busy step
    sent = [asyncio.create_task(on_sqlite_thread(engine, step)) for step in steps]
    await asyncio.sleep(0.1)  # each queued behind it
    release.set()
    assert await busy
    return await asyncio.gather(*sent, return_exceptions=True)


async def noted(engine: AsyncEngine) -> set[str]:
    def read(connection: sqlite3.Connection) -> set[str]:
        return {n for (n,) in connection.execute("SELECT n FROM noted")}

    return await on_sqlite_thread(engine, read, writes=False)


async def test_steps_queued_together_commit_together_and_a_failed_one_is_undone_alone(
    engine: AsyncEngine,
) -> None:
    outcomes = await queued_behind_a_busy_writer(
        engine, [noting("a"), noting_then_failing("b"), noting("c")]
    )

    assert outcomes[0] is True and outcomes[2] is True  # inside the group's transaction
    assert isinstance(outcomes[1], ValueError)
    assert await noted(engine) == {"a", "c"}


async def test_a_step_alone_runs_as_it_is_written(engine: AsyncEngine) -> None:
    assert await on_sqlite_thread(engine, noting("alone")) is False  # autocommitted
    with pytest.raises(ValueError):
        await on_sqlite_thread(engine, noting_then_failing("refused"))

    assert await noted(engine) == {"alone"}


async def test_a_group_that_cannot_commit_fails_every_step_and_keeps_nothing(
    engine: AsyncEngine,
) -> None:
    """Its COMMIT refused (here a deferred foreign key one step breaks): no step is answered as
    written."""
    await on_sqlite_thread(engine, lambda c: c.execute("PRAGMA foreign_keys = ON"))
    try:
        outcomes = await queued_behind_a_busy_writer(
            engine, [noting("a"), noting("orphan", parent="none"), noting("c")]
        )
    finally:
        await on_sqlite_thread(engine, lambda c: c.execute("PRAGMA foreign_keys = OFF"))

    assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes), outcomes
    assert await noted(engine) == set()


async def test_a_step_that_ends_the_groups_transaction_takes_the_steps_before_it_down(
    engine: AsyncEngine,
) -> None:
    """As a failure that ends the transaction would (the disk full): the steps before it are
    not written and fail; those after it run alone, as they would have."""

    def ending(connection: sqlite3.Connection) -> None:
        connection.execute("ROLLBACK")

    outcomes = await queued_behind_a_busy_writer(engine, [noting("a"), ending, noting("c")])

    assert isinstance(outcomes[0], sqlite3.OperationalError)
    assert outcomes[2] is False  # alone
    assert await noted(engine) == {"c"}
