"""The ports of the credits area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from application.pagination import Position
from domain.charging import Priced
from domain.credits import Alert, Balance, LedgerEntry, Rate
from domain.session import Charge, Session


class LedgerHeld(Exception):
    """A settlement found its subject's ledger held (by an erasure moving it) for longer than a
    settlement waits, a few seconds: it claimed nothing, and the session stays pending (the
    reaper settles it). Raised with the session's id."""


class UnfinishedErasures(Protocol):
    async def gave_out(self, tenant_id: str, pseudonym: str) -> bool:
        """Whether an erasure that gave out this pseudonym is unfinished (under way, or failed
        and not retried yet: Erasure.pseudonym_for until Erasure.finished), so that the ledger
        its sessions are charged from may still be under the subject's id. Once False, False
        for good: a pseudonym is never given out again."""
        ...


class ChargeTally(Protocol):
    def credits_charged(self, credits: int) -> None:
        """Told once of each session's first charge, by the settlement that wrote it (the
        server's `sessionmeter_credits_charged` metric); never of an adjustment."""
        ...


class RateRepository(Protocol):
    async def put(self, tenant_id: str, rate: Rate) -> None:
        """Create or replace the rate of `rate.kind`."""
        ...

    async def all(self, tenant_id: str) -> list[Rate]: ...


class CreditLedger(Protocol):
    async def grant(self, entry: LedgerEntry) -> tuple[LedgerEntry, bool]:
        """Record a grant once per idempotency key: (the entry, True), or, when the key is
        taken in the tenant, (the stored entry, False) and nothing recorded."""
        ...

    async def settle(
        self, tenant_id: str, session_id: str, revision: int, credits: int, at: datetime
    ) -> Charge | None:
        """Settle revision `revision` of a pending session at `credits`, atomically and at most
        once whatever the number of concurrent callers: what domain.charging.settle says (the
        first settlement a charge entry, later ones an adjustment of the difference; none for a
        difference of 0) dated `at`, the session's charge and its alert, and the session marked
        charged. None when the session is not pending at that revision (settled by another
        caller, or corrected again since: read it and settle the new revision).
        Settlements of one subject (by `settle` and `settle_many`) take turns: each decides
        from the balance with the charges of those before it, so its balance_after, warning and
        alert are those of some order of them; a `settle` whose subject's balance changed after
        it read it claims nothing (None: read it and settle again). A session whose subject's
        ledger is held (Erasure.with_ledgers_held), or whose subject's other settlements keep
        it waiting, is waited for a few seconds, then LedgerHeld is raised."""
        ...

    async def settle_many(
        self, tenant_id: str, priced: Sequence[Priced], at: datetime
    ) -> dict[str, Charge]:
        """`settle` for a batch of the tenant's sessions (a few hundred at most) in one atomic
        step, at most once per session whatever concurrent `settle` or `settle_many` callers
        do: each session still pending at the revision it was read at (`Priced.claimable`) is
        settled at its price as domain.charging.settle_batch says (as many `settle` calls one
        after the other would: each subject's balance carries the sessions settled before it),
        dated `at`, and its charge returned by session id. A session missing from the result
        was not settled here (settled by another caller, or corrected since: read it and settle
        the new revision; or its subject's ledger was held or busy: a single `settle` waits
        for it). MongoDB, without multi-document transactions, claims each session with the
        note of what it owes the ledger, as `settle` does: a crash halfway leaves nothing
        settled twice or lost."""
        ...

    async def settled(self, tenant_id: str, session_id: str) -> Session:
        """The session as its settlement left it (NotFound if there is none)."""
        ...

    async def balance(self, tenant_id: str, subject_id: str) -> Balance:
        """The sums of the subject's ledger: the balance is always exactly their difference."""
        ...

    async def entries(
        self, tenant_id: str, subject_id: str, limit: int, after: Position | None = None
    ) -> list[LedgerEntry]:
        """Up to `limit` entries, oldest first (by created_at, then id), after `after`."""
        ...

    async def alerts(
        self, tenant_id: str, limit: int, before: Position | None = None
    ) -> list[Alert]:
        """Up to `limit` alerts, newest first (by created_at, then id), before `before`."""
        ...
