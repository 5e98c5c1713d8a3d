"""Charge a closed session by its kind's rate: one ledger entry, at most once, ever."""

from application.ports import Clock, CreditLedger
from application.rate_book import RateBook
from domain.session import ChargeState, Session


class DeductCredits:
    def __init__(self, rate_book: RateBook, ledger: CreditLedger, clock: Clock) -> None:
        self._rate_book = rate_book
        self._ledger = ledger
        self._clock = clock

    async def rated_kinds(self, tenant_id: str) -> frozenset[str]:
        """Kinds whose sessions are left pending a charge when they close."""
        return frozenset(await self._rate_book.rates(tenant_id))

    async def __call__(self, session: Session) -> Session:
        if session.charge_state is not ChargeState.PENDING:
            return session
        rate = (await self._rate_book.rates(session.tenant_id)).get(session.kind)
        credits = 0 if rate is None else rate.price(session)
        charge = await self._ledger.settle(
            session.tenant_id, session.id, credits, self._clock.now()
        )
        if charge is not None:
            session.settle(charge)
        else:  # another caller settled it first: read what it recorded
            session = await self._ledger.settled(session.tenant_id, session.id)
        return session
