"""Forced interleavings on the test's event loop: racers run as tasks of the test's loop, each
named by a context variable (WHO), and `Script.around` holds the first call of one function by
one racer between two real round trips: only the timing is chosen, every step is the code's
own."""

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import anyio
import pytest

WHO: ContextVar[str] = ContextVar("who", default="")
GATE_SECONDS = 10.0  # a racer waiting longer than this for a gate: the interleaving never came


class Script:
    """Racers as tasks of the test's loop, each named (WHO); `around` holds the first call of a
    function by one racer: `before` runs first."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def go(self, gate: str) -> None:
        self._gates[gate].set()

    async def until(self, gate: str) -> None:
        with anyio.fail_after(GATE_SECONDS):
            await self._gates[gate].wait()

    async def hand_over(self, reached: str, then: str) -> None:
        self.go(reached)
        await self.until(then)

    def around(
        self,
        owner: Any,
        name: str,
        racer: str,
        before: Callable[[], Awaitable[Any]],
    ) -> None:
        real = getattr(owner, name)
        held = False

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal held
            if WHO.get() != racer or held:
                return await real(*args, **kwargs)
            held = True
            await before()
            return await real(*args, **kwargs)

        self._monkeypatch.setattr(owner, name, wrapper)

    async def run(self, **racers: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        async def named(name: str, call: Callable[[], Awaitable[Any]]) -> Any:
            WHO.set(name)
            return await call()

        with anyio.fail_after(3 * GATE_SECONDS):
            done = await asyncio.gather(*(named(n, c) for n, c in racers.items()))
        return dict(zip(racers, done, strict=True))
