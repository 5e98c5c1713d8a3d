"""The reaper's time-out of a batch of stale sessions through asyncpg
(adapters.sqlalchemy.asyncpg_statements, adapters.sqlalchemy.time_outs)."""

from adapters.sqlalchemy import asyncpg_sessions
from adapters.sqlalchemy.asyncpg_statements import Driver
from adapters.sqlalchemy.time_outs import Numbered, time_out_statement
from domain.session import Session
from domain.staleness import Staleness


async def time_out(
    driver: Driver,
    tenant_id: str,
    staleness: Staleness,
    limit: int,
    rated_kinds: frozenset[str],
) -> list[Session]:
    """Close up to `limit` stale active sessions, in a transaction; the sessions closed, read
    under the locks taken, with usage and gaps, in id order."""
    parameter = Numbered()
    statement = time_out_statement(
        tenant_id, staleness, limit, rated_kinds, parameter, " FOR UPDATE SKIP LOCKED"
    )
    ids = sorted(row[0] for row in await driver.fetch(statement, *parameter.values))
    if not ids:
        return []
    closed = await asyncpg_sessions.lock(driver, tenant_id, ids)
    return [closed[session_id] for session_id in ids]
