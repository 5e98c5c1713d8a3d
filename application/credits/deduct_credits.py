"""Charge a closed session by its kind's rate, and settle it again each time a correction
changes its price: one ledger entry per change, never two (domain.charging)."""

from application.credits.ports import CreditLedger
from application.credits.rate_book import RateBook
from application.ports import Clock
from domain.charging import price
from domain.session import ChargeState, Session

# A settlement that loses its claim to a correction re-reads and tries the new revision; a
# session corrected this many times during one settlement is left pending for the reaper.
ATTEMPTS = 5


class DeductCredits:
    def __init__(self, rate_book: RateBook, ledger: CreditLedger, clock: Clock) -> None:
        self._rate_book = rate_book
        self._ledger = ledger
        self._clock = clock

    async def rated_kinds(self, tenant_id: str) -> frozenset[str]:
        """Kinds whose sessions are left pending a charge when they close."""
        return frozenset(await self._rate_book.rates(tenant_id))

    async def __call__(self, session: Session) -> Session:
        for _ in range(ATTEMPTS):
            if session.charge_state is not ChargeState.PENDING:
                return session
            rate = (await self._rate_book.rates(session.tenant_id)).get(session.kind)
            charge = await self._ledger.settle(
                session.tenant_id,
                session.id,
                session.charge_revision,
                price(session, rate),
                self._clock.now(),
            )
            if charge is not None:
                session.settle(charge)
                return session
            # Settled by another caller, or corrected again since it was read.
            session = await self._ledger.settled(session.tenant_id, session.id)
        return session
