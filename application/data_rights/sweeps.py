"""The bounded loops that erasure, resource deletion and retention share: each calls one port
step at a time, so no statement or transaction grows with a session's events."""

from collections.abc import Awaitable, Callable, Sequence

from application.data_rights.ports import Erased, Erasure, Removed
from domain.erasure import Forgetting

BATCH = 1000  # events or rows a step
SESSIONS = 100  # sessions a step


async def in_batches(step: Callable[[], Awaitable[int]]) -> int:
    """Call `step` until it finds nothing left; the sum of what it did."""
    total = 0
    while (n := await step()) > 0:
        total += n
    return total


async def erase(
    erasure: Erasure, tenant_id: str, session_ids: Sequence[str], forgetting: Forgetting
) -> Erased:
    """Clear the sessions' events a batch at a time, then erase the sessions in one step that
    also clears any event stored meanwhile."""
    if not session_ids:
        return Erased()
    cleared = await in_batches(lambda: erasure.clear_events(tenant_id, session_ids, BATCH))
    return Erased(events=cleared) + await erasure.erase_sessions(tenant_id, session_ids, forgetting)


async def delete(erasure: Erasure, tenant_id: str, session_ids: Sequence[str]) -> Removed:
    """Delete the sessions' events a batch at a time, then the sessions in one step that also
    deletes any event stored meanwhile; billed sessions are kept (and named)."""
    if not session_ids:
        return Removed()
    events = await in_batches(lambda: erasure.delete_events(tenant_id, session_ids, BATCH))
    removed = await erasure.delete_sessions(tenant_id, session_ids)
    return Removed(removed.sessions, events + removed.events, removed.kept)
