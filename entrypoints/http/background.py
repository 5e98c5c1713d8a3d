"""Jobs the server runs on a schedule while it serves: the reaper, rollups, retention."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(seconds: float, job: Callable[[], Awaitable[object]]) -> None:
    """Run `job` every `seconds` until cancelled; a failed run is logged and the next one tried."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            log.exception("scheduled job failed; trying again in %s s", seconds)
