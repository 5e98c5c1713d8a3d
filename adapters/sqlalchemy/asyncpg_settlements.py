"""A batch of settlements written through asyncpg (adapters.sqlalchemy.asyncpg_statements): the
steps of adapters.sqlalchemy.settlement_batches, a statement each whatever the batch's size, and
each looking sessions and subjects up one by one by their keys (LATERAL): the same plan with or
without fresh statistics (a tenant's sessions loaded in bulk a moment ago have none, and
`id = ANY(…)` then scans all of them)."""

from collections.abc import Mapping, Sequence

from adapters.sqlalchemy.asyncpg_statements import Driver, unnest
from adapters.sqlalchemy.engine import SEPARATOR
from adapters.sqlalchemy.session_rows import SETTLED_COLUMNS
from adapters.sqlalchemy.settlement_batches import (
    Row,
    SettlementWriter,
    Stored,
    ledger_lock,
    settled_values,
)
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
    "SELECT k.subject_id, (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e"
    " WHERE e.tenant_id = $1 AND e.subject_id = k.subject_id)"
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
