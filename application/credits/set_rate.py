"""Price a kind of session: credits per minute and per meter quantity."""

from application.credits.rate_book import RateBook
from domain.credits import Rate


class SetRate:
    def __init__(self, rate_book: RateBook) -> None:
        self._rate_book = rate_book

    async def __call__(self, tenant_id: str, rate: Rate) -> Rate:
        await self._rate_book.put(tenant_id, rate)
        return rate
