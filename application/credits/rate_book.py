"""The tenants' rates, remembered briefly: every exit asks for them, and they rarely change."""

from application.credits.ports import RateRepository
from application.ports import Clock
from application.remembered import Remembered
from domain.credits import Rate


class RateBook:
    def __init__(self, rates: RateRepository, clock: Clock) -> None:
        self._rates = rates
        self._known: Remembered[dict[str, Rate]] = Remembered(clock)

    async def rates(self, tenant_id: str) -> dict[str, Rate]:
        """The tenant's rates by kind."""

        async def load() -> dict[str, Rate]:
            return {rate.kind: rate for rate in await self._rates.all(tenant_id)}

        return await self._known.of(tenant_id, load)

    async def put(self, tenant_id: str, rate: Rate) -> None:
        # Forgotten even when the write failed: one that timed out may still have happened.
        try:
            await self._rates.put(tenant_id, rate)
        finally:
            self._known.forget(tenant_id)
