"""Events deleted for good (by retention, or with a resource), their numbers remembered on their
sessions (Session.deleted_events): they arrived, so they are no gaps."""

from typing import Any

from sqlalchemy import Select, bindparam, delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sqlalchemy.tables import events, sessions
from domain.event_gaps import deleted_too


async def delete_remembering(conn: AsyncConnection, tenant_id: str, picked: Select[Any]) -> int:
    """Delete the tenant's events `picked` (their primary keys) and add their numbers to their
    sessions' deleted_events. The sessions are locked first, in id order, as a client's batch
    locks them before it writes their events. How many went."""
    keys = [tuple(key) for key in await conn.execute(picked)]
    if not keys:
        return 0
    deleted = await _deleted_of(conn, tenant_id, {session_id for _, session_id, _ in keys})
    gone = await conn.execute(
        delete(events)
        .where(tuple_(*events.primary_key.columns).in_(keys))
        .returning(events.c.session_id, events.c.sequence_no)
    )
    numbers: dict[str, list[int]] = {}
    for session_id, number in gone:
        numbers.setdefault(session_id, []).append(number)
    changed = [
        {"session_id": session_id, "deleted": deleted_too(deleted[session_id], numbers_of)}
        for session_id, numbers_of in numbers.items()
        if session_id in deleted
    ]
    if changed:
        await conn.execute(
            update(sessions)
            .where(sessions.c.tenant_id == tenant_id, sessions.c.id == bindparam("session_id"))
            .values(deleted_events=bindparam("deleted")),
            changed,
        )
    return sum(map(len, numbers.values()))


async def _deleted_of(
    conn: AsyncConnection, tenant_id: str, session_ids: set[str]
) -> dict[str, list[tuple[int, int]]]:
    """The sessions' deleted_events, their rows locked in id order."""
    found = await conn.execute(
        select(sessions.c.id, sessions.c.deleted_events)
        .where(sessions.c.tenant_id == tenant_id, sessions.c.id.in_(sorted(session_ids)))
        .order_by(sessions.c.id)
        .with_for_update()
    )
    return {session_id: [(a, b) for a, b in deleted] for session_id, deleted in found}
