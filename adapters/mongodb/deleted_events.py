"""Events deleted for good (by retention, or with a resource), their numbers remembered on their
sessions (Session.deleted_events): they arrived, so they are no gaps."""

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.documents import Document
from domain.event_gaps import as_ranges, merged

# Ranges a session's document may hold before a deletion joins them: each call pushes its own
# (a long session's retention pushes one a thousand events), so without joining they would grow
# with the session's life, in a document every read of the session decodes.
JOINED_PAST = 8


async def delete_remembering(
    db: AsyncDatabase[Document],
    tenant_id: str,
    query: Document,
    limit: int,
    sort: list[tuple[str, int]] | None = None,
) -> int:
    """Delete `limit` of the events `query` finds (in `sort` order). Each session first gets
    the numbers of its events about to go (ranges pushed, joined when read), then they go: a
    call that dies between the two leaves numbers remembered that are still stored, which are no
    gap either. How many went."""
    picked = {"_id": 1, "session_id": 1, "sequence_no": 1}
    found = [event async for event in db["events"].find(query, picked, sort=sort, limit=limit)]
    if not found:
        return 0
    numbers: dict[str, list[int]] = {}
    for event in found:
        numbers.setdefault(event["session_id"], []).append(event["sequence_no"])
    remembered = [
        UpdateOne(
            {"tenant_id": tenant_id, "id": session_id},
            {"$push": {"deleted_events": {"$each": [list(r) for r in as_ranges(numbers_of)]}}},
        )
        for session_id, numbers_of in numbers.items()
    ]
    await db["sessions"].bulk_write(remembered, ordered=False)
    deleted = await db["events"].delete_many({"_id": {"$in": [e["_id"] for e in found]}})
    await _join(db, tenant_id, list(numbers))
    return deleted.deleted_count


async def _join(db: AsyncDatabase[Document], tenant_id: str, session_ids: list[str]) -> None:
    """Rewrite the ranges of those sessions that hold more than JOINED_PAST as the fewest that
    hold the same numbers. Each rewrite is guarded on the ranges as read: one a concurrent
    deletion pushed to meanwhile is left as it is, for a later call to join."""
    long = {
        "tenant_id": tenant_id,
        "id": {"$in": session_ids},
        f"deleted_events.{JOINED_PAST}": {"$exists": True},
    }
    rewrites = []
    async for document in db["sessions"].find(long, {"_id": 0, "id": 1, "deleted_events": 1}):
        pushed = document["deleted_events"]
        joined = merged((first, last) for first, last in pushed)
        if len(joined) < len(pushed):
            rewrites.append(
                UpdateOne(
                    {"tenant_id": tenant_id, "id": document["id"], "deleted_events": pushed},
                    {"$set": {"deleted_events": [list(r) for r in joined]}},
                )
            )
    if rewrites:
        await db["sessions"].bulk_write(rewrites, ordered=False)
