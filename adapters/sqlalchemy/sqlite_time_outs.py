"""The reaper's time-out of a batch of stale sessions with sqlite3 on SQLite's thread
(adapters.sqlalchemy.sqlite_statements, adapters.sqlalchemy.time_outs), in one hop."""

import sqlite3

from adapters.sqlalchemy import sqlite_sessions
from adapters.sqlalchemy.sqlite_statements import instant
from adapters.sqlalchemy.time_outs import Positional, time_out_statement
from domain.session import Session
from domain.staleness import Staleness


async def time_out(
    connection: sqlite3.Connection,
    tenant_id: str,
    staleness: Staleness,
    limit: int,
    rated_kinds: frozenset[str],
) -> list[Session]:
    """Close up to `limit` stale active sessions, in a transaction that took the write lock; the
    sessions closed, with usage and gaps, in id order. (Async only to share the steps'
    signature: it waits for nothing.)"""
    parameter = Positional(instant)
    statement = time_out_statement(tenant_id, staleness, limit, rated_kinds, parameter, "")
    ids = [row[0] for row in connection.execute(statement, parameter.values).fetchall()]
    if not ids:
        return []
    closed = sqlite_sessions.read(connection, tenant_id, ids)
    return [closed[session_id] for session_id in sorted(closed)]
