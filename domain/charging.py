"""What a session is charged, and what its settlement writes to the ledger.

A session is charged once when it closes, then corrected as often as its price changes (late
meters, an end the reaper guessed and later evidence moved, the client's own exit): each change is
one `adjustment` entry of the difference, so the session's charge is the sum of its entries and
the balance stays the sum of the ledger. Every store numbers a session's settlements by its
`charge_revision`: a correction of the session moves the revision on and leaves it pending, a
settlement claims exactly the revision it priced, and the ledger holds at most one entry per
(session, revision). So concurrent or retried settlements record each change exactly once.
"""

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from domain.credits import Alert, EntryKind, LedgerEntry, Rate
from domain.erasure import is_pseudonym
from domain.session import CHARGED_STATUSES, Charge, ChargeState, Session

NEGATIVE_BALANCE = "negative_balance"
CREDITS_LOW = "credits_low"
CREDITS_EXHAUSTED = "credits_exhausted"


def price(session: Session, rate: Rate | None) -> int:
    """What the ended session costs as it stands: nothing when its kind has no rate, it has no
    subject, or it ended in a way that is not charged (cancelled, failed)."""
    if rate is None or session.is_anonymous or session.status not in CHARGED_STATUSES:
        return 0
    return rate.price(session)


@dataclass(frozen=True)
class Settlement:
    """What settling one revision of a session's charge records."""

    kind: EntryKind  # charge (the first) or adjustment
    amount: int  # the ledger entry's amount (negative: consumed); no entry when 0
    reason: str
    charge: Charge  # the session's charge afterwards
    alert: str | None  # the alert's text, when one is recorded

    @property
    def writes_entry(self) -> bool:
        return self.amount != 0

    def ledger_entry(self, session: Session, at: datetime) -> LedgerEntry | None:
        """The entry it writes for `session` (as read, so of the revision claimed); none for a
        difference of 0."""
        if not self.writes_entry or session.subject_id is None:
            return None
        return LedgerEntry(
            str(uuid.uuid4()),
            session.tenant_id,
            session.subject_id,
            self.amount,
            self.kind,
            at,
            self.reason,
            session.id,
            session_revision=session.charge_revision,
        )

    def alert_record(self, session: Session, at: datetime) -> Alert | None:
        """The alert it records for `session`, if any."""
        if self.alert is None or session.subject_id is None:
            return None
        return Alert(
            str(uuid.uuid4()),
            session.tenant_id,
            NEGATIVE_BALANCE,
            session.subject_id,
            session.id,
            self.alert,
            at,
        )


def settle(session: Session, credits: int, balance_before: int) -> Settlement:
    """Settle the ended session at `credits` (its price now), its subject's balance being
    `balance_before`. Every store calls this inside its claim of the session's revision.

    - The first settlement is a `charge` of the whole price, its reason "<kind> session"; each
      later one, after a correction, is an `adjustment` of the difference, its reason "<kind>
      session corrected". A difference of 0 writes no entry.
    - A balance left below zero is warned (`negative_balance`); one left at zero or above is not.
    - The first charge that leaves the balance below zero also alerts an admin ("charging 60
      credits left a balance of -50"); adjustments never alert."""
    first = session.charge is None
    charged_before = 0 if session.charge is None else session.charge.credits
    amount = charged_before - credits
    balance_after = balance_before + amount
    warning = NEGATIVE_BALANCE if balance_after < 0 else None
    alert = None
    if warning and first:
        alert = f"charging {credits} credits left a balance of {balance_after}"
    return Settlement(
        EntryKind.CHARGE if first else EntryKind.ADJUSTMENT,
        amount,
        f"{session.kind} session" if first else f"{session.kind} session corrected",
        Charge(credits, balance_after, warning),
        alert,
    )


@dataclass(frozen=True)
class Priced:
    """A settlement asked for: `session` as read, pending at its charge_revision, priced at
    `credits` (`price`)."""

    session: Session
    credits: int

    @property
    def session_id(self) -> str:
        return self.session.id

    @property
    def revision(self) -> int:
        return self.session.charge_revision

    def claimable(self, state: ChargeState, revision: int, subject_id: str | None) -> bool:
        """Whether the session, stored now at charge `state` and `revision` and of `subject_id`,
        may be settled as priced: it is still pending at the revision read, and still of the
        subject read (an erasure may have given it a pseudonym since, and moved the ledger the
        price was to be drawn from). Its charge so far is then the one read too, since only a
        settlement changes a charge, and a settlement leaves it charged."""
        return (
            state is ChargeState.PENDING
            and revision == self.revision
            and self.session.subject_id is not None
            and subject_id == self.session.subject_id
        )


@dataclass(frozen=True)
class Settled:
    """One session's settlement (within a batch, or in its close): what settling it (as read,
    so at the revision claimed) records."""

    session: Session
    settlement: Settlement

    @property
    def charge(self) -> Charge:
        return self.settlement.charge

    def ledger_entry(self, at: datetime) -> LedgerEntry | None:
        return self.settlement.ledger_entry(self.session, at)

    def alert_record(self, at: datetime) -> Alert | None:
        return self.settlement.alert_record(self.session, at)

    def settled_session(self) -> Session:
        """The session as its settlement leaves it (a copy: the one read is left as read)."""
        settled = self.session.copy()
        settled.settle(self.charge)
        return settled


@dataclass(frozen=True)
class ChargeOnClose:
    """The tenant's rates, for a store that can settle a session's first charge in the very
    write that closes it (SessionRepository.close), dated `at`: the exit and its charge in one
    atomic step, where DeductCredits would take a second."""

    rates: Mapping[str, Rate]
    at: datetime

    @property
    def rated_kinds(self) -> frozenset[str]:
        """Kinds whose sessions are left pending a charge when they close."""
        return frozenset(self.rates)

    def settlement(self, session: Session, balance_before: int) -> Settled | None:
        """What a close that changed `session` (as the close leaves it; a replay writes nothing
        and settles nothing here) records with it, its subject's balance being `balance_before`:
        `settle` at its price, when it is pending its first charge. None leaves it to
        DeductCredits: an adjustment, and the session of a pseudonym (an erasure that gave it
        out may still be moving its ledger)."""
        if (
            session.charge_state is not ChargeState.PENDING
            or session.charge is not None
            or session.subject_id is None
            or is_pseudonym(session.subject_id)
        ):
            return None
        credits = price(session, self.rates.get(session.kind))
        return Settled(session, settle(session, credits, balance_before))


def settle_batch(claimed: Iterable[Priced], balances: Mapping[str, int]) -> list[Settled]:
    """Settle a batch of sessions, each as `settle` would, one after the other in session id
    order: `claimed` are those a store found claimable (`Priced.claimable`) under its claim of
    them, `balances` their subjects' balances before the batch (`subjects_of`; a subject
    missing has none). Each subject's balance carries the amounts of its sessions settled
    before, so the warnings and alerts are what settling them one at a time records. A session
    given twice is settled once."""
    running = dict(balances)
    settled: list[Settled] = []
    seen: set[str] = set()
    for asked in sorted(claimed, key=lambda p: p.session_id):
        subject = asked.session.subject_id
        if asked.session_id in seen or subject is None:
            continue
        seen.add(asked.session_id)
        settlement = settle(asked.session, asked.credits, running.get(subject, 0))
        running[subject] = settlement.charge.balance_after
        settled.append(Settled(asked.session, settlement))
    return settled


def subjects_of(priced: Iterable[Priced]) -> set[str]:
    """The subjects whose balances settling these sessions needs."""
    return {p.session.subject_id for p in priced if p.session.subject_id is not None}


@dataclass(frozen=True)
class Estimate:
    """What an active session would cost if it ended now, and what that leaves."""

    credits: int
    balance_after: int
    warning: str | None


def estimate(
    session: Session, rate: Rate, balance: int, now: datetime, low_balance: int
) -> Estimate:
    """The running cost of an active session of a rated kind, as if it ended now (completed)."""
    ended_now = replace(session.copy(), ended_at=max(now, session.started_at))
    credits = rate.price(ended_now)
    left = balance - credits
    warning = None
    if left < 0:
        warning = CREDITS_EXHAUSTED
    elif left < low_balance:
        warning = CREDITS_LOW
    return Estimate(credits, left, warning)
