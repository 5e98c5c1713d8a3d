"""Waiting for another caller's step to be done, by looking again: short pauses, doubling."""

import asyncio
import time
from collections.abc import Awaitable, Callable

FIRST_PAUSE_SECONDS = 0.002
LONGEST_PAUSE_SECONDS = 0.05


async def polled(attempt: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """Call `attempt` until it succeeds, pausing between calls, for up to `seconds`; whether it
    succeeded."""
    deadline = time.monotonic() + seconds
    pause = FIRST_PAUSE_SECONDS
    while not await attempt():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(pause)
        pause = min(2 * pause, LONGEST_PAUSE_SECONDS)
    return True
