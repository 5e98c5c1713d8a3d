"""One session's settlement (CreditLedger.settle, its steps credits._settled): what it asks of
the engine it runs on (asyncpg_settlements.AsyncpgSettlement on PostgreSQL, two autocommitted
statements; sqlite_settlements.SqliteSettlement on SQLite, one transaction on SQLite's thread).

It reads the session with its subject's balance, lets domain.charging.settle decide, then
claims the revision it read while writing what the decision records, atomically. The claim
holds only if the session is still pending at that revision and, on PostgreSQL, its subject's
balance is still the one read once the claim holds the subject's ledger lock (SQLite's
transaction holds its one write lock throughout): so settlements of one subject take turns,
each deciding from the charges before it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from domain.session import Session


@dataclass(frozen=True)
class Found:
    session: Session
    balance: int  # of its subject (0 for none)
    held: bool  # whether an erasure holds its subject's ledger (SQLite; PostgreSQL's claim waits)


# The tables and columns of a settlement's records: what the statement writing them depends on.
Shape = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Claim:
    """The claim of `settled` (the session with its new charge) at `revision`, whose subject's
    balance was read as `balance`, writing `records`: (table name, row) of each ledger entry and
    alert the settlement records."""

    settled: Session
    revision: int
    balance: int
    records: Sequence[tuple[str, Mapping[str, Any]]]

    @property
    def shape(self) -> Shape:
        return shape_of(self.records)


def shape_of(records: Sequence[tuple[str, Mapping[str, Any]]]) -> Shape:
    return tuple((table, tuple(row)) for table, row in records)


class SettlementStatements(Protocol):
    async def read(self, tenant_id: str, session_id: str) -> Found | None:
        """The session with its subject's balance, or None if there is none."""
        ...

    async def claim(self, claim: Claim) -> bool:
        """Whether the claim held (and its records were written with it, atomically). On
        PostgreSQL it waits 5 s at most for the subject's ledger lock, then raises the
        driver's lock_not_available error (an erasure holds it)."""
        ...
