"""Per-key rate limits: each ingest or app key may send its tenant's `rate_limit_per_second`
requests a second to this process; past it a request is refused with 429 and Retry-After.

Counted by the `limits` library (a sliding-window counter in this process's memory): each server
process (each `--workers` worker) keeps its own count, so N workers let a key through up to N
times the setting. A refused request changes nothing, so the client simply retries it.
"""

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from litestar.exceptions import TooManyRequestsException

from application.tenants.authenticate import Principal
from domain.tenants import Role


class RateLimits:
    def __init__(self) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._items: dict[int, RateLimitItemPerSecond] = {}

    async def count(self, caller: Principal) -> None:
        """Count one request of the caller's key; TooManyRequestsException if it is over."""
        per_second = caller.tenant.settings.rate_limit_per_second
        if per_second is None or caller.role is Role.ADMIN:
            return
        item = self._items.get(per_second)
        if item is None:
            item = self._items[per_second] = RateLimitItemPerSecond(per_second)
        if await self._limiter.hit(item, caller.key_id):
            return
        reset_at, _ = await self._limiter.get_window_stats(item, caller.key_id)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequestsException(
            f"this key may send {per_second} requests a second: retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
