"""The running cost of an active session of a rated kind: what it would be charged if it ended
now, and what that leaves of its subject's balance, so a client can warn before credits run out.
Nothing is closed automatically: the client decides."""

from dataclasses import dataclass

from application.credits.ports import CreditLedger
from application.credits.rate_book import RateBook
from application.ports import Clock
from domain.charging import Estimate, estimate
from domain.session import Session
from domain.tenants import TenantSettings


@dataclass(frozen=True)
class SessionView:
    """A session as a client reads it: with its running cost while it is active and rated."""

    session: Session
    charge_estimate: Estimate | None = None


class RunningCost:
    def __init__(self, rate_book: RateBook, ledger: CreditLedger, clock: Clock) -> None:
        self._rate_book = rate_book
        self._ledger = ledger
        self._clock = clock

    async def view(self, session: Session, settings: TenantSettings) -> SessionView:
        if not session.is_active or session.subject_id is None:
            return SessionView(session)
        rate = (await self._rate_book.rates(session.tenant_id)).get(session.kind)
        if rate is None:
            return SessionView(session)
        balance = (await self._ledger.balance(session.tenant_id, session.subject_id)).balance
        now = self._clock.now()
        return SessionView(
            session, estimate(session, rate, balance, now, settings.low_balance_credits)
        )
