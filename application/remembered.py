"""What a tenant rarely changes and many requests read (its rates, its plans), remembered briefly
per process."""

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

    async def of(self, tenant_id: str, load: Callable[[], Awaitable[Value]]) -> Value:
        now = self._clock.now()
        known = self._known.get(tenant_id)
        if known is not None and known[0] > now:
            return known[1]
        value = await load()
        self._known[tenant_id] = (now + TTL, value)
        return value

    def forget(self, tenant_id: str) -> None:
        self._known.pop(tenant_id, None)
