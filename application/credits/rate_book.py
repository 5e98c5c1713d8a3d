"""The tenants' rates, remembered briefly: every exit asks for them, and they rarely change."""

from datetime import datetime, timedelta

from application.credits.ports import RateRepository
from application.ports import Clock
from domain.credits import Rate

# A rate set on one server process reaches the others within this time (this one at once).
TTL = timedelta(seconds=5)


class RateBook:
    def __init__(self, rates: RateRepository, clock: Clock) -> None:
        self._rates = rates
        self._clock = clock
        self._known: dict[str, tuple[datetime, dict[str, Rate]]] = {}

    async def rates(self, tenant_id: str) -> dict[str, Rate]:
        """The tenant's rates by kind."""
        now = self._clock.now()
        known = self._known.get(tenant_id)
        if known is not None and known[0] > now:
            return known[1]
        rates = {rate.kind: rate for rate in await self._rates.all(tenant_id)}
        self._known[tenant_id] = (now + TTL, rates)
        return rates

    async def put(self, tenant_id: str, rate: Rate) -> None:
        await self._rates.put(tenant_id, rate)
        self._known.pop(tenant_id, None)
