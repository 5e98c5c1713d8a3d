"""Charge a closed session by its kind's rate, and settle it again each time a correction
changes its price: one ledger entry per change, never two (domain.charging)."""

from collections.abc import Iterable, Sequence

from application.credits.ports import ChargeTally, CreditLedger, LedgerHeld, UnfinishedErasures
from application.credits.rate_book import RateBook
from application.ports import Clock
from application.storage import SettlementCutShort
from domain.charging import ChargeOnClose, Priced, price
from domain.erasure import is_pseudonym
from domain.session import Charge, ChargeState, Closing, Session

# A settlement that loses its claim to a correction re-reads and tries the new revision; a
# session corrected this many times during one settlement is left pending for the reaper.
ATTEMPTS = 5


class DeductCredits:
    """A service, not a route (RecordExit, IngestEvents, ReceiveLiveKitWebhook and the reaper
    call it): settle the charge of a closed session that is left pending, once per change.

    The session is priced as it stands (`domain.charging.price`: by its kind's rate; nothing
    for a kind without a rate, an anonymous session, or one that ended cancelled or failed),
    and the store claims exactly the session's `charge_revision` while it writes what
    `domain.charging.settle` says (`CreditLedger.settle`): the first settlement is a `charge`
    entry, each later one, after a correction moved the revision on, an `adjustment` of the
    difference (none for a difference of 0); a balance left below zero is warned
    (`negative_balance`), and a charge that leaves it there, never an adjustment, also alerts
    an admin. A caller that loses the claim (another caller settled it, or it was corrected
    again meanwhile) reads the session again and settles its new revision, up to 5 times; what
    is still pending then is settled by the reaper, and so is a session whose subject's ledger
    an erasure holds longer than a settlement waits (LedgerHeld), or whose subject is the
    pseudonym of an erasure that is unfinished (it failed before its ledger moved: the reaper
    settles it once the erasure is retried). A session not pending is returned as is. Each
    first charge is told to the ChargeTally (the metrics) by the settlement that wrote it."""

    def __init__(
        self,
        rate_book: RateBook,
        ledger: CreditLedger,
        erasures: UnfinishedErasures,
        clock: Clock,
        tally: ChargeTally,
    ) -> None:
        self._tally = tally
        self._rate_book = rate_book
        self._ledger = ledger
        self._erasures = erasures
        self._clock = clock

    async def rated_kinds(self, tenant_id: str) -> frozenset[str]:
        """Kinds whose sessions are left pending a charge when they close."""
        return frozenset(await self._rate_book.rates(tenant_id))

    async def charge_on_close(self, tenant_id: str) -> ChargeOnClose:
        """The tenant's rates, for a store that settles a first charge in the close's own write
        (SessionRepository.close): then `charged_in_close` hears of the session first."""
        return ChargeOnClose(await self._rate_book.rates(tenant_id), self._clock.now())

    def charged_in_close(self, session: Session, closing: Closing) -> None:
        """Told of a session just closed (or replayed) with `charge_on_close`'s rates, at once,
        before anything after the close can fail: a close that changed the session and left it
        charged settled its first charge itself (a change leaves a session pending or not
        charged otherwise), and the tally hears of it. (A retried exit is a replay, which
        would find it charged and tell nothing.)"""
        if closing.changed and session.charge_state is ChargeState.CHARGED:
            assert session.charge is not None
            self._tally.credits_charged(session.charge.credits)

    async def settle_many(self, sessions: Sequence[Session]) -> list[Session]:
        """What calling this service on each session would do, for a batch of one tenant's
        sessions (the reaper's, a few hundred at most) in one atomic step of the store
        (`CreditLedger.settle_many`) instead of one per session: the same prices, entries,
        warnings and alerts. A session whose claim is lost to another caller or a correction
        (or whose subject's ledger was held) is read again and settled on its own, as a single
        settlement would be; once one is left pending, the others of its subject are left for
        the next run. Returns the sessions, in order, as settled (or as they are when not
        pending)."""
        pending = [s for s in sessions if s.charge_state is ChargeState.PENDING]
        if not pending:
            return list(sessions)
        tenant_id = pending[0].tenant_id
        assert all(s.tenant_id == tenant_id for s in pending), "one tenant's sessions"
        # Subjects whose sessions are left pending for the next run: those an unfinished erasure
        # gave out, and those one of whose sessions was left pending below (an erasure holding
        # a ledger would keep each of the others waiting for seconds).
        left = await self._unfinished_erasures(tenant_id, {s.subject_id for s in pending})
        pending = [s for s in pending if s.subject_id not in left]
        rates = await self._rate_book.rates(tenant_id)
        priced = [Priced(s, price(s, rates.get(s.kind))) for s in pending]
        try:
            charges = await self._ledger.settle_many(tenant_id, priced, self._clock.now())
        except SettlementCutShort as cut:
            for session in pending:
                self._tell_first(session, cut.charges.get(session.id))
            raise
        # The batch's own charges first: settling one of the others may fail, and what the batch
        # wrote must be told all the same.
        for session in pending:
            if (charge := charges.get(session.id)) is not None:
                self._settle(session, charge)
        settled = []
        for session in sessions:
            if (
                session.charge_state is ChargeState.PENDING
                and session.id not in charges  # claimed, corrected or held: on its own
                and (subject := session.subject_id) not in left
            ):
                session = await self(await self._ledger.settled(tenant_id, session.id))
                if session.charge_state is ChargeState.PENDING and subject is not None:
                    left.add(subject)
            settled.append(session)
        return settled

    async def __call__(self, session: Session) -> Session:
        if session.charge_state is ChargeState.PENDING and await self._unfinished_erasures(
            session.tenant_id, {session.subject_id}
        ):
            return session  # pending: the reaper's, once the erasure is done
        for _ in range(ATTEMPTS):
            if session.charge_state is not ChargeState.PENDING:
                return session
            rate = (await self._rate_book.rates(session.tenant_id)).get(session.kind)
            try:
                charge = await self._ledger.settle(
                    session.tenant_id,
                    session.id,
                    session.charge_revision,
                    price(session, rate),
                    self._clock.now(),
                )
            except LedgerHeld:
                return session  # pending: the reaper's
            except SettlementCutShort as cut:
                self._tell_first(session, cut.charges.get(session.id))
                raise

            if charge is not None:
                self._settle(session, charge)
                return session
            # Settled by another caller, or corrected again since it was read.
            session = await self._ledger.settled(session.tenant_id, session.id)
        return session

    def _settle(self, session: Session, charge: Charge) -> None:
        """This caller's settlement wrote `charge`: the session takes it, and the tally hears of
        it if it is the session's first."""
        self._tell_first(session, charge)
        session.settle(charge)

    def _tell_first(self, session: Session, charge: Charge | None) -> None:
        """The tally hears of a charge this caller claimed if it is the session's first (so
        each first charge is told once, whoever races, even when the store failed after the
        claim: SettlementCutShort)."""
        if charge is not None and session.charge is None:
            self._tally.credits_charged(charge.credits)

    async def _unfinished_erasures(
        self, tenant_id: str, subjects: Iterable[str | None]
    ) -> set[str | None]:
        """Those of these subjects that are pseudonyms an unfinished erasure gave out: their
        ledgers may still be under the erased subjects' ids. (Other subjects cost no read.)"""
        return {
            subject
            for subject in subjects
            if is_pseudonym(subject) and await self._erasures.gave_out(tenant_id, str(subject))
        }
