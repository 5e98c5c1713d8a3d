"""Settlements written with sqlite3 on SQLite's thread (adapters.sqlalchemy.sqlite_statements),
their rows passed to sqlite3 as SQLAlchemy would store them: a batch, the steps of
adapters.sqlalchemy.settlement_batches in one hop; one session's, the steps of
adapters.sqlalchemy.settlement_claims in one hop."""

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache

from adapters.sqlalchemy.session_rows import SETTLED_COLUMNS, to_row
from adapters.sqlalchemy.settlement_batches import (
    Row,
    SettlementWriter,
    Stored,
    kept_balance,
    settled_values,
)
from adapters.sqlalchemy.settlement_claims import Claim, Found, SettlementStatements
from adapters.sqlalchemy.sqlite_sessions import rows_of, session_of
from adapters.sqlalchemy.sqlite_statements import instant
from adapters.sqlalchemy.tables import alerts, ledger_entries
from domain.session import Charge, ChargeState

SETTLE = (
    f"UPDATE sessions SET {', '.join(f'{c} = ?' for c in SETTLED_COLUMNS)}"
    " WHERE tenant_id = ? AND id = ?"
)
ENTRY_COLUMNS = tuple(c.key for c in ledger_entries.c)
ALERT_COLUMNS = tuple(c.key for c in alerts.c)
INSTANT_COLUMNS = ("expires_at", "created_at")


RECORD_COLUMNS = {"ledger_entries": ENTRY_COLUMNS, "alerts": ALERT_COLUMNS}


@cache
def insert_into(table: str) -> tuple[str, Sequence[str]]:
    """The INSERT of a row of ledger_entries or alerts, and its columns. (Built on first use, not
    at import: so that a mutation run, whose processes fork from one that imported the code,
    sees its mutants.)"""
    columns = RECORD_COLUMNS[table]
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", columns


# One session's settlement: the session with its subject's balance (migration 0030 keeps it) and
# whether an erasure holds the subject's ledger (tables.ledger_holds); the claim, guarded on the
# pending revision and the subject the decision read.
READ_WITH_BALANCE = (
    f"SELECT s.*, {kept_balance('s.tenant_id', 's.subject_id')} AS balance,"
    " EXISTS (SELECT 1 FROM ledger_holds h WHERE h.tenant_id = s.tenant_id"
    " AND h.subject_id = s.subject_id AND h.held_until > ?) AS held"
    " FROM sessions s WHERE s.tenant_id = ? AND s.id = ?"
)
CLAIM = (
    f"{SETTLE} AND charge_state = '{ChargeState.PENDING.value}' AND charge_revision = ?"
    " AND subject_id = ?"
)


class SqliteSettlementWriter(SettlementWriter):
    """On a connection in a transaction that took the write lock (sqlite_statements
    .in_transaction): every read is as locked as SQLite locks. Its awaits return at once."""

    def __init__(self, connection: sqlite3.Connection, tenant_id: str) -> None:
        self._connection = connection
        self._tenant_id = tenant_id

    async def lock_subjects(self, subject_ids: list[str]) -> set[str]:
        """Those whose ledger no erasure holds (tables.ledger_holds): the transaction holds
        SQLite's one write lock, which serialises the settlements."""
        held = self._connection.execute(
            "SELECT subject_id FROM ledger_holds"
            f" WHERE tenant_id = ? AND subject_id IN ({', '.join('?' * len(subject_ids))})"
            " AND held_until > ?",
            [self._tenant_id, *subject_ids, instant(datetime.now(UTC))],
        )
        return set(subject_ids) - {row[0] for row in held}

    async def charge_states(self, session_ids: list[str]) -> dict[str, Stored]:
        found = self._connection.execute(
            "SELECT id, charge_state, charge_revision, subject_id FROM sessions"
            f" WHERE tenant_id = ? AND id IN ({', '.join('?' * len(session_ids))})",
            [self._tenant_id, *session_ids],
        )
        return {row[0]: (ChargeState(row[1]), row[2], row[3]) for row in found}

    async def balances(self, subject_ids: list[str]) -> dict[str, int]:
        sums = self._connection.execute(
            "SELECT subject_id, granted - consumed FROM ledger_balances"
            f" WHERE tenant_id = ? AND subject_id IN ({', '.join('?' * len(subject_ids))})",
            [self._tenant_id, *subject_ids],
        )
        return {subject: int(total) for subject, total in sums}

    async def write(
        self, charges: Mapping[str, Charge], entries: Sequence[Row], raised: Sequence[Row]
    ) -> None:
        self._connection.executemany(
            SETTLE,
            [
                [*_values(settled_values(charge), SETTLED_COLUMNS), self._tenant_id, session_id]
                for session_id, charge in charges.items()
            ],
        )
        for table, rows in (("ledger_entries", entries), ("alerts", raised)):
            statement, columns = insert_into(table)
            self._connection.executemany(statement, [_values(row, columns) for row in rows])


def _values(row: Row, columns: Sequence[str]) -> list[object]:
    return [instant(row[c]) if c in INSTANT_COLUMNS else row[c] for c in columns]


class SqliteSettlement(SettlementStatements):
    """On a connection in a transaction that took the write lock (sqlite_statements
    .in_transaction): the claim holds while the session is pending at the revision read, and
    nothing else writes meanwhile. Its awaits return at once."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def read(self, tenant_id: str, session_id: str) -> Found | None:
        now = instant(datetime.now(UTC))
        found = rows_of(self._connection.execute(READ_WITH_BALANCE, [now, tenant_id, session_id]))
        if not found:
            return None
        row = found[0]
        return Found(session_of(row), row.balance, bool(row.held))

    async def claim(self, claim: Claim) -> bool:
        session = claim.settled
        settled = to_row(session)
        claimed = self._connection.execute(
            CLAIM,
            [
                *(settled[c] for c in SETTLED_COLUMNS),
                session.tenant_id,
                session.id,
                claim.revision,
                session.subject_id,
            ],
        )
        if claimed.rowcount != 1:
            return False
        for table, row in claim.records:
            statement, columns = insert_into(table)
            self._connection.execute(statement, _values(row, columns))
        return True
