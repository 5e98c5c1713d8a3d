"""What rarely changes and many requests read (a tenant's rates, plans and settings, a LiveKit
account), remembered briefly per process."""

from collections import Counter
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
        # Per key with a load under way: its loads, and how often it was forgotten meanwhile (a
        # load that began before may have read what was there before the change: it is not
        # remembered). Per key, since anyone may make a key be forgotten (a webhook whose
        # signature fails), and that must not keep the others' loads from being remembered.
        self._loads: Counter[str] = Counter()
        self._forgettings: Counter[str] = Counter()

    async def of(
        self, key: str, load: Callable[[], Awaitable[Value]], remember_none: bool = True
    ) -> Value:
        """What `load` gives for `key`, remembered for the TTL; with `remember_none` False, a
        None (nothing found) is not, so what is stored later, elsewhere, is found at once."""
        now = self._clock.now()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        forgettings = self._forgettings[key]
        self._loads[key] += 1
        try:
            value = await load()
        finally:
            forgotten = self._forgettings[key] != forgettings
            self._loads[key] -= 1
            if not self._loads[key]:
                del self._loads[key]
                self._forgettings.pop(key, None)
        if not forgotten and (value is not None or remember_none):
            self._known[key] = (now + TTL, value)
        return value

    def forget(self, key: str) -> None:
        if key in self._loads:
            self._forgettings[key] += 1
        self._known.pop(key, None)
