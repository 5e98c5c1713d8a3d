"""Charge a closed session by its kind's rate: one ledger entry, at most once, ever."""

from application.ports import Clock, CreditLedger, RateRepository
from domain.session import ChargeState, Session


class DeductCredits:
    def __init__(self, rates: RateRepository, ledger: CreditLedger, clock: Clock) -> None:
        self._rates = rates
        self._ledger = ledger
        self._clock = clock

    async def rated_kinds(self, tenant_id: str) -> frozenset[str]:
        """Kinds whose sessions are left pending a charge when they close."""
        return frozenset(rate.kind for rate in await self._rates.all(tenant_id))

    async def __call__(self, session: Session) -> Session:
        if session.charge_state is not ChargeState.PENDING:
            return session
        rate = next(
            (r for r in await self._rates.all(session.tenant_id) if r.kind == session.kind), None
        )
        credits = 0 if rate is None else rate.price(session)
        return await self._ledger.settle(session.tenant_id, session.id, credits, self._clock.now())
