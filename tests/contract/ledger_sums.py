"""The SQL stores' kept balances (ledger_balances, migration 0030) next to the sums of their
ledgers, both read with SQL: for the tests of what the triggers keep."""

from typing import Any

from sqlalchemy import text

KEPT = text(
    "SELECT subject_id, granted, consumed, entries FROM ledger_balances WHERE tenant_id = :t"
    " ORDER BY subject_id"
)
SUMMED = text(
    "SELECT subject_id,"
    " sum(CASE WHEN kind = 'grant' THEN amount ELSE 0 END),"
    " sum(CASE WHEN kind = 'grant' THEN 0 ELSE -amount END), count(*)"
    " FROM ledger_entries WHERE tenant_id = :t GROUP BY subject_id ORDER BY subject_id"
)


async def kept_and_summed(storage: Any, tenant_id: str) -> tuple[list[Any], list[Any]]:
    """(subject, granted, consumed, entries) of each subject of the tenant: as kept, as summed."""
    async with storage.engine.connect() as conn:
        return await _rows(conn, KEPT, tenant_id), await _rows(conn, SUMMED, tenant_id)


async def _rows(conn: Any, query: Any, tenant_id: str) -> list[Any]:
    # PostgreSQL sums to Decimals, SQLite to ints.
    return [
        tuple(int(v) if i else v for i, v in enumerate(row))
        for row in await conn.execute(query, {"t": tenant_id})
    ]
