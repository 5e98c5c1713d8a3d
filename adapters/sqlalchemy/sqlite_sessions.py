"""Sessions read, locked and written with sqlite3 on SQLite's thread
(adapters.sqlalchemy.sqlite_statements): the statements of the lifecycle and of ingest."""

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from adapters.sqlalchemy.engine import json_text
from adapters.sqlalchemy.quantities import from_nanos, to_nanos
from adapters.sqlalchemy.session_rows import from_row, gaps_bound, gaps_sql, to_row, with_gaps
from adapters.sqlalchemy.sqlite_statements import instant, instant_of, json_of
from adapters.sqlalchemy.tables import sessions
from domain.session import Session
from domain.usage import Usage

INSTANT_COLUMNS = ("started_at", "last_seen_at", "ended_at")
JSON_COLUMNS = ("attributes", "summary", "deleted_events")
_COLUMNS = tuple(sessions.c.keys())

INSERT = (
    f"INSERT INTO sessions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    " ON CONFLICT DO NOTHING"
)
METERS = "SELECT meter, quantity_nanos, is_decimal FROM session_meters WHERE tenant_id = ? AND session_id = ?"
GAPS = gaps_sql(("?", "?", "?"))
ADD_USAGE = (
    "INSERT INTO session_meters (tenant_id, session_id, meter, quantity_nanos, is_decimal)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, session_id, meter) DO UPDATE SET"
    " quantity_nanos = quantity_nanos + excluded.quantity_nanos,"
    " is_decimal = is_decimal OR excluded.is_decimal"
)


def read(
    connection: sqlite3.Connection, tenant_id: str, ids: Iterable[str], gaps: bool = True
) -> dict[str, Session]:
    """The sessions of these ids, with usage, and with gaps unless told not to (finding them
    reads all of a session's events). (In a transaction they are as locked as SQLite locks:
    its writers take the database's one write lock first.)"""
    ids = list(ids)
    cursor = connection.execute(
        f"SELECT * FROM sessions WHERE tenant_id = ? AND id IN ({', '.join('?' * len(ids))})",
        [tenant_id, *ids],
    )
    found = {}
    for row in rows_of(cursor):
        session = found[row.id] = session_of(row)
        meters = connection.execute(METERS, (tenant_id, row.id))
        session.usage = {m: from_nanos(nanos, bool(decimal)) for m, nanos, decimal in meters}
        if gaps and row.event_count < row.max_sequence_no:
            with_gaps(session, connection.execute(GAPS, (tenant_id, row.id, gaps_bound(session))))
    return found


def rows_of(cursor: sqlite3.Cursor) -> list[SimpleNamespace]:
    """The cursor's rows, each with its columns as attributes."""
    names = [column[0] for column in cursor.description]
    return [SimpleNamespace(**dict(zip(names, values, strict=True))) for values in cursor]


def session_of(row: SimpleNamespace) -> Session:
    """The session a row of sessions holds (as from_row, its instants and JSON decoded first),
    without usage or gaps."""
    for name in INSTANT_COLUMNS:
        setattr(row, name, instant_of(getattr(row, name)))
    for name in JSON_COLUMNS:
        setattr(row, name, json_of(getattr(row, name)))
    return from_row(row)


def read_one(connection: sqlite3.Connection, tenant_id: str, session_id: str) -> Session | None:
    """The session of this id, or None; its row, usage and gaps from one snapshot (a
    transaction of its own: a read outside the lifecycle's steps)."""
    connection.execute("BEGIN")  # deferred: a snapshot, no write lock
    try:
        return read(connection, tenant_id, [session_id]).get(session_id)
    finally:
        connection.execute("COMMIT")


def insert(connection: sqlite3.Connection, session: Session) -> bool:
    """Store a new session; False (nothing stored) if its id is taken."""
    return connection.execute(INSERT, _values(to_row(session), _COLUMNS)).rowcount == 1


def save(
    connection: sqlite3.Connection,
    changed: Sequence[Session],
    columns: Sequence[str],
    usage: Mapping[str, Usage],
) -> None:
    """Write these columns of sessions read in this transaction and add `usage` to their meters."""
    assignments = ", ".join(f"{c} = ?" for c in columns)
    connection.executemany(
        f"UPDATE sessions SET {assignments} WHERE tenant_id = ? AND id = ?",
        [[*_values(to_row(s), columns), s.tenant_id, s.id] for s in changed],
    )
    connection.executemany(
        ADD_USAGE,
        [
            (s.tenant_id, s.id, meter, to_nanos(quantity), isinstance(quantity, Decimal))
            for s in changed
            for meter, quantity in usage.get(s.id, {}).items()
        ],
    )


def _values(row: dict[str, Any], columns: Sequence[str]) -> list[Any]:
    return [
        instant(row[c])
        if c in INSTANT_COLUMNS
        else json_text(row[c])
        if c in JSON_COLUMNS
        else row[c]
        for c in columns
    ]
