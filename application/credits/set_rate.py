"""Price a kind of session."""

from dataclasses import dataclass

from application.credits.rate_book import RateBook
from domain.credits import Rate


@dataclass(frozen=True)
class SetRateCommand:
    tenant_id: str
    rate: Rate


class SetRate:
    """Price a kind of session: credits per minute and per meter quantity, the minutes and each
    meter rounded apart, up (the default), down or to the nearest credit
    (`domain.credits.Rate.price`). The rate replaces the kind's previous one and prices
    sessions as they are charged from now on (every server process uses it within a few
    seconds). Sessions of a kind without a rate cost nothing."""

    def __init__(self, rate_book: RateBook) -> None:
        self._rate_book = rate_book

    async def __call__(self, command: SetRateCommand) -> Rate:
        await self._rate_book.put(command.tenant_id, command.rate)
        return command.rate
