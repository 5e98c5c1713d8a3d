"""Settlements written through asyncpg (adapters.sqlalchemy.asyncpg_statements).

A batch: the steps of adapters.sqlalchemy.settlement_batches, a statement each whatever the
batch's size, and each looking sessions and subjects up one by one by their keys (LATERAL): the
same plan with or without fresh statistics (a tenant's sessions loaded in bulk a moment ago have
none, and `id = ANY(…)` then scans all of them).

One session's (adapters.sqlalchemy.settlement_claims): on every charged exit, so its two
statements go to the driver as the exit's own do, each autocommitted.
"""

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from types import SimpleNamespace

from sqlalchemy import Table

from adapters.sqlalchemy.asyncpg_statements import Driver, parameters, unnest
from adapters.sqlalchemy.engine import SEPARATOR
from adapters.sqlalchemy.session_rows import SETTLED_COLUMNS, from_row, to_row
from adapters.sqlalchemy.settlement_batches import (
    Row,
    SettlementWriter,
    Stored,
    kept_balance,
    ledger_lock,
    settled_values,
)
from adapters.sqlalchemy.settlement_claims import Claim, Found, SettlementStatements, Shape
from adapters.sqlalchemy.tables import alerts, ledger_entries, sessions
from domain.session import Charge, ChargeState

# In the order of the keys given (sorted): engine.serialise's lock for each key, if it is free.
LOCK_SUBJECTS = (
    "SELECT pg_try_advisory_xact_lock(hashtextextended(k.key, 0))"
    " FROM unnest($1::text[]) WITH ORDINALITY AS k(key, n) ORDER BY k.n"
)
# In the order of the ids given (sorted): locks of several sessions are taken in id order.
LOCK = (
    "SELECT s.id, s.charge_state, s.charge_revision, s.subject_id"
    " FROM unnest($2::varchar[]) AS k(id)"
    " CROSS JOIN LATERAL (SELECT id, charge_state, charge_revision, subject_id FROM sessions"
    " WHERE tenant_id = $1 AND id = k.id FOR UPDATE) AS s"
)
BALANCES = (
    f"SELECT k.subject_id, {kept_balance('$1', 'k.subject_id')}"
    " FROM unnest($2::varchar[]) AS k(subject_id)"
)
SETTLE = (
    f"UPDATE sessions AS s SET {', '.join(f'{c} = v.{c}' for c in SETTLED_COLUMNS)}"
    f" FROM {unnest(sessions, ('id', *SETTLED_COLUMNS), 2)}"
    f" AS v(id, {', '.join(SETTLED_COLUMNS)})"
    " WHERE s.tenant_id = $1 AND s.id = v.id"
)
ENTRY_COLUMNS = tuple(c.key for c in ledger_entries.c if c.key != "tenant_id")
INSERT_ENTRIES = (
    f"INSERT INTO ledger_entries (tenant_id, {', '.join(ENTRY_COLUMNS)})"
    f" SELECT $1, * FROM {unnest(ledger_entries, ENTRY_COLUMNS, 2)}"
)
ALERT_COLUMNS = tuple(c.key for c in alerts.c if c.key != "tenant_id")
INSERT_ALERTS = (
    f"INSERT INTO alerts (tenant_id, {', '.join(ALERT_COLUMNS)})"
    f" SELECT $1, * FROM {unnest(alerts, ALERT_COLUMNS, 2)}"
)


class AsyncpgSettlementWriter(SettlementWriter):
    """On a connection in a transaction."""

    def __init__(self, driver: Driver, tenant_id: str) -> None:
        self._driver = driver
        self._tenant_id = tenant_id

    async def lock_subjects(self, subject_ids: list[str]) -> set[str]:
        subjects = sorted(subject_ids)
        keys = [SEPARATOR.join(ledger_lock(self._tenant_id, s)) for s in subjects]
        taken = await self._driver.fetch(LOCK_SUBJECTS, keys)
        return {s for s, row in zip(subjects, taken, strict=True) if row[0]}

    async def charge_states(self, session_ids: list[str]) -> dict[str, Stored]:
        rows = await self._driver.fetch(LOCK, self._tenant_id, sorted(session_ids))
        return {row[0]: (ChargeState(row[1]), row[2], row[3]) for row in rows}

    async def balances(self, subject_ids: list[str]) -> dict[str, int]:
        rows = await self._driver.fetch(BALANCES, self._tenant_id, subject_ids)
        return {row[0]: int(row[1]) for row in rows}  # sums are numeric: Decimals

    async def write(
        self, charges: Mapping[str, Charge], entries: Sequence[Row], raised: Sequence[Row]
    ) -> None:
        if charges:
            values = [settled_values(charge) for charge in charges.values()]
            arrays = [[v[c] for v in values] for c in SETTLED_COLUMNS]
            await self._driver.execute(SETTLE, self._tenant_id, list(charges), *arrays)
        for statement, columns, rows in (
            (INSERT_ENTRIES, ENTRY_COLUMNS, entries),
            (INSERT_ALERTS, ALERT_COLUMNS, raised),
        ):
            if rows:
                assert all(row["tenant_id"] == self._tenant_id for row in rows)
                await self._driver.execute(
                    statement, self._tenant_id, *([row[c] for row in rows] for c in columns)
                )


# The session with its subject's balance (migration 0030 keeps it); in a transaction, the
# balance read once the subject's ledger lock is held, which the transaction keeps (0027, 0030).
_READ_WITH = "SELECT s.*, {balance} AS balance FROM sessions s WHERE s.tenant_id = $1 AND s.id = $2"
READ_UNLOCKED = _READ_WITH.format(balance=kept_balance("s.tenant_id", "s.subject_id"))
READ_LOCKED = _READ_WITH.format(
    balance="CASE WHEN s.subject_id IS NULL THEN 0"
    " ELSE ledger_balance_locked(s.tenant_id, s.subject_id) END"
)
RECORD_TABLES = {table.name: table for table in (ledger_entries, alerts)}


@cache
def claim_with_records(shape: Shape) -> str:
    """The claim and the inserts of records of this shape (Claim.shape), as data-modifying
    CTEs: the records are inserted only from a claim made. Parameters: the tenant, the session,
    the revision, the subject, the balance read, SETTLED_COLUMNS, then each record's columns.
    Migration 0030's ledger_balance_locked takes the subject's lock and reads its balance. (A
    session without a subject is never settled: Session.awaits_settlement.)"""
    settled = ", ".join(f"{c} = ${n}" for n, c in enumerate(SETTLED_COLUMNS, start=6))
    claim = (
        f"UPDATE sessions SET {settled} WHERE tenant_id = $1 AND id = $2"
        f" AND charge_state = '{ChargeState.PENDING.value}' AND charge_revision = $3"
        " AND subject_id = $4 AND ledger_balance_locked(tenant_id, subject_id) = $5::numeric"
        " RETURNING id"
    )
    inserts = records_inserted(shape, 6 + len(SETTLED_COLUMNS), "claimed")
    return f"WITH claimed AS ({claim}){inserts} SELECT count(*) FROM claimed"


def records_inserted(shape: Shape, first: int, source: str) -> str:
    """CTEs inserting records of this shape (Claim.shape), their columns bound from $`first`,
    once for each row of the CTE `source` (none when it has none)."""
    return _records(
        shape, first, lambda table, columns, n: f"{parameters(table, columns, n)} FROM {source}"
    )


def records_of_members(shape: Shape, first: int, source: str) -> str:
    """As records_inserted, for several members each with records of this shape: each record's
    columns bound as arrays from $`first`, an element a member, in the members' order; a
    member's records inserted only if the CTE `source` returns its `member` (its place, from 1)."""

    def selected(table: Table, columns: tuple[str, ...], n: int) -> str:
        named = ", ".join(columns)
        return (
            f"{', '.join(f'r.{c}' for c in columns)} FROM {unnest(table, columns, n)}"
            f" WITH ORDINALITY AS r({named}, member) JOIN {source} USING (member)"
        )

    return _records(shape, first, selected)


def _records(
    shape: Shape, first: int, selected: Callable[[Table, tuple[str, ...], int], str]
) -> str:
    """A CTE for each table of the shape inserting what `selected` (a SELECT's list and FROM,
    given the table, the columns and the number of their first parameter) selects."""
    inserts = []
    for name, columns in shape:
        inserts.append(
            f", record_{name} AS (INSERT INTO {name} ({', '.join(columns)})"
            f" SELECT {selected(RECORD_TABLES[name], columns, first)})"
        )
        first += len(columns)
    return "".join(inserts)


class AsyncpgSettlement(SettlementStatements):
    """On a connection outside a transaction; `taking_turns`, in one, holding the subject's
    ledger lock from the read on."""

    def __init__(self, driver: Driver, taking_turns: bool = False) -> None:
        self._driver = driver
        self._read = READ_LOCKED if taking_turns else READ_UNLOCKED

    async def read(self, tenant_id: str, session_id: str) -> Found | None:
        row = await self._driver.fetchrow(self._read, tenant_id, session_id)
        if row is None:
            return None
        return Found(from_row(SimpleNamespace(**row)), int(row["balance"]), held=False)

    async def claim(self, claim: Claim) -> bool:
        session = claim.settled
        settled = to_row(session)
        claimed = await self._driver.fetchval(
            claim_with_records(claim.shape),
            session.tenant_id,
            session.id,
            claim.revision,
            session.subject_id,
            claim.balance,
            *(settled[c] for c in SETTLED_COLUMNS),
            *(value for _, row in claim.records for value in row.values()),
        )
        return bool(claimed)
