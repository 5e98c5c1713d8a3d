"""What rarely changes and many requests read (a tenant's rates, plans and settings, a LiveKit
account), remembered briefly per process."""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from application.ports import Clock

# A change made through another server process reaches this one within this time (a change
# made through this one, at once: it forgets what it remembered).
TTL = timedelta(seconds=5)

Value = TypeVar("Value")


class Remembered(Generic[Value]):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._known: dict[str, tuple[datetime, Value]] = {}

    async def of(
        self, key: str, load: Callable[[], Awaitable[Value]], remember_none: bool = True
    ) -> Value:
        """What `load` gives for `key`, remembered for the TTL; with `remember_none` False, a
        None (nothing found) is not, so what is stored later, elsewhere, is found at once."""
        now = self._clock.now()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        value = await load()
        if value is not None or remember_none:
            self._known[key] = (now + TTL, value)
        return value

    def forget(self, key: str) -> None:
        self._known.pop(key, None)
