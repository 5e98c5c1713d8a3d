"""How long settlements and erasures wait for a subject's ledger that another caller holds
(Erasure.with_ledgers_held; MongoDB's settlements also take turns, adapters.mongodb.ledger_turns),
and how they wait: looking again (adapters.polling) until it is free or their time is up."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TypeVar

from adapters.polling import polled
from domain.errors import Contended

# A settlement waits this long for its subject's ledger, then claims nothing and leaves the session
# to the reaper (memory, MongoDB, and PostgreSQL's lock_timeout in migration 0027; SQLite does not
# wait: each look would take its one write lock).
SETTLEMENT_WAIT_SECONDS = 5.0
# Where nothing gives an erasure's ledgers back when its process dies (SQLite, MongoDB), it holds
# them on a lease, renewed while it works: a dead erasure's ledgers are free this long after.
ERASURE_LEASE = timedelta(minutes=10)
# An erasure waits this long for a ledger another holds (past a MongoDB settlement's lease of
# 30 s, so a dead settlement's turn is taken over), then fails: the service is busy, try again.
ERASURE_WAIT_SECONDS = 40.0
BUSY = "another erasure of this subject is under way: try again when it is done"
Done = TypeVar("Done")
log = logging.getLogger(__name__)


async def holding(
    hold: Callable[[], Awaitable[bool]],
    give_back: Callable[[], Awaitable[None]],
    work: Callable[[], Awaitable[Done]],
) -> Done:
    """An erasure's hold of ledgers where a hold is a record (memory, SQLite): `hold` (whether
    it took them all) is tried for ERASURE_WAIT_SECONDS, then Contended; `work` runs holding
    them, and `give_back` after it, whatever happens."""
    if not await polled(hold, ERASURE_WAIT_SECONDS):
        raise Contended(BUSY)
    try:
        return await work()
    finally:
        await give_back()


@asynccontextmanager
async def renewed(renew: Callable[[], Awaitable[object]], lease: timedelta) -> AsyncIterator[None]:
    """While the block runs, `renew` a lease a third of it apart, so that a holder still working
    keeps what it holds. A renewal that fails is logged and not tried again: the lease then
    runs out as a dead holder's would."""

    async def keep() -> None:
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            await renew()

    keeping = asyncio.create_task(keep())
    try:
        yield
    finally:
        keeping.cancel()
        try:
            await keeping
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("an erasure's lease on its ledgers could not be renewed")
