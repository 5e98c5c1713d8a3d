"""Concurrent callers of the contract suite that really race, on every store.

`Race` (the `race` fixture) runs each caller on a storage object of its own, as N processes of
the service would: its own engine and connection pool, or its own MongoDB client, built by a
container of its own from the URL of the test's database, in a thread of its own running its
own event loop. Every caller opens a connection first (a ping), then waits at a barrier, and all
of them make the racing call at once. So on SQLite N connections race for the write lock, on PostgreSQL N transactions for row
locks and unique indexes, and on MongoDB N clients for conditional single-document writes.

The memory store lives in one process and one event loop (the test's), so its callers run with
asyncio.gather on the test's storage. That is a real race too, in the only sense this store has:
each of its methods is atomic by construction, because nothing between reading and writing its
dicts suspends (its `await`s only call coroutines that never await anything that yields), so one
caller runs to completion before the next starts. A memory method that awaited real I/O in its
critical step would have to take an asyncio.Lock; these tests would not see that it does not.

A free race shows what happens when callers start at once; `Pause` and `after` force one
interleaving: a racer stopped at one port call while another racer runs from start to end.
"""

import asyncio
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tests.conftest import open_storage

Call = Callable[[Any], Awaitable[Any]]

# No racing call of the suite takes more than a few seconds; a caller still running after this
# is stuck (a mutant that never commits, a lock never released) and fails the test.
TIMEOUT_SECONDS = 60.0


class Race:
    def __init__(self, storage_url: str, storage: Any) -> None:
        self.storage_url = storage_url
        self._storage = storage

    async def __call__(self, *calls: Call, return_exceptions: bool = False) -> list[Any]:
        """Each call's result (or, with return_exceptions, the exception it raised), in order.
        Each call gets the storage it must use."""
        if self.storage_url == "memory://":
            return await asyncio.gather(
                *(call(self._storage) for call in calls), return_exceptions=return_exceptions
            )
        outcomes = await asyncio.to_thread(_in_threads, self.storage_url, calls)
        if not return_exceptions:
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        return outcomes


class _NotStarted(Exception):
    """A caller never made its call, because another failed to get ready."""


def _in_threads(url: str, calls: Sequence[Call]) -> list[Any]:
    barrier = threading.Barrier(len(calls), timeout=TIMEOUT_SECONDS)
    outcomes: list[Any] = [_NotStarted()] * len(calls)
    setup_errors: list[BaseException] = []
    loops = [asyncio.new_event_loop() for _ in calls]

    def caller(index: int, call: Call) -> None:
        loop = loops[index]
        storage = None
        try:
            try:
                storage = open_storage(url)
                loop.run_until_complete(storage.health.ping())  # connected before the start
            except BaseException as error:
                setup_errors.append(error)
                barrier.abort()
                return
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return
            try:
                outcomes[index] = loop.run_until_complete(call(storage))
            except Exception as error:
                outcomes[index] = error
        finally:
            if storage is not None:
                loop.run_until_complete(storage.close())
            loop.close()

    threads = [
        threading.Thread(target=caller, args=(i, call), name=f"racer-{i}", daemon=True)
        for i, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread, loop in zip(threads, loops, strict=True):
        thread.join(TIMEOUT_SECONDS * 2)
        if thread.is_alive():
            raise TimeoutError(
                f"{thread.name} still running after {TIMEOUT_SECONDS * 2:.0f} s, here:\n"
                + _where(thread, loop)
            )
    if setup_errors:
        raise setup_errors[0]
    return outcomes


def _where(thread: threading.Thread, loop: asyncio.AbstractEventLoop) -> str:
    """Where a stuck racer is: its thread's stack, then each task of its event loop with the
    chain of awaits it is suspended in (read from this thread while that one runs: a best
    effort, which is all a stuck racer needs)."""
    frame = sys._current_frames().get(thread.ident or 0)
    lines = traceback.format_stack(frame) if frame is not None else []
    for task in asyncio.all_tasks(loop):
        lines.append(f"{task!r:.200}\n")
        awaited: Any = task.get_coro()
        while (frame := _frame_of(awaited)) is not None:
            code = frame.f_code
            lines.append(f"  {code.co_qualname} ({code.co_filename}:{frame.f_lineno})\n")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
            if type(awaited).__name__ == "async_generator_asend":  # in an asynccontextmanager
                awaited = getattr(frame.f_locals.get("self"), "gen", awaited)
        if awaited is not None:
            lines.append(f"  awaits {awaited!r:.200}\n")
    return "".join(lines)


def _frame_of(awaited: Any) -> Any:
    """The frame of a coroutine or an async generator; None for anything else awaited."""
    return getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)


# A racer waiting for another longer than this is stuck.
WAIT_SECONDS = 30.0


async def wait_for(event: threading.Event) -> None:
    """Until another racer sets `event`; in a thread, since the memory store's racers share
    this event loop."""
    assert await asyncio.to_thread(event.wait, WAIT_SECONDS), "the other racer never got there"


class Pause:
    """A racer's port whose first call of `method` lets another racer go (`reached`) and waits
    until it is done (`go`): before the call, or after it (its result held back meanwhile)."""

    def __init__(
        self,
        port: Any,
        method: str,
        reached: threading.Event,
        go: threading.Event,
        before: bool = True,
    ) -> None:
        self._port, self._method, self._before = port, method, before
        self._reached, self._go = reached, go

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._port, name)
        if name != self._method:
            return found

        async def paused(*args: Any, **kwargs: Any) -> Any:
            if self._before:
                await self._pause()
            result = await found(*args, **kwargs)
            if not self._before:
                await self._pause()
            return result

        return paused

    async def _pause(self) -> None:
        if self._reached.is_set():
            return
        self._reached.set()
        await wait_for(self._go)


def after(reached: threading.Event, go: threading.Event, call: Call) -> Call:
    """A racer that waits until the paused one is stopped (`reached`), makes its call, then
    lets the paused racer go on."""

    async def racer(storage: Any) -> Any:
        await wait_for(reached)
        try:
            return await call(storage)
        finally:
            go.set()

    return racer


class Proxy:
    """A port that forwards what it does not override."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class PausesBeforeRestoring(Proxy):
    """An importer's archive: before it restores the first batch of `kind` (an import restores
    a record type at a time, in the file's order) it lets the other racer go (`reached`) and
    waits until it is done (`go`)."""

    def __init__(
        self, inner: Any, kind: type, reached: threading.Event, go: threading.Event
    ) -> None:
        super().__init__(inner)
        self._kind, self._reached, self._go = kind, reached, go

    async def restore(self, tenant_id: str, batch: Sequence[Any]) -> int:
        if isinstance(batch[0], self._kind) and not self._reached.is_set():
            self._reached.set()
            await wait_for(self._go)
        restored: int = await self._inner.restore(tenant_id, batch)
        return restored


class FailsToMove(Proxy):
    """The erasure's port: its move of the ledger fails (the process dies, the connection
    drops, a statement times out) after the sessions got their pseudonym."""

    async def move_subject(self, *args: Any) -> Any:
        raise ConnectionError("the connection dropped")


class HoldsAfterErasing(Proxy):
    """The erasure's port: once the sessions have their pseudonym (the ledger not yet moved),
    it tells the other racer (`holding`) and keeps the ledgers held `seconds` longer."""

    def __init__(self, inner: Any, holding: threading.Event, seconds: float) -> None:
        super().__init__(inner)
        self._holding, self._seconds = holding, seconds

    async def erase_sessions(self, *args: Any) -> Any:
        erased = await self._inner.erase_sessions(*args)
        if not self._holding.is_set():
            self._holding.set()
            await asyncio.sleep(self._seconds)
        return erased


class FailsToMoveOne(Proxy):
    """The erasure's port: the move of one subject's ledger always fails (a statement that
    always times out on it, a record no write accepts)."""

    def __init__(self, inner: Any, subject_id: str) -> None:
        super().__init__(inner)
        self._subject_id = subject_id

    async def move_subject(self, tenant_id: str, subject_id: str, *args: Any) -> Any:
        if subject_id == self._subject_id:
            raise ConnectionError("the statement timed out")
        return await self._inner.move_subject(tenant_id, subject_id, *args)
