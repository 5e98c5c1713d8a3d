"""A batch of settlements (CreditLedger.settle_many) in one transaction: what it asks of the
driver it is sent to (asyncpg_settlements on PostgreSQL, sqlite_settlements on SQLite's thread).

The transaction takes its subjects' ledger locks that are free (in subject order, before any
session's: a single settlement takes its subject's, then its session's), locks the sessions' charge states
(in id order, as every lock of several sessions is taken), sums their subjects' balances, and
then writes what domain.charging.settle_batch decided: the settled sessions, the ledger entries,
the alerts. Under those locks a session read pending at its revision stays so until the commit,
so every claim holds, and no other settlement of those subjects charges between the balances
read and the entries written; the unique (session, revision) index of the ledger is the last
word all the same.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from domain.session import Charge, ChargeState

Row = Mapping[str, Any]
# What a claim checks of a session as stored (Priced.claimable): charge state, revision, subject.
Stored = tuple[ChargeState, int, str | None]


def kept_balance(tenant_id: str, subject_id: str) -> str:
    """The SQL expression of a subject's balance as the database keeps it (ledger_balances,
    migration 0030), 0 for a subject without entries; its arguments are SQL expressions too.
    Batches and single settlements read it on both engines."""
    return (
        "coalesce((SELECT b.granted - b.consumed FROM ledger_balances b"
        f" WHERE b.tenant_id = {tenant_id} AND b.subject_id = {subject_id}), 0)"
    )


def ledger_lock(tenant_id: str, subject_id: str) -> tuple[str, ...]:
    """The key of the lock a settlement takes on its subject's ledger (engine.serialise), so
    that settlements of one subject read its balance one after the other."""
    return ("ledger", tenant_id, subject_id)


class SettlementWriter(Protocol):
    async def lock_subjects(self, subject_ids: list[str]) -> set[str]:
        """Take those of these subjects' ledger locks that are free (ids sorted), held until the
        transaction ends; the subjects taken. A batch waits for no ledger: one an erasure
        holds, or a single settlement, is left to the sessions' single settlements."""
        ...

    async def charge_states(self, session_ids: list[str]) -> dict[str, Stored]:
        """The charge state, revision and subject of each session found (ids sorted), locked
        until the transaction ends."""
        ...

    async def balances(self, subject_ids: list[str]) -> dict[str, int]:
        """Each subject's balance (the sum of its ledger); a subject without entries may be
        left out."""
        ...

    async def write(
        self, charges: Mapping[str, Charge], entries: Sequence[Row], raised: Sequence[Row]
    ) -> None:
        """Mark the sessions settled at their charges; insert the entries and the alerts (rows
        as the tables' columns name them)."""
        ...


def settled_values(charge: Charge) -> dict[str, Any]:
    """The SETTLED_COLUMNS of a session settled at `charge` (Session.settle)."""
    return {
        "charge_state": ChargeState.CHARGED.value,
        "charge_credits": charge.credits,
        "charge_balance_after": charge.balance_after,
        "charge_warning": charge.warning,
    }
