"""The hot paths' checkout (adapters.sqlalchemy.engine.pooled_connection) takes an idle
connection without SQLAlchemy's greenlet, and falls back to it when it must wait or connect:
against a real PostgreSQL, every way a checkout can go gives a working connection and leaves no
coroutine unawaited."""

import asyncio
import gc
import types
import warnings
from collections.abc import AsyncIterator
from typing import Any

import greenlet  # type: ignore[import-untyped]  # (ships no type hints)
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn

from adapters.sqlalchemy.engine import create_engine, pooled_connection

pytestmark = pytest.mark.anyio

POOL = 2


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url, POOL, generic_plans=True)
    try:
        yield engine
    finally:
        await engine.dispose()


async def answer(engine: AsyncEngine, value: int, hold_seconds: float = 0) -> int:
    async with pooled_connection(engine) as connection:
        await asyncio.sleep(hold_seconds)
        driver: Any = connection.driver_connection
        found: int = await driver.fetchval("SELECT $1::int", value)
        return found


async def test_every_way_a_checkout_goes_gives_a_working_connection(engine: AsyncEngine) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert await answer(engine, 1) == 1  # the pool is empty: a new connection
        assert await answer(engine, 2) == 2  # an idle one
        async with pooled_connection(engine) as connection:
            await greenlet_spawn(connection.invalidate)  # as a connection broken on the way
        assert await answer(engine, 3) == 3  # its record connects again
        # More callers than connections: the last wait for the first to come back.
        held = [answer(engine, n, hold_seconds=0.2) for n in range(POOL * 3)]
        assert await asyncio.gather(*held) == list(range(POOL * 3))
        gc.collect()

    assert [str(w.message) for w in caught] == []
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool) and pool.checkedout() == 0


async def test_a_checkout_that_must_connect_leaves_no_greenlet_to_the_collector(
    engine: AsyncEngine,
) -> None:
    """The sync attempt's MissingGreenlet carries SQLAlchemy's frames, which hold the thread's
    greenlet, in a cycle with the error. Left to the collector, they were collected on the
    test runner's thread once a test client's thread had ended, and greenlet crashed the
    process (a segfault in CI). No frame of a garbage cycle may hold a greenlet."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable stays in gc.garbage
    try:
        assert await answer(engine, 1) == 1  # the pool is empty: the sync attempt fails
        gc.collect()
        holding = [
            frame
            for frame in gc.garbage
            if isinstance(frame, types.FrameType)
            and any(isinstance(value, greenlet.greenlet) for value in frame.f_locals.values())
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()

    assert holding == []
