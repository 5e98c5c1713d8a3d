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
        # Counts what was forgotten: a load under way meanwhile may have read what was there
        # before the change, so it is not remembered.
        self._forgettings = 0

    async def of(
        self, key: str, load: Callable[[], Awaitable[Value]], remember_none: bool = True
    ) -> Value:
        """What `load` gives for `key`, remembered for the TTL; with `remember_none` False, a
        None (nothing found) is not, so what is stored later, elsewhere, is found at once."""
        now = self._clock.now()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        forgettings = self._forgettings
        value = await load()
        if forgettings == self._forgettings and (value is not None or remember_none):
            self._known[key] = (now + TTL, value)
        return value

    def forget(self, key: str) -> None:
        self._forgettings += 1
        self._known.pop(key, None)
