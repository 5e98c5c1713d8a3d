"""Events deleted for good (by retention, or with a resource), their numbers remembered on their
sessions (Session.deleted_events): they arrived, so they are no gaps."""

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.documents import Document
from domain.event_gaps import as_ranges


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
    return deleted.deleted_count
