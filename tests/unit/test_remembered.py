"""What rarely changes is remembered briefly per process (application.remembered), and a
change made through this process applies at once: it forgets what it remembered."""

import asyncio

import pytest

from application.remembered import TTL, Remembered
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

WAIT_SECONDS = 30  # a load that never gets there fails the test instead of hanging it


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
    await asyncio.wait_for(read.wait(), WAIT_SECONDS)
    remembered.forget("acme")  # the change, made through this process
    go.set()

    assert await under_way == "old settings"
    assert await remembered.of("acme", after_it) == "new settings"


async def test_a_key_forgotten_keeps_no_other_keys_load_from_being_remembered() -> None:
    """Anyone can make a LiveKit key be forgotten (a webhook whose signature fails): another
    key's load under way meanwhile is still remembered, and nothing is kept of either after."""
    remembered: Remembered[str] = Remembered(FakeClock())
    read, go = asyncio.Event(), asyncio.Event()
    loads: list[str] = []

    async def slowly() -> str:
        loads.append("acme")
        read.set()
        await go.wait()
        return "acme's"

    under_way = asyncio.create_task(remembered.of("acme", slowly))
    await asyncio.wait_for(read.wait(), WAIT_SECONDS)
    remembered.forget("forged")
    go.set()
    await under_way

    assert await remembered.of("acme", slowly) == "acme's"
    assert loads == ["acme"]
    assert not remembered._loads and not remembered._forgettings
