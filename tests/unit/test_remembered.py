"""What rarely changes is remembered briefly per process (application.remembered), and a
change made through this process applies at once: it forgets what it remembered."""

import asyncio

import pytest

from application.remembered import TTL, Remembered
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


async def test_a_value_is_remembered_for_its_lifetime() -> None:
    clock = FakeClock()
    remembered: Remembered[str] = Remembered(clock)
    loads: list[str] = []

    async def load() -> str:
        loads.append("loaded")
        return f"settings {len(loads)}"

    assert await remembered.of("acme", load) == "settings 1"
    clock.advance(TTL.total_seconds() - 1)
    assert await remembered.of("acme", load) == "settings 1"
    clock.advance(1)
    assert await remembered.of("acme", load) == "settings 2"


async def test_what_a_load_under_way_read_before_a_change_is_not_remembered() -> None:
    remembered: Remembered[str] = Remembered(FakeClock())
    read, go = asyncio.Event(), asyncio.Event()

    async def before_the_change() -> str:
        read.set()
        await go.wait()
        return "old settings"

    async def after_it() -> str:
        return "new settings"

    under_way = asyncio.create_task(remembered.of("acme", before_the_change))
    await read.wait()
    remembered.forget("acme")  # the change, made through this process
    go.set()

    assert await under_way == "old settings"
    assert await remembered.of("acme", after_it) == "new settings"
