"""Price a kind of session: credits per minute and per meter quantity."""

from application.ports import RateRepository
from domain.credits import Rate


class SetRate:
    def __init__(self, rates: RateRepository) -> None:
        self._rates = rates

    async def __call__(self, tenant_id: str, rate: Rate) -> Rate:
        await self._rates.put(tenant_id, rate)
        return rate
