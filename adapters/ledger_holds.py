"""How long settlements and erasures wait for a subject's ledger that another caller holds
(Erasure.with_ledgers_held; MongoDB's settlements also take turns, adapters.mongodb.ledger_turns),
and how they wait: short pauses, doubling, until it is free or their time is up."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from domain.errors import Conflict

# A settlement waits this long for its subject's ledger, then claims nothing (it is read again,
# and what is still pending after its attempts is the reaper's).
SETTLEMENT_WAIT_SECONDS = 5.0
# An erasure holds its ledgers this long at most where nothing gives them back when its process
# dies (SQLite, MongoDB); one that takes longer may see a settlement decide meanwhile.
ERASURE_LEASE = timedelta(minutes=10)
# An erasure waits this long for a ledger another holds (past a MongoDB settlement's lease of
# 30 s, so a dead settlement's turn is taken over), then fails: the service is busy, try again.
ERASURE_WAIT_SECONDS = 40.0
BUSY = "another erasure of this subject is under way: try again when it is done"
FIRST_PAUSE_SECONDS = 0.002
LONGEST_PAUSE_SECONDS = 0.05
Done = TypeVar("Done")


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


async def holding(
    hold: Callable[[], Awaitable[bool]],
    give_back: Callable[[], Awaitable[None]],
    work: Callable[[], Awaitable[Done]],
) -> Done:
    """An erasure's hold of ledgers where a hold is a record (memory, SQLite): `hold` (whether
    it took them all) is tried for ERASURE_WAIT_SECONDS, then Conflict; `work` runs holding
    them, and `give_back` after it, whatever happens."""
    if not await polled(hold, ERASURE_WAIT_SECONDS):
        raise Conflict(BUSY)
    try:
        return await work()
    finally:
        await give_back()
